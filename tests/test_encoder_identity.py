"""One encoder for `deploy` and `sweep` (issue 18): the same dataset sample and seed give the same
spikes in both, whatever chunks either cuts the test set into; and the per-sample seeding is the
one the sweep has always used, so its tables stay what they were."""

from __future__ import annotations

import nir
import numpy as np
import pytest

from conftest import small_mlp
from spikestack.errors import OptionsError
from spikestack.frontend.data import encode_rate, encode_rate_samples
from spikestack.pipeline import deploy_input, load_program
from spikestack.pipeline.evaluation import encode_samples
from spikestack.sweep.task import dataset_split

STEPS = 6


def _program(tmp_path, n_in: int):
    """A small MLP taking flat samples of n_in values (what it computes does not matter here)."""
    path = tmp_path / f"mlp{n_in}.nir"
    nir.write(path, small_mlp(n_in=n_in, n_hidden=5, n_out=3))
    return load_program(str(path), dt=1e-3)


def _chunked(encode, count: int, size: int) -> np.ndarray:
    """encode(start, stop) over [0, count) in chunks of `size`, joined along the batch axis."""
    return np.concatenate([encode(a, min(a + size, count)) for a in range(0, count, size)], axis=1)


def _write_idx(directory, n: int = 12, side: int = 4) -> None:
    """A tiny MNIST-layout directory: its test split, unlike digits', does not depend on the seed."""
    rng = np.random.default_rng(5)
    for stem, dims in (("train-images-idx3-ubyte", (n, side, side)), ("t10k-images-idx3-ubyte", (n, side, side)),
                       ("train-labels-idx1-ubyte", (n,)), ("t10k-labels-idx1-ubyte", (n,))):
        data = rng.integers(0, 256 if len(dims) == 3 else 3, size=dims, dtype=np.uint8)
        header = bytes([0, 0, 0x08, len(dims)]) + b"".join(d.to_bytes(4, "big") for d in dims)
        (directory / stem).write_bytes(header + data.tobytes())


def _channel_first_graph(tmp_path):
    """small_mlp whose Input is (1, 4, 4), flattened before the first Affine: deploy then reads
    images channel-first, as for a convolutional graph."""
    graph = small_mlp(n_in=16, n_hidden=5, n_out=3)
    nodes = dict(graph.nodes)
    nodes["input"] = nir.Input(input_type={"input": np.array([1, 4, 4])})
    nodes["flat"] = nir.Flatten(input_type={"input": np.array([1, 4, 4])}, start_dim=0, end_dim=-1)
    edges = [("input", "flat"), ("flat", "fc1")] + [e for e in graph.edges if e[0] != "input"]
    path = tmp_path / "chw.nir"
    nir.write(path, nir.NIRGraph(nodes=nodes, edges=edges, type_check=False))
    return path


@pytest.mark.parametrize("deploy_chunk, sweep_chunk", [(7, 5), (40, 1), (3, 40)])
def test_deploy_and_sweep_give_digits_samples_the_same_spikes(tmp_path, deploy_chunk, sweep_chunk):
    """Seed 0, where deploy's digits split (seeded) is the sweep's (always the default split)."""
    program = _program(tmp_path, 64)
    data = deploy_input(program, dataset="digits", steps=STEPS, limit=40, seed=0)
    images, _ = dataset_split("digits", "test")
    deployed = _chunked(data.batch, data.count, deploy_chunk)
    swept = _chunked(lambda a, b: encode_samples(program, images[a:b], STEPS, 0, a), data.count, sweep_chunk)
    assert deployed.shape == (STEPS, 40, 64) and deployed.any()
    np.testing.assert_array_equal(deployed, swept)
    np.testing.assert_array_equal(data.batch(17, 18), swept[:, 17:18])  # sample 17 alone, too


def test_deploy_and_sweep_agree_at_any_seed_on_image_files(tmp_path):
    """Channel-first input (1, 4, 4) against the sweep's flat images, seed 7, chunks of 5 and of 2."""
    _write_idx(tmp_path)
    program = _program(tmp_path, 16)
    program_chw = load_program(str(_channel_first_graph(tmp_path)), dt=1e-3)
    data = deploy_input(program_chw, dataset=str(tmp_path), steps=STEPS, seed=7)
    images, _ = dataset_split(str(tmp_path), "test")
    deployed = _chunked(data.batch, data.count, 5)
    swept = _chunked(lambda a, b: encode_samples(program, images[a:b], STEPS, 7, a), data.count, 2)
    np.testing.assert_array_equal(deployed.reshape(swept.shape), swept)
    other = _chunked(lambda a, b: encode_samples(program, images[a:b], STEPS, 8, a), data.count, 2)
    assert not np.array_equal(other, swept)  # the seed matters


def test_sample_streams_are_the_sweeps_of_old():
    """Sample i of a split is coded from SeedSequence([seed, split, i]) (128 bits): the sweep's seeding
    since issue 11, pinned so its tables do not drift."""
    x = np.random.default_rng(0).random((4, 5)).astype(np.float32)
    for split, code in (("test", 0), ("train", 1)):
        words = [np.random.SeedSequence([3, code, 10 + k]).generate_state(4) for k in range(4)]
        seeds = [sum(int(w) << (32 * i) for i, w in enumerate(ws)) for ws in words]
        expected = np.concatenate([encode_rate(x[k:k + 1], STEPS, seed=s) for k, s in enumerate(seeds)], axis=1)
        np.testing.assert_array_equal(encode_rate_samples(x, STEPS, 3, 10, split), expected)
    assert not np.array_equal(encode_rate_samples(x, STEPS, 3, 10, "test"), encode_rate_samples(x, STEPS, 3, 10, "train"))


def test_bad_split_or_seed_is_one_error():
    x = np.zeros((2, 3), np.float32)
    assert encode_rate_samples(x[:0], STEPS, 0, 0).shape == (STEPS, 0, 3)
    for kwargs in (dict(split="validation"), dict(seed=-1), dict(first_index=-2)):
        with pytest.raises(OptionsError) as err:
            encode_rate_samples(x, STEPS, **{"seed": 0, "first_index": 0, **kwargs})
        assert "\n" not in str(err.value)
