"""The compiled engine against the reference engine (issue 19): every primitive, every neuron option,
recurrent and delayed graphs and the NIR paper's graphs, in both modes.

loihi mode: outputs, recordings and counts bit for bit. float mode (float32, as the PyTorch frameworks
run): spikes and counts identical; potentials equal up to float rounding, because the compiled dense
layers add the active weight rows in row order where the reference's BLAS sums in blocks
(docs/simulator.md). The reference engine is itself held to numpy loops, snnTorch, Norse, Sinabs and
Lava elsewhere in tests/simulators.
"""

from __future__ import annotations

import nir
import numpy as np
import pytest

from spikestack.errors import OptionsError
from spikestack.ir import build_graph, lower_graph, resolve_options
from spikestack.ir.quantise import quantise_program
from spikestack.ir.primitives import primitive
from spikestack.simulators import simulate
from sim_fixtures import lower, one_torch_thread  # noqa: F401,F811  (fixtures)

RNG = np.random.default_rng(19)
DT = 1e-3


def _lif(n, **extra):
    return nir.LIF(tau=np.full(n, 5e-3), r=np.full(n, 6.0), v_leak=np.zeros(n), v_threshold=np.ones(n),
                   v_reset=np.zeros(n), **extra)


def _cuba(n):
    return nir.CubaLIF(tau_syn=np.full(n, 4e-3), tau_mem=np.full(n, 6e-3), r=np.full(n, 8.0), v_leak=np.zeros(n),
                       v_threshold=np.ones(n), v_reset=np.zeros(n), w_in=np.ones(n))


NEURONS = {
    "LIF": _lif,
    "IF": lambda n: nir.IF(r=np.full(n, 1.5), v_threshold=np.ones(n), v_reset=np.zeros(n)),
    "CubaLIF": _cuba,
    "LI": lambda n: nir.LI(tau=np.full(n, 5e-3), r=np.full(n, 2.0), v_leak=np.zeros(n)),
    "CubaLI": lambda n: nir.CubaLI(tau_syn=np.full(n, 4e-3), tau_mem=np.full(n, 6e-3), r=np.full(n, 2.0),
                                   v_leak=np.zeros(n), w_in=np.ones(n)),
    "I": lambda n: nir.I(r=np.full(n, 0.5)),
}


def _graph(nodes: dict, edges: list, **options):
    graph = build_graph(nir.NIRGraph(nodes=nodes, edges=edges, type_check=False))
    return lower_graph(graph, resolve_options(dt=DT, **options))


def _chain(*nodes, in_shape, **options):
    named = {"input": nir.Input(input_type={"input": np.array(in_shape)})}
    named.update({f"n{k}": node for k, node in enumerate(nodes)})
    named["output"] = nir.Output(output_type={"output": np.array([1])})
    names = list(named)
    return _graph(named, list(zip(names[:-1], names[1:])), **options)


def _spikes(shape, rate=0.3, steps=30, batch=3):
    return (RNG.random((steps, batch, *shape)) < rate).astype(np.float32)


def output_shape(node, in_shape) -> tuple[int, ...]:
    return tuple(primitive(type(node).__name__, "node").shape.output(node, tuple(in_shape)))


def assert_engines_agree(program, x, mode="float", record=None):
    """Both engines on the same input: counts and spikes equal; loihi everything bit for bit."""
    record = tuple(op.name for op in program.ops) if record is None else record
    subject = quantise_program(program)[0] if mode == "loihi" else program
    ours = simulate(subject, x, mode=mode, record=record, engine="compiled")
    reference = simulate(subject, x, mode=mode, record=record, engine="reference")
    exact = mode == "loihi"
    for name, out in reference.outputs.items():
        _close(ours.outputs[name], out, exact, f"output {name}")
    for name, values in reference.recordings.items():
        assert set(ours.recordings[name]) == set(values), name
        for key, value in values.items():
            # spikes, and anything downstream of nothing but spikes, must match exactly
            _close(ours.recordings[name][key], value, exact or key == "s", f"{name}.{key}")
    for name, metrics in reference.counts.per_node.items():
        for metric, value in metrics.items():
            np.testing.assert_array_equal(ours.counts.per_node[name][metric], value, err_msg=f"{name} {metric}")
    return ours


def _close(a, b, exact, what):
    assert a.shape == b.shape and a.dtype == b.dtype, (what, a.shape, b.shape, a.dtype, b.dtype)
    if exact:
        np.testing.assert_array_equal(a, b, err_msg=what)
    else:  # float32 sums in another order: a few units in the last place
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-5, err_msg=what)


