"""Published measurements as test cases (issue 21 item 4): a named network on a named chip with a
measured energy and/or time per inference, rebuilt here as closely as the publication allows, run on
the simulator for its counts and priced by the energy model; our figure beside the paper's, the
ratio ours / paper, and what the publication leaves unspecified (so what we assumed).

Every case uses the public API only: a NIR graph (`nir`, `spikestack.ir`), `simulators.simulate`
for the counts, and `energy.load_profile`, `map_to_cores`, `estimate`. Nothing here reads the
model's internals, so the script reruns unchanged when the model's terms change.

Activity: no case's publication reports firing rates, so each layer is driven to a stated rate per
step by a bias (IF neurons, subtractive reset, r = 1/dt so v grows by the bias each step), with
small random weights that jitter the phases; the rates reached are printed. Input spikes are
Bernoulli at a stated rate. Change a rate with --rate-scale to see how far the estimate moves.

    .venv/bin/python bench/published_measurements.py [--table /tmp/published/TABLE.md] [--rate-scale 1.0]

Sources (quoted in docs/energy.md, "Published measurements"):
- Blouw, Choo, Hunsberger, Eliasmith 2019, "Benchmarking keyword spotting efficiency on neuromorphic
  hardware" (arXiv:1812.01739), Table 1; its LaTeX and logs in github.com/abr/power_benchmarks
  (paper/power_summary.tex, logs/running/loihi_run0*.json); steps per frame from the same group's
  nengo-loihi example docs/examples/keyword-spotting.ipynb (p_time=10, dt=0.001; removed in
  nengo-loihi commit 2493eef, read at its parent).
- lava-dl tutorials/lava/lib/dl/netx/pilotnet_snn/benchmark.ipynb, outputs of the run saved at
  commit b9e3691 (2023-01-10), PilotNet LIF on one Loihi 2 chip (partition 'oheogulch'); earlier
  runs saved at baa23ad and 76c8fbb give the spread.
- Bos & Muir 2024, "Micro-power spoken keyword spotting on Xylo Audio 2" (arXiv:2406.15112),
  abstract: 291 uW dynamic inference power, 6.6 uJ per inference.
"""

from __future__ import annotations

import argparse
import time
from dataclasses import dataclass, field
from pathlib import Path

import nir
import numpy as np

from spikestack.energy import estimate, load_profile, map_to_cores
from spikestack.ir import LoweringOptions, build_graph, lower_graph
from spikestack.ir.validate import validate_graph
from spikestack.simulators import simulate

DT = 1e-3  # seconds per step where a case gives none; only static power would read it


@dataclass
class Built:
    """A case rebuilt: the lowered program, its input (T, B, ...), steps per inference."""

    program: object
    x: np.ndarray
    steps: int
    warmup: int = 0  # leading steps left out of the figures: the bias-driven rates settle (1/rate steps)
    rates: dict[str, float] = field(default_factory=dict)  # target spike rate per step, per neuron node
    sizes: dict[str, int] = field(default_factory=dict)  # neurons (or input channels) per node in `rates`


@dataclass
class Case:
    name: str
    chip: str  # spikestack profile name
    quantity: str  # "energy" (J per inference) or "time" (s per inference)
    paper: float
    paper_text: str  # the figure as the source states it
    source: str
    spread: str  # other published runs of the same figure, or ""
    unspecified: str  # what the source leaves open and what we assumed
    build: object  # (rate_scale, seed) -> Built
    note: str = ""


def _if(shape) -> nir.IF:
    """IF neurons that add their input each step (r = 1/dt), threshold 1, reset to 0 (subtractive)."""
    return nir.IF(r=np.full(shape, 1.0 / DT), v_threshold=np.ones(shape), v_reset=np.zeros(shape))


def _lower(nodes: dict, edges: list) -> object:
    graph = validate_graph(build_graph(nir.NIRGraph(nodes=nodes, edges=edges, type_check=False)))
    return lower_graph(graph, LoweringOptions(dt=DT, reset="subtract"))


def _warmup(rate: float, steps_per_inference: int) -> int:
    """Whole inferences covering three periods of the slowest target rate: every neuron starts at
    v = 0, so a bias of r first fires after 1/r steps; the jitter spreads the phases meanwhile."""
    return steps_per_inference * int(np.ceil(3.0 / rate / steps_per_inference))


