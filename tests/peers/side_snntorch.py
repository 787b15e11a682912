"""snnTorch 1.0.0's side of the peers tier (issue 16): its own exporter, importer and runtime.

Runs in `.venv-peers` (see environments.py) and never imports spikestack. Contract (peer_oracle.py):

    side_snntorch.py reference OUTDIR      K.nir (snnTorch's exporter) + K.npz (input, snnTorch's spikes);
                                           also importer.nir/.npz: a file in the form snnTorch's importer
                                           runs (written with nir's API) and what import_from_nir ran

    side_snntorch.py run FILE INPUT OUT [FILE INPUT OUT ...]
                                           snnTorch's importer + runtime on FILE and INPUT (T, B, *shape)

How a user exports under nir 1.0.8 (snntorch/export_nir.py, `export_to_nir`): the documented call,
`export_to_nir(net, torch.randn(1, N))` with scalar `beta`, raises in its final `infer_types()` (a
batch dimension in the Input type; 0-d LIF parameters have the empty type). What works: per-neuron
`beta`/`threshold` tensors (or RLeaky/RSynaptic, which broadcast them) and `ignore_dims=[0]` (a
sample with a batch dimension that the Input type leaves out). Kind `scalar_beta` is the documented
call with that final check skipped: the nodes snnTorch's exporter makes, as an older nir wrote them.

Every neuron is built with snnTorch's defaults (reset_delay=True, the ATan spike function whose
forward is mem - threshold > 0) and run with `init_hidden=True`, one call per time step, as its
tutorials do. Spikes of each spiking layer are recorded with forward hooks.
"""

from __future__ import annotations

import sys

sys.modules["spikestack"] = None  # never import our package here
sys.modules["samna"] = None

import contextlib  # noqa: E402
import os  # noqa: E402
import warnings  # noqa: E402
from pathlib import Path  # noqa: E402

warnings.filterwarnings("ignore")
os.environ.setdefault("OMP_NUM_THREADS", "1")

import nir  # noqa: E402
import nirtorch  # noqa: E402
import numpy as np  # noqa: E402
import snntorch as snn  # noqa: E402
import torch  # noqa: E402
from snntorch.export_nir import _extract_snntorch_module, export_to_nir  # noqa: E402
from snntorch.import_nir import import_from_nir  # noqa: E402

torch.set_num_threads(1)
T, B, P_IN = 100, 4, 0.2
SPIKING = (snn.Leaky, snn.Synaptic, snn.RLeaky, snn.RSynaptic)


def per_neuron(n, low, high, gen):
    """A per-neuron parameter tensor (the exporter needs one under nir 1.0.8)."""
    return low + (high - low) * torch.rand(n, generator=gen)


def _weights(layer: torch.nn.Module, scale: float, gen, bias: float = 0.0) -> None:
    with torch.no_grad():
        layer.weight.copy_(torch.randn(layer.weight.shape, generator=gen) * scale)
        if getattr(layer, "bias", None) is not None:
            layer.bias.copy_(torch.randn(layer.bias.shape, generator=gen) * bias)


class Mlp(torch.nn.Module):
    """fc1 -> lif1 -> fc2 -> lif2 with the neurons given (a user's class-based net)."""

    def __init__(self, lif1, lif2, n_in=16, n_hidden=24, n_out=10):
        super().__init__()
        self.fc1, self.lif1 = torch.nn.Linear(n_in, n_hidden), lif1
        self.fc2, self.lif2 = torch.nn.Linear(n_hidden, n_out), lif2

    def forward(self, x):
        return self.lif2(self.fc2(self.lif1(self.fc1(x))))


class ConvNet(torch.nn.Module):
    """conv1 (2->4, 3x3, pad 1) -> lif1 -> pool (avg 2) -> flat -> fc -> lif2, on 2x8x8 input."""

    def __init__(self, gen):
        super().__init__()
        self.conv1 = torch.nn.Conv2d(2, 4, 3, padding=1)
        self.lif1 = snn.Leaky(beta=per_neuron((4, 8, 8), 0.85, 0.95, gen), threshold=torch.ones(4, 8, 8),
                              init_hidden=True)
        self.pool, self.flat = torch.nn.AvgPool2d(2), torch.nn.Flatten()
        self.fc = torch.nn.Linear(64, 10)
        self.lif2 = snn.Leaky(beta=per_neuron(10, 0.85, 0.95, gen), threshold=torch.ones(10), init_hidden=True,
                              output=True)

    def forward(self, x):
        return self.lif2(self.fc(self.flat(self.pool(self.lif1(self.conv1(x))))))


