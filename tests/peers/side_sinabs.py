"""Sinabs 3.1.3's side of the peers tier (issue 16): its own exporter, importer and runtime.

Runs in `.venv-sinabs` (nir 1.0.4, which Sinabs pins) and never imports spikestack nor `samna`
(see peer_oracle.py for the contract):

    side_sinabs.py reference OUTDIR              # K.nir (sinabs.to_nir + nir.write) and K.npz per kind
    side_sinabs.py run FILE.nir IN.npy OUT.npz [FILE IN OUT ...]
                                                 # sinabs.from_nir(nir.read(FILE), batch_size=B), one call each

Models are `nn.Sequential`s of torch layers and Sinabs' "Squeeze" layers, which take (B*T, ...)
batch-major tensors, exported the way Sinabs' own NIR tests do it: `sinabs.to_nir(model,
torch.randn(B, *input_shape))` (a sample of one step per sample), then `nir.write`; the plain layers
of `lif_bt` take (B, T, ...), so their sample is the (B, T, ...) input itself. Node names are
the Sequential's child indices ("0", "1", ...), which is what the exporter names the nodes. Every
neuron keeps Sinabs' defaults except where a kind says otherwise: `MultiSpike` (floor(v / theta)
spikes per step, so v >= theta fires), `MembraneSubtract` (v -= spikes * theta, in the same step),
no `min_v_mem`; LIF with `norm_input=True` (v <- a v + (1 - a) x, a = exp(-1/tau_mem)), ExpLeak
with `norm_input=False` (v <- a v + x). Time is in steps (dt = 1).

Model kinds (seeded weights; hidden layers fire ~2-20% of the steps; rates printed on stderr):
- iaf_mlp:        Linear -> IAFSqueeze -> Linear -> IAFSqueeze        integer weights and thresholds,
                  so v lands exactly on theta (>= vs >) and some steps reach 2-3 theta (MultiSpike)
- iaf_mlp_single: the same network with spike_fn=SingleSpike: its file is the same kind of file
                  (the exporter drops the spike function), so the preset alone cannot know it
- lif_mlp:        Linear -> LIFSqueeze(tau 8, 0-d params) -> Linear -> LIFSqueeze(per-neuron tau)
- lif_readout:    Linear -> LIFSqueeze(tau 5) -> Linear -> ExpLeakSqueeze(tau 10)  (v recorded)
- lif_bt:         Linear -> LIF -> Linear -> IAF, Sinabs' plain layers on (B, T, ...), exported with a
                  (B, T, ...) sample as their forward needs: the Input type is (T, 16), time included
- conv:           Conv2d -> IAF -> SumPool2d -> Conv2d -> IAF -> SumPool2d -> Flatten -> Linear -> IAF
                  (the exporter leaves Conv2d input_shape and Flatten input_type None, which nir.write
                  cannot store; `graph.infer_types()`, nir's own, fills them before writing)
"""

from __future__ import annotations

import sys

sys.modules["spikestack"] = None  # the peer side must never see our package
sys.modules["samna"] = None  # Sinabs' dependency stub pip-installs from an outside index on import (BRIEF §9)

import contextlib  # noqa: E402
import logging  # noqa: E402
import warnings  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402

warnings.filterwarnings("ignore")
logging.disable(logging.WARNING)

import nir  # noqa: E402
import sinabs  # noqa: E402
import sinabs.layers as sl  # noqa: E402
import torch  # noqa: E402
from sinabs.activation import SingleSpike  # noqa: E402
from torch import nn  # noqa: E402

torch.set_num_threads(1)

T, B, P = 100, 3, 0.2  # steps, samples, input spike probability


def _int_linear(n_in, n_out, low, high, gen, strong=0, strong_value=0) -> nn.Linear:
    """Integer weights in [low, high), zero bias; `strong` weights set to `strong_value` (multi-spike)."""
    layer = nn.Linear(n_in, n_out)
    with torch.no_grad():
        w = torch.randint(low, high, (n_out, n_in), generator=gen).float()
        for k in torch.randperm(w.numel(), generator=gen)[:strong]:
            w.view(-1)[k] = strong_value
        layer.weight.copy_(w)
        layer.bias.copy_(torch.randint(-1, 1, (n_out,), generator=gen).float())
    return layer


def _linear(n_in, n_out, mean, std, gen) -> nn.Linear:
    layer = nn.Linear(n_in, n_out)
    with torch.no_grad():
        layer.weight.copy_(mean + std * torch.randn(n_out, n_in, generator=gen))
        layer.bias.copy_(0.05 * torch.randn(n_out, generator=gen))
    return layer


