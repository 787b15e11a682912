"""SPIDE: feedback SNNs trained by spike-based implicit differentiation (Xiao et al. 2023; BRIEF §6.5).

The network: input x as a constant current into hidden IF layers (threshold 2V_th, initial potential
V_th, subtractive reset: the paper's "modified reset", V_th = 1), chained layer to layer, with a
feedback connection from the last hidden layer back to the first (for one hidden layer, a recurrent
W onto itself), then a readout into an output layer of the same IF neurons. Run for T steps, the
hidden average firing rates approach the equilibrium a* = clamp((M a* + F x + b)/(2V_th), 0, 1).

Training never unrolls time. The forward pass is the SNN (`FeedbackSNN.run`); the training logits
are the readout of its average rates, R a + b_R, which is exactly the mean input current of the
output layer. The backward pass (`ImplicitRates`) solves the implicit-differentiation equation at
those rates either exactly (a linear solve) or with SPIDE's ternary neurons over T_b steps
(`spide_backward`), then applies the local update dM = (1/V)(beta * m) a^T. The readout's own
gradient comes from autograd. Each sample's output gradient is multiplied by a loss scale before
the ternary neurons see it, so beta uses their [-1, 1] range; the gradient is divided by it after.
The scale is fixed or, by default, dynamic: halved whenever beta clips (docs/spide.md).

Deployment reads the output IF layer's spike count (ties: final membrane) through `neurons.predict`,
like every other method; the exported NIR graph has the feedback as a back edge (docs/spide.md).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import nir
import numpy as np
import torch
from torch import nn
from torch.optim.optimizer import register_optimizer_step_post_hook

from spikestack.errors import OptionsError
from spikestack.frontend.data import Dataset
from spikestack.frontend.export import READOUT
from spikestack.frontend.methods.spide_backward import V_SCALE, V_TH, BackwardStats, ImplicitRates, cap_spectral_norm
from spikestack.frontend.neurons import IFNeurons, Readout, check_steps, predict
from spikestack.frontend.train import History, check_dataset, fit, seed_everything
from spikestack.ir.io import write_nir
from spikestack.ir.options import METADATA_KEY, options_metadata

METHOD = "spide"
BACKWARDS = ("spide", "exact")


@dataclass(frozen=True)
class SpideOptions:
    """steps: forward T; backward: 'spide' (ternary spikes) or 'exact' (linear solve);
    backward_steps: T_b; loss_scale: factor on each sample's own loss gradient (independent of
    the batch size) before the ternary neurons see it, or 'auto': start at 8, halve when beta
    clips, double after 100 clean batches (the paper's fixed x100 on its batch-mean loss is
    100/B here; docs/spide.md);
    max_gain: after every optimiser step each hidden-to-hidden weight block is scaled to a
    spectral norm of at most max_gain * V, so the equilibrium stays unique (see docs/spide.md)."""

    steps: int = 30
    backward: str = "spide"
    backward_steps: int = 100
    loss_scale: float | str = "auto"
    max_gain: float = 0.9

    def __post_init__(self):
        check_steps(self.steps)
        check_steps(self.backward_steps)
        if self.backward not in BACKWARDS:
            raise OptionsError(f"backward must be one of {', '.join(BACKWARDS)}; got {self.backward!r}")
        if self.loss_scale != "auto" and not (isinstance(self.loss_scale, (int, float)) and self.loss_scale > 0):
            raise OptionsError(f"loss_scale must be a positive number or 'auto', got {self.loss_scale!r}")
        if not (isinstance(self.max_gain, (int, float)) and 0 < self.max_gain < 1):
            raise OptionsError(f"max_gain must lie in (0, 1), got {self.max_gain!r}")


def _if_layer(n: int) -> IFNeurons:
    return IFNeurons(n, v_threshold=V_SCALE, reset="subtract", initial_potential=0.5)


class FeedbackSNN(nn.Module):
    """Input -> F -> IF_1 -> A_1 -> ... -> IF_L -> R -> IF_out, with feedback IF_L -> W -> IF_1."""

    def __init__(self, n_in: int, hidden: Sequence[int], classes: int):
        super().__init__()
        if not hidden or any(isinstance(h, bool) or not isinstance(h, int) or h < 1 for h in hidden):
            raise OptionsError(f"hidden sizes must be positive integers, got {tuple(hidden)}")
        self.sizes = tuple(hidden)
        self.encoder = nn.Linear(n_in, hidden[0])  # F and the first layer's bias
        self.links = nn.ModuleList(nn.Linear(a, b) for a, b in zip(hidden[:-1], hidden[1:]))
        self.feedback = nn.Linear(hidden[-1], hidden[0], bias=False)  # W: the back edge
        self.layers = nn.ModuleList(_if_layer(h) for h in hidden)
        self.readout = nn.Linear(hidden[-1], classes)
        self.output = _if_layer(classes)
        self.offsets = np.cumsum((0, *hidden)).tolist()
        self.stats = BackwardStats()
        self._power = [torch.randn(m.out_features) for m in (self.feedback, *self.links)]

    def constrain(self, max_gain: float, iterations: int = 2) -> None:
        """Cap the spectral norm of the feedback and every link at max_gain * V. M is block-cyclic
        (one block per block row and column), so ||M||_2 is the largest block norm: ||M||_2 < V."""
        for i, link in enumerate((self.feedback, *self.links)):
            u = self._power[i].to(link.weight)
            self._power[i] = cap_spectral_norm(link.weight, u, max_gain * V_SCALE, iterations)

    def block(self, i: int) -> slice:
        return slice(self.offsets[i], self.offsets[i + 1])

    def implicit_parameters(self) -> list[nn.Parameter]:
        """The parameters whose gradient comes from implicit differentiation, in a fixed order."""
        params = [self.encoder.weight, self.encoder.bias, self.feedback.weight]
        for link in self.links:
            params += [link.weight, link.bias]
        return params

    def hidden_weight(self) -> torch.Tensor:
        """M: every hidden-to-hidden weight as one (n, n) matrix, M[i, j] from neuron j to neuron i."""
        n = self.offsets[-1]
        m = self.feedback.weight.new_zeros(n, n)
        m[self.block(0), self.block(len(self.sizes) - 1)] = self.feedback.weight.detach()
        for i, link in enumerate(self.links):
            m[self.block(i + 1), self.block(i)] = link.weight.detach()
        return m

    def backward_fan_out(self) -> torch.Tensor:
        """Per hidden neuron, how many neurons its backward (ternary) spike reaches: as many as it
        receives from in the forward pass, structurally (zero weights count, as Sinabs counts)."""
        last = len(self.sizes) - 1
        fan = [self.sizes[last] if i == 0 else self.sizes[i - 1] for i in range(len(self.sizes))]
        return torch.cat([torch.full((h,), float(f)) for h, f in zip(self.sizes, fan)])

    def run(self, x: torch.Tensor, steps: int) -> tuple[torch.Tensor, Readout]:
        """T steps of the SNN on x (B, n_in) as a constant current: hidden rates (B, n) and the
        readout. The feedback reads the last layer's spikes of the previous step (a back edge)."""
        if x.dim() != 2:
            raise OptionsError(f"FeedbackSNN takes flat samples (B, features), got shape {tuple(x.shape)}")
        drive = self.encoder(x)  # F x + b: the same current every step, computed once
        states: list = [None] * len(self.layers)
        totals = [x.new_zeros(x.shape[0], h) for h in self.sizes]
        s_last = totals[-1]  # no spikes before the first step
        out_state, counts, current, spikes = None, 0, 0, 0
        for _ in range(check_steps(steps)):
            s = s_last
            for i, layer in enumerate(self.layers):
                # Same summation order as the simulator: the graph lists the F edge before the W edge.
                inp = drive + self.feedback(s_last) if i == 0 else self.links[i - 1](s)
                s, states[i] = layer.step(inp, states[i])
                totals[i] = totals[i] + s
                spikes = spikes + s.sum(1)
            s_last = s
            o_in = self.readout(s)
            o, out_state = self.output.step(o_in, out_state)
            counts, current, spikes = counts + o, current + o_in, spikes + o.sum(1)
        return torch.cat(totals, dim=1) / steps, Readout(counts, out_state.v, current / steps, spikes)