def _jitter(rng, rate: float, fan_in_spikes: float) -> float:
    """Weight spread whose summed input per step is ~30% of the bias: enough to desynchronise
    neurons that share a bias, small enough to keep the rate near the target."""
    return 0.3 * rate / np.sqrt(max(fan_in_spikes, 1.0))


def _dense_stack(nodes: dict, edges: list, rng, prev: str, n_prev: int, widths, r_h: float, built: tuple,
                 neuron: str = "lif") -> tuple[str, int]:
    """Append Affine -> IF layers of the given widths after `prev` (n_prev wide), biases around r_h and a
    jittered weight spread; `built` = (rates, sizes) to fill. Returns the last layer's name and width."""
    rates, sizes = built
    for j, n in enumerate(widths):
        weight = rng.normal(0, _jitter(rng, r_h, n_prev * r_h), (n, n_prev)).astype(np.float32)
        nodes[f"fc{j}"] = nir.Affine(weight=weight, bias=rng.uniform(0.5 * r_h, 1.5 * r_h, n).astype(np.float32))
        nodes[f"{neuron}{j}"] = _if(n)
        edges += [(prev, f"fc{j}"), (f"fc{j}", f"{neuron}{j}")]
        prev, n_prev, rates[f"{neuron}{j}"], sizes[f"{neuron}{j}"] = f"{neuron}{j}", n, r_h, n
    nodes["output"] = nir.Output(output_type={"output": np.array([n_prev])})
    edges.append((prev, "output"))
    return prev, n_prev


# --- Case 1: keyword spotter on Loihi (Blouw et al. 2019) -------------------------------------------

KWS_IN, KWS_HIDDEN, KWS_STEPS = 390, 256, 10


def build_kws(rate_scale: float = 1.0, seed: int = 0, inferences: int = 2) -> Built:
    """390 inputs -> 256 -> 256 (two hidden layers on the chip); the 29-way character readout is an
    off-chip Nengo Node in the source (`char_out`), so it is not on the chip here either. One
    inference = one 10 ms frame = 10 steps (nengo-loihi example, p_time=10, dt=1 ms)."""
    rng = np.random.default_rng(seed)
    r_in, r_h = 0.1 * rate_scale, 0.05 * rate_scale
    w1 = rng.normal(0, _jitter(rng, r_h, KWS_IN * r_in), (KWS_HIDDEN, KWS_IN))
    w2 = rng.normal(0, _jitter(rng, r_h, KWS_HIDDEN * r_h), (KWS_HIDDEN, KWS_HIDDEN))
    bias = lambda: rng.uniform(0.5 * r_h, 1.5 * r_h, KWS_HIDDEN).astype(np.float32)  # noqa: E731
    nodes = {"input": nir.Input(input_type={"input": np.array([KWS_IN])}),
             "fc1": nir.Affine(weight=w1.astype(np.float32), bias=bias()), "lif1": _if(KWS_HIDDEN),
             "fc2": nir.Affine(weight=w2.astype(np.float32), bias=bias()), "lif2": _if(KWS_HIDDEN),
             "output": nir.Output(output_type={"output": np.array([KWS_HIDDEN])})}
    edges = [("input", "fc1"), ("fc1", "lif1"), ("lif1", "fc2"), ("fc2", "lif2"), ("lif2", "output")]
    warm = _warmup(r_h, KWS_STEPS)
    x = (rng.random((warm + KWS_STEPS * inferences, 1, KWS_IN)) < r_in).astype(np.float32)
    return Built(_lower(nodes, edges), x, KWS_STEPS, warm, {"input": r_in, "lif1": r_h, "lif2": r_h},
                 {"input": KWS_IN, "lif1": KWS_HIDDEN, "lif2": KWS_HIDDEN})


KWS_UNSPECIFIED = ("firing rates (assumed: inputs 0.1, hidden 0.05 spikes/step); steps per frame (10, from the "
                   "same group's nengo-loihi example, not the paper); how the 390 MFCC values become spikes "
                   "(assumed: 390 spike sources); the 29-way readout (off-chip Node in the example: left out); "
                   "the measured figure includes the embedded x86 cores' per-step work, barrier sync and a "
                   "~70 mW post-first-run overhead the paper says it keeps in 'dynamic' (Sec. Data I/O), "
                   "which our model has no term for")