@pytest.mark.parametrize("kind", list(NEURONS))
@pytest.mark.parametrize("mode", ["float", "loihi"])
def test_every_neuron_kind(kind, mode):
    n_in, n = 6, 5
    weight = RNG.normal(0.6, 0.5, (n, n_in))
    program = _chain(nir.Affine(weight=weight, bias=RNG.normal(0, 0.05, n)), NEURONS[kind](n), in_shape=[n_in])
    assert_engines_agree(program, _spikes((n_in,)), mode)


OPTIONS = [dict(reset="subtract"), dict(reset_timing="delayed"), dict(reset_timing="delayed", preset="snntorch"),
           dict(threshold=">="), dict(spikes_per_step="many", reset="subtract", threshold=">="),
           dict(cuba_order="voltage_first"), dict(initial_potential=0.5), dict(integration="exact")]


@pytest.mark.parametrize("mode, options", [(mode, o) for mode in ("float", "loihi") for o in OPTIONS
                                           if mode == "float" or o.get("reset_timing") != "delayed"],  # Loihi resets now
                         ids=lambda o: o if isinstance(o, str) else ",".join(f"{k}={v}" for k, v in o.items()))
def test_neuron_options(options, mode):
    weight = RNG.normal(0.8, 0.6, (4, 5))
    nodes = {"input": nir.Input(input_type={"input": np.array([5])}), "fc": nir.Linear(weight=weight),
             "lif": _lif(4), "fc2": nir.Linear(weight=RNG.normal(0.5, 0.5, (3, 4))), "cuba": _cuba(3),
             "output": nir.Output(output_type={"output": np.array([3])})}
    edges = [("input", "fc"), ("fc", "lif"), ("lif", "fc2"), ("fc2", "cuba"), ("cuba", "output")]
    program = _graph(nodes, edges, **options)
    x = (RNG.random((40, 3, 5)) < 0.4) * RNG.integers(1, 3, (40, 3, 5))  # spike counts, some above 1
    assert_engines_agree(program, x.astype(np.float32), mode)


@pytest.mark.parametrize("mode", ["float", "loihi"])
def test_scale_threshold_affine_over_last_axis(mode):
    x = _spikes((2, 4))
    program = _chain(nir.Affine(weight=RNG.normal(size=(3, 4)), bias=RNG.normal(size=3)),
                     nir.Scale(scale=RNG.normal(size=(2, 3))), nir.Threshold(threshold=RNG.normal(0, 0.3, (2, 3))),
                     in_shape=[2, 4])
    assert_engines_agree(program, x, mode)


CONVS = [dict(stride=1, padding=1, dilation=1, groups=1), dict(stride=2, padding=0, dilation=1, groups=2),
         dict(stride=1, padding=2, dilation=2, groups=4), dict(stride=3, padding=1, dilation=1, groups=1)]


