"""What the training benches share: run an exported `.nir` on the simulator and on Lava and compare
their decisions with the torch model's (issue 7's "same accuracy as in torch" lines).

The decision rule is the deployed one (`spikestack.pipeline.predict`): most output spikes over T,
ties to the higher final membrane, the same rule as `frontend.neurons.predict` in torch.
"""

from __future__ import annotations

import os

import numpy as np

from spikestack.frontend.data import encode_constant  # the image as the same input current every step
from spikestack.ir import Program, load_graph, lower_graph, resolve_options
from spikestack.pipeline import predict
from spikestack.simulators import simulate


def simulate_file(path: str | os.PathLike, x: np.ndarray, steps: int) -> tuple[Program, np.ndarray, object]:
    """Read back and lower an exported graph (its own metadata options), simulate it in float mode;
    return (program, predicted classes, Counts)."""
    graph = load_graph(path)
    program = lower_graph(graph, resolve_options(graph.metadata))
    run = simulate(program, encode_constant(x, steps), record=[program.neuron_ops[-1].name])
    return program, predict(run, program), run.counts


def loihi_agreement(program: Program, x: np.ndarray, steps: int, calib: np.ndarray,
                    float_predictions: np.ndarray) -> dict | None:
    """The simulator's loihi mode (Lava's fixed-point arithmetic), headroom calibrated on a float run
    of `calib` samples (as `spikestack deploy` does): agreement of its decisions with float mode.
    None when x is graded: Loihi takes spikes or spike counts, not analogue currents."""
    from spikestack.ir.quantise import headroom_from_run, quantise_program

    if (x < 0).any() or (x != np.round(x)).any():
        return None

    record = [op.name for op in program.neuron_ops]
    headroom = headroom_from_run(program, simulate(program, encode_constant(calib, steps), record=record))
    qprog, _ = quantise_program(program, headroom)
    run = simulate(qprog, encode_constant(x, steps), mode="loihi", record=[program.neuron_ops[-1].name])
    ours = predict(run, program)
    return {"predictions": ours, "agreement_with_float": float((ours == float_predictions).mean())}


def against_torch(path: str | os.PathLike, torch_predictions: np.ndarray, x: np.ndarray, y: np.ndarray,
                  steps: int) -> dict:
    """The exported graph on the simulator next to the torch model's decisions on the same x:
    accuracies, agreement, and (for the caller) program, predictions and Counts."""
    program, sim, counts = simulate_file(path, x, steps)
    return dict(accuracy=float((sim == y).mean()), torch_accuracy=float((torch_predictions == y).mean()),
                agreement=float((sim == torch_predictions).mean()), program=program, predictions=sim, counts=counts)


def lava_agreement(program: Program, x: np.ndarray, steps: int, sim_predictions: np.ndarray) -> str:
    """Lava float on the first len(x) samples: how many decisions equal the simulator's (one line)."""
    from spikestack.backends.lava import lava_unavailable_reason, run_lava

    reason = lava_unavailable_reason()
    if reason is not None:
        return f"skipped ({reason})"
    run = run_lava(program, encode_constant(x, steps), record=[program.neuron_ops[-1].name], progress=False)
    same = int((predict(run, program) == sim_predictions[:len(x)]).sum())
    return f"{same}/{len(x)} predictions equal to the simulator's"