def _int_conv(c_in, c_out, low, high, gen) -> nn.Conv2d:
    layer = nn.Conv2d(c_in, c_out, 3, padding=1)
    with torch.no_grad():
        layer.weight.copy_(torch.randint(low, high, layer.weight.shape, generator=gen).float())
        layer.bias.copy_(torch.randint(-1, 1, (c_out,), generator=gen).float())
    return layer


def iaf_mlp(gen, spike_fn=None) -> tuple[nn.Sequential, tuple]:
    kw = {"record_states": True} if spike_fn is None else {"spike_fn": spike_fn, "record_states": True}
    model = nn.Sequential(
        _int_linear(16, 32, -3, 4, gen, strong=6, strong_value=17.0),
        sl.IAFSqueeze(batch_size=B, spike_threshold=6.0, **kw),
        _int_linear(32, 10, -2, 3, gen, strong=3, strong_value=9.0),
        sl.IAFSqueeze(batch_size=B, spike_threshold=4.0, **kw),
    )
    return model, (16,)


def iaf_mlp_single(gen):
    return iaf_mlp(gen, spike_fn=SingleSpike)


def lif_mlp(gen):
    tau2 = 4.0 + 12.0 * torch.rand(10, generator=gen)  # per-neuron tau_mem, 4-16 steps
    model = nn.Sequential(
        _linear(16, 32, 0.6, 3.0, gen), sl.LIFSqueeze(tau_mem=8.0, batch_size=B),
        # per-neuron tau needs a per-neuron threshold too: nir.LIF asserts equal parameter shapes
        _linear(32, 10, 1.0, 4.0, gen), sl.LIFSqueeze(tau_mem=tau2, spike_threshold=torch.ones(10), batch_size=B),
    )
    return model, (16,)


def lif_readout(gen):
    model = nn.Sequential(
        _linear(16, 32, 0.0, 3.0, gen), sl.LIFSqueeze(tau_mem=5.0, batch_size=B),
        _linear(32, 10, 0.0, 1.0, gen), sl.ExpLeakSqueeze(tau_mem=10.0, batch_size=B),
    )
    return model, (16,)


def lif_bt(gen):
    """Sinabs' plain (not Squeeze) layers take (B, T, ...); exported with a (B, T, ...) sample."""
    model = nn.Sequential(
        _linear(16, 32, 0.3, 3.0, gen), sl.LIF(tau_mem=8.0),
        _int_linear(32, 10, -2, 3, gen, strong=3, strong_value=9.0), sl.IAF(spike_threshold=5.0),
    )
    return model, (16,)


def conv(gen):
    model = nn.Sequential(
        _int_conv(2, 4, -1, 3, gen), sl.IAFSqueeze(batch_size=B, spike_threshold=6.0),
        sl.SumPool2d(2),
        _int_conv(4, 8, -1, 2, gen), sl.IAFSqueeze(batch_size=B, spike_threshold=4.0),
        sl.SumPool2d(2),
        nn.Flatten(),
        _int_linear(32, 10, -2, 2, gen), sl.IAFSqueeze(batch_size=B, spike_threshold=6.0),
    )
    return model, (2, 8, 8)


KINDS = {"iaf_mlp": iaf_mlp, "iaf_mlp_single": iaf_mlp_single, "lif_mlp": lif_mlp,
         "lif_readout": lif_readout, "lif_bt": lif_bt, "conv": conv}
SEEDS = {"iaf_mlp": 1600, "iaf_mlp_single": 1600, "lif_mlp": 1602, "lif_readout": 1603, "conv": 1604,
         "lif_bt": 1605}
BATCH_TIME = {"lif_bt"}  # kinds of plain layers: (B, T, ...) in, and a (B, T, ...) export sample


def _squeezed(x: np.ndarray) -> torch.Tensor:
    """(T, B, ...) time-major -> Sinabs' (B*T, ...) batch-major."""
    return torch.from_numpy(np.ascontiguousarray(np.swapaxes(x, 0, 1))).flatten(0, 1)


def _time_major(y: torch.Tensor, batch: int) -> np.ndarray:
    """Sinabs' (B*T, ...) -> (T, B, ...)."""
    y = y.detach().reshape(batch, -1, *y.shape[1:])
    return np.ascontiguousarray(np.swapaxes(y.numpy(), 0, 1))


