"""What a compiled event-driven kernel gives on workload W (BRIEF §8), for issue 3's 1000x-Lava target.

Not part of the simulator: a fused numba loop over the whole 784-256-10 LIF MLP (row accumulation
acc += W[i, :] for each input spike, v <- 0.9 v + acc, spike if v > 1, reset to 0), the batch split
over threads, counting input/hidden/output spikes and effective synaptic operations per sample. It
measures how far compiled code gets past the plain torch dense loop (2 threads, timed in turn,
median of --repeats) on this machine: the floor the compiled engine (simulators/compiled/, which
adds every count, any graph and both arithmetics) is measured against in BENCHMARKS.md.

    .venv/bin/python bench/compiled_floor.py
"""

from __future__ import annotations

import argparse
import sys

import numpy as np
import torch

from sim_throughput import SIZES, interleaved_rates, torch_loop, workload  # bench/, beside this script

try:
    import numba
except ImportError:
    numba = None


def _kernel():
    @numba.njit(parallel=True)
    def run(x, w1, nnz1, w2, nnz2, alpha):
        steps, batch, n_in = x.shape
        n_h, n_o = w1.shape[1], w2.shape[1]
        counts = np.zeros((batch, 4), np.int64)  # input spikes, hidden spikes, output spikes, effective ops
        for b in numba.prange(batch):
            v1, v2 = np.zeros(n_h, np.float32), np.zeros(n_o, np.float32)
            a1, a2 = np.zeros(n_h, np.float32), np.zeros(n_o, np.float32)
            active, hidden = np.empty(n_in, np.int64), np.empty(n_h, np.int64)
            for t in range(steps):
                k = 0
                for i in range(n_in):
                    if x[t, b, i]:
                        active[k] = i
                        k += 1
                a1[:] = 0
                ops = 0
                for j in range(k):
                    ops += nnz1[active[j]]
                    row = w1[active[j]]
                    for n in range(n_h):  # an explicit loop: LLVM vectorises it, in place
                        a1[n] += row[n]
                m = 0
                for n in range(n_h):
                    v = alpha * v1[n] + a1[n]
                    if v > 1.0:
                        hidden[m] = n
                        m += 1
                        v = 0.0
                    v1[n] = v
                a2[:] = 0
                for j in range(m):
                    ops += nnz2[hidden[j]]
                    row = w2[hidden[j]]
                    for n in range(n_o):
                        a2[n] += row[n]
                o = 0
                for n in range(n_o):
                    v = alpha * v2[n] + a2[n]
                    if v > 1.0:
                        o += 1
                        v = 0.0
                    v2[n] = v
                counts[b, 0] += k
                counts[b, 1] += m
                counts[b, 2] += o
                counts[b, 3] += ops
        return counts

    return run


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--batch", type=int, default=1000)
    p.add_argument("--steps", type=int, default=100)
    p.add_argument("--repeats", type=int, default=7)
    p.add_argument("--threads", type=int, default=2)
    args = p.parse_args()
    if numba is None:
        print("numba is not installed (see this script's docstring)", file=sys.stderr)
        return 2
    numba.set_num_threads(args.threads)
    torch.set_num_threads(args.threads)
    _, w1, w2 = workload(0)  # W exactly as bench/sim_throughput.py builds it, (out, in)
    w1, w2 = w1.T.copy(), w2.T.copy()  # rows per presynaptic neuron, for row accumulation
    nnz1, nnz2 = (w1 != 0).sum(1), (w2 != 0).sum(1)
    x = np.random.default_rng(1).random((args.steps, args.batch, SIZES[0])) < 0.1
    run = _kernel()
    counts = run(x[:, :2], w1, nnz1, w2, nnz2, np.float32(0.9))  # compile
    xt, w1t, w2t = torch.as_tensor(x, dtype=torch.float32), torch.as_tensor(w1), torch.as_tensor(w2)

    def compiled():
        nonlocal counts
        counts = run(x, w1, nnz1, w2, nnz2, np.float32(0.9))

    def dense():
        with torch.no_grad():
            torch_loop(xt, w1t, w2t)

    work = args.steps * args.batch
    rates, ratios, _ = interleaved_rates({"compiled": compiled, "torch": dense}, work, args.repeats)
    for name, rate in rates.items():
        print(f"{name:<10}{rate:>14,.0f} sample-steps/s")
    events = (counts[:, 0] * SIZES[1] + counts[:, 1] * SIZES[2]).mean()
    print(f"compiled / torch: {ratios['compiled']:.2f}; hidden rate {counts[:, 1].sum() / (work * SIZES[1]):.3f}, "
          f"{events / 1e6:.2f} M synaptic events per sample")
    return 0


if __name__ == "__main__":
    sys.exit(main())