# --- Case 2: PilotNet LIF on Loihi 2 (lava-dl tutorial) ---------------------------------------------

# (out_channels, kernel, stride, padding) per conv, as printed by netx.hdf5.Network in the notebook
PILOT_INPUT = (3, 66, 200)  # C, H, W (the notebook prints W, H, C = 200, 66, 3)
PILOT_CONVS = ((24, 3, (2, 2), (0, 0)), (36, 3, (2, 2), (0, 0)), (48, 3, (2, 2), (0, 0)),
               (64, 3, (1, 2), (0, 1)), (64, 3, (1, 1), (0, 0)))
PILOT_DENSE = (100, 50, 10, 1)
PILOT_STEPS = 16  # net.reset_interval = 16 steps per sample in the notebook


def _conv_out(size: int, k: int, s: int, p: int) -> int:
    return (size + 2 * p - k) // s + 1


def build_pilotnet(rate_scale: float = 1.0, seed: int = 0, inferences: int = 2) -> Built:
    """PilotNet LIF as the notebook prints it: an input layer of 3x66x200 neurons on the chip (the
    frame enters as their bias; here as a constant current through a one-to-one 1x1 convolution),
    five convolutions and four dense layers, all LIF (IF here), 16 steps per frame."""
    rng = np.random.default_rng(seed)
    r_in, r_h = 0.1 * rate_scale, 0.05 * rate_scale
    c, h, w = PILOT_INPUT
    nodes = {"input": nir.Input(input_type={"input": np.array([c, h, w])}),
             "pix": nir.Conv2d(input_shape=(h, w), weight=np.ones((c, 1, 1, 1), np.float32), stride=1, padding=0,
                               dilation=1, groups=c, bias=np.zeros(c, np.float32)),
             "lif_in": _if((c, h, w))}
    edges, prev, rates = [("input", "pix"), ("pix", "lif_in")], "lif_in", {"lif_in": r_in}
    sizes = {"lif_in": c * h * w}
    prev_rate = r_in
    for i, (c_out, k, stride, pad) in enumerate(PILOT_CONVS):
        fan_in = c * k * k
        weight = rng.normal(0, _jitter(rng, r_h, fan_in * prev_rate), (c_out, c, k, k)).astype(np.float32)
        nodes[f"conv{i}"] = nir.Conv2d(input_shape=(h, w), weight=weight, stride=stride, padding=pad, dilation=1,
                                       groups=1, bias=np.full(c_out, r_h, np.float32))
        h, w, c = _conv_out(h, k, stride[0], pad[0]), _conv_out(w, k, stride[1], pad[1]), c_out
        nodes[f"lif{i}"] = _if((c, h, w))
        edges += [(prev, f"conv{i}"), (f"conv{i}", f"lif{i}")]
        prev, prev_rate, rates[f"lif{i}"], sizes[f"lif{i}"] = f"lif{i}", r_h, r_h, c * h * w
    nodes["flat"] = nir.Flatten(input_type={"input": np.array([c, h, w])}, start_dim=0, end_dim=-1)
    edges.append((prev, "flat"))
    _dense_stack(nodes, edges, rng, "flat", c * h * w, PILOT_DENSE, r_h, (rates, sizes), neuron="lif_fc")
    warm = _warmup(r_h, PILOT_STEPS)
    steps = warm + PILOT_STEPS * inferences
    frame = rng.uniform(0.5 * r_in, 1.5 * r_in, (1, 1) + PILOT_INPUT).astype(np.float32)  # the "image" as a bias
    x = np.broadcast_to(frame, (steps, 1) + PILOT_INPUT).copy()
    return Built(_lower(nodes, edges), x, PILOT_STEPS, warm, rates, sizes)


PILOT_UNSPECIFIED = ("firing rates (assumed: input layer 0.1, every other layer 0.05 spikes/step; the notebook plots "
                     "activity but prints no number); the frame (a driving image as bias: here uniform currents); "
                     "the weights (netx file not read); Loihi 2 per-op costs (none published: the loihi2 profile "
                     "carries Loihi 1's); we store conv synapses one by one, Loihi 2 shares conv kernels "
                     "(the notebook's compiler table: 74 cores); our 1x1 one-to-one input stage adds "
                     "39600 synaptic events per step that the chip's bias input does not have")

# --- Case 3: keyword spotting on Xylo Audio 2 (Bos & Muir 2024) ---------------------------------------

