"""Norse 1.1.0's side of the peers tier (issue 16): its own exporter, importer and runtime.

Runs in `.venv-peers` and never imports spikestack (see peer_oracle.py for the contract):

    side_norse.py reference OUTDIR          # K.nir (norse.torch.to_nir + nir.write) and K.npz per kind
    side_norse.py run FILE.nir IN.npy OUT.npz [FILE IN OUT ...]   # norse.torch.from_nir(nir.read(FILE)),
                                                                  # run step by step; several files, one import

Every model is a `norse.torch.SequentialState` of torch layers and Norse *cells* (one time step per
call, the state threaded through by hand), the way Norse's documentation runs cells; time step
dt = 1e-3 everywhere (Norse's default, for both the cells and `to_nir`). Spiking neurons get
per-neuron parameter tensors: with Norse's default scalar parameters a LIF, IF or CubaLIF node gets
0-d fields, and nir 1.0.8 adds a 0-d numpy v_reset (w_in) that `nir.write` cannot store with its
default gzip ("Scalar datasets don't support chunk/filter options"); a scalar LIBoxCell (all its
fields torch tensors) is written fine, with 0-d fields (kind li_scalar). Node names are
SequentialState's child indices ("0", "1", ...), which is what the exporter names the nodes.

Model kinds (seeded weights, neurons firing ~2-20% of the steps; rates printed on stderr):
- mlp:     Linear -> LIFBoxCell -> Linear -> LIFBoxCell             (NIR LIF, tau written as dt*tau)
- conv:    Conv2d -> IAFCell -> Conv2d(stride 2) -> LIFBoxCell       (NIR IF; input_shape set by hand)
- li:      Linear -> LIFBoxCell -> Linear -> LIBoxCell               (NIR LI readout, v recorded)
- cubalif: Linear -> LIFCell -> Linear -> LIFCell                   (NIR CubaLIF; i <- i + x before v)
- leak:    as cubalif after a LIFBoxCell, both with v_leak != 0     (bias through the leak; v starts at v_leak)
- if_exact: Linear -> IAFCell x 2, weights in quarters, v_th = 1.0   (v lands on v_th exactly: strict >)
- li_scalar: as li, but LIBoxCell() with default scalar parameters  (0-d tau, r, v_leak in the file)
All files carry a leading batch dimension of 1 in their Input (and Output) types: `to_nir` types
the Input with the sample's full shape, and Norse's own export tests pass a batch-1 sample.
"""

from __future__ import annotations

import sys

sys.modules["spikestack"] = None  # the peer side must never see our package

import logging  # noqa: E402
import warnings  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402

warnings.filterwarnings("ignore")
logging.disable(logging.WARNING)

import nir  # noqa: E402
import torch  # noqa: E402
import norse.torch as norse  # noqa: E402

torch.set_num_threads(1)

DT = 1e-3  # Norse's default dt (cells and to_nir)
T, B, P = 100, 4, 0.2  # steps, samples, input spike probability


def _spread(shape, low: float, high: float, gen: torch.Generator) -> torch.Tensor:
    """A per-neuron parameter tensor, uniform in [low, high)."""
    return low + (high - low) * torch.rand(shape, generator=gen)


def _linear(n_in: int, n_out: int, mean: float, std: float, gen: torch.Generator, step: float = 0.0) -> torch.nn.Linear:
    """Seeded Linear; with `step`, weights are multiples of it and the bias is 0, so that sums of
    them are exact in float32 and float64 alike (v lands exactly on the threshold)."""
    layer = torch.nn.Linear(n_in, n_out)
    with torch.no_grad():
        weight = mean + std * torch.randn(n_out, n_in, generator=gen)
        bias = 0.05 * torch.randn(n_out, generator=gen)
        layer.weight.copy_(torch.round(weight / step) * step if step else weight)
        layer.bias.copy_(bias * 0 if step else bias)
    return layer


def _conv(c_in: int, c_out: int, mean: float, std: float, gen: torch.Generator, **kw) -> torch.nn.Conv2d:
    layer = torch.nn.Conv2d(c_in, c_out, 3, **kw)
    with torch.no_grad():
        layer.weight.copy_(mean + std * torch.randn(layer.weight.shape, generator=gen))
        layer.bias.copy_(0.05 * torch.randn(c_out, generator=gen))
    return layer


def _leak(shape, v_leak, gen) -> torch.Tensor:
    return torch.zeros(shape) if v_leak is None else _spread(shape, *v_leak, gen)


def _lif_box(shape, gen, v_leak=None) -> norse.LIFBoxCell:
    # tau_mem 8-12.5 ms (tau_mem_inv 80-125 /s), thresholds 0.8-1.2, v_reset 0 (Norse's default);
    # v_leak 0 unless given (then also the initial v: LIFBoxCell.initial_state starts at v_leak)
    p = norse.LIFBoxParameters(tau_mem_inv=_spread(shape, 80.0, 125.0, gen), v_th=_spread(shape, 0.8, 1.2, gen),
                               v_leak=_leak(shape, v_leak, gen), v_reset=torch.zeros(shape))
    return norse.LIFBoxCell(p, dt=DT)


