"""Rockpool 3.1.0's side of the peers tier (issue 16); runs in `.venv-peers`, never imports spikestack.

    side_rockpool.py reference OUTDIR         # build, export (Rockpool's own to_nir + nir.write), run
    side_rockpool.py run FILE.nir IN.npy OUT.npz [FILE IN OUT ...]   # Rockpool's own from_nir + runtime
        on each file (several in one process: importing Rockpool and torch takes most of the time);
        prints one line per file on stdout: `read FILE: from_nir(Path)`, or `... type_check=False`
        where NIR's type check refused the file and it was read without the check

Model kinds (Rockpool's NIR exporter has no conv layers, so there is no conv kind):
- cuba_mlp:      LinearTorch -> LIFTorch -> LinearTorch -> LIFTorch          (exported as CubaLIF)
- lif_mlp:       LinearTorch(bias) -> LIFNeuronTorch -> LinearTorch -> LIFNeuronTorch   (Affine, LIF)
- li_readout:    LinearTorch -> LIFTorch -> LinearTorch -> ExpSynTorch       (CubaLIF, LI readout)
- li_scalar:     the same with one scalar tau/threshold per layer: the exporter broadcasts LIFTorch's to
  [N] but writes ExpSynTorch's tau, r and v_leak as 0-d arrays (the LI node has no shape of its own)
- cuba_bias_rec: LinearTorch -> LIFTorch(bias, has_rec=True) -> LinearTorch -> LIFTorch(bias)
  The exporter writes neither the biases (v_leak = 0) nor the recurrent weights, so the file describes
  the same network without them: `spikes:<node>` is what Rockpool's runtime computes for that network
  (bias and w_rec zeroed), and `lost_spikes__<node>` (no colon: not a reference key) what it computes
  for the network the user trained, to show what the file lost.

Every kind runs at Rockpool's default dt = 1e-3 s. Rockpool's runtime emits floor(v/theta) spikes per step
where v >= theta (max_spikes_per_dt = 2**16), so the reference spikes are counts, some of them >= 2.
"""

from __future__ import annotations

import sys

sys.modules["spikestack"] = None  # the peer side never imports us
sys.modules["samna"] = None

import warnings  # noqa: E402

warnings.filterwarnings("ignore")

from pathlib import Path  # noqa: E402

import nir  # noqa: E402
import numpy as np  # noqa: E402
import torch  # noqa: E402
from rockpool.nn.combinators import Sequential  # noqa: E402
from rockpool.nn.modules import ExpSynTorch, LIFNeuronTorch, LIFTorch, LinearTorch  # noqa: E402
from rockpool.nn.modules.torch.nir import from_nir, to_nir  # noqa: E402

torch.set_num_threads(1)
T, B, N_IN, N_HID = 100, 3, 16, 24
P_IN = 0.2
SEED = 16


def _rng(kind: str) -> np.random.Generator:
    return np.random.default_rng([SEED, sum(map(ord, kind))])


def _weights(rng, n_in, n_out, mean, std):
    """Rockpool's LinearTorch weight layout is (Nin, Nout)."""
    return (rng.normal(mean, std, size=(n_in, n_out))).astype(np.float32)


def _u(rng, lo, hi, n):
    return rng.uniform(lo, hi, size=n).astype(np.float32)


# Weight scale and shift per kind and layer, chosen so hidden layers fire on 2-20% of steps and some
# neurons cross two or more thresholds in one step (printed on stderr by `reference`).
SCALES = {
    "cuba_mlp": ((0.15, -0.01), (0.1, -0.01)),
    "lif_mlp": ((0.5, 0.05), (0.5, 0.0)),
    "li_readout": ((0.15, -0.01), (0.3, 0.0)),
    "cuba_bias_rec": ((0.15, -0.01), (0.08, -0.02)),
    "li_scalar": ((0.2, -0.01), (0.3, 0.0)),
}


def _random_lif(rng, n: int):
    """A LIFTorch with seeded per-neuron tau_mem, tau_syn and thresholds (drawn in that order)."""
    return LIFTorch(n, tau_mem=_u(rng, 10e-3, 40e-3, n), tau_syn=_u(rng, 2e-3, 8e-3, n)[:, None],
                    threshold=_u(rng, 0.6, 1.6, n))