XYLO_IN, XYLO_HIDDEN, XYLO_OUT = 16, (60,), 2


def build_xylo(rate_scale: float = 1.0, seed: int = 0, inferences: int = 2) -> Built:
    """Rockpool's SynNet default (16 channels -> 60 hidden -> 2 outputs), the architecture family
    the paper deploys (rockpool/nn/networks/synnet.py cites it); its sizes are assumed. One inference
    here lasts 6.6 uJ / 291 uW = 22.7 ms at dt = 1 ms, i.e. 23 steps (see the case's note)."""
    rng = np.random.default_rng(seed)
    r_in, r_h = 0.1 * rate_scale, 0.05 * rate_scale
    nodes = {"input": nir.Input(input_type={"input": np.array([XYLO_IN])})}
    edges, rates, sizes = [], {"input": r_in}, {"input": XYLO_IN}
    _dense_stack(nodes, edges, rng, "input", XYLO_IN, XYLO_HIDDEN + (XYLO_OUT,), r_h, (rates, sizes))
    warm = _warmup(r_h, XYLO_STEPS)
    x = (rng.random((warm + XYLO_STEPS * inferences, 1, XYLO_IN)) < r_in).astype(np.float32)
    return Built(_lower(nodes, edges), x, XYLO_STEPS, warm, rates, sizes)


XYLO_STEPS = round(6.6e-6 / 291e-6 / DT)  # 23: the only run time the paper's two figures imply

CASES = (
    Case("KWS 390-256-256 (Blouw 2019)", "loihi", "energy", 0.081 / 296,
         "0.00027 J/inf (dynamic 0.081 W / 296 inf/s; idle 0.029 W excluded)",
         "Blouw et al. 2019, Table 1 (github.com/abr/power_benchmarks paper/power_summary.tex)", "",
         KWS_UNSPECIFIED, build_kws),
    Case("KWS 390-256-256 (Blouw 2019)", "loihi", "time", 1 / 296, "296 inf/s (3.38 ms per inference)",
         "Blouw et al. 2019, Table 1 (github.com/abr/power_benchmarks paper/power_summary.tex)", "",
         KWS_UNSPECIFIED + "; the chip runs as fast as it can (not real time): the time includes host/x86 "
         "work per step", build_kws),
    Case("PilotNet LIF (lava-dl tutorial)", "loihi2", "energy", 1.093544e-3,
         "1.093544 mJ dynamic per inference (total 1.661 mJ; static 0.232 W)",
         "lava-dl tutorials/lava/lib/dl/netx/pilotnet_snn/benchmark.ipynb @b9e3691",
         "1.070673 mJ @baa23ad, 0.562239 mJ @76c8fbb", PILOT_UNSPECIFIED, build_pilotnet),
    Case("PilotNet LIF (lava-dl tutorial)", "loihi2", "time", 1 / 408.91, "408.91 fps (2.45 ms per inference)",
         "lava-dl tutorials/lava/lib/dl/netx/pilotnet_snn/benchmark.ipynb @b9e3691",
         "413.76 fps @baa23ad, 415.51 fps @76c8fbb", PILOT_UNSPECIFIED, build_pilotnet),
    Case("Aloha KWS SynNet (Bos & Muir 2024)", "xylo-audio2", "energy", 6.6e-6, "6.6 uJ/inf at 291 uW dynamic",
         "Bos & Muir 2024, arXiv:2406.15112, abstract", "",
         "network sizes (assumed: Rockpool SynNet default 16-60-2), the length of one inference (not in the "
         "abstract; taken as 6.6 uJ / 291 uW = 22.7 ms)", build_xylo,
         note="not an independent check: our Xylo energy is the paper's own 291 uW x run time, so the ratio "
              "is the run time we assume over the one the paper's figures imply"),
)


_ESTIMATES: dict = {}  # (builder, chip, rate_scale, seed) -> (built, counts, budget): the energy and time rows share one run


def estimate_case(case: Case, rate_scale: float = 1.0, seed: int = 0):
    """Build, simulate, place and estimate a case's network once per chip: (built, counts, budget)."""
    key = (case.build, case.chip, rate_scale, seed)
    if key not in _ESTIMATES:
        built = case.build(rate_scale, seed)
        run = simulate(built.program, built.x)
        profile = load_profile(case.chip)
        _ESTIMATES[key] = built, run.counts, estimate(run.counts, map_to_cores(built.program, profile), profile, dt=DT)
    return _ESTIMATES[key]