def leaky(n, gen, **kw):
    return snn.Leaky(beta=per_neuron(n, 0.8, 0.95, gen), threshold=per_neuron(n, 0.8, 1.2, gen),
                     init_hidden=True, **kw)


def synaptic(n, gen, **kw):
    return snn.Synaptic(alpha=per_neuron(n, 0.6, 0.85, gen), beta=per_neuron(n, 0.8, 0.95, gen),
                        threshold=per_neuron(n, 0.8, 1.2, gen), init_hidden=True, **kw)


def build(kind: str, gen):
    """(net, input shape, {layer name: weight scale}), each weight N(0, scale^2)."""
    if kind == "leaky_mlp":  # Leaky, default subtract reset (one step late: reset_delay=True)
        return Mlp(leaky(24, gen), leaky(10, gen, output=True)), (16,), dict(fc1=0.5, fc2=0.45)
    if kind == "leaky_zero":  # Leaky(reset_mechanism="zero"): v <- beta*(1-s)*v + I
        return (Mlp(leaky(24, gen, reset_mechanism="zero"), leaky(10, gen, reset_mechanism="zero", output=True)),
                (16,), dict(fc1=0.5, fc2=0.45))
    if kind == "synaptic_mlp":  # Synaptic -> CubaLIF, subtract reset
        return (Mlp(synaptic(24, gen), synaptic(10, gen, output=True)), (16,), dict(fc1=0.1, fc2=0.07))
    if kind == "synaptic_zero":  # Synaptic(reset_mechanism="zero")
        return (Mlp(synaptic(24, gen, reset_mechanism="zero"), synaptic(10, gen, reset_mechanism="zero", output=True)),
                (16,), dict(fc1=0.12, fc2=0.1))
    if kind == "rleaky":  # RLeaky (all-to-all recurrent Linear, with its bias), scalar beta/threshold
        return (Mlp(snn.RLeaky(beta=0.9, linear_features=24, init_hidden=True), leaky(10, gen, output=True)),
                (16,), dict(fc1=0.5, fc2=0.45, **{"lif1.recurrent": 0.15}))
    if kind == "rleaky_zero":  # RLeaky(zero) zeroes v after decay AND input; the Leaky(zero) after it keeps x
        return (Mlp(snn.RLeaky(beta=0.9, linear_features=24, init_hidden=True, reset_mechanism="zero"),
                    leaky(10, gen, reset_mechanism="zero", output=True)), (16,),
                dict(fc1=0.5, fc2=0.45, **{"lif1.recurrent": 0.15}))
    if kind == "rsynaptic":  # RSynaptic, all-to-all, scalar alpha/beta/threshold
        return (Mlp(snn.RSynaptic(alpha=0.75, beta=0.9, linear_features=24, init_hidden=True),
                    synaptic(10, gen, output=True)), (16,), dict(fc1=0.1, fc2=0.06, **{"lif1.recurrent": 0.03}))
    if kind == "conv":
        return ConvNet(gen), (2, 8, 8), dict(conv1=0.35, fc=0.3)
    if kind == "scalar_beta":  # the docstring's net: scalar beta and threshold
        return (Mlp(snn.Leaky(beta=0.9, init_hidden=True), snn.Leaky(beta=0.9, init_hidden=True, output=True)),
                (16,), dict(fc1=0.45, fc2=0.3))
    raise ValueError(kind)


KINDS = ("leaky_mlp", "leaky_zero", "synaptic_mlp", "synaptic_zero", "rleaky", "rleaky_zero", "rsynaptic", "conv",
         "scalar_beta")


