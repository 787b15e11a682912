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

from spikestack.ir.primitives import ConvSynapse, DenseSynapse, window_taps
from spikestack.ir.program import Op, Program


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
    conv_weights: tuple[str, ...] = ()  # the weight members that are convolutions (priced apart on some chips)

    @property
    def fan_in(self) -> np.ndarray:
        return sum((m.getnnz(axis=1) for m in self.inputs.values()), np.zeros(self.neurons, np.int64))

    @property
    def synapses(self) -> int:
        return int(sum(m.nnz for m in self.inputs.values()))


def network_inputs(layers: dict[str, Layer]) -> dict[str, int]:
    """The sources of the layers that are not layers themselves (the network's Inputs), with their sizes."""
    return {s: m.shape[1] for layer in layers.values() for s, m in layer.inputs.items() if s not in layers}


def presynaptic_neurons(matrix: sparse.csr_matrix, lo: int, hi: int) -> np.ndarray:
    """Distinct source neurons that neurons lo..hi-1 read through `matrix` (one of `Layer.inputs`):
    the input axons of a core holding those neurons, or the neurons whose spikes reach that core."""
    cols = matrix.indices[matrix.indptr[lo]:matrix.indptr[hi]]
    return np.flatnonzero(np.bincount(cols, minlength=matrix.shape[1]))


def _window_axis(n_in: int, n_out: int, k: int, s: int, p: int, d: int) -> sparse.csr_matrix:
    """Which inputs along one spatial axis each output of a sliding window reads (padding excluded)."""
    o, _, i = window_taps(n_in, n_out, k, s, p, d)
    return sparse.csr_matrix((np.ones(o.size), (o, i)), shape=(n_out, n_in))


def _op_connectivity(op: Op):
    """An op's own connectivity (outputs x inputs, flattened C-order), or None for one-to-one ops."""
    syn = op.synapse
    if isinstance(syn, DenseSynapse):
        lead = int(np.prod(op.in_shape[:-1]))
        return sparse.kron(sparse.eye(lead), np.ones(syn.weight.shape))
    if not isinstance(syn, ConvSynapse):
        return None  # neurons, reshapes, Scale, Delay, Threshold
    spatial_in = op.in_shape[1:]
    c_out, c_in_group = syn.weight.shape[:2]
    matrix = sparse.kron(sparse.eye(syn.groups), np.ones((c_out // syn.groups, c_in_group)))
    for a in range(len(spatial_in)):
        matrix = sparse.kron(matrix, _window_axis(spatial_in[a], op.out_shape[a + 1], syn.kernel[a], syn.stride[a],
                                                  syn.padding[a], syn.dilation[a]))
    return matrix


def _holds_weights(op: Op) -> bool:
    """Synapses a chip stores (dense layers and convolutions); pools and Scale fold into them."""
    return op.primitive.has_weight_array


def find_layers(program: Program) -> dict[str, Layer]:
    """The program's layers in execution order, with synapses composed through their chains."""
    ops = {op.name: op for op in program.ops}
    boundary = {n for n, op in ops.items() if op.is_neuron or op.primitive.is_input}
    consumers = {n: program.consumers(n) for n in ops}
    passes = {n for n, op in ops.items() if n not in boundary and not _holds_weights(op)}  # shape-only
    reaches_out: dict[str, bool] = {}  # an Output is reached through shape-only ops
    for op in reversed(program.ops):
        reaches_out[op.name] = op.primitive.is_output or any(
            reaches_out.get(c, False) and (ops[c].primitive.is_output or c in passes) for c in consumers[op.name])
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
        if op.is_neuron or (_holds_weights(op) and any(ops[c].primitive.is_output for c in consumers[op.name])):
            reach, members = upstream(op.name)
            inputs = {}
            for src, m in reach.items():
                m = sparse.csr_matrix(m)
                m.sum_duplicates()
                m.data[:] = 1  # structural: one synapse per (neuron, presynaptic neuron) pair
                inputs[src] = m
            order = tuple(n for n in ops if n in members)
            weights = tuple(n for n in order if _holds_weights(ops[n]))
            first = any(ops[src].primitive.is_input for src in inputs)
            conv = tuple(n for n in weights if isinstance(ops[n].synapse, ConvSynapse))
            layers[op.name] = Layer(op.name, op.kind, int(np.prod(op.out_shape)), order, weights, inputs,
                                    reaches_out[op.name], first, conv)
    return layers