def build(kind: str):
    """(rockpool network, twin network as its file describes it or None)."""
    rng = _rng(kind)
    (a1, c1), (a2, c2) = SCALES[kind]
    n_out = 6 if kind.startswith("li_") else 8
    w1 = _weights(rng, N_IN, N_HID, 0.0, 1.0)
    w2 = _weights(rng, N_HID, n_out, 0.0, 1.0)
    if kind == "cuba_mlp":
        return Sequential(
            LinearTorch((N_IN, N_HID), weight=a1 * w1 + c1),
            _random_lif(rng, N_HID),
            LinearTorch((N_HID, n_out), weight=a2 * w2 + c2),
            _random_lif(rng, n_out),
        ), None
    if kind == "lif_mlp":
        return Sequential(
            LinearTorch((N_IN, N_HID), weight=a1 * w1 + c1, bias=_u(rng, -0.3, 0.0, N_HID), has_bias=True),
            LIFNeuronTorch(N_HID, tau_mem=_u(rng, 5e-3, 30e-3, N_HID), threshold=_u(rng, 0.5, 1.5, N_HID)),
            LinearTorch((N_HID, n_out), weight=a2 * w2 + c2),
            LIFNeuronTorch(n_out, tau_mem=_u(rng, 5e-3, 30e-3, n_out), threshold=_u(rng, 0.5, 1.5, n_out)),
        ), None
    if kind == "li_readout":
        return Sequential(
            LinearTorch((N_IN, N_HID), weight=a1 * w1 + c1),
            _random_lif(rng, N_HID),
            LinearTorch((N_HID, n_out), weight=a2 * w2 + c2),
            ExpSynTorch(n_out, tau=_u(rng, 5e-3, 50e-3, n_out)),
        ), None
    if kind == "li_scalar":  # one tau / threshold for a whole layer: Rockpool keeps them 0-d
        return Sequential(
            LinearTorch((N_IN, N_HID), weight=a1 * w1 + c1),
            LIFTorch(N_HID, tau_mem=0.02, tau_syn=0.004, threshold=1.0),
            LinearTorch((N_HID, n_out), weight=a2 * w2 + c2),
            ExpSynTorch(n_out, tau=0.02),
        ), None
    if kind == "cuba_bias_rec":
        taus = dict(tau_mem=_u(rng, 10e-3, 40e-3, N_HID), tau_syn=_u(rng, 2e-3, 8e-3, N_HID)[:, None],
                    threshold=_u(rng, 0.6, 1.6, N_HID))
        taus2 = dict(tau_mem=_u(rng, 10e-3, 40e-3, n_out), tau_syn=_u(rng, 2e-3, 8e-3, n_out)[:, None],
                     threshold=_u(rng, 0.6, 1.6, n_out))
        w_rec = _weights(rng, N_HID, N_HID, -0.05, 0.1)
        b1, b2 = _u(rng, -0.02, 0.03, N_HID), _u(rng, -0.02, 0.03, n_out)

        def make(with_lost: bool):
            return Sequential(
                LinearTorch((N_IN, N_HID), weight=a1 * w1 + c1),
                LIFTorch(N_HID, **taus, bias=b1 if with_lost else np.zeros_like(b1),
                         has_rec=True, w_rec=w_rec if with_lost else np.zeros_like(w_rec)),
                LinearTorch((N_HID, n_out), weight=a2 * w2 + c2),
                LIFTorch(n_out, **taus2, bias=b2 if with_lost else np.zeros_like(b2)),
            )

        return make(True), make(False)
    raise ValueError(kind)


KINDS = ("cuba_mlp", "lif_mlp", "li_readout", "li_scalar", "cuba_bias_rec")


def simulate(net, x_tb: np.ndarray) -> dict[str, np.ndarray]:
    """Rockpool's own runtime: the Sequential evolved over the whole (B, T, N) input at once."""
    net.reset_state()
    with torch.no_grad():
        _, _, rec = net(torch.as_tensor(np.swapaxes(x_tb, 0, 1)), record=True)
    out = {}
    for name, mod in net.modules().items():
        if isinstance(mod, (LIFTorch, LIFNeuronTorch)):
            out[f"spikes:{name}"] = np.swapaxes(rec[name]["spikes"].numpy(), 0, 1).astype(np.float32)
        elif isinstance(mod, ExpSynTorch):
            out[f"readout:{name}"] = np.swapaxes(rec[f"{name}_output"].numpy(), 0, 1).astype(np.float32)
    return out