@pytest.mark.parametrize("geometry", CONVS, ids=lambda g: "-".join(f"{k}{v}" for k, v in g.items()))
@pytest.mark.parametrize("mode", ["float", "loihi"])
def test_conv2d_pools_and_flatten(geometry, mode):
    groups = geometry["groups"]
    conv = nir.Conv2d(input_shape=(9, 9), weight=RNG.normal(0.3, 0.5, (4, 4 // groups, 3, 3)), bias=RNG.normal(size=4),
                      stride=geometry["stride"], padding=geometry["padding"], dilation=geometry["dilation"],
                      groups=groups)
    shape = output_shape(conv, (4, 9, 9))
    lif = nir.LIF(tau=np.full(shape, 5e-3), r=np.full(shape, 4.0), v_leak=np.zeros(shape),
                  v_threshold=np.ones(shape), v_reset=np.zeros(shape))
    sum_pool = nir.SumPool2d(kernel_size=np.array([2, 2]), stride=np.array([1, 1]), padding=np.array([0, 0]))
    avg_pool = nir.AvgPool2d(kernel_size=np.array([2, 2]), stride=np.array([2, 2]), padding=np.array([1, 1]))
    pooled = output_shape(avg_pool, output_shape(sum_pool, shape))
    flatten = nir.Flatten(input_type={"input": np.array(pooled)}, start_dim=0, end_dim=-1)
    program = _chain(conv, lif, sum_pool, avg_pool, flatten, in_shape=[4, 9, 9])
    assert_engines_agree(program, _spikes((4, 9, 9), rate=0.2, steps=12), mode)


@pytest.mark.parametrize("mode", ["float", "loihi"])
def test_conv1d(mode):
    conv = nir.Conv1d(input_shape=12, weight=RNG.normal(0.3, 0.5, (6, 1, 3)), bias=np.zeros(6), stride=2, padding=1,
                      dilation=1, groups=3)
    program = _chain(conv, nir.Threshold(threshold=np.full((6, 6), 0.2)), in_shape=[3, 12])
    assert_engines_agree(program, _spikes((3, 12)), mode)


@pytest.mark.parametrize("mode", ["float", "loihi"])
def test_delays_per_element(mode):
    steps = np.array([0.0, 1.0, 3.0, 7.0]) * DT
    program = _chain(nir.Linear(weight=RNG.normal(1, 0.5, (4, 4))), nir.Delay(delay=steps), _lif(4), in_shape=[4])
    assert_engines_agree(program, _spikes((4,), steps=25), mode)


@pytest.mark.parametrize("mode", ["float", "loihi"])
def test_recurrent_loop_and_fan_in(mode):
    """A LIF layer with a recurrent Affine (a back edge) and a second input path summed into it."""
    nodes = {"input": nir.Input(input_type={"input": np.array([5])}),
             "fc": nir.Affine(weight=RNG.normal(0.5, 0.5, (4, 5)), bias=RNG.normal(0, 0.1, 4)),
             "skip": nir.Linear(weight=RNG.normal(0.2, 0.3, (4, 5))), "lif": _lif(4),
             "rec": nir.Affine(weight=RNG.normal(0.0, 0.8, (4, 4)), bias=RNG.normal(0, 0.1, 4)),
             "fc2": nir.Linear(weight=RNG.normal(0.6, 0.4, (2, 4))), "out_lif": _lif(2),
             "output": nir.Output(output_type={"output": np.array([2])})}
    edges = [("input", "fc"), ("input", "skip"), ("fc", "lif"), ("skip", "lif"), ("lif", "rec"), ("rec", "lif"),
             ("lif", "fc2"), ("fc2", "out_lif"), ("out_lif", "output")]
    assert_engines_agree(_graph(nodes, edges), _spikes((5,), steps=60), mode)


@pytest.mark.parametrize("mode", ["float", "loihi"])
def test_blocks_and_threads_do_not_change_results(mode, monkeypatch):
    """Two threads (the caller's torch setting) and one block, or one thread and blocks of 3 steps
    and 2 samples: the same run."""
    import torch

    from spikestack.simulators.compiled import engine

    program = _chain(nir.Affine(weight=RNG.normal(0.5, 0.5, (8, 6)), bias=np.zeros(8)), _lif(8), in_shape=[6])
    program = quantise_program(program)[0] if mode == "loihi" else program
    x = _spikes((6,), steps=50, batch=9)
    torch.set_num_threads(2)
    whole = simulate(program, x, mode=mode, record=("n1",))
    torch.set_num_threads(1)
    width = sum(int(np.prod(op.out_shape)) + int(np.prod(op.in_shape)) for op in whole_program(program).ops)
    monkeypatch.setattr(engine, "BLOCK_VALUES", 3 * width)  # one sample, 3 steps at a time
    blocked = simulate(program, x, mode=mode, record=("n1",))
    np.testing.assert_array_equal(blocked.output, whole.output)
    for key, value in whole.recordings["n1"].items():
        np.testing.assert_array_equal(blocked.recordings["n1"][key], value)
    assert blocked.counts.to_dict() == whole.counts.to_dict()


def whole_program(program):
    return getattr(program, "program", program)


@pytest.mark.parametrize("mode", ["float", "loihi"])
def test_nir_paper_cnn(lower, mode):
    program = lower("cnn_sinabs.nir", preset="sinabs")
    x = (RNG.random((20, 2, 2, 34, 34)) < 0.1).astype(np.float32)
    run = assert_engines_agree(program, x, mode, record=("1", "3", "6", "10", "12"))
    assert run.counts.total("spikes_out", "3") > 0


@pytest.mark.parametrize("mode", ["float", "loihi"])
def test_nir_paper_braille(lower, mode):
    timing = "immediate" if mode == "loihi" else None  # Loihi resets in the step that spikes
    program = lower("braille_noDelay_bias_zero.nir", preset="snntorch", reset="zero", reset_timing=timing)
    assert_engines_agree(program, _spikes((12,), rate=0.5, steps=64, batch=2), mode)


def test_unknown_engine_is_one_line():
    program = _chain(_lif(2), in_shape=[2])
    with pytest.raises(OptionsError, match="engine must be one of compiled, reference"):
        simulate(program, _spikes((2,)), engine="fast")
