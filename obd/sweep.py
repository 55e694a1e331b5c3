"""Accuracy-vs-sparsity sweeps: prune at many sparsities in several modes and evaluate each on the test set."""

from __future__ import annotations

import csv
import io
import time
from dataclasses import asdict, dataclass, fields
from typing import Callable, Iterable

import numpy as np

from .evaluate import evaluate
from .network import Network, as_network
from .pruning import check_mode, check_sparsity, prune, rank

DEFAULT_SPARSITIES = (0.0, 0.25, 0.5, 0.6, 0.7, 0.8, 0.9, 0.95, 0.97, 0.99)
CSV_COLUMNS = ("mode", "sparsity", "accuracy", "loss", "kept_weights")


@dataclass(frozen=True)
class SweepRecord:
    mode: str  # "weight" or "unit"
    sparsity: float  # fraction in [0, 1]
    accuracy: float  # test accuracy, fraction
    loss: float  # test cross-entropy
    kept_weights: int  # non-zero kernel entries left in the whole network
    method: str = "magnitude"  # the pruning criterion
    seconds: float = 0.0  # time to prune and evaluate this point


@dataclass(frozen=True)
class SweepStep:
    """What a sweep's progress callback receives before each point."""

    done: int
    total: int
    mode: str
    sparsity: float


def sweep(model, x: np.ndarray, y: np.ndarray, sparsities: Iterable[float] = DEFAULT_SPARSITIES,
          modes: Iterable[str] = ("weight", "unit"), prune_output: bool = False,
          progress: Callable[[SweepStep], None] | None = None) -> list[SweepRecord]:
    """Prune `model` at every (mode, sparsity) and evaluate each pruned copy.

    Args:
        model: a Network or a Keras model of Dense layers (not changed).
        x, y: evaluation inputs (n, 784) and labels (n,), usually the MNIST test set.
        sparsities: fractions in [0, 1].
        modes: "weight" and/or "unit".
        prune_output: prune the logits layer too.
        progress: called before each point with a SweepStep.

    Returns:
        One SweepRecord per (mode, sparsity), modes outer, sparsities in the given order.

    Raises:
        ValueError: for an invalid sparsity or mode (checked before any work starts).
    """
    net: Network = as_network(model)
    ks = [check_sparsity(k) for k in sparsities]
    modes = [check_mode(m) for m in modes]
    if not ks or not modes:
        raise ValueError("a sweep needs at least one sparsity and one mode")
    records, total = [], len(ks) * len(modes)
    for mode in modes:
        ranking = rank(net, mode, prune_output)  # sorted once per mode, reused for every sparsity
        for k in ks:
            if progress is not None:
                progress(SweepStep(len(records), total, mode, k))
            start = time.perf_counter()
            pruned = prune(net, k, ranking=ranking)
            ev = evaluate(pruned.net, x, y)
            kept = int(sum(m.sum() for m in pruned.masks))
            records.append(SweepRecord(mode, k, ev.accuracy, ev.loss, kept, seconds=time.perf_counter() - start))
    return records


def to_csv(records: list[SweepRecord]) -> str:
    """CSV text: mode,sparsity,accuracy,loss,kept_weights first (sparsity as a fraction), then method, seconds."""
    extra = [f.name for f in fields(SweepRecord) if f.name not in CSV_COLUMNS]
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=list(CSV_COLUMNS) + extra, lineterminator="\n")
    writer.writeheader()
    for r in records:
        writer.writerow(asdict(r))
    return out.getvalue()
