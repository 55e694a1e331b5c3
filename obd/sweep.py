"""Accuracy-vs-sparsity sweeps: prune at many sparsities in several modes and evaluate each on the test set."""

from __future__ import annotations

import csv
import io
import json
import os
import time
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Callable, Iterable, Sequence

import numpy as np

from .data import Mnist, load_mnist
from .evaluate import evaluate
from .finetune import ProgressFn, check_epochs, check_gradual, finetune, gradual
from .methods import NEEDS_CALIBRATION, Calibration, Plan, calibration, check_method, plan, supports
from .network import Network, as_network
from .pruning import check_budget, check_mode, check_sparsity

DEFAULT_SPARSITIES = (0.0, 0.25, 0.5, 0.6, 0.7, 0.8, 0.9, 0.95, 0.97, 0.99)
CSV_COLUMNS = ("mode", "sparsity", "accuracy", "loss", "kept_weights")


@dataclass(frozen=True)
class SweepRecord:
    mode: str  # "weight" or "unit"
    sparsity: float  # fraction in [0, 1]
    accuracy: float  # test accuracy, fraction
    loss: float  # test cross-entropy
    kept_weights: int  # non-zero kernel entries left in the whole network
    method: str = "magnitude"  # the pruning criterion, see obd.methods.METHODS
    seconds: float = 0.0  # time to prune (and reconstruct or fine-tune) and evaluate this point
    budget: str = "layer"  # "layer" or "global"
    finetune_epochs: float = 0.0  # epochs of fine-tuning with fixed masks; 0 = one-shot
    gradual_steps: int = 1  # pruning stages of a fine-tuned point (1: prune once, then fine-tune)
    setup_seconds: float = 0.0  # one-off time of the method's plan for this mode (Hessian, calibration, orders)


@dataclass(frozen=True)
class SweepStep:
    """What a sweep's progress callback receives before each point."""

    done: int
    total: int
    mode: str
    sparsity: float
    method: str = "magnitude"
    finetune_epochs: float = 0.0
    gradual_steps: int = 1


def sweep_pairs(methods: Iterable[str], modes: Iterable[str], finetune_epochs: float = 0.0,
                gradual_steps: int = 1) -> list[tuple[str, str]]:
    """Check a sweep's methods, modes and fine-tuning settings; the (method, mode) pairs it will run, methods
    outer. A pair the method does not support (sparsegpt x unit) is left out.

    Raises:
        ValueError: for an unknown method or mode, none given, invalid epochs or steps, gradual steps without
            fine-tuning or with a reconstruction method, or no pair left to run.
    """
    methods = [check_method(m) for m in methods]
    modes = [check_mode(m) for m in modes]
    if not modes or not methods:
        raise ValueError("a sweep needs at least one sparsity, mode and method")
    if finetune_epochs != 0:
        check_epochs(finetune_epochs)
    if isinstance(gradual_steps, bool) or not isinstance(gradual_steps, int) or gradual_steps < 1:
        raise ValueError(f"gradual_steps must be a whole number of at least 1, got {gradual_steps!r}")
    if gradual_steps > 1 and not finetune_epochs > 0:
        raise ValueError("gradual pruning fine-tunes between its steps: give fine-tuning epochs too "
                         "(finetune_epochs, --finetune-epochs)")
    pairs = [(method, mode) for method in methods for mode in modes if supports(method, mode)]
    if not pairs:
        raise ValueError(f"none of the methods {', '.join(methods)} prunes in mode {', '.join(modes)}")
    if gradual_steps > 1:
        for method, mode in pairs:
            check_gradual(method, mode)
    return pairs


