"""Shape rules of the NIR primitives; `ir.primitives` says which rule each primitive uses.

Shapes exclude the batch dimension, as in NIR. Each rule has two halves:
- `output(node, in_shape)`: the output shape for a given input shape, raising on a mismatch;
- `hint(node)`: the input shape the node's own parameters imply, or None. It lets graphs whose
  Input types are missing or partial still get shapes (from the first consumer).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable

import numpy as np

from spikestack.errors import GraphValidationError

Shape = tuple[int, ...]


@dataclass(frozen=True)
class ShapeRule:
    output: Callable[[object, Shape], Shape]
    hint: Callable[[object], Shape | None]


def no_hint(node) -> Shape | None:
    """Nodes whose parameters imply no input shape."""
    return None


def _show(value) -> str:
    text = repr(value.tolist() if isinstance(value, np.ndarray) else value)
    return text if len(text) <= 40 else text[:37] + "..."


def integers(value, field: str, n: int, minimum: int) -> tuple[int, ...]:
    """`value` as n whole numbers >= minimum; one number stands for all n, as NIR allows.

    Geometry that is fractional, non-finite, text or of the wrong length is refused rather than
    truncated by `astype(int)` into a different network (a stride of 0.5 would become 0)."""
    arr = np.atleast_1d(np.asarray(value))
    if arr.dtype.kind not in "iuf" or arr.ndim != 1 or arr.size not in (1, n):
        count = "a whole number" if n == 1 else f"one or {n} whole numbers"
        raise GraphValidationError(f"field '{field}' must be {count}, got {_show(value)}")
    if arr.dtype.kind == "f" and not (np.isfinite(arr).all() and (arr == np.round(arr)).all()):
        raise GraphValidationError(f"field '{field}' must be whole numbers, got {_show(value)}")
    if (arr < minimum).any():
        raise GraphValidationError(f"field '{field}' must be >= {minimum}, got {_show(value)}")
    values = tuple(int(a) for a in arr)
    return values * n if len(values) == 1 else values


def declared_shape(value, field: str) -> Shape | None:
    """A shape an Input/Output node or a Conv/Flatten declares; None when empty (then inferred).

    A dimension that is zero, negative or fractional is refused: falling back to another shape
    would run a different network than the file describes."""
    if value is None:
        return None
    arr = np.asarray(value)
    if arr.size == 0:
        return None
    if arr.ndim > 1 or arr.dtype.kind not in "iuf":
        raise GraphValidationError(f"field '{field}' must be a list of dimensions, got {_show(value)}")
    return integers(arr, field, arr.size, 1)


PARAMETER_FIELDS = ("v_threshold", "tau", "tau_mem", "tau_syn", "r", "v_leak", "v_reset", "w_in", "scale",
                    "threshold", "delay")


def param_shape(node) -> Shape | None:
    """Shape of a neuron's (or Scale's, Threshold's, Delay's) parameters; None for scalars (NIR issue 176)."""
    for field in PARAMETER_FIELDS:
        value = getattr(node, field, None)
        if value is not None:
            shape = np.shape(value)
            return tuple(int(s) for s in shape) if len(shape) else None
    return None


def same_as_params(node, in_shape: Shape) -> Shape:
    # Each parameter is one value for all, or one per element: anything else would broadcast
    # (or fail to) somewhere downstream, far from the field at fault.
    for field in PARAMETER_FIELDS:
        value = getattr(node, field, None)
        if value is None:
            continue
        shape = tuple(int(s) for s in np.shape(value))
        one_for_all = int(np.prod(shape)) == 1 and len(shape) <= len(in_shape)
        if shape != tuple(in_shape) and not one_for_all:
            raise GraphValidationError(f"input shape {in_shape} does not match the shape {shape} of field '{field}'")
    return in_shape


def same_shape(node, in_shape: Shape) -> Shape:
    return in_shape


def output_shape(node, in_shape: Shape) -> Shape:
    declared_shape((node.output_type or {}).get("output"), "shape")  # its values, not its agreement
    return in_shape


def _weight(node, ndim: int) -> Shape:
    w = tuple(int(d) for d in np.shape(node.weight))
    if len(w) != ndim:
        layout = "(out, in)" if ndim == 2 else f"(out channels, in channels, {ndim - 2} kernel dims)"
        raise GraphValidationError(f"field 'weight' must be {ndim}-D {layout}, got shape {w}")
    if 0 in w:
        raise GraphValidationError(f"field 'weight' has an empty dimension: shape {w}")
    return w


def _check_bias(node, n_out: int) -> None:
    bias = getattr(node, "bias", None)
    if bias is not None and np.shape(bias) not in ((n_out,), (1,), ()):
        raise GraphValidationError(f"field 'bias' must have shape ({n_out},), got {np.shape(bias)}")


def linear_hint(node) -> Shape | None:
    return (int(np.shape(node.weight)[1]),) if np.ndim(node.weight) == 2 else None


def linear_shape(node, in_shape: Shape) -> Shape:
    w = _weight(node, 2)
    if not in_shape or in_shape[-1] != w[1]:
        raise GraphValidationError(f"input shape {in_shape} does not match weight shape {w} (expects {w[1]} inputs)")
    _check_bias(node, w[0])
    return tuple(in_shape[:-1]) + (int(w[0]),)


def _conv_out(size: Shape, kernel, stride, padding, dilation) -> Shape:
    out = []
    for i, n in enumerate(size):
        k, s, p, d = kernel[i], stride[i], padding[i], dilation[i]
        o = (n + 2 * p - d * (k - 1) - 1) // s + 1
        if o < 1:
            raise GraphValidationError(f"kernel {tuple(kernel)} does not fit input size {tuple(size)}")
        out.append(int(o))
    return tuple(out)


def conv_padding(node, spatial: Shape) -> tuple[int, ...]:
    """NIR allows padding as numbers or the strings 'valid' / 'same'; return numbers."""
    ndim = len(spatial)
    padding = node.padding
    if isinstance(padding, bytes):
        padding = padding.decode(errors="replace")
    if isinstance(padding, str):
        if padding == "valid":
            return (0,) * ndim
        if padding == "same":
            kernel = np.shape(node.weight)[2:]
            dilation = integers(node.dilation, "dilation", ndim, 1)
            return tuple((dilation[i] * (kernel[i] - 1)) // 2 for i in range(ndim))
        raise GraphValidationError(f"field 'padding' must be numbers, 'same' or 'valid', got {_show(padding)}")
    return integers(padding, "padding", ndim, 0)


def conv_hint(node) -> Shape | None:
    w = np.shape(node.weight)
    spatial = declared_shape(node.input_shape, "input_shape")
    if spatial is None or len(spatial) != len(w) - 2 or len(w) < 3:
        return None
    return (int(w[1]) * integers(node.groups, "groups", 1, 1)[0],) + spatial


def conv_shape(node, in_shape: Shape, ndim: int) -> Shape:
    w = _weight(node, ndim + 2)
    if len(in_shape) != ndim + 1:
        raise GraphValidationError(f"input shape {in_shape} is not (channels, {ndim} spatial dims)")
    groups = integers(node.groups, "groups", 1, 1)[0]
    if in_shape[0] != w[1] * groups:
        raise GraphValidationError(f"input has {in_shape[0]} channels, weight {w} with groups={groups} expects {w[1] * groups}")
    if w[0] % groups:
        raise GraphValidationError(f"{w[0]} output channels do not divide into groups={groups}")
    _check_bias(node, w[0])
    spatial = in_shape[1:]
    stride, dilation = integers(node.stride, "stride", ndim, 1), integers(node.dilation, "dilation", ndim, 1)
    out = _conv_out(spatial, w[2:], stride, conv_padding(node, spatial), dilation)
    return (int(w[0]),) + out


def pool_shape(node, in_shape: Shape) -> Shape:
    if len(in_shape) != 3:
        raise GraphValidationError(f"input shape {in_shape} is not (channels, height, width)")
    kernel = integers(node.kernel_size, "kernel_size", 2, 1)
    stride, padding = integers(node.stride, "stride", 2, 1), integers(node.padding, "padding", 2, 0)
    out = _conv_out(in_shape[1:], kernel, stride, padding, (1, 1))
    return (in_shape[0],) + out


def _dim(value, field: str, n: int) -> int:
    """A dimension index in -n..n-1 (Python's), as a non-negative index."""
    (index,) = integers(value, field, 1, -max(n, 1))
    if index >= max(n, 1):
        raise GraphValidationError(f"field '{field}' = {index} is out of range for an input of {n} dimension(s)")
    return index % max(n, 1)


def flatten_shape(node, in_shape: Shape) -> Shape:
    # NIR's start_dim/end_dim count without the batch dimension (its default start_dim=1 is a trap).
    n = len(in_shape)
    start, end = (_dim(getattr(node, f), f, n) for f in ("start_dim", "end_dim"))
    if start > end:
        raise GraphValidationError(f"start_dim {node.start_dim} is after end_dim {node.end_dim} for input shape {in_shape}")
    middle = math.prod(in_shape[start : end + 1])  # Python ints: no int64 wrap-around to 0
    return tuple(in_shape[:start]) + (middle,) + tuple(in_shape[end + 1 :])
