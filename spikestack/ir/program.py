"""`Program`: the discrete, backend-neutral form that the simulator and the Lava backend both run.

An ordered list of operators. Synapse and reshaping operators keep their NIR node (NIR field names
and layouts: weight[out, in], conv weight[C_out, C_in, k...]); neuron operators carry per-step
coefficients computed once, in `lower.py`, so no executor re-derives them from NIR.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from spikestack.ir.options import LoweringOptions
from spikestack.ir.shapes import Shape


@dataclass(frozen=True)
class NeuronCoefficients:
    """Per-step update of one neuron population (arrays broadcast to the population's shape).

    i[t] = alpha_i * i[t-1] + gain_i * x[t]                         (only when alpha_i is not None)
    v[t] = alpha_v * v[t-1] + gain_v * drive + bias_v               drive = i[t] (or i[t-1]) or x[t]
    s[t] = v[t] > v_threshold (or >=)                                (only when spiking)
         or floor(v[t] / v_threshold) spikes when spikes_per_step is "many"
    reset: "zero" -> v = v_reset, "subtract" -> v -= s * v_threshold; now or in the next step (timing:
        "immediate", "delayed" after the decay and input, "before_decay" of the next step).
    """

    kind: str  # the NIR type it came from
    alpha_v: np.ndarray
    gain_v: np.ndarray
    bias_v: np.ndarray
    v_init: np.ndarray
    alpha_i: np.ndarray | None = None
    gain_i: np.ndarray | None = None
    v_threshold: np.ndarray | None = None  # None: no spikes (LI, CubaLI, I); the output is v
    v_reset: np.ndarray | None = None
    reset: str = "zero"
    reset_timing: str = "immediate"
    cuba_order: str = "current_first"
    threshold: str = ">"
    spikes_per_step: str = "one"

    @property
    def spiking(self) -> bool:
        return self.v_threshold is not None

    @property
    def emits(self) -> str:
        """What the population sends on: "binary" spikes, spike "counts" (several per step), or
        "graded" values (v of a non-spiking kind), as `ir.counts` and the engines name them."""
        if not self.spiking:
            return "graded"
        return "counts" if self.spikes_per_step == "many" else "binary"

    @property
    def has_current(self) -> bool:
        return self.alpha_i is not None


@dataclass(frozen=True)
class Source:
    """An incoming edge: outputs of `name`, `delay` steps old (1 on recurrent back edges)."""

    name: str
    delay: int = 0


@dataclass(frozen=True)
class Op:
    name: str
    kind: str  # NIR type name: "Input", "Affine", "Conv2d", "LIF", ...
    in_shape: Shape
    out_shape: Shape
    sources: tuple[Source, ...]
    params: object  # NeuronCoefficients for neurons, delay steps for Delay, else the NIR node

    @property
    def is_neuron(self) -> bool:
        return isinstance(self.params, NeuronCoefficients)

    @property
    def emits(self) -> str:
        """What the op sends on where its own kind decides it: a neuron says (`NeuronCoefficients.emits`),
        a Threshold fires 0/1; other ops pass on what they receive, taken as "graded" values until
        known (the engines combine their inputs' kinds; this is the guess for a back edge not yet run)."""
        if self.is_neuron:
            return self.params.emits
        return "binary" if self.kind == "Threshold" else "graded"


@dataclass(frozen=True)
class Program:
    ops: tuple[Op, ...]  # in execution order: every forward source comes before its consumer
    inputs: tuple[str, ...]
    outputs: tuple[str, ...]
    options: LoweringOptions

    def op(self, name: str) -> Op:
        for op in self.ops:
            if op.name == name:
                return op
        raise KeyError(name)

    @property
    def neuron_ops(self) -> tuple[Op, ...]:
        return tuple(op for op in self.ops if op.is_neuron)
