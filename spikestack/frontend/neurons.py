"""Torch neuron layers and the step-by-step network container, thin wrappers over `ir.dynamics`.

A neuron layer holds NIR parameters (NIR names and units: tau in the unit of dt) plus what NIR does
not carry (dt, reset mode, reset timing, initial potential). Its per-step coefficients come from
`spikestack.ir.lower.neuron_coefficients` on the very `nir.IF`/`nir.LIF` node the exporter writes, and
its update is `spikestack.ir.dynamics.neuron_step` with a surrogate as `spike_fn`: training, the
simulator and Lava run one ODE, discretised in one place.

`SpikingSequential` runs synapse modules (Linear, Conv2d, Flatten, pooling) and neuron layers step by
step. Its readout (`Readout`, `predict`) is the one every method uses: the output layer's spike
count over T, ties broken by its final membrane potential.
"""

from __future__ import annotations

import dataclasses
from typing import Callable, NamedTuple

import nir
import numpy as np
import torch
from torch import nn

from spikestack.errors import OptionsError
from spikestack.frontend.surrogates import Surrogate, surrogate
from spikestack.ir.dynamics import NeuronState, initial_state, neuron_step
from spikestack.ir.lower import neuron_coefficients
from spikestack.ir.options import LoweringOptions
from spikestack.ir.primitives import kind_of
from spikestack.ir.program import NeuronCoefficients

# Coefficient fields that are arrays (become buffers); the rest of NeuronCoefficients are flags.
_ARRAY_FIELDS = ("alpha_v", "gain_v", "bias_v", "v_init", "alpha_i", "gain_i", "v_threshold", "v_reset")


class _Neurons(nn.Module):
    """Shared body of IF and LIF layers; `nir_type` is the NIR node type a layer exports (set by each subclass)."""

    nir_type: type[nir.NIRNode]

    def __init__(self, shape: int | tuple[int, ...], nir_params: dict, *, reset: str, reset_timing: str,
                 initial_potential: float, dt: float, spike_fn: str | Surrogate, threshold: str = ">",
                 spikes_per_step: str = "one", integration: str = "euler", fixed_point: str = "loihi"):
        super().__init__()
        self.shape = (int(shape),) if np.ndim(shape) == 0 else tuple(int(s) for s in shape)
        if not self.shape or min(self.shape) < 1:
            raise OptionsError(f"{self.nir_type.__name__}: shape must be positive sizes, got {shape!r}")
        try:  # per-neuron arrays, never scalars: NIR's type inference breaks on those (issue 176)
            self.nir_params = {k: np.broadcast_to(np.asarray(v, np.float64), self.shape).copy() for k, v in nir_params.items()}
        except ValueError:
            raise OptionsError(f"{self.nir_type.__name__}: parameters do not broadcast to shape {self.shape}") from None
        if (self.nir_params["v_threshold"] <= 0).any():
            raise OptionsError(f"{self.nir_type.__name__}: v_threshold must be positive")
        for tau in ("tau", "tau_mem", "tau_syn"):
            if tau in self.nir_params and (self.nir_params[tau] <= 0).any():
                raise OptionsError(f"{self.nir_type.__name__}: {tau} must be positive")
        self.options = LoweringOptions(dt=dt, reset=reset, reset_timing=reset_timing, initial_potential=initial_potential,
                                       threshold=threshold, spikes_per_step=spikes_per_step, integration=integration,
                                       fixed_point=fixed_point)
        self.spike_fn = surrogate(spike_fn)
        node = self.to_nir()
        coeffs = neuron_coefficients(node, kind_of(node), self.shape, self.options, kind_of(node))
        self._flags = dataclasses.replace(coeffs, **{f: None for f in _ARRAY_FIELDS})
        self._present = tuple(f for f in _ARRAY_FIELDS if getattr(coeffs, f) is not None)
        for f in self._present:  # converted once; buffers follow .to(device/dtype)
            self.register_buffer(f"coef_{f}", torch.as_tensor(getattr(coeffs, f), dtype=torch.get_default_dtype()))

    def to_nir(self) -> nir.NIRNode:
        """The NIR node with this layer's parameters (what `export_nir` writes).

        float32, as the file stores them; the coefficients are computed from this same node, so the
        torch layer and the lowered graph agree to the last bit of every parameter.
        """
        return self.nir_type(**{k: v.astype(np.float32) for k, v in self.nir_params.items()})

    def coefficients(self) -> NeuronCoefficients:
        return dataclasses.replace(self._flags, **{f: getattr(self, f"coef_{f}") for f in self._present})

    def initial_state(self, like: torch.Tensor) -> NeuronState:
        return initial_state(self.coefficients(), like)

    def step(self, x: torch.Tensor, state: NeuronState | None = None) -> tuple[torch.Tensor, NeuronState]:
        """One time step on input current x (B, *shape); returns (spikes, new state)."""
        p = self.coefficients()
        return neuron_step(x, state if state is not None else initial_state(p, x), p, self.spike_fn)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """A sequence (T, B, *shape) of input currents to the spikes (T, B, *shape)."""
        state, out = None, []
        for x_t in x:
            s, state = self.step(x_t, state)
            out.append(s)
        return torch.stack(out)

    def extra_repr(self) -> str:
        o = self.options
        return (f"{self.shape}, reset={o.reset}, initial_potential={o.initial_potential}, dt={o.dt}, "
                f"threshold='{o.threshold}', spikes_per_step={o.spikes_per_step}, surrogate={self.spike_fn.name}")


