"""`ir.primitives`: one place says what each NIR primitive is; no other module tests kind names."""

from __future__ import annotations

import ast
import inspect
from pathlib import Path

import nir
import numpy as np
import pytest

from spikestack.errors import UnsupportedError
from spikestack.ir import build_graph, lower_graph, resolve_options
from spikestack.ir.primitives import PRIMITIVES, ConvSynapse, DenseSynapse, ElementwiseSynapse, Role, primitive

PACKAGE = Path(__file__).resolve().parents[2] / "spikestack"
KIND_NAMES = frozenset(PRIMITIVES)
# Modules that may name kinds: the registry itself, and the presets, whose rules are data saying which
# NIR kinds a peer's exporter treats its own way (lowering asks the preset, not the name).
ALLOWED = {"ir/primitives.py", "ir/presets.py"}


def _kind_literals(node: ast.AST) -> list[str]:
    """Kind names written as string constants in `node` (a constant, or a tuple/list/set of them)."""
    if isinstance(node, ast.Constant) and node.value in KIND_NAMES:
        return [node.value]
    if isinstance(node, (ast.Tuple, ast.List, ast.Set)):
        return [e.value for e in node.elts if isinstance(e, ast.Constant) and e.value in KIND_NAMES]
    return []


def kind_tests(source: str) -> list[tuple[int, str]]:
    """(line, kind) of every comparison with a kind-name literal (==, !=, in, not in), every
    collection of two or more kind names (a kind set), and every `.startswith/endswith` on a kind
    name prefix, in a module's source."""
    found = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Compare):
            for operand in [node.left, *node.comparators]:
                found += [(node.lineno, k) for k in _kind_literals(operand)]
        elif isinstance(node, (ast.Tuple, ast.List, ast.Set)) and len(_kind_literals(node)) >= 2:
            found += [(node.lineno, k) for k in _kind_literals(node)]
        elif (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)
              and node.func.attr in ("startswith", "endswith") and node.args
              and isinstance(node.args[0], ast.Constant) and isinstance(node.args[0].value, str)
              and any(k.startswith(node.args[0].value) or k.endswith(node.args[0].value) for k in KIND_NAMES)):
            found.append((node.lineno, node.args[0].value))
    return sorted(set(found))


def test_no_module_outside_primitives_tests_kind_names():
    offenders = []
    for path in sorted(PACKAGE.rglob("*.py")):
        rel = path.relative_to(PACKAGE).as_posix()
        if rel in ALLOWED:
            continue
        offenders += [f"spikestack/{rel}:{line}: {kind!r}" for line, kind in kind_tests(path.read_text())]
    assert not offenders, "kind names tested outside ir/primitives.py:\n" + "\n".join(offenders)


@pytest.mark.parametrize("source, expected", [
    ('if op.kind == "Affine": pass', [(1, "Affine")]),
    ('x = kind in ("Conv1d", "Conv2d")', [(1, "Conv1d"), (1, "Conv2d")]),
    ('WEIGHTED = frozenset({"Affine", "Linear"})', [(1, "Affine"), (1, "Linear")]),
    ('ok = kind.startswith("Cuba")', [(1, "Cuba")]),
    ('message = f"{op.kind} is refused"', []),
    ('name = "LIF"', []),  # one name alone, not compared: e.g. the type a layer exports
])
def test_the_scan_finds_kind_tests(source, expected):
    assert kind_tests(source) == expected


def test_every_nir_primitive_has_an_entry():
    nir_kinds = {name for name, cls in inspect.getmembers(nir, inspect.isclass)
                 if issubclass(cls, nir.NIRNode) and cls not in (nir.NIRNode, nir.NIRGraph)}
    assert nir_kinds == KIND_NAMES
    for kind, what in PRIMITIVES.items():
        assert what.kind == kind and isinstance(what.role, Role)
        assert (what.synapse is not None) == what.is_synapse, kind
        assert not what.spiking or what.role in (Role.NEURON, Role.THRESHOLD), kind


def test_unknown_kind_is_one_line_naming_the_node():
    with pytest.raises(UnsupportedError, match="node 'n'.*unsupported primitive 'Spline'|unsupported primitive 'Spline'"):
        primitive("Spline", "n")


def _program(nodes: dict, edges: list):
    graph = build_graph(nir.NIRGraph(nodes=nodes, edges=edges, type_check=False))
    return lower_graph(graph, resolve_options(dt=1.0))


def test_synapses_are_normalised_whatever_the_kind():
    w = np.arange(6, dtype=np.float32).reshape(3, 2) - 2
    prog = _program({
        "in": nir.Input(input_type={"input": np.array([1, 4, 4])}),
        "avg": nir.AvgPool2d(kernel_size=np.array([2, 2]), stride=np.array([2, 2]), padding=np.array([0, 0])),
        "flat": nir.Flatten(input_type={"input": np.array([1, 2, 2])}, start_dim=0, end_dim=-1),
        "fc": nir.Linear(weight=np.ones((2, 4))),
        "aff": nir.Affine(weight=w, bias=np.array([1.0, 0.0, -1.0])),
        "sc": nir.Scale(scale=np.array(2.0)),
        "out": nir.Output(output_type={"output": np.array([3])}),
    }, [("in", "avg"), ("avg", "flat"), ("flat", "fc"), ("fc", "aff"), ("aff", "sc"), ("sc", "out")])
    avg = prog.op("avg").synapse
    assert isinstance(avg, ConvSynapse) and avg.pool and avg.divisor == 4.0 and avg.groups == 1
    assert avg.weight.shape == (1, 1, 2, 2) and np.all(avg.weights == 0.25)
    assert avg.stride == (2, 2) and avg.padding == (0, 0) and avg.dilation == (1, 1)
    fc, aff = prog.op("fc").synapse, prog.op("aff").synapse
    assert isinstance(fc, DenseSynapse) and fc.bias is None and fc.weight.dtype == np.float64
    assert isinstance(aff, DenseSynapse) and np.array_equal(aff.bias, [1.0, 0.0, -1.0])
    scale = prog.op("sc").synapse
    assert isinstance(scale, ElementwiseSynapse) and np.array_equal(scale.weight, [2.0, 2.0, 2.0])
    assert prog.op("flat").synapse is None and prog.op("flat").params is None
    assert prog.consumers("fc") == ("aff",) and prog.consumers("out") == ()


def test_event_kinds_follow_the_roles():
    prog = _program({
        "in": nir.Input(input_type={"input": np.array([2, 4, 4])}),
        "pool": nir.SumPool2d(kernel_size=np.array([2, 2]), stride=np.array([2, 2]), padding=np.array([0, 0])),
        "flat": nir.Flatten(input_type={"input": np.array([2, 2, 2])}, start_dim=0, end_dim=-1),
        "fc": nir.Linear(weight=np.ones((3, 8))),
        "lif": nir.IF(r=np.ones(3), v_threshold=np.ones(3)),
        "thr": nir.Threshold(threshold=np.zeros(3)),
        "out": nir.Output(output_type={"output": np.array([3])}),
    }, [("in", "pool"), ("pool", "flat"), ("flat", "fc"), ("fc", "lif"), ("lif", "thr"), ("thr", "out")])
    kinds = prog.event_kinds({"in": "binary"}, pools_count=True)
    assert kinds == {"in": "binary", "pool": "counts", "flat": "counts", "fc": "graded", "lif": "binary",
                     "thr": "binary", "out": "binary"}
    assert prog.event_kinds({"in": "binary"}, pools_count=False)["pool"] == "graded"
