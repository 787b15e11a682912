"""Run a lava-dl netx HDF5 file in Lava's fixed_pt CPU simulator and record every layer's spikes.

A standalone script for a Python with lava-dl 0.6.0 on lava-nc 0.10.0 (`.venv-lavadl`, made by
`tests/peers/environments.py`); it never imports spikestack (see `verify.py`, which runs it):

    PYTHON lava_dl_run.py NET.net INPUT.npy OUT.npz

INPUT.npy: (T, B, *input_shape) 0/1 spikes, time-major, in OUR layout: (n,) for a dense input,
(C, H, W) for a conv input (torch's). Lava and netx hold (x, y, f) = (W, H, C), so a conv input
is transposed on the way in and every conv layer's output on the way out.
OUT.npz: `layer_<i>` (T, B, *shape in our layout), int8, for every block i of `Network.layers`
(netx's blocks: 'flatten' groups make none; an 'input' group with a neuron makes an Input block),
and `types`, the blocks' class names. stdout: one JSON line {"layers": [{"index", "block",
"shape"}...], "steps": T, "samples": B, "seconds": wall}. Any error: one line on stderr, exit 1.

Each sample runs in a fresh `netx.hdf5.Network` (Lava has no state reset), fed by a
`source.RingBuffer` into `net.inp`, with a `sink.RingBuffer` on every block's `out`, for exactly
T steps (`RunSteps(T)`, `Loihi2SimCfg(select_tag="fixed_pt")`).

Step alignment (read from lava-nc 0.10.0's process models; Lava's `time_step` counts from 1):
- source.RingBuffer sends data[..., time_step - 1]; sink.RingBuffer stores what it receives at
  time_step into data[..., time_step - 1]; a LIF sends its spikes in the same step it computes them
  and the sink receives them in that step. So with t = time_step - 1, input vector t enters at
  step t and output index t holds exactly the spikes the block emitted in step t.
- Dense and Conv synapses send, at step t, the a_buff they accumulated from the spikes received at
  step t - 1 (the send comes before the recv: Loihi's one-step synaptic delay). So block i (counting
  synapse blocks from 0) first sees input vector 0 at step i + 1: a network of L blocks
  reaches its last layer L steps late, and the last L input vectors of a T-step run never reach it.
  (SLAYER models the same delay with `delay_shift=True`, its default.)
- Lava's fixed-point CUBA step, per block, at step t: u = u*(4096 - (du+1)) >> 12 (sign-magnitude
  shift, i.e. rounding toward 0) + (W.s[t-1] << 6); v = v*(4096 - dv) >> 12 (same) + u + (bias <<
  6); spike where v > vThMant << 6 (strictly greater), then v = 0 where spiked. netx passes du =
  iDecay - 1, so the effective current decay is iDecay (LIF's ds_offset = 1; iDecay 0 gives du = -1,
  which works: no current decay); dv = vDecay (dm_offset = 0). The bias is added from step 0 on.
  (Checked: a lone input spike at t = 0 makes blocks 0, 1, 2 of a 1-1-1 chain spike at t = 1, 2, 3.)

netx conventions met on the way (lava-dl 0.6.0): a group's 'shape' is (C, H, W) / (n,) and netx
reverses it to (W, H, C); a 'flatten' connects (W, H, C).transpose(2, 1, 0).flatten(), i.e. our
C-order flatten of (C, H, W). Conv 'weight' is torch's (out, in, kH, kW) correlation kernel: netx
stores weight[:, :, ::-1, ::-1].transpose(0, 3, 2, 1) = (out, kW, kH, in) flipped, and Lava's Conv
flips it back, so the net effect is torch's conv2d. Dense weights go through
`optimize_weight_bits` (clipped to [-256, 254], shifted, weight_exp = -shift; exact for SLAYER's even
integers); an all-zero weight matrix crashes it (255 / 0). 'bias' becomes LIF bias_mant with
bias_exp 6 (per neuron for dense, per channel for conv). An 'input' group with a 'neuron' becomes an
Input block whose `inp` goes nowhere; Lava 0.10 will not compile a source feeding it, so such files
are refused here.
"""

import sys

sys.modules["spikestack"] = None  # the peer side must never see our package

import json  # noqa: E402
import os  # noqa: E402
import time  # noqa: E402

import h5py  # noqa: E402
import numpy as np  # noqa: E402


def _file_layers(path: str) -> list:
    """The file's layer groups' (type, shape) in order, as netx reads them (keys "0", "1", ...)."""
    with h5py.File(path, "r") as f:
        group = f["layer"]
        out = []
        for key in sorted(group.keys(), key=int):
            kind = group[key]["type"][()]
            kind = (kind[0] if np.ndim(kind) else kind).decode("ascii")
            shape = tuple(int(s) for s in group[key]["shape"][()]) if "shape" in group[key] else None
            out.append((kind, shape))
        return out


def _to_lava(x: np.ndarray) -> np.ndarray:
    """Our (C, H, W) -> Lava's (W, H, C); 1-D unchanged. Leading axes are left alone."""
    return x if x.ndim == 1 else np.transpose(x, (2, 1, 0))


