"""Datasets and encoders, checked against independent references: hand-built bytes, known counts."""

from __future__ import annotations

import gzip
import re
import struct
from pathlib import Path

import numpy as np
import pytest

from spikestack.errors import DataError, OptionsError
from spikestack.frontend import data

# Per-class sample counts of scikit-learn's digits dataset (documented in its DESCR).
DIGITS_CLASS_COUNTS = [178, 182, 177, 183, 181, 182, 181, 179, 174, 180]


def idx_bytes(type_code: int, dims: tuple[int, ...], payload: bytes) -> bytes:
    """An IDX file written out by hand: 0x0000, type code, ndim, big-endian uint32 dims, payload."""
    header = struct.pack(">HBB", 0, type_code, len(dims)) + struct.pack(f">{len(dims)}I", *dims)
    return header + payload


def write_idx(path: Path, type_code: int, dims: tuple[int, ...], payload: bytes) -> Path:
    raw = idx_bytes(type_code, dims, payload)
    path.write_bytes(gzip.compress(raw) if path.suffix == ".gz" else raw)
    return path


# --- digits -------------------------------------------------------------------------------------


def test_digits_sizes_and_stratification():
    ds = data.load_digits()
    assert len(ds.x_train) + len(ds.x_test) == 1797
    assert len(ds.x_test) == 450  # ceil(0.25 * 1797), sklearn's rounding of test_size
    assert len(ds.x_train) == 1347
    assert ds.x_train.shape == (1347, 64) and ds.x_test.shape == (450, 64)
    assert ds.sample_shape == (64,) and ds.num_classes == 10 and ds.name == "digits"
    assert ds.x_train.dtype == np.float32
    everything = np.concatenate([ds.x_train, ds.x_test])
    assert everything.min() == 0.0 and everything.max() == 1.0
    assert np.all(everything * 16 == np.round(everything * 16))  # integer 0..16 intensities / 16
    total = np.bincount(np.concatenate([ds.y_train, ds.y_test]), minlength=10)
    assert total.tolist() == DIGITS_CLASS_COUNTS
    test_counts = np.bincount(ds.y_test, minlength=10)
    # Stratified: each class's test share is its quarter, up to rounding.
    assert np.all(np.abs(test_counts - 0.25 * np.array(DIGITS_CLASS_COUNTS)) <= 1)


def test_digits_unflattened_and_seeded():
    a = data.load_digits(flatten=False, seed=3)
    b = data.load_digits(flatten=False, seed=3)
    c = data.load_digits(flatten=False, seed=4)
    assert a.sample_shape == (1, 8, 8) and a.x_train.shape == (1347, 1, 8, 8)
    np.testing.assert_array_equal(a.y_train, b.y_train)
    assert not np.array_equal(a.y_train, c.y_train)


def test_digits_bad_fraction():
    with pytest.raises(DataError, match="test_fraction"):
        data.load_digits(test_fraction=1.5)


# --- IDX ----------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["arr-idx3-ubyte", "arr-idx3-ubyte.gz"])
def test_read_idx_uint8_raw_and_gzip(tmp_path, name):
    payload = bytes(range(24))
    path = write_idx(tmp_path / name, 0x08, (2, 3, 4), payload)
    arr = data.read_idx(path)
    assert arr.dtype == np.uint8 and arr.shape == (2, 3, 4)
    assert arr[1, 2, 3] == 23 and arr[0, 1, 0] == 4
    assert arr.ravel().tolist() == list(range(24))


def test_read_idx_big_endian_int32_and_float32(tmp_path):
    ints = write_idx(tmp_path / "i", 0x0C, (3,), struct.pack(">3i", -1, 258, 70000))
    assert data.read_idx(ints).tolist() == [-1, 258, 70000]
    floats = write_idx(tmp_path / "f", 0x0D, (2,), struct.pack(">2f", 1.5, -0.25))
    assert data.read_idx(floats).tolist() == [1.5, -0.25]


@pytest.mark.parametrize("gz", [False, True])
def test_read_idx_truncated(tmp_path, gz):
    path = tmp_path / ("short.gz" if gz else "short")
    write_idx(path, 0x08, (2, 3, 4), bytes(20))  # 4 bytes short of 2*3*4
    with pytest.raises(DataError, match=re.escape(str(path))):
        data.read_idx(path)


