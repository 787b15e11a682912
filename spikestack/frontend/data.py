"""Datasets and spike encoders for training, conversion and simulation.

Two dataset sources, both offline: scikit-learn's bundled 8x8 digits (always present, small enough
for tests) and any MNIST-layout directory of IDX files (Fashion-MNIST from Debian's
`dataset-fashion-mnist` package by default). Every loader returns the same `Dataset`, with images as
float32 in [0, 1], so the encoders and every later stage see one convention.

Encoders turn a batch `(B, *shape)` into time-major `(T, B, *shape)` float32 arrays, the layout the
simulators and backends step through.
"""

from __future__ import annotations

import dataclasses
import gzip
import zlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from spikestack.errors import DataError, OptionsError
from spikestack.memory import check_elements, element_count

DEFAULT_FASHION_MNIST = "/usr/share/datasets/fashion-mnist"
# The rate coding's seed stream per split (`sample_seed`): calibration on training images never
# reuses the spikes of the test sample with the same index.
SPLITS = {"test": 0, "train": 1}
MAX_CLASSES = 65_536  # labels beyond this are damage, not a task: the output layer is sized from them

# IDX type codes (third byte of the magic number) -> big-endian numpy dtype.
_IDX_DTYPES = {0x08: ">u1", 0x09: ">i1", 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}

# MNIST-layout file stems; both the canonical `train-images-idx3-ubyte` and the dotted
# `train-images.idx3-ubyte` spellings circulate, each with or without `.gz`.
_IDX_STEMS = {
    "x_train": ("train-images", "idx3"),
    "y_train": ("train-labels", "idx1"),
    "x_test": ("t10k-images", "idx3"),
    "y_test": ("t10k-labels", "idx1"),
}


# eq=False: the generated __eq__/__hash__ would compare or hash numpy arrays and raise.
@dataclass(frozen=True, eq=False)
class Dataset:
    """A train/test split. x: float32 in [0, 1], shape (N, *sample_shape); y: integer class ids."""

    x_train: np.ndarray
    y_train: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray
    name: str
    sample_shape: tuple[int, ...]
    num_classes: int


def load_digits(test_fraction: float = 0.25, seed: int = 0, flatten: bool = True) -> Dataset:
    """scikit-learn's 1797 8x8 digit images (values 0..16, scaled to [0, 1]), split stratified.

    `flatten=True` gives samples of shape (64,), otherwise (1, 8, 8) (channel-first, for convs).
    """
    from sklearn.datasets import load_digits as _sk_load_digits
    from sklearn.model_selection import train_test_split

    if not 0.0 < test_fraction < 1.0:
        raise DataError(f"digits: test_fraction must be in (0, 1), got {test_fraction}")
    bunch = _sk_load_digits()
    x = (bunch.images / 16.0).astype(np.float32)  # pixel intensities are 0..16 in this dataset
    y = bunch.target.astype(np.int64)
    shape = (64,) if flatten else (1, 8, 8)
    x = x.reshape((len(x), *shape))
    # Stratified so that the small test set keeps every class at its overall proportion.
    x_tr, x_te, y_tr, y_te = train_test_split(
        x, y, test_size=test_fraction, random_state=seed, stratify=y
    )
    return Dataset(x_tr, y_tr, x_te, y_te, "digits", shape, 10)


def _read_exactly(stream, n: int, path: Path, what: str) -> bytes:
    data = stream.read(n)
    if len(data) < n:
        raise DataError(f"{path}: truncated IDX {what} (need {n} bytes, have {len(data)})")
    return data