def _lif(shape, gen, v_leak=None) -> norse.LIFCell:
    # tau_syn 4-6.7 ms, tau_mem 8-12.5 ms, thresholds 0.8-1.2 (LIFCell also starts at v = v_leak)
    p = norse.LIFParameters(tau_syn_inv=_spread(shape, 150.0, 250.0, gen), tau_mem_inv=_spread(shape, 80.0, 125.0, gen),
                            v_leak=_leak(shape, v_leak, gen), v_th=_spread(shape, 0.8, 1.2, gen), v_reset=torch.zeros(shape))
    return norse.LIFCell(p, dt=DT)


def _li_box(shape, gen) -> norse.LIBoxCell:
    p = norse.LIBoxParameters(tau_mem_inv=_spread(shape, 80.0, 125.0, gen), v_leak=torch.zeros(shape))
    return norse.LIBoxCell(p, dt=DT)


def _iaf(shape, gen, exact: bool = False) -> norse.IAFCell:
    # thresholds 0.8-1.2, or exactly 1.0 (`exact`: v reaches it exactly and Norse's strict v > v_th decides)
    v_th = torch.ones(shape) if exact else _spread(shape, 0.8, 1.2, gen)
    return norse.IAFCell(norse.IAFParameters(v_th=v_th, v_reset=torch.zeros(shape)), dt=DT)


def build(kind: str):
    """(model, input shape without batch, {node: "spikes" | "readout"}) of one kind, seeded."""
    gen = torch.Generator().manual_seed(1 + KINDS.index(kind))
    if kind == "mlp":
        model = norse.SequentialState(_linear(16, 32, 0.5, 0.5, gen), _lif_box((32,), gen),
                                      _linear(32, 10, 0.5, 0.7, gen), _lif_box((10,), gen))
        return model, (16,), {"1": "spikes", "3": "spikes"}
    if kind == "conv":
        model = norse.SequentialState(_conv(2, 8, 0.05, 0.4, gen, padding=1), _iaf((8, 8, 8), gen),
                                      _conv(8, 8, 0.12, 0.15, gen, stride=2, padding=1), _lif_box((8, 4, 4), gen))
        return model, (2, 8, 8), {"1": "spikes", "3": "spikes"}
    if kind == "li":
        model = norse.SequentialState(_linear(16, 32, 0.5, 0.5, gen), _lif_box((32,), gen),
                                      _linear(32, 8, 0.0, 0.5, gen), _li_box((8,), gen))
        return model, (16,), {"1": "spikes", "3": "readout"}
    if kind == "cubalif":
        model = norse.SequentialState(_linear(16, 32, 0.1, 0.12, gen), _lif((32,), gen),
                                      _linear(32, 10, 0.12, 0.2, gen), _lif((10,), gen))
        return model, (16,), {"1": "spikes", "3": "spikes"}
    if kind == "li_scalar":  # LIBoxCell() with Norse's default scalar parameters: 0-d fields in the file
        model = norse.SequentialState(_linear(16, 32, 0.5, 0.5, gen), _lif_box((32,), gen),
                                      _linear(32, 8, 0.0, 0.5, gen), norse.LIBoxCell(dt=DT))
        return model, (16,), {"1": "spikes", "3": "readout"}
    if kind == "leak":
        model = norse.SequentialState(_linear(16, 32, 0.3, 0.5, gen), _lif_box((32,), gen, v_leak=(0.3, 0.7)),
                                      _linear(32, 10, 0.06, 0.2, gen), _lif((10,), gen, v_leak=(0.2, 0.5)))
        return model, (16,), {"1": "spikes", "3": "spikes"}
    if kind == "if_exact":
        model = norse.SequentialState(_linear(16, 32, 0.0, 0.25, gen, step=0.25), _iaf((32,), gen, exact=True),
                                      _linear(32, 10, 0.05, 0.25, gen, step=0.25), _iaf((10,), gen, exact=True))
        return model, (16,), {"1": "spikes", "3": "spikes"}
    raise ValueError(kind)


KINDS = ("mlp", "conv", "li", "cubalif", "leak", "if_exact", "li_scalar")


