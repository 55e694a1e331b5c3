"""Downloads as bytes: the pruned model (.keras, pruned weights zeroed), the physically shrunk unit-pruned
model (.keras, smaller), a TensorFlow Lite model for phones and edge devices, and the accuracy curves (CSV, the
CLI's columns).

The Keras models are plain Keras Sequential models that take and give what the user's model did
(`obd.core.network.to_keras`: its input shape, pixel scale, Rescaling/Normalization, layer names and softmax or
logits): `keras.saving.load_model` reads them without obd installed. Files go through a temporary folder because
Keras saves only to paths.

TensorFlow Lite: a unit-pruned network is shrunk first (smaller matrices, fast anywhere); a weight-pruned one is
converted with the converter's sparsity optimisation (`tf.lite.Optimize.EXPERIMENTAL_SPARSITY`), which stores its
kernels as sparse tensors for TFLite's sparse kernels.
"""

from __future__ import annotations

import contextlib
import io
import os
import tempfile
import time
import warnings
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from obd.core.cache import atomic_write
from obd.core.network import Network, to_keras
from obd.core.pruning import Pruned
from obd.runtime.shrunk import shrink
from obd.runtime.sparse import csr
from obd.work.sweep import SweepRecord, to_csv


def _saved(save) -> bytes:
    """The bytes of a .keras file written by `save(path)` into a temporary folder."""
    with tempfile.TemporaryDirectory(prefix="obd-export-") as folder:
        path = Path(folder) / "model.keras"
        save(path)
        return path.read_bytes()


def masked_model(pruned: Pruned | Network) -> bytes:
    """The pruned network as a .keras file of the original architecture, pruned weights stored as zeros.

    Args:
        pruned: a Pruned (or any Network).

    Returns:
        The .keras file's bytes.
    """
    net = pruned.net if isinstance(pruned, Pruned) else pruned
    from obd.training.model import save_model  # TensorFlow: loaded when someone downloads, not when the page opens

    return _saved(lambda path: save_model(to_keras(net), path))


def shrunk_model(pruned: Pruned | Network) -> bytes:
    """The pruned network with its dead units physically removed (`obd.runtime.engines.shrink`), as a .keras file:
    the same logits from smaller matrices (unit pruning makes it much smaller; weight pruning rarely does).

    Args:
        pruned: a Pruned (or any Network).

    Returns:
        The .keras file's bytes.
    """
    net = pruned.net if isinstance(pruned, Pruned) else pruned
    return _saved(lambda path: save_shrunk(net, path))


def tflite_model(pruned: Pruned | Network) -> bytes:
    """The pruned network as a TensorFlow Lite flatbuffer that takes and gives what the user's model did.

    Args:
        pruned: a Pruned (or any Network): unit pruning is shrunk; weight pruning (a Network with zeros too) is
            converted with the sparsity optimisation.

    Returns:
        The .tflite file's bytes.
    """
    net = pruned.net if isinstance(pruned, Pruned) else pruned
    small = shrink(net)
    import tensorflow as tf  # TensorFlow: loaded when someone exports

    converter = tf.lite.TFLiteConverter.from_keras_model(to_keras(small))
    if sum(int(np.count_nonzero(k)) for k in small.kernels()) < small.n_weights:  # zeros left after shrinking
        converter.optimizations = [tf.lite.Optimize.EXPERIMENTAL_SPARSITY]
    with contextlib.redirect_stdout(io.StringIO()):  # the converter prints the traced function's signature
        return converter.convert()


def tflite_runner(model: bytes, batch: int, threads: int | None = None):
    """A TFLite interpreter of `model` for batches of `batch` rows, as a function x -> outputs.

    Args:
        model: a .tflite file's bytes (`tflite_model`).
        batch: rows per call.
        threads: the interpreter's threads (default: TFLite's).

    Returns:
        run(x): x (batch, *input shape) float32, as the user's model takes it -> (batch, outputs) float32 (a copy).
    """
    import tensorflow as tf

    with warnings.catch_warnings():  # tf.lite.Interpreter's notice that LiteRT replaces it
        warnings.simplefilter("ignore")
        interpreter = tf.lite.Interpreter(model_content=model, num_threads=threads)
    source, target = interpreter.get_input_details()[0], interpreter.get_output_details()[0]
    interpreter.resize_tensor_input(source["index"], [batch, *source["shape"][1:]])
    interpreter.allocate_tensors()

    def run(x: np.ndarray) -> np.ndarray:
        interpreter.set_tensor(source["index"], np.ascontiguousarray(x, dtype=np.float32))
        interpreter.invoke()
        return interpreter.get_tensor(target["index"]).copy()

    return run