def export(kind: str, net, shape) -> nir.NIRGraph:
    """snnTorch's own exporter on a sample with a batch dimension of 1, as its docstring shows; every
    kind but scalar_beta passes `ignore_dims=[0]` (the only way its Input type loses the batch)."""
    sample = torch.zeros(1, *shape)
    if kind != "scalar_beta":
        graph = export_to_nir(net, sample, ignore_dims=[0])
    else:
        try:
            graph = export_to_nir(net, sample)  # the docstring's call: fails under nir 1.0.8
            print(f"{kind}: export_to_nir succeeded", file=sys.stderr)
        except ValueError as error:
            print(f"{kind}: export_to_nir refuses ({error}); writing its nodes without the final infer_types",
                  file=sys.stderr)
            graph = nirtorch.extract_nir_graph(net, _extract_snntorch_module, sample, model_name="snntorch",
                                               ignore_submodules_of=[snn.RLeaky, snn.RSynaptic])
    reset_states(net)
    return graph


def reset_states(net) -> None:
    for module in net.modules():
        if isinstance(module, SPIKING):
            module.reset_mem()


def spiking_names(net) -> dict[str, torch.nn.Module]:
    """Our flattened graph's name of each spiking layer: RLeaky/RSynaptic `x` became `x.lif`."""
    names = {}
    for name, module in net.named_modules():
        if isinstance(module, (snn.RLeaky, snn.RSynaptic)):
            names[f"{name}.lif"] = module
        elif isinstance(module, SPIKING):
            names[name] = module
    return names


def run_net(net, x: torch.Tensor, record: dict[str, torch.nn.Module]):
    """snnTorch's runtime, one call per step; (T, B, ...) spikes of each recorded layer, last output."""
    reset_states(net)
    seen: dict[str, list] = {name: [] for name in record}
    hooks = [module.register_forward_hook(lambda m, i, o, name=name: seen[name].append(
        (o[0] if isinstance(o, tuple) else o).detach().clone())) for name, module in record.items()]
    try:
        with torch.no_grad():
            for t in range(x.shape[0]):
                net(x[t])
    finally:
        for hook in hooks:
            hook.remove()
    return {name: torch.stack(v).numpy().astype(np.float32) for name, v in seen.items()}


