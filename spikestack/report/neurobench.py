"""NeuroBench's metrics under NeuroBench's names, from a `Program` and the `Counts` of its run.

What `neurobench.benchmarks.Benchmark(...).run()` (NeuroBench 2.3.0) returns for the snnTorch model of
the same network on the same input, when given the metric classes `Footprint`, `ConnectionSparsity`
(static) and `ActivationSparsity`, `SynapticOperations` (workload): one dict keyed by the class names,
`SynapticOperations` itself a dict of `Effective_MACs`, `Effective_ACs` and `Dense` per sample. Read
from NeuroBench's source (`neurobench/metrics/static/*.py`, `metrics/workload/*.py`,
`metrics/utils/layers/*.py`); tests/peers/test_neurobench.py holds every value to NeuroBench's own.

Which of our ops are which of NeuroBench's layers:
- connection layers: ops with a weight array of their own (Linear, Affine, Conv1d, Conv2d), as
  NeuroBench's torch.nn Linear/ConvNd. Pools and Scale are not: torch's pools hold no weights and
  NeuroBench counts no synaptic operations in them (nor do chips: they fold pooling into the next
  layer's synapses).
- activation layers: neuron ops, as NeuroBench's snnTorch `SpikingNeuron` layers.

Conventions where our data and NeuroBench's torch model differ (docs/energy.md, "NeuroBench's metrics"):
- AC or MAC is decided per sample and step (our `Counts`); NeuroBench decides per layer call, that is
  per step of a whole batch. The two agree at batch size 1, and at any batch size when every sample of
  a step is binary (spikes) or every one graded. NeuroBench also takes -1 as a spike; we count a
  signed input as graded (MACs).
- Footprint: a torch model's parameters and buffers. Synapses hold weight and bias as torch does
  (float32; a bias the file carries counts, even all zeros: NIR cannot tell a zero bias from none).
  A neuron population is held as snnTorch holds it (`NeuroBench`'s spiking framework): a Leaky (a
  Synaptic for current-based kinds) keeps beta (and alpha) and threshold, each of the NIR parameter's
  shape (one value where the file gives a scalar; beta = 1 for the non-leaky kinds, threshold = 1 for
  the non-spiking ones), plus a float32 graded_spikes_factor and an int64 reset_mechanism_val; its
  membrane buffer is empty before a run, when NeuroBench measures it.
- Activation sparsity counts non-zero outputs; a neuron sending several spikes in one step (the
  option spikes_per_step="many") is counted once per neuron and step at most.
"""

from __future__ import annotations

import numpy as np

from spikestack.errors import OptionsError
from spikestack.ir.program import Op, Program
from spikestack.ir.run import Counts

NEUROBENCH_VERSION = "2.3.0"  # the release whose definitions these are, and the parity test's judge
FLOAT_BYTES = 4  # torch's default float32
SNNTORCH_NEURON_BUFFERS = 4 + 8  # graded_spikes_factor (float32 scalar) + reset_mechanism_val (int64 scalar)
SYNOPS_KEYS = ("Effective_MACs", "Effective_ACs", "Dense")  # NeuroBench's SynapticOperations dict, in its order
CONNECTION_SPARSITY_DECIMALS = 4  # NeuroBench rounds connection sparsity to 4 decimals


def connection_ops(program: Program) -> tuple[Op, ...]:
    """The ops NeuroBench would find as connection layers (torch Linear and ConvNd)."""
    return tuple(op for op in program.ops if op.primitive.has_weight_array)


def _size(node, field: str) -> int:
    value = getattr(node, field, None)
    return 1 if value is None else int(np.asarray(value).size)