def tflite_speedup(dense: bytes, pruned: bytes, x: np.ndarray, repeats: int = 11, threads: int | None = None) -> dict:
    """A TFLite model's speed against the dense one's, from interleaved timed calls of both on the batch x.

    Args:
        dense, pruned: .tflite files' bytes (`tflite_model` of the unpruned and the pruned network).
        x: (batch, *input shape) float32, as the models take it.
        repeats: timed pairs.
        threads: the interpreters' threads (default: TFLite's).

    Returns:
        {"dense_ms", "ms": median ms per call of each, "speedup": the median of the per-pair ratios,
        "speedup_low", "speedup_high": their interquartile range}.
    """
    runs = [tflite_runner(m, len(x), threads) for m in (dense, pruned)]
    calls = max(1, 2000 // len(x))  # about the same work per pair at every batch size
    for run in runs:
        run(x)  # warm up: the first call allocates
    seconds = np.empty((repeats, 2))  # (pair, model) seconds per call
    for i in range(repeats):
        for j, run in enumerate(runs):
            start = time.perf_counter()
            for _ in range(calls):
                run(x)
            seconds[i, j] = (time.perf_counter() - start) / calls
    ratio = seconds[:, 0] / seconds[:, 1]  # (repeats,)
    return {
        "dense_ms": 1000 * float(np.median(seconds[:, 0])),
        "ms": 1000 * float(np.median(seconds[:, 1])),
        "speedup": float(np.median(ratio)),
        "speedup_low": float(np.percentile(ratio, 25)),
        "speedup_high": float(np.percentile(ratio, 75)),
    }


def user_inputs(net: Network, x: np.ndarray) -> np.ndarray:
    """Images with pixels in [0, 1] as the user's model takes them: its pixel scale and input shape.

    Args:
        net: the network (its `pixels` and `input_shape`).
        x: (n, 784) float32.

    Returns:
        (n, *input shape) float32.
    """
    x = np.asarray(x, dtype=np.float32)
    x = x if net.pixels == 1 else x * np.float32(net.pixels)
    return x.reshape((len(x), *(net.input_shape or (-1,))))


def curves_csv(records: Sequence[SweepRecord]) -> bytes:
    """Sweep records as UTF-8 CSV with the CLI's columns (`obd.work.sweep.to_csv`: mode, sparsity, accuracy, loss,
    kept_weights, then method, seconds, budget, fine-tuning)."""
    return to_csv(list(records)).encode()


def filename(kind: str, mode: str, method: str, sparsity: float) -> str:
    """A descriptive download name, e.g. "obd-unit-obs-90pct-shrunk.keras", "obd-weight-obd-90pct.tflite" or
    "obd-curves.csv".

    Args:
        kind: "masked", "shrunk", "tflite" or "curves".
        mode, method: how it was pruned.
        sparsity: fraction in [0, 1].

    Raises:
        ValueError: for an unknown kind.
    """
    if kind == "curves":
        return "obd-curves.csv"
    if kind == "tflite":
        return f"obd-{mode}-{method}-{100 * sparsity:g}pct.tflite"
    if kind not in ("masked", "shrunk"):
        raise ValueError(f"kind must be masked, shrunk, tflite or curves; got {kind!r}")
    return f"obd-{mode}-{method}-{100 * sparsity:g}pct-{kind}.keras"


def save_shrunk(net: Network, path: str | os.PathLike) -> Path:
    """Save `shrink(net)` as a (smaller) .keras model, atomically.

    Args:
        net: the (pruned) network.
        path: destination ending in .keras.

    Returns:
        The destination path.

    Raises:
        ValueError: when the path does not end in .keras.
    """
    from obd.training.model import save_model  # TensorFlow: loaded when someone saves

    return save_model(to_keras(shrink(net)), path)


def save_sparse(net: Network, path: str | os.PathLike) -> Path:
    """Save `shrink(net)` as compressed CSR arrays (np.savez_compressed), atomically; for size reports.

    Per layer i: the CSR of its kernel.T (a row per unit) as i_indptr, i_indices (uint32), i_data (float32);
    i_shape (the kernel's), and i_bias when it has one.

    Args:
        net: the (pruned) network.
        path: destination (written as given, conventionally ending in .npz).

    Returns:
        The destination path.
    """
    arrays = {}
    for i, layer in enumerate(shrink(net).layers):
        arrays[f"{i}_indptr"], arrays[f"{i}_indices"], arrays[f"{i}_data"] = csr([layer.kernel.T])
        arrays[f"{i}_shape"] = np.array(layer.kernel.shape)
        if layer.bias is not None:
            arrays[f"{i}_bias"] = layer.bias
    p = Path(path).expanduser()

    def write(tmp: str) -> None:
        with open(tmp, "wb") as f:
            # the ignore: numpy's stub reads **arrays as its allow_pickle argument
            np.savez_compressed(f, **arrays)  # type: ignore[arg-type]

    atomic_write(p, write)
    return p