def read_idx(path: str | Path) -> np.ndarray:
    """Read one IDX file (raw or gzip-compressed) into an array of its own dtype and shape.

    The header is parsed by hand: magic = 0x00 0x00 <type code> <ndim>, then ndim big-endian
    uint32 sizes. No checksum is checked, since Debian re-compresses the Fashion-MNIST files.
    The header is read first and the size it declares checked against the memory budget; a gzip
    stream is then inflated up to that size and one byte more, never further, so a small `.gz`
    that inflates to gigabytes costs no more than its header admits.
    """
    path = Path(path)
    try:
        with path.open("rb") as file:
            # Sniff the gzip magic rather than trusting the suffix; an IDX file always starts 0x0000.
            compressed = file.read(2) == b"\x1f\x8b"
            file.seek(0)
            stream = gzip.GzipFile(fileobj=file) if compressed else file
            magic = _read_exactly(stream, 4, path, "header")
            zero, code, ndim = int.from_bytes(magic[0:2], "big"), magic[2], magic[3]
            if zero != 0 or code not in _IDX_DTYPES or ndim == 0:
                raise DataError(f"{path}: not an IDX file (bad magic number 0x{magic.hex()})")
            sizes = _read_exactly(stream, 4 * ndim, path, "header")
            dims = tuple(int.from_bytes(sizes[4 * i : 4 + 4 * i], "big") for i in range(ndim))
            dtype = np.dtype(_IDX_DTYPES[code])
            # Two copies: the bytes read, then the array in native byte order.
            expected = check_elements(f"{path}: IDX data of dims {dims}", element_count(dims), dtype, copies=2) // 2
            payload = stream.read(expected + 1)
    except FileNotFoundError:
        raise DataError(f"{path}: IDX file not found") from None
    except (OSError, EOFError, zlib.error) as exc:
        raise DataError(f"{path}: cannot read IDX file ({exc})") from None
    if len(payload) > expected:  # inflated no further than this: whatever follows is not read
        raise DataError(f"{path}: IDX payload is longer than the {expected} bytes its dims {dims} declare")
    if len(payload) < expected:
        raise DataError(f"{path}: IDX payload is {len(payload)} bytes but dims {dims} need {expected}")
    # Native byte order so downstream code (torch.from_numpy in particular) accepts it.
    data = np.frombuffer(payload, dtype=dtype).reshape(dims)
    return data.astype(dtype.newbyteorder("="))


def _find_idx(directory: Path, stem: str, kind: str) -> Path:
    """The first existing spelling of one MNIST-layout file, or DataError naming what was tried."""
    names = [f"{stem}-{kind}-ubyte", f"{stem}.{kind}-ubyte"]
    for name in names:
        for candidate in (directory / name, directory / f"{name}.gz"):
            if candidate.is_file():
                return candidate
    raise DataError(f"{directory}: missing {names[0]}[.gz] (or {names[1]}[.gz])")


def load_idx_dir(
    directory: str | Path = DEFAULT_FASHION_MNIST, flatten: bool = True, limit: int | None = None
) -> Dataset:
    """An MNIST-layout directory of IDX files (train/t10k images and labels) as a Dataset.

    Pixels are scaled /255 to float32. `limit` keeps the first N samples of both train and test,
    for quick runs. `flatten=True` gives (H*W,) samples, otherwise (1, H, W).
    """
    directory = Path(directory)
    if not directory.is_dir():
        hint = ""
        if directory == Path(DEFAULT_FASHION_MNIST):
            hint = " (install it with `apt-get install dataset-fashion-mnist`)"
        raise DataError(f"{directory}: dataset directory not found{hint}")
    if limit is not None and (not isinstance(limit, int) or limit < 1):
        raise DataError(f"{directory}: limit must be a positive integer, got {limit!r}")

    arrays = {}
    for key, (stem, kind) in _IDX_STEMS.items():
        path = _find_idx(directory, stem, kind)
        arr = read_idx(path)
        want_ndim = 3 if kind == "idx3" else 1
        if arr.ndim != want_ndim:
            raise DataError(f"{path}: expected {want_ndim} dimensions, found shape {arr.shape}")
        arrays[key] = (path, arr[:limit])  # slicing with None keeps everything

    for split in ("train", "test"):
        (x_path, x), (_, y) = arrays[f"x_{split}"], arrays[f"y_{split}"]
        if len(x) != len(y):
            raise DataError(f"{x_path}: {len(x)} images but {len(y)} labels in the {split} set")
    if arrays["x_train"][1].shape[1:] != arrays["x_test"][1].shape[1:]:
        raise DataError(f"{directory}: train and test images differ in size")

    height, width = arrays["x_train"][1].shape[1:]
    shape = (height * width,) if flatten else (1, height, width)

    def images(key: str) -> np.ndarray:
        x = arrays[key][1]
        return (x.astype(np.float32) / 255.0).reshape((len(x), *shape))

    y_train = arrays["y_train"][1].astype(np.int64)
    y_test = arrays["y_test"][1].astype(np.int64)
    if min(y_train.min(initial=0), y_test.min(initial=0)) < 0:
        raise DataError(f"{directory}: negative class labels")
    num_classes = int(max(y_train.max(initial=-1), y_test.max(initial=-1))) + 1
    if num_classes > MAX_CLASSES:  # the output layer is sized from the labels
        path = arrays["y_train" if y_train.max(initial=-1) + 1 == num_classes else "y_test"][0]
        raise DataError(f"{path}: label {num_classes - 1:,} makes {num_classes:,} classes, more than the "
                        f"{MAX_CLASSES:,} an output layer may have")
    return Dataset(
        images("x_train"), y_train, images("x_test"), y_test, directory.name, shape, num_classes
    )


