"""Downloads as bytes: the pruned model (.keras, pruned weights zeroed), the physically shrunk unit-pruned
model (.keras, smaller) and the accuracy curves (CSV, the CLI's columns).

Both models are plain Keras Sequential models of Dense layers that end in logits: `keras.saving.load_model`
reads them without obd installed, and their argmax is the prediction obd evaluates. Files go through a
temporary folder because Keras saves only to paths.
"""

from __future__ import annotations

import os
import tempfile
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


def curves_csv(records: Sequence[SweepRecord]) -> bytes:
    """Sweep records as UTF-8 CSV with the CLI's columns (`obd.work.sweep.to_csv`: mode, sparsity, accuracy, loss,
    kept_weights, then method, seconds, budget, fine-tuning)."""
    return to_csv(list(records)).encode()


def filename(kind: str, mode: str, method: str, sparsity: float) -> str:
    """A descriptive download name, e.g. "obd-unit-obs-90pct-shrunk.keras" or "obd-curves.csv".

    Args:
        kind: "masked", "shrunk" or "curves".
        mode, method: how it was pruned.
        sparsity: fraction in [0, 1].

    Raises:
        ValueError: for an unknown kind.
    """
    if kind == "curves":
        return "obd-curves.csv"
    if kind not in ("masked", "shrunk"):
        raise ValueError(f"kind must be masked, shrunk or curves; got {kind!r}")
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