def test_read_idx_truncated_gzip_stream(tmp_path):
    good = gzip.compress(idx_bytes(0x08, (100,), bytes(range(100))))
    path = tmp_path / "cut.gz"
    path.write_bytes(good[: len(good) // 2])
    with pytest.raises(DataError, match=re.escape(str(path))):
        data.read_idx(path)


def test_read_idx_wrong_magic_and_missing(tmp_path):
    path = tmp_path / "bad"
    path.write_bytes(struct.pack(">I", 0x12345678) + bytes(8))
    with pytest.raises(DataError, match=re.escape(str(path)) + ".*magic"):
        data.read_idx(path)
    with pytest.raises(DataError, match="not found"):
        data.read_idx(tmp_path / "nope")


def make_mnist_dir(root: Path, n_train=5, n_test=3, h=4, w=3, dotted=False, gz=True) -> Path:
    """A tiny MNIST-layout directory; pixel k of image i is (i*h*w + k) % 256."""
    root.mkdir(parents=True, exist_ok=True)
    ext = ".gz" if gz else ""
    for stem, n in (("train", n_train), ("t10k", n_test)):
        sep = "." if dotted else "-"
        pixels = bytes((k % 256) for k in range(n * h * w))
        write_idx(root / f"{stem}-images{sep}idx3-ubyte{ext}", 0x08, (n, h, w), pixels)
        labels = bytes(i % 7 for i in range(n))
        write_idx(root / f"{stem}-labels{sep}idx1-ubyte{ext}", 0x08, (n,), labels)
    return root


@pytest.mark.parametrize("dotted,gz", [(False, True), (True, False)])
def test_load_idx_dir_synthetic(tmp_path, dotted, gz):
    d = make_mnist_dir(tmp_path / "mn", dotted=dotted, gz=gz)
    ds = data.load_idx_dir(d)
    assert ds.x_train.shape == (5, 12) and ds.x_test.shape == (3, 12)
    assert ds.x_train.dtype == np.float32 and ds.sample_shape == (12,)
    assert ds.x_train[1, 0] == np.float32(12 / 255) and ds.x_train[4, 11] == np.float32(59 / 255)
    assert ds.y_train.tolist() == [0, 1, 2, 3, 4] and ds.y_test.tolist() == [0, 1, 2]
    assert ds.num_classes == 5


def test_load_idx_dir_unflattened_limit_and_load_dataset(tmp_path):
    d = make_mnist_dir(tmp_path / "mn")
    ds = data.load_idx_dir(d, flatten=False, limit=2)
    assert ds.x_train.shape == (2, 1, 4, 3) and ds.x_test.shape == (2, 1, 4, 3)
    assert ds.sample_shape == (1, 4, 3)
    assert ds.x_train[1, 0, 0, 0] == np.float32(12 / 255)
    via_name = data.load_dataset(str(d), limit=2)
    assert via_name.x_train.shape == (2, 12)


def test_load_idx_dir_errors(tmp_path):
    with pytest.raises(DataError, match="not found"):
        data.load_idx_dir(tmp_path / "absent")
    d = make_mnist_dir(tmp_path / "mn")
    (d / "t10k-labels-idx1-ubyte.gz").unlink()
    with pytest.raises(DataError, match="t10k-labels"):
        data.load_idx_dir(d)
    # Labels stored as 2-D: wrong shape for a label file.
    write_idx(d / "t10k-labels-idx1-ubyte.gz", 0x08, (3, 1), bytes(3))
    with pytest.raises(DataError, match="dimensions"):
        data.load_idx_dir(d)
    # Label count disagreeing with the image count.
    write_idx(d / "t10k-labels-idx1-ubyte.gz", 0x08, (2,), bytes(2))
    with pytest.raises(DataError, match="labels"):
        data.load_idx_dir(d)


def test_missing_default_dir_mentions_apt(monkeypatch, tmp_path):
    missing = tmp_path / "fashion"
    monkeypatch.setattr(data, "DEFAULT_FASHION_MNIST", str(missing))
    with pytest.raises(DataError, match="apt-get install dataset-fashion-mnist"):
        data.load_idx_dir(missing)


def test_load_dataset_names():
    assert data.load_dataset("digits").num_classes == 10
    with pytest.raises(DataError, match="digits.*fashion-mnist"):
        data.load_dataset("cifar-1000")


def test_load_dataset_limit_cuts_every_source_the_same_way():
    full, cut = data.load_dataset("digits"), data.load_dataset("digits", limit=7)
    assert (len(cut.x_train), len(cut.y_train), len(cut.x_test), len(cut.y_test)) == (7, 7, 7, 7)
    np.testing.assert_array_equal(cut.x_test, full.x_test[:7])
    for bad in (0, -1, 2.5, True):
        with pytest.raises(OptionsError, match="limit must be a positive integer"):
            data.load_dataset("digits", limit=bad)


def test_real_fashion_mnist():
    if not Path(data.DEFAULT_FASHION_MNIST).is_dir():
        pytest.skip("Fashion-MNIST not installed (apt-get install dataset-fashion-mnist)")
    ds = data.load_dataset("fashion-mnist")
    assert ds.x_train.shape == (60000, 784) and ds.x_test.shape == (10000, 784)
    assert ds.num_classes == 10
    assert 0.0 <= ds.x_train.min() and ds.x_train.max() <= 1.0


# --- encoders -----------------------------------------------------------------------------------


def test_encoder_shapes():
    x = np.full((2, 1, 3, 3), 0.5, dtype=np.float32)
    for out in (data.encode_rate(x, 7), data.encode_constant(x, 7), data.encode_latency(x, 7)):
        assert out.shape == (7, 2, 1, 3, 3) and out.dtype == np.float32


def test_rate_encoder_statistics_and_seed():
    x = np.array([[0.0, 0.1, 0.5, 0.9, 1.0]])
    steps = 4000
    spikes = data.encode_rate(x, steps, seed=1)
    assert set(np.unique(spikes).tolist()) <= {0.0, 1.0}
    rate = spikes.mean(axis=0)
    # 5 binomial standard deviations: sqrt(p(1-p)/T) <= 0.0079 for T=4000.
    tol = 5 * np.sqrt(x * (1 - x) / steps)
    assert np.all(np.abs(rate - x) <= tol + 1e-12)
    assert rate[0, 0] == 0.0 and rate[0, 4] == 1.0
    np.testing.assert_array_equal(spikes, data.encode_rate(x, steps, seed=1))
    assert not np.array_equal(spikes, data.encode_rate(x, steps, seed=2))
    half = data.encode_rate(np.ones((1, 3)), steps, max_rate=0.5).mean()
    assert abs(half - 0.5) < 5 * np.sqrt(0.25 / (3 * steps))


def test_constant_encoder():
    x = np.array([[0.0, 0.25], [0.75, 1.0]], dtype=np.float32)
    out = data.encode_constant(x, 5)
    for t in range(5):
        np.testing.assert_array_equal(out[t], x)


def test_latency_encoder_hand_computed():
    steps = 11
    x = np.array([[1.0, 0.0, 0.5, 0.3, 0.005, 0.8]])
    out = data.encode_latency(x, steps)
    # round((1-x)*10): 1.0->0, 0.0 (below threshold)->none, 0.5->5, 0.3->7, 0.005->none, 0.8->2
    expected_times = [0, None, 5, 7, None, 2]
    for i, t in enumerate(expected_times):
        column = out[:, 0, i]
        if t is None:
            assert column.sum() == 0
        else:
            assert column.sum() == 1 and column[t] == 1.0
    single = data.encode_latency(np.array([[0.9]]), 1)
    assert single.tolist() == [[[1.0]]]


@pytest.mark.parametrize("encoder", [data.encode_rate, data.encode_constant, data.encode_latency])
def test_encoders_reject_bad_input(encoder):
    x = np.array([[0.2, 0.4]])
    for steps in (0, -3, 2.5):
        with pytest.raises(DataError, match="steps"):
            encoder(x, steps)
    for bad in (np.array([[0.2, 1.5]]), np.array([[-0.1, 0.3]]), np.array([[np.nan, 0.3]])):
        with pytest.raises(DataError):
            encoder(bad, 4)