def spike_input(shape, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return (rng.random((T, B, *shape)) < P).astype(np.float32)


def run_sequential(model: norse.SequentialState, x: np.ndarray) -> list[np.ndarray]:
    """Norse's runtime: the SequentialState called once per step, its state list threaded through.
    Returns every child's output per step, stacked: (T, B, *shape) per child."""
    model.return_hidden = True  # public SequentialState flag: the outputs of every child
    state, per_child = None, None
    with torch.no_grad():
        for t in range(x.shape[0]):
            hidden, state = model(torch.from_numpy(x[t]), state)
            if per_child is None:
                per_child = [[] for _ in hidden]
            for slot, h in zip(per_child, hidden):
                slot.append(h.detach().numpy().copy())
    model.return_hidden = False
    return [np.stack(slot) for slot in per_child]


def fill_conv_input_shapes(model: norse.SequentialState, graph: nir.NIRGraph, shape) -> None:
    """What a user must do before `nir.write` accepts a Norse conv graph: the exporter leaves every
    Conv2d's input_shape None, which nir 1.0.8 cannot store (h5py: "One of data, shape or dtype must
    be specified"), and `graph.infer_types()` fails on the batch dimension the exporter puts in the
    Input type (IndexError). So the user writes each conv's spatial input shape by hand, here the
    (H, W) that child actually receives. The Input type keeps its leading batch dimension of 1."""
    x = torch.zeros(1, *shape)
    with torch.no_grad():
        for index, child in enumerate(model):
            node = graph.nodes.get(str(index))
            if isinstance(node, nir.Conv2d) and node.input_shape is None:
                node.input_shape = tuple(int(n) for n in x.shape[-2:])
            x = child(x)[0] if model.stateful_layers[index] else child(x)


def reference(outdir: Path) -> None:
    outdir.mkdir(parents=True, exist_ok=True)
    for number, kind in enumerate(KINDS):
        model, shape, record = build(kind)
        # Exported as Norse's docs and tests do: to_nir with a one-sample example, then nir.write.
        graph = norse.to_nir(model, torch.zeros(1, *shape), dt=DT)
        fill_conv_input_shapes(model, graph, shape)
        nir.write(str(outdir / f"{kind}.nir"), graph)
        x = spike_input(shape, 100 + number)
        outputs = run_sequential(model, x)
        data = {"input": x}
        rates = []
        for node, what in record.items():
            out = outputs[int(node)].astype(np.float32)
            data[f"{what}:{node}"] = out
            rates.append(f"{node} {out.mean():.3f}" if what == "spikes" else f"{node} readout |v|max {np.abs(out).max():.3g}")
        np.savez(outdir / f"{kind}.npz", **data)
        print(f"norse {kind}: input rate {x.mean():.3f}; " + "; ".join(rates), file=sys.stderr)


def run(nir_file: Path, input_file: Path, out_file: Path) -> None:
    """The round trip: Norse's own importer (from_nir, dt 1e-3) and runtime on FILE and INPUT."""
    try:
        graph = nir.read(str(nir_file))  # as Norse's from_nir docstring does (type checked)
        print(f"{nir_file.name}: nir.read: type check passed")
    except ValueError as error:  # Norse's own files fail it (batch dimension in the Input type)
        graph = nir.read(str(nir_file), type_check=False)
        print(f"{nir_file.name}: nir.read: type check failed ({str(error).splitlines()[0]}); "
              "read with type_check=False")
    module = norse.from_nir(graph, dt=DT)
    dropped = [name for name, node in graph.nodes.items()
               if not isinstance(node, (nir.Input, nir.Output)) and getattr(module, name.replace(".", "_"), None) is None]
    if dropped:  # from_nir maps these to None and nirtorch then skips them (LI, Linear-free kinds, ...)
        print(f"{nir_file.name}: from_nir dropped: {', '.join(dropped)}")
    x = np.load(input_file).astype(np.float32)
    names = {name.replace(".", "_"): name for name in graph.nodes}  # nirtorch's sanitised names
    spiking = {name for name, node in graph.nodes.items() if isinstance(node, (nir.IF, nir.LIF, nir.CubaLIF))}
    state, outputs, spikes = None, [], {name: [] for name in spiking}
    with torch.no_grad():
        for t in range(x.shape[0]):
            out, state = module(torch.from_numpy(x[t]), state)
            outputs.append(out.detach().numpy().copy())
            for sanitised, value in state.cache.items():
                if names.get(sanitised) in spiking:
                    spikes[names[sanitised]].append(value.detach().numpy().copy())
    data = {"output": np.stack(outputs)}
    data.update({f"spikes:{name}": np.stack(v) for name, v in spikes.items() if v})
    np.savez(out_file, **data)


def main(argv: list[str]) -> int:
    if len(argv) == 2 and argv[0] == "reference":
        reference(Path(argv[1]))
        return 0
    if len(argv) >= 4 and argv[0] == "run" and len(argv) % 3 == 1:  # (FILE, INPUT, OUT) triples: one import
        for at in range(1, len(argv), 3):
            run(Path(argv[at]), Path(argv[at + 1]), Path(argv[at + 2]))
        return 0
    print("usage: side_norse.py reference OUTDIR | run FILE.nir INPUT.npy OUT.npz [FILE INPUT OUT ...]",
          file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