class IFNeurons(_Neurons):
    """Integrate-and-fire (NIR IF: dv/dt = r I): v <- v + dt*r*x, spike if v > v_threshold.

    Every layer takes the lowering options as keywords (`Options`): reset, reset_timing,
    initial_potential, dt, threshold (">" or ">="), spikes_per_step ("one" or "many"), integration and
    fixed_point (the integers loihi mode runs: "loihi" or "netx", frontend/targets.py)."""

    nir_type = nir.IF

    def __init__(self, shape: int | tuple[int, ...], v_threshold=1.0, r=1.0, v_reset=0.0, *, reset: str = "subtract",
                 spike_fn: str | Surrogate = "s2nn", **options):
        super().__init__(shape, dict(r=r, v_threshold=v_threshold, v_reset=v_reset), reset=reset, spike_fn=spike_fn,
                         **_defaults(options))


class LIFNeurons(_Neurons):
    """Leaky integrate-and-fire (NIR LIF: tau dv/dt = (v_leak - v) + r I), tau in the unit of dt."""

    nir_type = nir.LIF

    def __init__(self, shape: int | tuple[int, ...], tau=10.0, r=1.0, v_leak=0.0, v_threshold=1.0, v_reset=0.0, *,
                 reset: str = "zero", spike_fn: str | Surrogate = "s2nn", **options):
        super().__init__(shape, dict(tau=tau, r=r, v_leak=v_leak, v_threshold=v_threshold, v_reset=v_reset),
                         reset=reset, spike_fn=spike_fn, **_defaults(options))


class CubaLIFNeurons(_Neurons):
    """Current-based LIF (NIR CubaLIF: tau_syn dI/dt = -I + w_in S, tau_mem dv/dt = (v_leak - v) + r I),
    time constants in the unit of dt; the voltage integrates this step's current."""

    nir_type = nir.CubaLIF

    def __init__(self, shape: int | tuple[int, ...], tau_syn=5.0, tau_mem=10.0, r=1.0, v_leak=0.0, v_threshold=1.0,
                 v_reset=0.0, w_in=1.0, *, reset: str = "zero", spike_fn: str | Surrogate = "s2nn", **options):
        super().__init__(shape, dict(tau_syn=tau_syn, tau_mem=tau_mem, r=r, v_leak=v_leak, v_threshold=v_threshold,
                                     v_reset=v_reset, w_in=w_in), reset=reset, spike_fn=spike_fn, **_defaults(options))


def _defaults(options: dict) -> dict:
    """The lowering keywords a layer takes, with their defaults; anything else is refused by name."""
    known = dict(reset_timing="immediate", initial_potential=0.0, dt=1.0, threshold=">", spikes_per_step="one",
                 integration="euler", fixed_point="loihi")
    unknown = set(options) - set(known)
    if unknown:
        raise OptionsError(f"unknown neuron option(s): {', '.join(sorted(unknown))}; known: {', '.join(known)}")
    return {**known, **options}


NEURON_MODULES = (IFNeurons, LIFNeurons, CubaLIFNeurons)

# A training-time perturbation of a hidden layer's input current: noise(current, layer) -> current.
CurrentNoise = Callable[[torch.Tensor, _Neurons], torch.Tensor]


class Readout(NamedTuple):
    counts: torch.Tensor  # (B, classes) output spikes summed over time
    v: torch.Tensor  # (B, classes) output membrane after the last step (tie-breaker)
    current: torch.Tensor  # (B, classes) mean input current of the output layer: the training logits
    spikes: torch.Tensor  # (B,) spikes of all neuron layers summed over time: activity per sample


class SpikingSequential(nn.Sequential):
    """Synapse modules and neuron layers, run one time step at a time; the last module is neurons."""

    def neuron_layers(self) -> list[_Neurons]:
        return [m for m in self if isinstance(m, _Neurons)]

    def run(self, x_seq: torch.Tensor, noise: CurrentNoise | None = None) -> Readout:
        """Run input (T, B, *in); `noise` perturbs the input currents of hidden neuron layers only."""
        if not len(self) or not isinstance(self[-1], _Neurons):
            raise OptionsError("SpikingSequential must end with a neuron layer (the output neurons)")
        states: dict[int, NeuronState] = {}
        counts = current = spikes = 0
        last = len(self) - 1
        for x in x_seq:
            for i, module in enumerate(self):
                if not isinstance(module, _Neurons):
                    x = module(x)
                    continue
                if i == last:
                    current = current + x
                elif noise is not None:
                    x = noise(x, module)
                x, states[i] = module.step(x, states.get(i))
                spikes = spikes + x.flatten(1).sum(1)
            counts = counts + x
        return Readout(counts, states[last].v, current / len(x_seq), spikes)


def check_steps(steps: int) -> int:
    if isinstance(steps, bool) or not isinstance(steps, int) or steps < 1:
        raise OptionsError(f"steps must be an integer >= 1, got {steps!r}")
    return steps


def constant_input(x: torch.Tensor, steps: int) -> torch.Tensor:
    """The same input current at every step, (steps, B, *shape), without copying."""
    return x.unsqueeze(0).expand(check_steps(steps), *x.shape)


def predict(readout: Readout) -> torch.Tensor:
    """Class with the most output spikes; ties go to the highest final membrane, then the lowest index.

    With subtractive reset, count*theta + v_T = v_0 + sum of input currents, so at T=1 this is the
    argmax of the output membrane before reset, the logit a T=1 network is trained on.
    """
    counts = readout.counts.flatten(1)
    top = counts == counts.max(dim=1, keepdim=True).values
    v = torch.where(top, readout.v.flatten(1), torch.full_like(counts, -torch.inf))
    return v.argmax(dim=1)