def spide_logits(model: FeedbackSNN, x: torch.Tensor, options: SpideOptions) -> torch.Tensor:
    """Training logits R a + b_R on the last hidden layer's rates a (= the output layer's mean current)."""
    rates = ImplicitRates.apply(x, model, options, *model.implicit_parameters())
    return model.readout(rates[:, model.block(len(model.sizes) - 1)])


def spide_predict(model: FeedbackSNN, x: torch.Tensor, steps: int) -> torch.Tensor:
    """Deployed decision: most output spikes over T, ties to the higher final membrane."""
    return predict(model.run(x, steps)[1])


def train_spide(dataset: Dataset, hidden: int | Sequence[int] = 400, steps: int = 30, backward_steps: int = 100,
                backward: str = "spide", epochs: int = 5, lr: float = 1e-3, seed: int = 0, *,
                loss_scale: float | str = "auto", max_gain: float = 0.9, batch_size: int = 128, device: str = "cpu",
                progress: bool = True, schedule: str = "constant") -> tuple[FeedbackSNN, History]:
    """Train a feedback SNN with SPIDE; history.test_accuracy is the deployed accuracy at T=steps.
    model.stats holds the spike backward's cost (samples, ternary spikes, synaptic events)."""
    check_dataset(dataset)
    if len(dataset.sample_shape) != 1:
        raise OptionsError(f"SPIDE takes flat samples; load '{dataset.name}' with flatten=True "
                           f"(got sample shape {tuple(dataset.sample_shape)})")
    options = SpideOptions(steps, backward, backward_steps, loss_scale, max_gain)
    seed_everything(seed)
    sizes = (hidden,) if isinstance(hidden, int) and not isinstance(hidden, bool) else tuple(hidden)
    model = FeedbackSNN(dataset.sample_shape[0], sizes, dataset.num_classes)
    model.constrain(max_gain, iterations=50)

    def project(optimizer: torch.optim.Optimizer, args, kwargs) -> None:
        # fit() owns the optimiser: a global post-step hook, removed below, projects after each step.
        if any(p is model.feedback.weight for group in optimizer.param_groups for p in group["params"]):
            model.constrain(max_gain)

    handle = register_optimizer_step_post_hook(project)
    try:
        history = fit(model, dataset, lambda m, xb: spide_logits(m, xb, options),
                      lambda m, xb: spide_predict(m, xb, steps), epochs=epochs, batch_size=batch_size, lr=lr,
                      seed=seed, device=device, progress=progress, schedule=schedule,
                      desc=f"SPIDE ({backward}, T={steps}, T_b={backward_steps})")
    finally:
        handle.remove()
    return model, history