def _neuron_bytes(op: Op) -> int:
    """What snnTorch's layer for this population keeps as buffers (see the module docstring)."""
    what = op.primitive
    decay_v = _size(op.node, "tau_mem" if what.has_current else "tau") if what.leaky else 1
    decay_i = _size(op.node, "tau_syn") if what.has_current else 0
    threshold = _size(op.node, "v_threshold") if what.spiking else 1
    return (decay_v + decay_i + threshold) * FLOAT_BYTES + SNNTORCH_NEURON_BUFFERS


def _synapse_bytes(op: Op) -> int:
    syn = op.synapse
    if getattr(syn, "pool", False):  # a pool has no weights of its own
        return 0
    bias = getattr(syn, "bias", None)
    return (int(syn.weight.size) + (0 if bias is None else int(bias.size))) * FLOAT_BYTES


def footprint(program: Program) -> int:
    """NeuroBench's `Footprint`: bytes of every parameter and buffer of the network's torch model."""
    total = 0
    for op in program.ops:
        if op.is_neuron:
            total += _neuron_bytes(op)
        elif op.synapse is not None:
            total += _synapse_bytes(op)
    return total


def connection_sparsity(program: Program) -> float | None:
    """NeuroBench's `ConnectionSparsity`: zero weights over all weights of the connection layers
    (biases not counted), rounded as NeuroBench rounds it. None without a connection layer, where
    NeuroBench's division fails and its Benchmark reports None."""
    weights = [op.synapse.weight for op in connection_ops(program)]
    total = sum(int(w.size) for w in weights)
    if total == 0:
        return None
    zeros = sum(int(w.size - np.count_nonzero(w)) for w in weights)
    return round(zeros / total, CONNECTION_SPARSITY_DECIMALS)


def _metric(counts: Counts | None, node: str, metric: str) -> np.ndarray:
    if counts is None or node not in counts.per_node or metric not in counts.per_node[node]:
        raise OptionsError(f"the run has no '{metric}' counts for node '{node}': simulate with count=True")
    return counts.per_node[node][metric]


def samples(counts: Counts | None) -> int:
    """The batch size B of a run's counts (every metric array is (T, B))."""
    if counts is None or not counts.per_node:
        raise OptionsError("the run has no counts: simulate with count=True")
    return int(next(iter(next(iter(counts.per_node.values())).values())).shape[1])


def activation_sparsity(program: Program, counts: Counts) -> float:
    """NeuroBench's `ActivationSparsity`: zero outputs over all outputs of the activation (neuron)
    layers, over every step and sample."""
    total = nonzero = 0
    for op in program.neuron_ops:
        size = int(np.prod(op.out_shape))
        out = _metric(counts, op.name, "spikes_out")
        total += size * out.size
        nonzero += int(np.minimum(out, size).sum())  # spike counts > 1 per neuron: one non-zero value each
    return 0.0 if total == 0 else (total - nonzero) / total


def synaptic_operations(program: Program, counts: Counts) -> dict[str, float]:
    """NeuroBench's `SynapticOperations`, per sample (summed over steps and layers, mean over samples):
    non-zero weights reached by a non-zero input as ACs (binary input) or MACs (graded input), and
    Dense, every weight with every input, padding excluded. Biases are no operations."""
    n = samples(counts)
    sums = dict.fromkeys(SYNOPS_KEYS, 0)
    for op in connection_ops(program):
        sums["Effective_MACs"] += int(_metric(counts, op.name, "effective_macs").sum())
        sums["Effective_ACs"] += int(_metric(counts, op.name, "effective_acs").sum())
        sums["Dense"] += int(_metric(counts, op.name, "dense_macs").sum())
    return {key: value / n for key, value in sums.items()}  # NeuroBench divides integer sums likewise


def neurobench_metrics(program: Program, counts: Counts) -> dict:
    """The four metrics in the layout of NeuroBench's `Benchmark.run()` results (static first)."""
    return {"Footprint": footprint(program), "ConnectionSparsity": connection_sparsity(program),
            "ActivationSparsity": activation_sparsity(program, counts),
            "SynapticOperations": synaptic_operations(program, counts)}
