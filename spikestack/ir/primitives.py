"""What each NIR primitive is, said once: its role, its traits, its shape rule and its parameters in
the normalised form every consumer reads.

Consumers never test a kind name. They ask the op's `Primitive` (`primitive(kind)`, `Op.primitive`)
what it is -- a neuron, a synapse, a reshape, a delay, a threshold -- and read its typed parameters:
a synapse op's weights, bias and geometry as `DenseSynapse`, `ElementwiseSynapse` or `ConvSynapse`
(pools are depthwise convolutions with a kernel of ones), whatever NIR type it came from. A new
primitive is one entry in `PRIMITIVES` (and a kernel in any engine whose generic role handling does
not cover it).
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import partial
from enum import Enum
from typing import Callable, Union

import nir
import numpy as np

from spikestack.errors import UnsupportedError
from spikestack.ir import shapes
from spikestack.ir.shapes import Shape, ShapeRule


class Role(Enum):
    INPUT = "input"  # data enters here
    OUTPUT = "output"  # passes its input on, and is what a run returns
    NEURON = "neuron"  # state and dynamics: lower.py gives it NeuronCoefficients
    SYNAPSE = "synapse"  # a weighted sum of its input: a Synapse below
    RESHAPE = "reshape"  # the same values in another shape
    DELAY = "delay"  # the same values, whole steps later
    THRESHOLD = "threshold"  # stateless: 0/1 where the input exceeds a level


@dataclass(frozen=True)
class DenseSynapse:
    """y = x @ weight.T (+ bias) over the last axis (NIR's Affine, Linear)."""

    weight: np.ndarray  # float64 (out, in)
    bias: np.ndarray | None  # float64 as the file gives it (may be all zero); None where the kind has none


@dataclass(frozen=True)
class ElementwiseSynapse:
    """y = weight * x, one synapse per element (NIR's Scale)."""

    weight: np.ndarray  # float64, the op's input shape


@dataclass(frozen=True)
class ConvSynapse:
    """A sliding-window sum (NIR's Conv1d/Conv2d; SumPool2d and AvgPool2d as depthwise convolutions
    with a kernel of ones). y = conv(x, weight) / divisor (+ bias): an average pool sums exactly, then
    divides by its window's area, as torch does."""

    weight: np.ndarray  # float64 (C_out, C_in / groups, *kernel)
    bias: np.ndarray | None  # float64 (C_out,) as the file gives it; None where the kind has none
    stride: tuple[int, ...]
    padding: tuple[int, ...]
    dilation: tuple[int, ...]
    groups: int
    divisor: float = 1.0
    pool: bool = False  # a kernel of ones over each channel: no weights of its own

    @property
    def kernel(self) -> tuple[int, ...]:
        return tuple(int(k) for k in self.weight.shape[2:])

    @property
    def weights(self) -> np.ndarray:
        """The effective weights: the kernel divided by `divisor` (an average pool's 1/area)."""
        return self.weight if self.divisor == 1.0 else self.weight / self.divisor


Synapse = Union[DenseSynapse, ElementwiseSynapse, ConvSynapse]


@dataclass(frozen=True)
class DelaySteps:
    """Whole steps each element waits (NIR's Delay, divided by dt in lowering)."""

    steps: np.ndarray  # int64, the op's shape


@dataclass(frozen=True)
class ThresholdLevel:
    """Fires 1 where the input is strictly above `threshold` (NIR's Threshold)."""

    threshold: np.ndarray  # float64, broadcast to the op's shape


@dataclass(frozen=True)
class Primitive:
    """One NIR primitive as the stack knows it."""

    kind: str  # the NIR type name
    role: Role
    shape: ShapeRule
    spiking: bool = False  # emits 0/1 spikes (or spike counts)
    has_current: bool = False  # a synaptic current state (Cuba kinds)
    leaky: bool = False  # a time constant (tau or tau_mem) rather than pure integration
    spatial_dims: int = 0  # a sliding window's spatial dimensions (convolutions, pools)
    # NIR node, input shape, output shape -> normalised synapse parameters (synapse ops only)
    synapse: Callable[[nir.NIRNode, Shape, Shape], Synapse] | None = None

    @property
    def is_input(self) -> bool:
        return self.role is Role.INPUT

    @property
    def is_output(self) -> bool:
        return self.role is Role.OUTPUT

    @property
    def is_neuron(self) -> bool:
        return self.role is Role.NEURON

    @property
    def is_synapse(self) -> bool:
        return self.role is Role.SYNAPSE

    @property
    def is_dense(self) -> bool:
        """A weight matrix over the last axis (`DenseSynapse`)."""
        return self.synapse is _dense

    @property
    def is_elementwise(self) -> bool:
        """One weight per element (`ElementwiseSynapse`)."""
        return self.synapse is _elementwise

    @property
    def has_weight_array(self) -> bool:
        """Carries a NIR `weight` array of its own (dense layers and convolutions, not pools)."""
        return self.synapse is _dense or self.synapse is _conv

    @property
    def is_window(self) -> bool:
        """A sliding window (`ConvSynapse`): convolutions and pools."""
        return self.spatial_dims > 0

    @property
    def passes_values(self) -> bool:
        """Sends on what it receives, unchanged in value (Output, reshapes, delays)."""
        return self.role in (Role.OUTPUT, Role.RESHAPE, Role.DELAY)

    @property
    def stateful(self) -> bool:
        """Holds state across steps: what a loop needs to be a recurrence."""
        return self.role in (Role.NEURON, Role.DELAY)


def _float(value) -> np.ndarray:
    return np.asarray(value, dtype=np.float64)


def _optional_bias(node) -> np.ndarray | None:
    bias = getattr(node, "bias", None)
    return None if bias is None else _float(bias)


def _dense(node, in_shape: Shape, out_shape: Shape) -> DenseSynapse:
    return DenseSynapse(_float(node.weight), _optional_bias(node))


def _elementwise(node, in_shape: Shape, out_shape: Shape) -> ElementwiseSynapse:
    return ElementwiseSynapse(np.broadcast_to(_float(node.scale), in_shape).copy())


def _conv(node, in_shape: Shape, out_shape: Shape) -> ConvSynapse:
    ndim = len(in_shape) - 1
    return ConvSynapse(
        weight=_float(node.weight), bias=_optional_bias(node), stride=shapes.integers(node.stride, "stride", ndim, 1),
        padding=shapes.conv_padding(node, in_shape[1:]), dilation=shapes.integers(node.dilation, "dilation", ndim, 1),
        groups=shapes.integers(node.groups, "groups", 1, 1)[0])


def _pool(average: bool) -> Callable[[nir.NIRNode, Shape, Shape], ConvSynapse]:
    def normalise(node, in_shape: Shape, out_shape: Shape) -> ConvSynapse:
        kernel = shapes.integers(node.kernel_size, "kernel_size", 2, 1)
        return ConvSynapse(
            weight=np.ones((in_shape[0], 1, *kernel)), bias=None, stride=shapes.integers(node.stride, "stride", 2, 1),
            padding=shapes.integers(node.padding, "padding", 2, 0), dilation=(1, 1), groups=in_shape[0],
            divisor=float(np.prod(kernel)) if average else 1.0, pool=True)

    return normalise


_NEURON_RULE = ShapeRule(shapes.same_as_params, shapes.param_shape)

PRIMITIVES: dict[str, Primitive] = {p.kind: p for p in (
    Primitive("Input", Role.INPUT, ShapeRule(shapes.same_shape, shapes.no_hint)),
    Primitive("Output", Role.OUTPUT, ShapeRule(shapes.output_shape, shapes.no_hint)),
    Primitive("Affine", Role.SYNAPSE, ShapeRule(shapes.linear_shape, shapes.linear_hint), synapse=_dense),
    Primitive("Linear", Role.SYNAPSE, ShapeRule(shapes.linear_shape, shapes.linear_hint), synapse=_dense),
    Primitive("Scale", Role.SYNAPSE, _NEURON_RULE, synapse=_elementwise),
    Primitive("Conv1d", Role.SYNAPSE, ShapeRule(partial(shapes.conv_shape, ndim=1), shapes.conv_hint), synapse=_conv,
              spatial_dims=1),
    Primitive("Conv2d", Role.SYNAPSE, ShapeRule(partial(shapes.conv_shape, ndim=2), shapes.conv_hint), synapse=_conv,
              spatial_dims=2),
    Primitive("SumPool2d", Role.SYNAPSE, ShapeRule(shapes.pool_shape, shapes.no_hint), synapse=_pool(False),
              spatial_dims=2),
    Primitive("AvgPool2d", Role.SYNAPSE, ShapeRule(shapes.pool_shape, shapes.no_hint), synapse=_pool(True),
              spatial_dims=2),
    Primitive("Flatten", Role.RESHAPE, ShapeRule(shapes.flatten_shape, shapes.no_hint)),
    Primitive("Delay", Role.DELAY, _NEURON_RULE),
    Primitive("Threshold", Role.THRESHOLD, _NEURON_RULE, spiking=True),
    Primitive("IF", Role.NEURON, _NEURON_RULE, spiking=True),
    Primitive("LIF", Role.NEURON, _NEURON_RULE, spiking=True, leaky=True),
    Primitive("CubaLIF", Role.NEURON, _NEURON_RULE, spiking=True, has_current=True, leaky=True),
    Primitive("I", Role.NEURON, _NEURON_RULE),
    Primitive("LI", Role.NEURON, _NEURON_RULE, leaky=True),
    Primitive("CubaLI", Role.NEURON, _NEURON_RULE, has_current=True, leaky=True),
)}


def kind_of(node: nir.NIRNode) -> str:
    """The NIR type name of a node."""
    return type(node).__name__


def primitive(kind: str, node_name: str | None = None) -> Primitive:
    """The primitive of a NIR type name; UnsupportedError (naming the node, if given) otherwise."""
    try:
        return PRIMITIVES[kind]
    except KeyError:
        raise UnsupportedError(f"unsupported primitive '{kind}'", node=node_name) from None


def primitive_of(node: nir.NIRNode, node_name: str | None = None) -> Primitive:
    return primitive(kind_of(node), node_name)


def kinds_with(test: Callable[[Primitive], bool]) -> tuple[str, ...]:
    """The kind names whose primitive passes `test`, for messages and registries that list them."""
    return tuple(kind for kind, p in PRIMITIVES.items() if test(p))


def window_taps(size: int, out: int, kernel: int, stride: int, pad: int, dilation: int
                ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Along one spatial axis of a sliding window: (output, tap, input) index triples of every
    connection that lands inside the input (padding connects nothing)."""
    o = np.repeat(np.arange(out), kernel)
    k = np.tile(np.arange(kernel), out)
    i = o * stride - pad + k * dilation
    inside = (i >= 0) & (i < size)
    return o[inside], k[inside], i[inside]
