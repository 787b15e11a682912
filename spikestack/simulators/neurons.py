"""Neuron kernels: thin stateful wrappers around the dynamics written once in `spikestack.ir`.

`NeuronFloat` calls `ir.dynamics.neuron_step` with the Program's coefficients as torch tensors;
`NeuronFixed` calls `ir.fixed.lif_step_fixed` with the quantised integers of `ir.quantise`. Neither
derives a coefficient or repeats an update equation; they keep the state between steps and
expose it for recording.
"""

from __future__ import annotations

import dataclasses

import numpy as np
import torch

from spikestack.ir import fixed
from spikestack.ir.dynamics import NeuronState, initial_state, neuron_step
from spikestack.ir.program import NeuronCoefficients, Op
from spikestack.ir.quantise import NeuronInts

ARRAY_FIELDS = ("alpha_v", "gain_v", "bias_v", "v_init", "alpha_i", "gain_i", "v_threshold", "v_reset")
# A threshold no 24-bit voltage reaches: how a non-spiking neuron (LI, CubaLI, I) runs through
# Lava's LIF update without ever spiking or resetting.
NEVER = 1 << 40


def heaviside(x: torch.Tensor) -> torch.Tensor:
    """Strict x > 0 as 0/1 in x's dtype: `ir.dynamics.heaviside` for finite x, ~6x faster on
    torch's CPU, whose bool-to-float conversion dominated the whole neuron update."""
    return torch.sign(x).clamp_(min=0)


class NeuronFloat:
    """One neuron population in float arithmetic; the output is spikes, or v if non-spiking."""

    def __init__(self, op: Op, dtype: torch.dtype):
        p: NeuronCoefficients = op.params
        tensors = {f: torch.as_tensor(getattr(p, f), dtype=dtype) for f in ARRAY_FIELDS if getattr(p, f) is not None}
        self.p = dataclasses.replace(p, **tensors)
        self.state: NeuronState | None = None

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        if self.state is None:
            self.state = initial_state(self.p, x)
        out, self.state = neuron_step(x, self.state, self.p, spike_fn=heaviside)
        return out

    def record(self) -> dict[str, torch.Tensor]:
        rec = {"v": self.state.v}
        if self.p.has_current:
            rec["i"] = self.state.i
        if self.p.spiking:
            rec["s"] = self.state.s
        return rec


class NeuronFixed:
    """One population in Loihi's fixed point (`PyLifModelBitAcc`, with our extensions).

    x is the synaptic input a_in (int64, already delayed one step by the synapse op, as Lava's
    Dense delivers it). Extensions beyond the stock LIF, as our custom Lava models do them:
    subtractive reset (fixed's "subtract"), a non-zero v_reset (added where it spiked, after
    Lava's reset to 0), non-spiking kinds (a threshold v never reaches; the output is v), and
    Norse's voltage-first CubaLIF order, which is the current-first order on input one step
    older: a_in waits one more step.
    """

    def __init__(self, q: NeuronInts):
        self.q = q
        self.spiking = q.vth is not None
        self.vth = q.vth if self.spiking else np.int64(NEVER)
        self.u = self.v = self.s = None
        self.pending: np.ndarray | None = None

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        q = self.q
        a_in = x.numpy()
        if self.v is None:
            self.u = np.zeros(a_in.shape, dtype=np.int64)
            self.v = self.u + q.v_init
            self.s = np.zeros(a_in.shape, dtype=np.int64)
            self.pending = np.zeros(a_in.shape, dtype=np.int64)
        if q.delay_input:
            a_in, self.pending = self.pending, a_in
        self.s, self.u, self.v = fixed.lif_step_fixed(
            a_in, self.u, self.v, q.du, q.dv, q.bias_mant, q.bias_exp, self.vth, q.reset, q.compare, q.spikes_per_step)
        if self.spiking and q.reset == "zero" and q.v_reset is not None:
            self.v = self.v + np.minimum(self.s, 1) * q.v_reset
        return torch.from_numpy(self.s if self.spiking else self.v)

    def record(self) -> dict[str, torch.Tensor]:
        rec = {"v": torch.from_numpy(self.v)}
        if self.q.has_current:  # u is the current register; without a current it is just a_in << 6
            rec["i"] = torch.from_numpy(self.u)
        if self.spiking:
            rec["s"] = torch.from_numpy(self.s)
        return rec
