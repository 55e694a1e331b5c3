"""MNIST loading: the usual Keras way for users, a local file for tests, CI and offline machines.

Look-up order: an explicit path; the environment variable OBD_MNIST_PATH; the Keras cache file
~/.keras/datasets/mnist.npz read directly; then keras.datasets.mnist.load_data() (downloads once).
With OBD_MNIST_PATH set, nothing touches the network. Files are read with allow_pickle=False and
checked (keys, shapes, dtypes, label range) before use.

A checked file's float32 arrays are kept in obd's cache folder as plain .npy files, named by the file's path,
size and modification time, and later loads memory-map them: decompressing the npz and scaling 70,000 images
is a large part of a later start's first page run, memory-mapping takes milliseconds (pages are read when used,
and the training images only a training or a calibration uses).
"""

from __future__ import annotations

import functools
import hashlib
import os
import shutil
import tempfile
import zipfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from obd.core.cache import cache_dir

ENV_VAR = "OBD_MNIST_PATH"
KERAS_CACHE = Path.home() / ".keras" / "datasets" / "mnist.npz"
IMAGE_SHAPE = (28, 28)
FIX = (
    f"Put the Keras MNIST file (mnist.npz) at {KERAS_CACHE}, or set {ENV_VAR}=/path/to/mnist.npz, "
    "or connect to the internet once so that Keras can download it."
)


class DataError(ValueError):
    """MNIST could not be loaded; the message says why and how to fix it."""


@dataclass(frozen=True)
class Mnist:
    """MNIST as flat float32 images in [0, 1] and int64 labels; all arrays are read-only.

    x_train: (60000, 784), y_train: (60000,), x_test: (10000, 784), y_test: (10000,)
    """

    x_train: np.ndarray
    y_train: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray
    source: str


def _fail(path: Path, what: str) -> DataError:
    return DataError(f"{path}: {what}. Expected the Keras MNIST npz (x_train, y_train, x_test, y_test). {FIX}")


def _check_arrays(path: Path, arrays: dict[str, np.ndarray]) -> None:
    want = {"x_train": 3, "y_train": 1, "x_test": 3, "y_test": 1}
    missing = [k for k in want if k not in arrays]
    if missing:
        raise _fail(path, f"missing keys {missing} (found {sorted(arrays)})")
    for key, ndim in want.items():
        a = arrays[key]
        if a.ndim != ndim or (ndim == 3 and a.shape[1:] != IMAGE_SHAPE):
            raise _fail(
                path,
                f"{key} has shape {a.shape}, expected (n, 28, 28)"
                if ndim == 3
                else f"{key} has shape {a.shape}, expected (n,)",
            )
        if a.dtype != np.uint8:
            raise _fail(path, f"{key} has dtype {a.dtype}, expected uint8")
    for split in ("train", "test"):
        x, y = arrays[f"x_{split}"], arrays[f"y_{split}"]
        if len(x) != len(y) or len(x) == 0:
            raise _fail(path, f"x_{split} has {len(x)} images but y_{split} has {len(y)} labels")
        if y.max() > 9:
            raise _fail(path, f"y_{split} has labels up to {int(y.max())}, expected 0-9")


def _to_mnist(arrays: dict[str, np.ndarray], source: str) -> Mnist:
    def images(x: np.ndarray) -> np.ndarray:
        out = x.reshape(len(x), -1).astype(np.float32) / np.float32(255.0)  # (n, 784)
        out.flags.writeable = False
        return out

    def labels(y: np.ndarray) -> np.ndarray:
        out = y.astype(np.int64)
        out.flags.writeable = False
        return out

    return Mnist(
        images(arrays["x_train"]), labels(arrays["y_train"]), images(arrays["x_test"]), labels(arrays["y_test"]), source
    )


ARRAYS = ("x_train", "y_train", "x_test", "y_test")


def float_cache(path: Path, mtime_ns: int, size: int) -> Path:
    """The folder that holds a checked MNIST file's float32 arrays (one .npy each): named by the file's path,
    then by its size and modification time, so that a replaced file's older copy can be found and removed."""

    def digest(text: str, n: int) -> str:
        return hashlib.sha256(text.encode()).hexdigest()[:n]

    return cache_dir() / "mnist" / f"{digest(str(path), 12)}-{digest(f'{mtime_ns}|{size}|v1', 8)}"


def _load_cached(folder: Path, source: str) -> Mnist | None:
    """The memory-mapped (read-only) arrays of a float cache folder, or None when it is missing or not what
    `_save_cached` writes."""
    try:
        a = {k: np.load(folder / f"{k}.npy", mmap_mode="r", allow_pickle=False).view(np.ndarray) for k in ARRAYS}
    except (OSError, ValueError):
        return None
    for split in ("train", "test"):
        x, y = a[f"x_{split}"], a[f"y_{split}"]
        if not (
            x.dtype == np.float32
            and x.shape[1:] == (IMAGE_SHAPE[0] * IMAGE_SHAPE[1],)
            and len(x) > 0
            and y.dtype == np.int64
            and y.shape == (len(x),)
        ):
            return None
    return Mnist(a["x_train"], a["y_train"], a["x_test"], a["y_test"], source)


