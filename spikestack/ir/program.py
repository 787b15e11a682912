"""`Program`: the discrete, backend-neutral form that the simulator and the Lava backend both run.

An ordered list of operators. Each keeps its NIR node as read (`Op.node`, for exporters) and carries
its parameters in one typed form (`Op.params`, NIR layouts: weight[out, in], conv weight[C_out,
C_in, k...]): per-step `NeuronCoefficients` for neurons, computed once in `lower.py` so no executor
re-derives them from NIR; a normalised synapse (`ir.primitives`) for weighted ops; `DelaySteps`;
`ThresholdLevel`. What each op is, its `Primitive`, says how to treat it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Union

import nir
import numpy as np

from spikestack.ir.options import LoweringOptions
from spikestack.ir.primitives import ConvSynapse, DelaySteps, Primitive, Synapse, ThresholdLevel, primitive
from spikestack.ir.shapes import Shape

EVENT_KINDS = ("binary", "counts", "graded")  # what an array holds: 0/1 spikes, spike counts, values


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

    # The options as booleans, which is how `ir.dynamics` reads them: compiled engines (numba)
    # branch on booleans cheaply but compare strings per element and step.
    @property
    def current_first(self) -> bool:
        return self.cuba_order == "current_first"

    @property
    def subtracts(self) -> bool:
        return self.reset == "subtract"

    @property
    def resets_before_decay(self) -> bool:
        return self.reset_timing == "before_decay"

    @property
    def resets_delayed(self) -> bool:
        return self.reset_timing == "delayed"

    @property
    def resets_now(self) -> bool:
        return self.reset_timing == "immediate"

    @property
    def fires_at_threshold(self) -> bool:
        return self.threshold == ">="

    @property
    def many_spikes(self) -> bool:
        return self.spikes_per_step == "many"


@dataclass(frozen=True)
class Source:
    """An incoming edge: outputs of `name`, `delay` steps old (1 on recurrent back edges)."""

    name: str
    delay: int = 0


OpParams = Union["NeuronCoefficients", Synapse, DelaySteps, ThresholdLevel, None]


@dataclass(frozen=True)
class Op:
    name: str
    kind: str  # NIR type name: "Input", "Affine", "Conv2d", "LIF", ...
    in_shape: Shape
    out_shape: Shape
    sources: tuple[Source, ...]
    node: nir.NIRNode  # as read, NIR field names (exporters write it back)
    params: OpParams  # see the module docstring; None for Input, Output and reshapes

    @property
    def primitive(self) -> Primitive:
        return primitive(self.kind, self.name)

    @property
    def is_neuron(self) -> bool:
        return isinstance(self.params, NeuronCoefficients)

    @property
    def synapse(self) -> Synapse | None:
        """The normalised weights, bias and geometry of a synapse op; None for other ops."""
        return self.params if self.primitive.is_synapse else None

    @property
    def emits(self) -> str:
        """What the op sends on where its own kind decides it: a neuron says (`NeuronCoefficients.emits`),
        a Threshold fires 0/1; other ops pass on what they receive, taken as "graded" values until
        known (`Program.event_kinds` combines their inputs' kinds; this is the guess for a back edge
        not yet run)."""
        if self.is_neuron:
            return self.params.emits
        return "binary" if self.primitive.spiking else "graded"


def combine_kinds(kinds: list[str]) -> str:
    """What a sum of arrays holds: graded if any is, binary only for one binary source, else counts."""
    if "graded" in kinds:
        return "graded"
    return "binary" if kinds == ["binary"] else "counts"


@dataclass(frozen=True)
class Program:
    ops: tuple[Op, ...]  # in execution order: every forward source comes before its consumer
    inputs: tuple[str, ...]
    outputs: tuple[str, ...]
    options: LoweringOptions
    _consumers: dict = field(default_factory=dict, init=False, repr=False, compare=False)

    def op(self, name: str) -> Op:
        for op in self.ops:
            if op.name == name:
                return op
        raise KeyError(name)

    @property
    def neuron_ops(self) -> tuple[Op, ...]:
        return tuple(op for op in self.ops if op.is_neuron)

    def consumers(self, name: str) -> tuple[str, ...]:
        """The ops that read op `name`'s output (forward and back edges), in Program order."""
        if not self._consumers:
            found: dict[str, list[str]] = {op.name: [] for op in self.ops}
            for op in self.ops:
                for src in op.sources:
                    found[src.name].append(op.name)
            self._consumers.update({n: tuple(c) for n, c in found.items()})
        return self._consumers[name]

    def event_kinds(self, input_kinds: dict[str, str], pools_count: bool) -> dict[str, str]:
        """What each op emits ("binary", "counts" or "graded"), for every engine and the Lava run's
        counts alike: inputs as given, neurons and Threshold as they say (`Op.emits`), ops that pass
        values on what they receive, a sum pool of spikes counts where `pools_count`, the rest
        graded. A back-edge source not yet seen is taken at its `Op.emits`."""
        kinds: dict[str, str] = {}
        for op in self.ops:
            sources = [kinds.get(s.name) or self.op(s.name).emits for s in op.sources]
            what = op.primitive
            if what.is_input:
                kinds[op.name] = input_kinds[op.name]
            elif op.is_neuron or what.spiking:
                kinds[op.name] = op.emits
            elif what.passes_values:
                kinds[op.name] = combine_kinds(sources)
            elif (pools_count and isinstance(op.synapse, ConvSynapse) and op.synapse.pool and op.synapse.divisor == 1
                  and combine_kinds(sources) != "graded"):
                kinds[op.name] = "counts"
            else:
                kinds[op.name] = "graded"
        return kinds