def export(net, path: Path) -> None:
    """Rockpool's documented export: `to_nir(net)` then `nir.write`.

    Rockpool's parameters are trainable torch Parameters and its LI node keeps them as tensors that
    require grad, on which nir.write fails ("Can't call numpy() on Tensor that requires grad"); a user
    has to freeze the network first. That changes no value."""
    for param in torch.nn.Module.parameters(net):  # Rockpool's own .parameters() is a dict of names
        param.requires_grad_(False)
    nir.write(str(path), to_nir(net))


def reference(outdir: Path) -> None:
    for kind in KINDS:
        net, twin = build(kind)
        x = (np.random.default_rng([SEED, 1, sum(map(ord, kind))]).random((T, B, N_IN)) < P_IN).astype(np.float32)
        export(net, outdir / f"{kind}.nir")
        data = {"input": x}
        if twin is None:
            data.update(simulate(net, x))
        else:
            data.update(simulate(twin, x))
            data.update({k.replace("spikes:", "lost_spikes__"): v for k, v in simulate(net, x).items()})
        np.savez(outdir / f"{kind}.npz", **data)
        for key, val in data.items():
            if key.startswith(("spikes:", "lost_spikes__")):
                print(f"{kind} {key}: rate {np.mean(val > 0):.3f}, spikes/step max {val.max():g}, "
                      f"steps with >=2 spikes {int(np.sum(val >= 2))}", file=sys.stderr)
            elif key.startswith("readout:"):
                print(f"{kind} {key}: |readout| max {np.abs(val).max():.3g}", file=sys.stderr)


def load_peer(path: str, how: list | None = None):
    """Rockpool's own importer, as documented: `from_nir(Path(file))`. That reads with NIR's type check,
    which rejects Rockpool's own files (Input type [1, N] against Linear's [N]); only then is the file
    read without the check (said on stderr), so a file that Rockpool's documented call reads is read so.
    `how`, when given, receives which of the two reads it took."""
    try:
        model = from_nir(Path(path))
        if how is not None:
            how.append("from_nir(Path)")
        return model, nir.read(path, type_check=False)
    except ValueError as exc:
        if "type mismatch" not in str(exc):
            raise
        print(f"side_rockpool: from_nir(Path) refused {path} ({exc}); reading with type_check=False",
              file=sys.stderr)
        if how is not None:
            how.append("type_check=False")
        graph = nir.read(path, type_check=False)
        return from_nir(graph), graph


def _spiking_names(graph) -> dict[str, str]:
    """Module name -> our flattened node name: Rockpool's importer turns a recurrent subgraph
    (Input, CubaLIF, Linear/Affine, Output) into one LIFTorch named after the subgraph."""
    names = {}
    for name, node in graph.nodes.items():
        inner = [k for k, v in getattr(node, "nodes", {}).items() if isinstance(v, nir.CubaLIF)]
        names[name.replace(".", "_")] = f"{name}.{inner[0]}" if inner else name
    return names


def run(nir_file: str, input_file: str, out_file: str) -> None:
    how: list[str] = []
    model, graph = load_peer(nir_file, how)
    print(f"read {nir_file}: {how[0]}")
    names = _spiking_names(graph)
    x = np.load(input_file).astype(np.float32)  # (T, B, N)
    taken: dict[str, np.ndarray] = {}

    def keep(name, kind):
        def hook(_module, _inputs, output):
            out = output[0] if isinstance(output, tuple) else output
            taken[f"{kind}:{names.get(name, name)}"] = np.swapaxes(out.detach().numpy(), 0, 1).astype(np.float32)
        return hook

    for name, mod in model.named_children():
        if isinstance(mod, (LIFTorch, LIFNeuronTorch)):
            mod.register_forward_hook(keep(name, "spikes"))
        elif isinstance(mod, ExpSynTorch):
            mod.register_forward_hook(keep(name, "readout"))
    with torch.no_grad():  # Rockpool's modules run the whole (B, T, N) sequence in one call
        out = model(torch.as_tensor(np.swapaxes(x.reshape(x.shape[0], x.shape[1], -1), 0, 1)))
    out = out[0] if isinstance(out, tuple) else out
    np.savez(out_file, output=np.swapaxes(out.detach().numpy(), 0, 1).astype(np.float32), **taken)


def main(argv: list[str]) -> int:
    if len(argv) == 2 and argv[0] == "reference":
        out = Path(argv[1])
        out.mkdir(parents=True, exist_ok=True)
        reference(out)
        return 0
    if len(argv) >= 4 and len(argv) % 3 == 1 and argv[0] == "run":
        for at in range(1, len(argv), 3):
            run(*argv[at:at + 3])
        return 0
    print(__doc__, file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