def _save_cached(folder: Path, mnist: Mnist) -> None:
    """Write the float cache folder whole or not at all (a temp folder, renamed), and remove the copies of
    the same file's earlier versions; a failure costs only speed."""
    try:
        folder.parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=f".{folder.name}.", dir=folder.parent))
    except OSError:  # a read-only cache folder
        return
    try:
        for k in ARRAYS:
            np.save(tmp / f"{k}.npy", getattr(mnist, k))
        os.rename(tmp, folder)
    except OSError:  # a full disk, or another process renamed its copy first
        shutil.rmtree(tmp, ignore_errors=True)
        return
    same_file = folder.name.split("-")[0]
    for old in folder.parent.glob(f"{same_file}-*"):
        if old != folder:
            shutil.rmtree(old, ignore_errors=True)


@functools.lru_cache(maxsize=4)
def _read_npz(path: Path, mtime_ns: int, size: int) -> Mnist:
    # mtime and size are part of the cache keys so that a replaced file is read again.
    folder = float_cache(path, mtime_ns, size)
    if (cached := _load_cached(folder, str(path))) is not None:
        return cached
    if folder.exists():  # damaged or from another version: replaced below
        shutil.rmtree(folder, ignore_errors=True)
    mnist = _read_checked(path, size)
    _save_cached(folder, mnist)
    return mnist


def _read_checked(path: Path, size: int) -> Mnist:
    """Read, check and scale an npz file (see `read_npz`)."""
    if not zipfile.is_zipfile(path):  # np.load would try other formats (and say "pickled data" for any)
        raise _fail(
            path,
            "not a readable npz file (it is empty)"
            if size == 0
            else "not a readable npz file (an npz is a zip archive of .npy arrays; this file is not one, or it "
            "is truncated)",
        )
    try:
        with np.load(path, allow_pickle=False) as f:
            arrays = {k: f[k] for k in f.files}
    except Exception as e:  # damage surfaces as zipfile, zlib, tokenize or syntax errors from numpy's reader
        raise _fail(path, f"not a readable npz file ({type(e).__name__}: {e})") from None
    _check_arrays(path, arrays)
    return _to_mnist(arrays, str(path))


def read_npz(path: str | os.PathLike) -> Mnist:
    """Read and check one Keras-format mnist.npz file.

    Raises:
        DataError: the file is missing, unreadable, or not MNIST-shaped; the message names the file.
    """
    p = Path(path).expanduser().resolve()
    if p.is_dir():
        raise DataError(f"{p}: is a directory; expected the mnist.npz file. {FIX}")
    if p.exists() and not p.is_file():  # a FIFO, socket or device: reading it could block or never end
        raise DataError(f"{p}: is not a regular file; expected the mnist.npz file. {FIX}")
    if not p.is_file():
        raise DataError(f"{p}: no such file. {FIX}")
    st = p.stat()
    return _read_npz(p, st.st_mtime_ns, st.st_size)


def find_mnist(path: str | os.PathLike | None = None) -> Path | None:
    """The local file `load_mnist` would read, or None when it would have to download."""
    if path is not None:
        return Path(path).expanduser()
    env = os.environ.get(ENV_VAR)
    if env:
        return Path(env).expanduser()
    return KERAS_CACHE if KERAS_CACHE.is_file() else None


def load_mnist(path: str | os.PathLike | None = None) -> Mnist:
    """Load MNIST (train and test), scaled to [0, 1] and flattened to 784 features.

    Args:
        path: an explicit mnist.npz. Otherwise OBD_MNIST_PATH, then ~/.keras/datasets/mnist.npz, then a
            download through keras.datasets.mnist.load_data().

    Returns:
        An Mnist record (read-only arrays; repeated calls on an unchanged file return the cached arrays).

    Raises:
        DataError: the file is missing or broken, or no file exists and the download failed; the message
            says where to put the file or which variable to set.
    """
    local = find_mnist(path)
    if local is not None:
        return read_npz(local)
    try:
        import keras

        (x_train, y_train), (x_test, y_test) = keras.datasets.mnist.load_data()
    except Exception as e:  # any download failure (offline, proxy, truncated) gets the same fix
        raise DataError(
            f"MNIST is not on this machine and the download failed ({type(e).__name__}: {e}). {FIX}"
        ) from None
    arrays = {"x_train": x_train, "y_train": y_train, "x_test": x_test, "y_test": y_test}
    _check_arrays(KERAS_CACHE, arrays)
    return _to_mnist(arrays, "keras.datasets.mnist")