def _affine(layer: nn.Linear) -> nir.NIRNode:
    weight = layer.weight.detach().cpu().numpy().astype(np.float32)
    if layer.bias is None:
        return nir.Linear(weight=weight)
    return nir.Affine(weight=weight, bias=layer.bias.detach().cpu().numpy().astype(np.float32))


def to_spide_graph(model: FeedbackSNN, steps: int = 30) -> nir.NIRGraph:
    """The recurrent NIR graph: input -> encoder -> hidden0 (-> link1 -> hidden1 ...) -> readout ->
    output_if -> output, plus hidden{L-1} -> feedback -> hidden0, the back edge that the lowering
    delays by one step, exactly as `FeedbackSNN.run` does."""
    last = len(model.sizes) - 1
    nodes: dict[str, nir.NIRNode] = {"input": nir.Input(input_type={"input": np.array([model.encoder.in_features])}),
                                     "encoder": _affine(model.encoder), "feedback": _affine(model.feedback)}
    edges = [("input", "encoder"), ("encoder", "hidden0"), ("feedback", "hidden0")]
    for i, layer in enumerate(model.layers):
        nodes[f"hidden{i}"] = layer.to_nir()
        if i:
            nodes[f"link{i}"] = _affine(model.links[i - 1])
            edges += [(f"hidden{i - 1}", f"link{i}"), (f"link{i}", f"hidden{i}")]
    nodes.update(readout=_affine(model.readout), output_if=model.output.to_nir(),
                 output=nir.Output(output_type={"output": np.array([model.readout.out_features])}))
    edges += [(f"hidden{last}", "feedback"), (f"hidden{last}", "readout"), ("readout", "output_if"),
              ("output_if", "output")]
    metadata = options_metadata(model.output.options)  # every layer is built by _if_layer: one set
    metadata[METADATA_KEY].update(method=METHOD, readout=READOUT, steps=int(steps), v_th=V_TH)
    return nir.NIRGraph(nodes=nodes, edges=edges, metadata=metadata, type_check=False)


def export_spide(model: FeedbackSNN, path: str | os.PathLike, steps: int = 30) -> Path:
    """Write the trained network as a `.nir` file that `ir.load_graph` reads with no options."""
    return write_nir(to_spide_graph(model, steps), path)