def sweep(model, sparsities: Iterable[float] = DEFAULT_SPARSITIES, modes: Iterable[str] = ("weight", "unit"),
          *, x: np.ndarray | None = None, y: np.ndarray | None = None, prune_output: bool = False,
          progress: Callable[[SweepStep], None] | None = None, methods: Iterable[str] = ("magnitude",),
          budget: str = "layer", calib: Calibration | None = None, finetune_epochs: float = 0.0,
          train_data: Mnist | None = None, gradual_steps: int = 1, train_progress: ProgressFn | None = None,
          seed: int = 0, engine: str = "dense", plans: Sequence[Plan] = ()) -> list[SweepRecord]:
    """Prune `model` at every (method, mode, sparsity) and evaluate each pruned copy.

    Args:
        model: a Network or a Keras model of Dense layers (not changed).
        sparsities: fractions in [0, 1].
        modes: "weight" and/or "unit".
        x, y: evaluation inputs (n, 784) and labels (n,); by default the MNIST test set (`load_mnist()`).
        prune_output: prune the logits layer too.
        progress: called before each point with a SweepStep.
        methods: criteria from obd.methods.METHODS; a (method, mode) the method does not support
            (sparsegpt x unit) is skipped.
        budget: "layer" or "global" (see obd.methods.plan).
        calib: calibration sample for obd/obs (default: obd.methods.calibration(), training images).
        finetune_epochs: when > 0, every point is also fine-tuned for this many epochs with its masks fixed,
            giving a second record (finetune_epochs > 0) after the one-shot one.
        train_data: MNIST for fine-tuning (required when finetune_epochs > 0).
        gradual_steps: with fine-tuning, prune in this many stages towards each sparsity, fine-tuning
            finetune_epochs / gradual_steps between them (`obd.finetune.gradual`; not obs or
            sparsegpt); 1 = prune once, then fine-tune.
        train_progress: called after every fine-tuning batch with an `obd.finetune.FinetuneProgress`.
        seed: random's seed.
        engine: how each point is evaluated (`obd.evaluate.evaluate`); "auto" is faster at high sparsity.
        plans: already built `obd.methods.plan`s of this network, budget and prune_output to reuse (the app
            keeps them cached; network, budget and prune_output are checked, calibration and seed are the
            caller's to match); any other (method, mode) is planned here.

    Returns:
        SweepRecords, methods outer, then modes, then sparsities in the given order.

    Raises:
        ValueError: for an invalid sparsity, mode, method, budget or fine-tuning setting, or when no method
            supports any of the modes (checked before any work starts).
    """
    net: Network = as_network(model)
    ks = [check_sparsity(k) for k in sparsities]
    if not ks:
        raise ValueError("a sweep needs at least one sparsity, mode and method")
    pairs = sweep_pairs(methods, modes, finetune_epochs, gradual_steps)
    check_budget(budget)
    if finetune_epochs > 0 and train_data is None:
        raise ValueError("fine-tuning needs the training data (train_data)")
    if x is None or y is None:
        if x is not None or y is not None:
            raise ValueError("give both x and y, or neither (the MNIST test set)")
        test = load_mnist()
        x, y = test.x_test, test.y_test
    built = {(p.method, p.mode): p for p in plans}
    for p in plans:
        if p.net is not net or p.budget != budget or p.prune_output != prune_output:
            raise ValueError(f"the {p.method} {p.mode} plan was built for another network, budget or prune_output")
    if calib is None and set(NEEDS_CALIBRATION) & {method for method, _ in pairs}:
        calib = calibration(train_data)
    epochs = [0.0] + ([float(finetune_epochs)] if finetune_epochs > 0 else [])
    records, total = [], len(ks) * len(pairs) * len(epochs)
    for method, mode in pairs:
        p = built.get((method, mode)) or plan(net, method, mode, budget, prune_output, calib, seed)  # once each
        for k in ks:
            for e in epochs:
                steps = gradual_steps if e > 0 else 1
                if progress is not None:
                    progress(SweepStep(len(records), total, mode, k, method, e, steps))
                start = time.perf_counter()
                if steps > 1:
                    pruned = gradual(net, k, train_data, e, steps, mode, method, budget, prune_output, calib, seed,
                                     train_progress)
                else:
                    pruned = p.prune(k)
                    if e > 0:
                        pruned = finetune(pruned, train_data, e, train_progress)
                ev = evaluate(pruned.net, x, y, engine=engine)
                kept = int(sum(m.sum() for m in pruned.masks))
                records.append(SweepRecord(mode, k, ev.accuracy, ev.loss, kept, method,
                                           time.perf_counter() - start, budget, e, steps, p.seconds))
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


def save_records(records: list[SweepRecord], path: str | os.PathLike) -> Path:
    """Write sweep records as JSON, atomically (a reader never sees half a file)."""
    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    tmp = p.with_name(f".{p.name}.{os.getpid()}.tmp")
    tmp.write_text(json.dumps([asdict(r) for r in records]))
    os.replace(tmp, p)
    return p


def load_records(path: str | os.PathLike) -> list[SweepRecord] | None:
    """Records saved by `save_records`, or None when the file is missing or unreadable (recompute then)."""
    try:
        return [SweepRecord(**r) for r in json.loads(Path(path).read_text())]
    except (OSError, ValueError, TypeError):
        return None