def make_input(shape, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return (rng.random((T, B, *shape)) < P_IN).astype(np.float32)


def reference(outdir: Path) -> None:
    outdir.mkdir(parents=True, exist_ok=True)
    for index, kind in enumerate(KINDS):
        gen = torch.Generator().manual_seed(1600 + index)
        net, shape, scales = build(kind, gen)
        for name, scale in scales.items():
            layer = net.get_submodule(name)
            _weights(layer, scale, gen, bias=0.05 if not name.endswith("recurrent") else 0.02)
        graph = export(kind, net, shape)
        # nir 1.0.8's gzip filter refuses 0-d datasets; nir <= 1.0.4 wrote every dataset unfiltered
        nir.write(str(outdir / f"{kind}.nir"), graph, **({"compression": None} if kind == "scalar_beta" else {}))
        x = make_input(shape, 16_000 + index)
        spikes = run_net(net, torch.from_numpy(x), spiking_names(net))
        rates = ", ".join(f"{name} {float(s.mean()):.3f}" for name, s in spikes.items())
        print(f"{kind}: input {x.mean():.3f}, {rates}", file=sys.stderr)
        np.savez(outdir / f"{kind}.npz", input=x, **{f"spikes:{name}": s for name, s in spikes.items()})
    # The importer's side of the round trip, in the same process (one torch import per session):
    # `importer` is run by snnTorch's import_from_nir and runtime, not written by an exporter.
    graph = importable_graph()
    nir.write(str(outdir / "importer.nir"), graph)
    x = make_input((16,), 16_999)[:, :3]
    ran = run_imported(nir.read(str(outdir / "importer.nir")), x)
    np.savez(outdir / "importer.npz", input=x, **ran)
    rates = ", ".join(f"{k[7:]} {float(v.mean()):.3f}" for k, v in ran.items() if ":" in k)
    print(f"importer: {rates}", file=sys.stderr)


def importable_graph(seed: int = 7) -> nir.NIRGraph:
    """What snnTorch's importer runs (and so what `--for snntorch` may write), made with nir's API: one
    threshold per layer, v_leak = 0, CubaLIF r = tau_mem / dt, and recurrence as a 3-cycle
    LIF -> w_rec -> identity Linear -> LIF (the importer nests a 2-cycle LIF <-> Affine into a
    subgraph that nirtorch 2.6 cannot run: "'GraphModule' object has no attribute 'items'")."""
    rng = np.random.default_rng(seed)
    dt, n_in, n_hid, n_out = 1e-4, 16, 24, 10

    def tau(beta, n):
        return np.full(n, dt / (1 - beta))

    def f32(*shape, scale):
        return rng.normal(0, scale, shape).astype(np.float32)

    nodes = {
        "input": nir.Input(np.array([n_in])),
        "fc1": nir.Affine(f32(n_hid, n_in, scale=0.5), f32(n_hid, scale=0.05)),
        "lif1": nir.LIF(tau=tau(0.9, n_hid), r=tau(0.9, n_hid) / dt, v_leak=np.zeros(n_hid),
                        v_threshold=np.ones(n_hid), v_reset=np.zeros(n_hid)),
        "w_rec": nir.Affine(f32(n_hid, n_hid, scale=0.15), f32(n_hid, scale=0.02)),
        "rec_id": nir.Linear(np.eye(n_hid, dtype=np.float32)),
        "fc2": nir.Affine(f32(n_out, n_hid, scale=0.08), np.zeros(n_out, np.float32)),
        "lif2": nir.CubaLIF(tau_mem=tau(0.9, n_out), tau_syn=tau(0.7, n_out), r=tau(0.9, n_out) / dt,
                            w_in=tau(0.7, n_out) / dt, v_leak=np.zeros(n_out), v_threshold=np.ones(n_out),
                            v_reset=np.zeros(n_out)),
        "output": nir.Output(np.array([n_out])),
    }
    edges = [("input", "fc1"), ("fc1", "lif1"), ("lif1", "w_rec"), ("w_rec", "rec_id"), ("rec_id", "lif1"),
             ("lif1", "fc2"), ("fc2", "lif2"), ("lif2", "output")]
    return nir.NIRGraph(nodes=nodes, edges=edges)


def run_imported(graph: nir.NIRGraph, x: np.ndarray) -> dict[str, np.ndarray]:
    """snnTorch's importer (`import_from_nir`) and its runtime, one call per step: `output` and
    `spikes:<node>` of every spiking layer. The importer maps LIF to Leaky and CubaLIF to Synaptic
    (reset_mechanism="zero", reset_delay=False, dt = 1e-4, beta = 1 - dt/tau); nirtorch's
    GraphModule returns (output, state) per call."""
    names = {name.replace(".", "_"): name for name in graph.nodes}  # nirtorch's _sanitize_name
    with contextlib.redirect_stdout(sys.stderr):  # the importer prints progress on stdout
        module = import_from_nir(graph)
    record = {names.get(name, name): m for name, m in module.named_modules() if isinstance(m, SPIKING)}
    seen: dict[str, list] = {name: [] for name in record}
    hooks = [m.register_forward_hook(lambda m, i, o, name=name: seen[name].append(
        (o[0] if isinstance(o, tuple) else o).detach().clone())) for name, m in record.items()]
    outputs, state, xt = [], None, torch.from_numpy(np.asarray(x, dtype=np.float32))
    try:
        with torch.no_grad():
            for t in range(xt.shape[0]):
                out, state = module(xt[t], state)
                outputs.append((out[0] if isinstance(out, tuple) else out).detach().clone())
    finally:
        for hook in hooks:
            hook.remove()
    return {"output": torch.stack(outputs).numpy().astype(np.float32),
            **{f"spikes:{name}": torch.stack(v).numpy().astype(np.float32) for name, v in seen.items() if v}}


def run(*triples: str) -> None:
    """The round trip: snnTorch's own importer and runtime on FILE and INPUT (T, B, *shape), for each
    (FILE, INPUT, OUT) given (several in one call: one torch and snnTorch import for all)."""
    for nir_file, input_file, out_file in zip(triples[0::3], triples[1::3], triples[2::3]):
        np.savez(out_file, **run_imported(nir.read(nir_file), np.load(input_file)))


def main(argv: list[str]) -> int:
    if len(argv) == 2 and argv[0] == "reference":
        reference(Path(argv[1]))
        return 0
    if len(argv) >= 4 and len(argv) % 3 == 1 and argv[0] == "run":
        run(*argv[1:])
        return 0
    print(__doc__.splitlines()[0] + "\nusage: side_snntorch.py reference OUTDIR | run FILE.nir INPUT.npy OUT.npz "
          "[FILE.nir INPUT.npy OUT.npz ...]", file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