def run_case(case: Case, rate_scale: float = 1.0, seed: int = 0) -> dict:
    """Our figure per inference (the steps after the warm-up, per inference) and the ratio to the paper's."""
    start = time.perf_counter()
    built, counts, budget = estimate_case(case, rate_scale, seed)
    per_step = budget.energy_per_step if case.quantity == "energy" else budget.latency_per_step
    inferences = (built.x.shape[0] - built.warmup) / built.steps
    window = built.x.shape[0] - built.warmup
    ours = None if per_step is None else float(np.sum(per_step[built.warmup:]))
    if ours is not None and case.quantity == "energy" and budget.energy_terms.get("static"):
        # every published energy here is dynamic (idle/static power subtracted): leave our static
        # term out (it is the same every step, so the window's share is window / all steps)
        ours -= budget.energy_terms["static"] * window / built.x.shape[0]
    ours = None if ours is None else ours / inferences
    complete = budget.energy_complete if case.quantity == "energy" else budget.latency_complete
    reached = {n: float(counts.per_node[n]["spikes_out"][built.warmup:].sum()) / (window * built.sizes[n])
               for n in built.rates}
    return dict(case=case, ours=ours, ratio=None if ours is None else ours / case.paper, budget=budget,
                reached=reached, targets=built.rates, cores=budget.cores_used,
                seconds=time.perf_counter() - start, lower_bound=not complete)


def fmt(value: float | None, quantity: str) -> str:
    if value is None:
        return "unknown"
    if quantity == "energy":
        return f"{value * 1e3:.4g} mJ" if value >= 1e-4 else f"{value * 1e6:.4g} uJ"
    return f"{value * 1e3:.4g} ms" if value >= 1e-4 else f"{value * 1e6:.4g} us"


def table(results: list[dict]) -> str:
    lines = ["| case | chip | quantity | paper | ours | ours / paper | source | unspecified, assumed |",
             "|---|---|---|---|---|---|---|---|"]
    for r in results:
        c = r["case"]
        ratio = "-" if r["ratio"] is None else f"{r['ratio']:.3g}"
        ours = ("≥ " if r["lower_bound"] else "") + fmt(r["ours"], c.quantity)
        spread = f" (other runs: {c.spread})" if c.spread else ""
        extra = f" **{c.note}**" if c.note else ""
        lines.append(f"| {c.name} | {c.chip} | {c.quantity} per inference | {c.paper_text}{spread} | {ours} | "
                     f"{ratio} | {c.source} | {c.unspecified}.{extra} |")
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--table", type=Path, help="also write the markdown table here")
    parser.add_argument("--rate-scale", type=float, default=1.0, help="multiply every assumed firing rate")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    results = []
    for case in CASES:
        r = run_case(case, args.rate_scale, args.seed)
        results.append(r)
        b = r["budget"]
        print(f"{case.name} on {case.chip}: {case.quantity} per inference")
        print(f"  paper : {case.paper_text}   [{case.source}]" + (f"; other runs {case.spread}" if case.spread else ""))
        print(f"  ours  : {'>= ' if r['lower_bound'] else ''}{fmt(r['ours'], case.quantity)}   "
              f"ratio ours/paper = {'-' if r['ratio'] is None else format(r['ratio'], '.3g')}   "
              f"({r['cores']} cores, {r['seconds']:.1f} s)")
        terms = b.energy_terms if case.quantity == "energy" else b.latency_terms
        if terms:
            total = sum(terms.values()) or 1.0
            print("  terms : " + ", ".join(f"{k} {v / total:.0%}" for k, v in terms.items() if v))
        print("  rates : " + ", ".join(f"{n} {v:.3f} (target {r['targets'][n]:.3f})" for n, v in r["reached"].items()))
        if b.unknown:
            print("  unknown: " + "; ".join(b.unknown))
        print(f"  unspecified: {case.unspecified}")
        if case.note:
            print(f"  NOTE: {case.note}")
    text = table(results)
    print()
    print(text)
    if args.table:
        args.table.parent.mkdir(parents=True, exist_ok=True)
        args.table.write_text(text)
        print(f"wrote {args.table}")


if __name__ == "__main__":
    main()
