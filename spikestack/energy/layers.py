"""`find_layers`: a Program's neurons grouped into the layers a chip holds, with their synapses.

A *layer* is one neuron op (or a weight op feeding an Output directly) with the chain of weight,
pooling and reshaping ops in front of it. A chip has no pooling or flattening units: those ops fold
into the synapses of the neurons they feed, so a layer's synapses are the chain composed, structurally
(zero weights count, as in `synaptic_events`): behind a 2x2 SumPool2d each conv synapse becomes four.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import sparse

from spikestack.ir.program import Op, Program
from spikestack.ir.shapes import conv_padding

WEIGHT_KINDS = ("Affine", "Linear", "Conv1d", "Conv2d")


@dataclass(frozen=True)
class Layer:
    """Neurons of one op and, per presynaptic source (a neuron op or an Input), their synapses as a
    structural 0/1 matrix (neurons x source size). `members`: the nodes whose counts are this layer's."""

    name: str
    kind: str
    neurons: int
    members: tuple[str, ...]
    weights: tuple[str, ...]  # the members that hold synapses (Affine, Linear, Conv)
    inputs: dict[str, sparse.csr_matrix]
    feeds_output: bool
    first: bool  # fed by an Input: it receives the data, not another layer's spikes

    @property
    def fan_in(self) -> np.ndarray:
        return sum((m.getnnz(axis=1) for m in self.inputs.values()), np.zeros(self.neurons, np.int64))

    @property
    def synapses(self) -> int:
        return int(sum(m.nnz for m in self.inputs.values()))


def presynaptic_neurons(matrix: sparse.csr_matrix, lo: int, hi: int) -> np.ndarray:
    """Distinct source neurons that neurons lo..hi-1 read through `matrix` (one of `Layer.inputs`):
    the input axons of a core holding those neurons, or the neurons whose spikes reach that core."""
    cols = matrix.indices[matrix.indptr[lo]:matrix.indptr[hi]]
    return np.flatnonzero(np.bincount(cols, minlength=matrix.shape[1]))


def _ints(value, n: int) -> tuple[int, ...]:
    return tuple(int(v) for v in np.broadcast_to(np.atleast_1d(np.asarray(value)).astype(int), (n,)))


def _window_axis(n_in: int, n_out: int, k: int, s: int, p: int, d: int) -> sparse.csr_matrix:
    """Which inputs along one spatial axis each output of a sliding window reads (padding excluded)."""
    o = np.repeat(np.arange(n_out), k)
    i = o * s - p + np.tile(np.arange(k), n_out) * d
    ok = (i >= 0) & (i < n_in)
    return sparse.csr_matrix((np.ones(int(ok.sum())), (o[ok], i[ok])), shape=(n_out, n_in))


def _op_connectivity(op: Op):
    """An op's own connectivity (outputs x inputs, flattened C-order), or None for one-to-one ops."""
    node = op.params
    if op.kind in ("Affine", "Linear"):
        lead = int(np.prod(op.in_shape[:-1]))
        return sparse.kron(sparse.eye(lead), np.ones(np.shape(node.weight)))
    if op.kind not in ("Conv1d", "Conv2d", "SumPool2d", "AvgPool2d"):
        return None  # neurons, Flatten, Scale, Delay, Threshold
    spatial_in, nd = op.in_shape[1:], len(op.in_shape) - 1
    if op.kind.startswith("Conv"):
        w, groups = np.shape(node.weight), int(node.groups)
        matrix = sparse.kron(sparse.eye(groups), np.ones((w[0] // groups, w[1])))
        window = (w[2:], _ints(node.stride, nd), conv_padding(node, spatial_in), _ints(node.dilation, nd))
    else:
        matrix = sparse.eye(op.in_shape[0])
        window = (_ints(node.kernel_size, nd), _ints(node.stride, nd), _ints(node.padding, nd), (1,) * nd)
    for a in range(nd):
        matrix = sparse.kron(matrix, _window_axis(spatial_in[a], op.out_shape[a + 1], *(x[a] for x in window)))
    return matrix


def find_layers(program: Program) -> dict[str, Layer]:
    """The program's layers in execution order, with synapses composed through their chains."""
    ops = {op.name: op for op in program.ops}
    boundary = {n for n, op in ops.items() if op.is_neuron or op.kind == "Input"}
    consumers = {n: [o.name for o in program.ops if any(s.name == n for s in o.sources)] for n in ops}
    passes = {n for n, op in ops.items() if n not in boundary and op.kind not in WEIGHT_KINDS}  # shape-only
    reaches_out: dict[str, bool] = {}  # an Output is reached through shape-only ops
    for op in reversed(program.ops):
        reaches_out[op.name] = op.kind == "Output" or any(
            reaches_out.get(c, False) and (ops[c].kind == "Output" or c in passes) for c in consumers[op.name])
    memo: dict[str, tuple[dict, set]] = {}

    def upstream(name: str) -> tuple[dict, set]:
        if name not in memo:
            op, local, reach, members = ops[name], _op_connectivity(ops[name]), {}, {name}
            for s in op.sources:
                if s.name in boundary:
                    parts = {s.name: sparse.eye(int(np.prod(ops[s.name].out_shape)), format="csr")}
                else:
                    parts, sub = upstream(s.name)
                    members |= sub
                for src, m in parts.items():
                    m = m if local is None else sparse.csr_matrix(local @ m)
                    reach[src] = m if src not in reach else reach[src] + m
            memo[name] = (reach, members)
        return memo[name]

    layers = {}
    for op in program.ops:
        if op.is_neuron or (op.kind in WEIGHT_KINDS and any(ops[c].kind == "Output" for c in consumers[op.name])):
            reach, members = upstream(op.name)
            inputs = {}
            for src, m in reach.items():
                m = sparse.csr_matrix(m)
                m.sum_duplicates()
                m.data[:] = 1  # structural: one synapse per (neuron, presynaptic neuron) pair
                inputs[src] = m
            order = tuple(n for n in ops if n in members)
            weights = tuple(n for n in order if ops[n].kind in WEIGHT_KINDS)
            first = any(ops[src].kind == "Input" for src in inputs)
            layers[op.name] = Layer(op.name, op.kind, int(np.prod(op.out_shape)), order, weights, inputs,
                                    reaches_out[op.name], first)
    return layers