def _record(model: nn.Sequential, x: torch.Tensor) -> dict[str, torch.Tensor]:
    """Run the model once on (B*T, ...) and keep every neuron layer's output, by child name."""
    seen: dict[str, torch.Tensor] = {}
    hooks = [module.register_forward_hook(lambda _m, _i, out, name=name: seen.__setitem__(name, out))
             for name, module in model.named_children() if isinstance(module, sl.LIF)]
    with torch.no_grad():
        model(x)
    for hook in hooks:
        hook.remove()
    return seen


def _rates(kind: str, arrays: dict[str, np.ndarray]) -> None:
    for key, arr in arrays.items():
        if key.startswith("spikes:"):
            print(f"{kind} {key}: fires {np.mean(arr > 0):.3f} of neuron-steps, {arr.mean():.3f} spikes/step, "
                  f"max {arr.max():g} per step, {np.mean(arr > 1):.4f} multi", file=sys.stderr)
        elif key.startswith("readout:"):
            print(f"{kind} {key}: |v| max {np.abs(arr).max():.3g}", file=sys.stderr)


def reference(outdir: Path) -> None:
    outdir.mkdir(parents=True, exist_ok=True)
    for kind, build in KINDS.items():
        # one seed per kind (iaf_mlp_single shares iaf_mlp's weights and input)
        gen = torch.Generator().manual_seed(SEEDS[kind])
        torch.manual_seed(SEEDS[kind])
        model, shape = build(gen)
        rng = np.random.default_rng(SEEDS[kind])
        x = (rng.random((T, B, *shape)) < P).astype(np.float32)
        batch_time = torch.from_numpy(np.ascontiguousarray(np.swapaxes(x, 0, 1)))  # (B, T, ...)
        x_model = batch_time if kind in BATCH_TIME else batch_time.flatten(0, 1)
        seen = _record(model, x_model)
        arrays = {"input": x}
        for name, module in model.named_children():
            if name in seen:
                key = "spikes" if module.does_spike else "readout"  # ExpLeak: a LIF without spike_fn
                out = seen[name].flatten(0, 1) if kind in BATCH_TIME else seen[name]
                arrays[f"{key}:{name}"] = _time_major(out, B)
        _rates(kind, arrays)
        for name, module in model.named_children():
            if getattr(module, "recordings", None) and module.does_spike:  # record_states: v after the reset
                v_after = module.recordings["v_mem"].reshape(B, T, -1)
                s = seen[name].reshape(B, T, -1)
                print(f"{kind} {name}: {int(((s > 0) & (v_after == 0)).sum())} spikes from v exactly k*theta",
                      file=sys.stderr)
        # Export exactly as Sinabs' own tests and docs do: a sample shaped like one step of B samples.
        for module in model.modules():
            if isinstance(module, sl.LIF):
                module.reset_states()
        graph = sinabs.to_nir(model, torch.randn(B, *shape) if kind not in BATCH_TIME else x_model)
        if any(isinstance(node, (nir.Conv2d, nir.Flatten)) for node in graph.nodes.values()):
            # The exporter leaves every Conv2d's input_shape and every Flatten's input_type None, which
            # nir.write cannot store (h5py: "One of data, shape or dtype must be specified"). A user's
            # one way out is nir's own type inference, which fills them from the Input type (it
            # prints its warnings on stdout: kept off ours).
            with contextlib.redirect_stdout(sys.stderr):
                graph.infer_types()
        nir.write(str(outdir / f"{kind}.nir"), graph)
        np.savez(outdir / f"{kind}.npz", **arrays)


def run(nir_file: Path, input_file: Path, out_file: Path) -> None:
    from nirtorch.utils import sanitize_name

    x = np.load(input_file).astype(np.float32)
    graph = nir.read(str(nir_file))
    model = sinabs.from_nir(graph, batch_size=x.shape[1])  # as Sinabs' NIR tutorial loads a file
    with torch.no_grad():
        output, state = model(_squeezed(x))
    arrays = {"output": _time_major(output, x.shape[1])}
    names = {sanitize_name(name): name for name in graph.nodes}
    for key, value in state.cache.items():
        module = getattr(model, key, None)
        if isinstance(module, sl.LIF) and key in names:
            what = "spikes" if module.does_spike else "readout"
            arrays[f"{what}:{names[key]}"] = _time_major(value, x.shape[1])
    np.savez(out_file, **arrays)


def main(argv: list[str]) -> int:
    if len(argv) == 2 and argv[0] == "reference":
        reference(Path(argv[1]))
        return 0
    if len(argv) >= 4 and argv[0] == "run" and len(argv) % 3 == 1:  # several files: one start of torch and Sinabs
        for k in range(1, len(argv), 3):
            run(Path(argv[k]), Path(argv[k + 1]), Path(argv[k + 2]))
        return 0
    print(__doc__, file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