def load_dataset(name_or_path: str, *, limit: int | None = None, **kw) -> Dataset:
    """'digits', 'fashion-mnist' (Debian's default path) or a path to an MNIST-layout directory.

    `limit` keeps the first N training and N test samples of any of them (quick runs); IDX files are
    cut as they are read."""
    if limit is not None and (isinstance(limit, bool) or not isinstance(limit, int) or limit < 1):
        raise OptionsError(f"limit must be a positive integer, got {limit!r}")
    if name_or_path == "digits":
        full = load_digits(**kw)
        return dataclasses.replace(full, x_train=full.x_train[:limit], y_train=full.y_train[:limit],
                                   x_test=full.x_test[:limit], y_test=full.y_test[:limit])
    if name_or_path == "fashion-mnist":
        return load_idx_dir(DEFAULT_FASHION_MNIST, limit=limit, **kw)
    if Path(name_or_path).is_dir():
        return load_idx_dir(name_or_path, limit=limit, **kw)
    raise DataError(
        f"unknown dataset '{name_or_path}': use 'digits', 'fashion-mnist' "
        "or a directory of MNIST-layout IDX files"
    )


def _check_input(x, steps: int) -> np.ndarray:
    """Validate an encoder input once, so every encoder rejects the same bad inputs the same way."""
    if isinstance(steps, bool) or not isinstance(steps, (int, np.integer)) or steps < 1:
        raise DataError(f"encoder: steps must be an integer >= 1, got {steps!r}")
    x = np.asarray(x, dtype=np.float32)
    if x.ndim < 1:
        raise DataError("encoder: x must have a batch dimension, shape (B, *shape)")
    if not np.all(np.isfinite(x)):
        raise DataError("encoder: x contains NaN or infinite values")
    if x.size and (x.min() < 0.0 or x.max() > 1.0):
        raise DataError(f"encoder: x must lie in [0, 1], got range [{x.min()}, {x.max()}]")
    return x


def encode_rate(x, steps: int, seed: int = 0, max_rate: float = 1.0) -> np.ndarray:
    """Bernoulli spikes: at every step each element fires with probability x * max_rate."""
    x = _check_input(x, steps)
    if not 0.0 <= max_rate <= 1.0:
        raise DataError(f"encode_rate: max_rate must be in [0, 1], got {max_rate}")
    rng = np.random.default_rng(seed)
    # random() is in [0, 1): probability 0 never fires and probability 1 always does.
    return (rng.random((steps, *x.shape)) < x * max_rate).astype(np.float32)


def sample_seed(seed: int, split: str, index: int) -> int:
    """The rate-coding seed of sample `index` of a split: 128 bits from (seed, split, index), where 32
    would let two of 70 000 samples share a stream."""
    if split not in SPLITS:
        raise OptionsError(f"split must be one of {', '.join(SPLITS)}, got {split!r}")
    for name, value in (("seed", seed), ("index", index)):
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 0:
            raise OptionsError(f"{name} must be an integer >= 0, got {value!r}")
    words = np.random.SeedSequence([int(seed), SPLITS[split], int(index)]).generate_state(4)
    return sum(int(w) << (32 * i) for i, w in enumerate(words))


def encode_rate_samples(x, steps: int, seed: int, first_index: int, split: str = "test") -> np.ndarray:
    """`encode_rate` with one seed per sample: row k of x, sample first_index + k of its split, is coded
    from `sample_seed(seed, split, first_index + k)`.

    A sample's spikes therefore depend on neither the batch it is encoded in nor the process that
    encodes it: `deploy` and `sweep` both encode datasets here, so the same sample and seed give the
    same spikes in each, whatever their chunk sizes.
    """
    x = _check_input(x, steps)
    if len(x) == 0:
        return np.zeros((steps, *x.shape), dtype=np.float32)
    return np.concatenate([encode_rate(x[k:k + 1], steps, seed=sample_seed(seed, split, first_index + k))
                           for k in range(len(x))], axis=1)


def encode_constant(x, steps: int) -> np.ndarray:
    """The same analog value at every step: the constant-current input for converted ANNs."""
    x = _check_input(x, steps)
    return np.broadcast_to(x, (steps, *x.shape)).copy()  # a real copy, safe to write into


def encode_latency(x, steps: int, threshold: float = 0.01) -> np.ndarray:
    """One spike per element at step round((1 - x) * (steps - 1)); brighter fires earlier.

    Elements below `threshold` never fire, so a black background stays silent instead of all
    firing together on the last step.
    """
    x = _check_input(x, steps)
    out = np.zeros((steps, *x.shape), dtype=np.float32)
    fire = np.nonzero(x >= threshold)
    # rint rounds half to even, the same as Python's round().
    times = np.rint((1.0 - x[fire].astype(np.float64)) * (steps - 1)).astype(np.int64)
    out[(times, *fire)] = 1.0
    return out
