"""SPIDE's exact backward at every thread count (issue #17): `train spide --backward exact --threads 2`
died in torch.linalg.solve after 768 lines of "oneMKL ERROR ... SLASWP", because torch factors a CPU
batch with concurrent MKL getrf calls that corrupt each other's pivots (docs/spide.md). The exact
beta at 2 and 4 threads must be the 1-thread solution, bit for bit (the solve runs on one thread),
and the training command must finish."""

from __future__ import annotations

import subprocess
import sys

import pytest
import torch

from spikestack.errors import OptionsError
from spikestack.frontend.methods.spide_backward import V_SCALE, exact_beta
from spikestack.frontend.train import torch_threads

CLI_TIMEOUT_S = 120  # the run takes ~10 s; a hung MKL thread team must fail the test, not stall the suite


def implicit_system(n: int = 400, batch: int = 16, seed: int = 0) -> tuple[torch.Tensor, ...]:
    """As in training on digits (hidden 400, the shape that crashed): ||M||_2 = 0.9 V, about half of
    the neurons unsaturated, gradients of the loss-scaled size."""
    gen = torch.Generator().manual_seed(seed)
    weight = torch.randn(n, n, generator=gen)
    weight *= 0.9 * V_SCALE / torch.linalg.matrix_norm(weight, 2)
    mask = (torch.rand(batch, n, generator=gen) < 0.5).float()
    grad = 0.5 * torch.randn(batch, n, generator=gen)
    return weight, mask, grad


@pytest.mark.parametrize("threads", [2, 4])
def test_exact_beta_at_more_threads_is_the_one_thread_solution(threads):
    weight, mask, grad = implicit_system()
    with torch_threads(1):
        want = exact_beta(weight, mask, grad, V_SCALE)
    with torch_threads(threads):
        got = exact_beta(weight, mask, grad, V_SCALE)
        assert torch.get_num_threads() == threads  # the caller's setting is back after the solve
    assert torch.equal(got, want)
    # and it is the solution: beta - M^T (m * beta) / V = g, to float32 rounding
    residual = got - (mask * got) @ weight / V_SCALE - grad
    assert float(residual.abs().max()) < 1e-5


def test_a_singular_system_is_one_line_naming_the_sample():
    weight = V_SCALE * torch.eye(4)  # gain exactly V: I - J = 0 where m = 1
    mask = torch.tensor([[0.0, 0, 0, 0], [1, 1, 1, 1]])
    with pytest.raises(OptionsError, match="sample 1 is singular.*spectral norm below V"):
        exact_beta(weight, mask, torch.ones(2, 4), V_SCALE)


def test_train_spide_exact_at_two_threads_exits_0(tmp_path):
    # torch's thread settings are process-wide: a subprocess, as a user runs it
    out = tmp_path / "m.nir"
    command = [sys.executable, "-m", "spikestack.cli", "train", "spide", "--dataset", "digits", "--backward", "exact",
               "--threads", "2", "--limit", "64", "--batch-size", "32", "--epochs", "1", "--steps", "5",
               "--out", str(out)]
    try:
        done = subprocess.run(command, capture_output=True, text=True, timeout=CLI_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        pytest.fail(f"train spide --backward exact --threads 2 hung for {CLI_TIMEOUT_S} s")
    assert done.returncode == 0, done.stderr[-2000:]
    assert "oneMKL" not in done.stdout + done.stderr and "Traceback" not in done.stderr
    assert out.is_file() and "test accuracy" in done.stdout
