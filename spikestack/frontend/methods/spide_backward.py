"""SPIDE's backward pass as pure functions: the exact implicit gradient and its spike-based estimate.

A feedback SNN of IF neurons with threshold 2V_th, initial potential V_th and subtractive reset,
driven by a constant current c, settles to average firing rates at the equilibrium
a* = clamp((M a* + c)/V, 0, 1) with V = 2V_th (M: every hidden-to-hidden weight, feedback included,
as one square matrix). Implicit differentiation of the equilibrium gives, for an output gradient
g = dL/da* and m = 1[0 < a* < 1] (the neurons whose clamp is not saturated),

    (I - J)^T beta = g,   J = diag(m) M / V,   i.e.  beta = g + M^T (m * beta) / V,
    dL/dM = (1/V) (m * beta) a*^T,  dL/dc = (m * beta) / V.

`exact_beta` solves that system by LU, one sample at a time. `spike_beta` lets SPIDE's ternary
neurons solve it: each integrates the constant current g plus M^T (m * s_b)/V from the others and
emits -1/0/+1 at thresholds -/+0.5 (subtracting what it emitted, so its potential stays in
[-0.5, 0.5] when |input| <= 1), which makes its average output the fixed point
beta = clamp(g + M^T (m * beta)/V, -1, 1): the exact beta wherever |beta| <= 1. Scaling the loss
keeps beta in that range (the caller scales g and unscales the gradient).

Everything here takes batches (B, n) and is written with plain torch operators; the ternary step
uses `ir.dynamics.heaviside`, the threshold function every other neuron uses.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import NamedTuple

import torch

from spikestack.errors import OptionsError
from spikestack.frontend.train import torch_threads
from spikestack.ir.dynamics import heaviside

V_TH = 1.0  # the paper's threshold unit: the forward IF neurons fire at 2 V_th and start at V_th
V_SCALE = 2 * V_TH  # V in a* = clamp((M a* + F x)/V, 0, 1) and in dM = (1/V)(beta * m) a^T
TERNARY_THRESHOLD = 0.5  # SPIDE's ternary thresholds are -/+ this; a spike removes 2x it (one unit)


class TernaryState(NamedTuple):
    v: torch.Tensor  # membrane potential
    s: torch.Tensor  # last output in {-1, 0, +1} (fed back through M^T one step later)


def ternary_step(x, state: TernaryState, threshold: float = TERNARY_THRESHOLD) -> tuple[object, TernaryState]:
    """One step of a ternary neuron couple: integrate x, emit +1 above `threshold`, -1 below
    `-threshold`, and subtract the emitted value times 2*threshold (SPIDE's modified reset: with
    threshold 0.5 the output rate is the mean input, clamped to [-1, 1])."""
    v = state.v + x
    s = heaviside(v - threshold) - heaviside(-v - threshold)
    return s, TernaryState(v - s * (2 * threshold), s)


def saturation_mask(rates: torch.Tensor) -> torch.Tensor:
    """m = 1[0 < a < 1]: where the clamp of the equilibrium passes gradients (0/1, rates' dtype)."""
    return ((rates > 0) & (rates < 1)).to(rates.dtype)


def equilibrium(weight: torch.Tensor, current: torch.Tensor, v_scale: float, iterations: int = 1000,
                tol: float = 1e-10) -> torch.Tensor:
    """a* = clamp((M a* + c)/V, 0, 1) by fixed-point iteration from a = 0: the reference that the
    SNN's average firing rates approach (a contraction when ||M||_2 < V)."""
    a = torch.zeros_like(current)
    for _ in range(iterations):
        nxt = ((a @ weight.T + current) / v_scale).clamp(0, 1)
        if float((nxt - a).abs().max()) < tol:
            return nxt
        a = nxt
    return a


def exact_beta(weight: torch.Tensor, mask: torch.Tensor, grad: torch.Tensor, v_scale: float) -> torch.Tensor:
    """beta solving (I - M^T diag(m)/V) beta = g per sample: one LU solve per sample, on one thread.

    Not one batched solve at the caller's thread count: torch factors a CPU batch of matrices
    larger than 14 x 14 by calling MKL's getrf from its OpenMP threads at once (at::parallel_for
    in apply_lu_factor), and MKL's threaded getrf does not survive that: with 2+ threads and
    n >= 150 it leaves zero pivots (lu_solve's RuntimeError after hundreds of "SLASWP" lines), a
    wrong LU, or spins forever (pytorch#142815; docs/spide.md). One matrix per call never enters
    that parallel region (and holds n x n, not B x n x n); one thread keeps it fast on busy cores,
    where a threaded getrf of n = 400 took 5-8x as long, and makes beta that of --threads 1, bit
    for bit.
    """
    eye = torch.eye(weight.shape[0], dtype=grad.dtype, device=grad.device)
    gain = weight.T / v_scale
    beta = torch.empty_like(grad)
    with torch_threads(1):
        for k in range(len(grad)):
            beta[k], info = torch.linalg.solve_ex(eye - gain * mask[k], grad[k])
            if info:  # (I - J) is invertible while ||M||_2 < V, as max_gain < 1 keeps it
                raise OptionsError(f"exact backward: the implicit system of sample {k} is singular (pivot "
                                   f"{int(info)} is zero): the hidden-to-hidden weights reach gain V = {v_scale:g}; "
                                   f"keep their spectral norm below V (max_gain < 1)")
    return beta


class SpikeBeta(NamedTuple):
    beta: torch.Tensor  # (B, n) mean ternary output over the steps
    spikes: torch.Tensor  # (B,) nonzero ternary outputs sent (gated by m), summed over the steps
    events: torch.Tensor  # (B,) those spikes times their structural fan-out: synaptic events


def spike_beta(weight: torch.Tensor, mask: torch.Tensor, grad: torch.Tensor, v_scale: float, steps: int,
               fan_out: torch.Tensor | None = None, threshold: float = TERNARY_THRESHOLD) -> SpikeBeta:
    """SPIDE's spike-based beta: ternary neurons driven by g for `steps` steps.

    The backward network is the forward one reversed: neuron j's output reaches every neuron i
    that j receives from in the forward pass, with weight M[j, i] / V, one step later (as on a
    recurrent back edge). It is sent only where m_j = 1, which is also what the event count
    charges. `fan_out[j]`: how many neurons that is, structurally (default: all n).
    """
    fan_out = fan_out if fan_out is not None else torch.full((weight.shape[0],), float(weight.shape[0]))
    fan_out = fan_out.to(grad)
    weight_v = weight / v_scale  # (s * m) @ (M / V) gives sum_j s_j m_j M[j, i] / V for every i
    state = TernaryState(torch.zeros_like(grad), torch.zeros_like(grad))
    total = torch.zeros_like(grad)
    spikes = torch.zeros(grad.shape[0], dtype=grad.dtype, device=grad.device)
    events = torch.zeros_like(spikes)
    for _ in range(steps):
        sent = state.s * mask
        s, state = ternary_step(grad + sent @ weight_v, state, threshold)
        total = total + s
        active = (s * mask).abs()
        spikes = spikes + active.sum(1)
        events = events + active @ fan_out
    return SpikeBeta(total / steps, spikes, events)


class ImplicitGradients(NamedTuple):
    weight: torch.Tensor  # dL/dM (n, n), summed over the batch
    delta: torch.Tensor  # (B, n) (m * beta) / V: dL/dc per sample, the error of each neuron's input


def implicit_gradients(beta: torch.Tensor, mask: torch.Tensor, rates: torch.Tensor, v_scale: float
                       ) -> ImplicitGradients:
    """The local, two-stage firing-rate update: dM = (1/V)(beta * m) a^T, summed over the batch.
    Weights from the input follow as delta^T x (the caller's), biases as delta summed."""
    delta = beta * mask / v_scale
    return ImplicitGradients(delta.T @ rates, delta)


AUTO_START = 8.0  # first per-sample loss scale of loss_scale='auto' (max |beta| ~ 0.6-1 early on)
CLIP_TOLERANCE = 1e-3  # auto: halve the scale when more than this fraction of beta clipped in a batch
GROWTH_INTERVAL = 100  # auto: double it after this many batches in a row within the tolerance


@dataclass
class BackwardStats:
    """What the spike backward cost, summed over every sample it saw (the paper's energy argument),
    and the current loss scale of loss_scale='auto'."""

    samples: int = 0
    spikes: float = 0.0  # nonzero ternary outputs sent
    events: float = 0.0  # those times their fan-out: synaptic events
    clipped: float = 0.0  # unsaturated neurons (m = 1) whose beta hit -1 or +1
    neurons: float = 0.0  # unsaturated neurons seen
    scale: float = AUTO_START
    clean: int = 0  # batches in a row within CLIP_TOLERANCE

    def adapt(self, clipped: float, neurons: float) -> None:
        """Dynamic loss scaling, as mixed-precision training scales against fp16 overflow: the
        gradients grow as training goes on, and a clipped beta (a ternary neuron firing every
        step, visible locally) biases the update, so halve on clipping and probe upwards again."""
        if clipped > CLIP_TOLERANCE * max(neurons, 1.0):
            self.scale, self.clean = self.scale / 2, 0
        else:
            self.clean += 1
            if self.clean >= GROWTH_INTERVAL:
                self.scale, self.clean = self.scale * 2, 0

    def per_sample(self) -> dict[str, float]:
        n = max(self.samples, 1)
        return {"spikes": self.spikes / n, "synaptic_events": self.events / n,
                "clipped_fraction": self.clipped / max(self.neurons, 1.0), "last_loss_scale": self.scale}


class ImplicitRates(torch.autograd.Function):
    """Forward: the SNN's hidden rates (`model.run`). Backward: implicit differentiation at those
    rates, exact or by ternary spikes (`options.backward`), for the tensors `params`, which are
    `model.implicit_parameters()` in that order. `model` is a `spide.FeedbackSNN`; `options` a
    `spide.SpideOptions` (steps, backward, backward_steps, loss_scale: a number or 'auto')."""

    @staticmethod
    def forward(ctx, x: torch.Tensor, model, options, *params: torch.Tensor) -> torch.Tensor:
        with torch.no_grad():
            rates, _ = model.run(x, options.steps)
        ctx.save_for_backward(x, rates)
        ctx.model, ctx.options = model, options
        return rates

    @staticmethod
    def backward(ctx, grad: torch.Tensor):
        x, rates = ctx.saved_tensors
        model, options = ctx.model, ctx.options
        weight, mask = model.hidden_weight(), saturation_mask(rates)
        # grad is of a batch-mean loss (fit's): times B it is each sample's own loss gradient, and
        # times the loss scale it fills the ternary neurons' [-1, 1]. Both factors are undone below.
        auto = options.loss_scale == "auto"
        scale = (model.stats.scale if auto else options.loss_scale) * len(x)
        g = grad * scale
        if options.backward == "exact":
            beta = exact_beta(weight, mask, g, V_SCALE)
        else:
            found = spike_beta(weight, mask, g, V_SCALE, options.backward_steps, model.backward_fan_out())
            beta = found.beta
            stats = model.stats
            stats.samples += len(x)
            stats.spikes += float(found.spikes.sum())
            stats.events += float(found.events.sum())
            clipped, unsaturated = float(((beta.abs() >= 1) * mask).sum()), float(mask.sum())
            stats.clipped += clipped
            stats.neurons += unsaturated
            if auto:
                stats.adapt(clipped, unsaturated)
        grads = implicit_gradients(beta, mask, rates, V_SCALE)
        d_weight, delta = grads.weight / scale, grads.delta / scale
        first, last = model.block(0), model.block(len(model.sizes) - 1)
        out = [delta[:, first].T @ x, delta[:, first].sum(0), d_weight[first, last]]
        for i in range(len(model.links)):
            out += [d_weight[model.block(i + 1), model.block(i)], delta[:, model.block(i + 1)].sum(0)]
        return (None, None, None, *out)


def cap_spectral_norm(weight: torch.Tensor, u: torch.Tensor, limit: float, iterations: int = 2) -> torch.Tensor:
    """Scale `weight` in place so that its largest singular value is at most `limit`; return the
    updated power-iteration vector u (kept between calls, so two iterations per call suffice
    while the weight changes slowly). Keeps the equilibrium unique: a* is a contraction's fixed
    point while ||M||_2 < V, and (I - J) stays invertible for the exact backward."""
    with torch.no_grad():
        for _ in range(iterations):
            v = torch.nn.functional.normalize(weight.T @ u, dim=0)
            u = torch.nn.functional.normalize(weight @ v, dim=0)
        sigma = float(u @ weight @ v)
        if sigma > limit:
            weight.mul_(limit / sigma)
    return u