def _run_sample(path, sample, input_shape, steps):
    """One fresh network on `sample` (T, *our shape): [(T, *our shape) int8 per block], block names."""
    from lava.lib.dl.netx import hdf5
    from lava.lib.dl.netx.blocks.process import Input as InputBlock
    from lava.magma.core.run_conditions import RunSteps
    from lava.magma.core.run_configs import Loihi2SimCfg
    from lava.proc.io import sink, source

    net = hdf5.Network(net_config=path, input_shape=input_shape)
    if net.layers and isinstance(net.layers[0], InputBlock):
        # netx's Input block leaves its `inp` unconnected (its neuron is driven by its bias only), and
        # Lava 0.10 then refuses to compile a source feeding it ("No subcompiler exists ... PyInputModel")
        raise ValueError("the file's 'input' layer has a neuron: netx's Input block takes no spikes on net.inp")
    want = tuple(net.inp.shape)
    data = np.stack([_to_lava(s) for s in sample], axis=-1)  # (*Lava shape, T): time last for RingBuffer
    if data.shape[:-1] != want and int(np.prod(want)) == data[..., 0].size and len(want) == 1:
        # a flatten before the first dense: netx flattens (W, H, C).transpose(2, 1, 0), i.e. our C-order
        data = np.stack([s.reshape(-1) for s in sample], axis=-1)
    if data.shape[:-1] != want:
        raise ValueError(f"input sample shape {sample.shape[1:]} does not fit the network's input {want}"
                         " (Lava's (x, y, f) order)")
    src = source.RingBuffer(data=data.astype(np.int32))
    src.s_out.connect(net.inp)
    sinks = []
    for block in net.layers:  # an OutPort may feed several InPorts: the next block and a sink
        sinks.append(sink.RingBuffer(shape=tuple(block.out.shape), buffer=steps))
        block.out.connect(sinks[-1].a_in)
    try:
        net.run(condition=RunSteps(num_steps=steps), run_cfg=Loihi2SimCfg(select_tag="fixed_pt"))
        recorded = [s.data.get() for s in sinks]  # (*Lava shape, T)
    finally:
        net.stop()
    outs = []
    for rec in recorded:
        if rec.min() < -128 or rec.max() > 127:
            raise ValueError(f"graded spikes out of int8 range ({rec.min()}..{rec.max()})")
        rec = np.moveaxis(rec, -1, 0)  # (T, *Lava shape)
        if rec.ndim == 4:
            rec = np.transpose(rec, (0, 3, 2, 1))  # (T, W, H, C) -> (T, C, H, W)
        outs.append(rec.astype(np.int8))
    return outs, [block.__class__.__name__ for block in net.layers]


def main(argv: list) -> int:
    if len(argv) != 3:
        print("usage: lava_dl_run.py NET.net INPUT.npy OUT.npz", file=sys.stderr)
        return 1
    path, given, out = argv
    start = time.perf_counter()
    spikes = np.load(given)
    if spikes.ndim not in (3, 5):
        raise ValueError(f"input must be (T, B, n) or (T, B, C, H, W), got {spikes.shape}")
    steps, samples = spikes.shape[:2]
    layers = _file_layers(path)
    file_input = next((shape for kind, shape in layers if kind == "input" and shape), None)
    if file_input is not None and int(np.prod(file_input)) != int(np.prod(spikes.shape[2:])):
        raise ValueError(f"input {spikes.shape[2:]} does not match the file's input layer shape {file_input}")
    # netx needs input_shape only when the first synapse layer is a conv and no 'input' group gives
    # a shape; an 'input' group's (C, H, W) shape overrides it anyway (netx reverses it to (W, H, C)).
    input_shape = tuple(int(s) for s in spikes.shape[2:][::-1]) if spikes.ndim == 5 else None
    per_layer, names = None, []
    for b in range(samples):
        outs, names = _run_sample(path, spikes[:, b], input_shape, steps)
        per_layer = [[] for _ in outs] if per_layer is None else per_layer
        for i, o in enumerate(outs):
            per_layer[i].append(o)
    arrays = {f"layer_{i}": np.stack(seq, axis=1) for i, seq in enumerate(per_layer or [])}
    np.savez(out, types=np.array(names), **arrays)
    return _summary(arrays, names, steps, samples, time.perf_counter() - start)


def _summary(arrays, names, steps, samples, seconds) -> int:
    rows = [{"index": i, "block": names[i], "shape": list(arrays[f"layer_{i}"].shape[2:])} for i in range(len(names))]
    os.write(_STDOUT, (json.dumps({"layers": rows, "steps": int(steps), "samples": int(samples),
                                   "seconds": round(seconds, 3)}) + "\n").encode())
    return 0


if __name__ == "__main__":
    # Lava, lava-dl and their imports print to stdout (lava-dl's "Prophesee" warning, compiler
    # notes), from this process and the ones Lava forks: send fd 1 to stderr and keep a private
    # copy of the real stdout for the one JSON line.
    sys.stdout.flush()
    _STDOUT = os.dup(1)
    os.dup2(2, 1)
    try:
        code = main(sys.argv[1:])
    except BaseException as error:  # noqa: BLE001 - the contract is one line on stderr, exit 1
        message = " ".join(f"{type(error).__name__}: {error}".split())
        print(f"lava_dl_run: {message}", file=sys.stderr, flush=True)
        code = 1
    sys.stderr.flush()
    sys.exit(code)
