"""Accuracy-vs-sparsity sweeps: prune at many sparsities in several modes and evaluate each on the test set."""

from __future__ import annotations

import csv
import io
import json
import math
import os
import queue
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import asdict, dataclass, field, fields, replace
from pathlib import Path

import numpy as np

from obd.core.cache import atomic_write, cache_dir, memo_digest, source_digest
from obd.core.data import Mnist, load_mnist
from obd.core.network import Network, as_network
from obd.core.pruning import BUDGETS, Pruned, check_budget, check_mode, check_sparsity
from obd.methods.registry import (
    NEEDS_CALIBRATION,
    Calibration,
    Plan,
    cached_plan,
    calibration,
    check_method,
    check_method_mode,
    method_modules,
    supports,
)
from obd.runtime.evaluate import Evaluation, evaluate
from obd.training.finetune import ProgressFn, check_epochs, check_gradual, finetune, gradual
from obd.work.jobs import Job, JobBoard, check_scheduler

DEFAULT_SPARSITIES = (0.0, 0.25, 0.5, 0.6, 0.7, 0.8, 0.9, 0.95, 0.97, 0.99)
CSV_COLUMNS = ("mode", "sparsity", "accuracy", "loss", "kept_weights")


@dataclass(frozen=True)
class SweepRecord:
    mode: str  # "weight" or "unit"
    sparsity: float  # fraction in [0, 1]
    accuracy: float  # test accuracy, fraction
    loss: float  # test cross-entropy
    kept_weights: int  # non-zero kernel entries left in the whole network
    method: str = "magnitude"  # the pruning criterion, see obd.methods.registry.METHODS
    seconds: float = 0.0  # time to prune (and reconstruct or fine-tune) and evaluate this point
    budget: str = "layer"  # one of obd.core.pruning.BUDGETS
    finetune_epochs: float = 0.0  # epochs of fine-tuning with fixed masks; 0 = one-shot
    gradual_steps: int = 1  # pruning stages of a fine-tuned point (1: prune once, then fine-tune)
    setup_seconds: float = 0.0  # one-off time of the method's plan for this mode (Hessian, calibration, orders)
    fallback: bool = False  # the method found nothing better than magnitude here: this is magnitude's network


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


def sweep_pairs(
    methods: Iterable[str],
    modes: Iterable[str],
    finetune_epochs: float = 0.0,
    gradual_steps: int = 1,
    budget: str = "layer",
) -> list[tuple[str, str]]:
    """Check a sweep's methods, modes, budget and fine-tuning settings; the (method, mode) pairs it will run,
    methods outer. A pair the method does not support (sparsegpt x unit, random x loss-aware) is left out.

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
        raise ValueError(
            "gradual pruning fine-tunes between its steps: give fine-tuning epochs too "
            "(finetune_epochs, --finetune-epochs)"
        )
    pairs = [(method, mode) for method in methods for mode in modes if supports(method, mode, budget)]
    if not pairs:
        raise ValueError(
            f"none of the methods {', '.join(methods)} prunes in mode {', '.join(modes)} with the {budget} budget"
        )
    if gradual_steps > 1:
        for method, mode in pairs:
            check_gradual(method, mode)
    return pairs


@dataclass(frozen=True, eq=False)
class SweepPoint:
    """One point of a sweep as a job's task: calling it prunes (and fine-tunes) and evaluates, giving a SweepRecord.

    Picklable (cloudpickle ships it to Dask workers) as long as `events` is None. Data left None is loaded where
    the point runs (`load_mnist()`, cached per process), so a Dask worker reads its own MNIST instead of receiving
    it; the method's plan comes from `obd.methods.registry.cached_plan`, built once per process.
    """

    net: Network
    method: str  # one of obd.methods.registry.METHODS
    mode: str  # "weight" or "unit"
    sparsity: float  # fraction in [0, 1]
    budget: str = "layer"  # one of obd.core.pruning.BUDGETS
    prune_output: bool = False  # prune the logits layer too
    finetune_epochs: float = 0.0  # 0: one-shot
    gradual_steps: int = 1  # pruning stages of a fine-tuned point
    seed: int = 0  # random's seed
    engine: str = "dense"  # how the point is evaluated (obd.runtime.evaluate.evaluate)
    x: np.ndarray | None = field(default=None, repr=False)  # (n, 784) evaluation inputs; None: MNIST test set
    y: np.ndarray | None = field(default=None, repr=False)  # (n,) labels
    calib: Calibration | None = field(default=None, repr=False)  # None: obd.methods.registry.calibration() if needed
    train_data: Mnist | None = field(default=None, repr=False)  # for fine-tuning; None: load_mnist()
    plan: Plan | None = field(default=None, repr=False)  # a prebuilt plan to use instead of the cached one
    events: queue.SimpleQueue | None = field(default=None, repr=False)  # in-process: start and fine-tuning events

    def step(self, done: int, total: int) -> SweepStep:
        """The progress record of this point."""
        return SweepStep(done, total, self.mode, self.sparsity, self.method, self.finetune_epochs, self.gradual_steps)

    def run(self) -> tuple[Pruned, Evaluation, SweepRecord]:
        """Compute the point: the pruned (and fine-tuned) network, its evaluation (with predictions) and record."""
        if self.events is not None:
            self.events.put(self)  # "starting": the caller's thread turns it into a progress step
        p = self.plan or cached_plan(
            self.net, self.method, self.mode, self.budget, self.prune_output, self.calib, self.seed
        )
        if self.x is None:
            test = load_mnist()
            x, y = test.x_test, test.y_test
        elif self.y is None:
            raise ValueError("a point evaluated on its own inputs x needs their labels y")
        else:
            x, y = self.x, self.y
        relay = self.events.put if self.events is not None else None
        start = time.perf_counter()
        if self.gradual_steps > 1:
            pruned = gradual(
                self.net,
                self.sparsity,
                self.train_data or load_mnist(),
                self.finetune_epochs,
                self.gradual_steps,
                self.mode,
                self.method,
                self.budget,
                self.prune_output,
                self.calib,
                self.seed,
                relay,
            )
        else:
            pruned = p.prune(self.sparsity)
            if self.finetune_epochs > 0:
                pruned = finetune(pruned, self.train_data or load_mnist(), self.finetune_epochs, relay)
        ev = evaluate(pruned.net, x, y, engine=self.engine)
        kept = int(sum(m.sum() for m in pruned.masks))
        record = SweepRecord(
            self.mode,
            self.sparsity,
            ev.accuracy,
            ev.loss,
            kept,
            self.method,
            time.perf_counter() - start,
            self.budget,
            self.finetune_epochs,
            self.gradual_steps,
            p.seconds,
            pruned.fallback,
        )
        return pruned, ev, record

    def __call__(self) -> SweepRecord:
        """The point's record (what a job's task returns; see `run`)."""
        return self.run()[2]


def sweep_points(
    model,
    sparsities: Iterable[float] = DEFAULT_SPARSITIES,
    modes: Iterable[str] = ("weight", "unit"),
    *,
    x: np.ndarray | None = None,
    y: np.ndarray | None = None,
    prune_output: bool = False,
    methods: Iterable[str] = ("magnitude",),
    budget: str = "layer",
    calib: Calibration | None = None,
    finetune_epochs: float = 0.0,
    train_data: Mnist | None = None,
    gradual_steps: int = 1,
    seed: int = 0,
    engine: str = "dense",
    plans: Sequence[Plan] = (),
    events: queue.SimpleQueue | None = None,
) -> list[SweepPoint]:
    """A sweep's points as tasks for a `obd.work.jobs.JobBoard`, checked before any work (see `sweep` for the
    arguments; x and y may stay None: the MNIST test set, loaded where each point runs).

    Args:
        events: a queue each point reports to while it runs in this process (itself when it starts, then
            fine-tuning progress); None for points that travel to other processes.

    Returns:
        SweepPoints, methods outer, then modes, sparsities, then one-shot before fine-tuned.

    Raises:
        ValueError: as `sweep`.
    """
    net: Network = as_network(model)
    ks = [check_sparsity(k) for k in sparsities]
    if not ks:
        raise ValueError("a sweep needs at least one sparsity, mode and method")
    pairs = sweep_pairs(methods, modes, finetune_epochs, gradual_steps, budget)
    if finetune_epochs > 0 and train_data is None:
        raise ValueError("fine-tuning needs the training data (train_data)")
    if (x is None) != (y is None):
        raise ValueError("give both x and y, or neither (the MNIST test set)")
    built = {(p.method, p.mode): p for p in plans}
    for p in plans:
        if p.net is not net or p.budget != budget or p.prune_output != prune_output:
            raise ValueError(f"the {p.method} {p.mode} plan was built for another network, budget or prune_output")
    if calib is None and (budget == "loss-aware" or set(NEEDS_CALIBRATION) & {method for method, _ in pairs}):
        calib = calibration(train_data)  # one sample for every point (a worker must not draw another)
    epochs = [0.0] + ([float(finetune_epochs)] if finetune_epochs > 0 else [])
    return [
        SweepPoint(
            net,
            method,
            mode,
            k,
            budget,
            prune_output,
            e,
            gradual_steps if e > 0 else 1,
            seed,
            engine,
            x,
            y,
            calib,
            train_data,
            built.get((method, mode)),
            events,
        )
        for method, mode in pairs
        for k in ks
        for e in epochs
    ]


def sweep(
    model,
    sparsities: Iterable[float] = DEFAULT_SPARSITIES,
    modes: Iterable[str] = ("weight", "unit"),
    *,
    x: np.ndarray | None = None,
    y: np.ndarray | None = None,
    prune_output: bool = False,
    progress: Callable[[SweepStep], None] | None = None,
    methods: Iterable[str] = ("magnitude",),
    budget: str = "layer",
    calib: Calibration | None = None,
    finetune_epochs: float = 0.0,
    train_data: Mnist | None = None,
    gradual_steps: int = 1,
    train_progress: ProgressFn | None = None,
    seed: int = 0,
    engine: str = "dense",
    plans: Sequence[Plan] = (),
    scheduler: str | None = None,
    workers: int = 1,
) -> list[SweepRecord]:
    """Prune `model` at every (method, mode, sparsity) and evaluate each pruned copy, as one job of a JobBoard.

    Args:
        model: a Network or a Keras model of Dense layers (not changed).
        sparsities: fractions in [0, 1].
        modes: "weight" and/or "unit".
        x, y: evaluation inputs (n, 784) and labels (n,); by default the MNIST test set (`load_mnist()`).
        prune_output: prune the logits layer too.
        progress: called with a SweepStep, in the caller's thread: in-process before each point, on Dask as
            each point finishes.
        methods: criteria from obd.methods.registry.METHODS; a (method, mode) the method does not support
            (sparsegpt x unit) is skipped.
        budget: one of obd.core.pruning.BUDGETS (see obd.methods.registry.plan).
        calib: calibration sample for obd/obs and loss-aware splits (default: obd.methods.registry.calibration(),
            training images).
        finetune_epochs: when > 0, every point is also fine-tuned for this many epochs with its masks fixed,
            giving a second record (finetune_epochs > 0) after the one-shot one.
        train_data: MNIST for fine-tuning (required when finetune_epochs > 0).
        gradual_steps: with fine-tuning, prune in this many stages towards each sparsity, fine-tuning
            finetune_epochs / gradual_steps between them (`obd.training.finetune.gradual`; not obs or
            sparsegpt); 1 = prune once, then fine-tune.
        train_progress: called after every fine-tuning batch with an `obd.training.finetune.FinetuneProgress`, in the
            caller's thread (in-process only: Dask workers report nothing back).
        seed: random's seed.
        engine: how each point is evaluated (`obd.runtime.evaluate.evaluate`); "auto" is faster at high sparsity.
        plans: already built `obd.methods.registry.plan`s of this network, budget and prune_output to reuse (the app
            keeps them cached; network, budget and prune_output are checked, calibration and seed are the
            caller's to match); any other (method, mode) comes from `obd.methods.registry.cached_plan`.
        scheduler: a Dask scheduler address (tcp://host:port): the points run on that cluster, as many at once
            as it has worker threads (its workers need obd and MNIST); None: in this process.
        workers: in-process, points run at once (threads); 1 keeps the order and the figures of a plain loop.

    Returns:
        SweepRecords, methods outer, then modes, then sparsities in the given order (the same on Dask).

    Raises:
        ValueError: for an invalid sparsity, mode, method, budget, fine-tuning setting or scheduler address, or
            when no method supports any of the modes (checked before any work starts); whatever a point raised.
        OSError: when no Dask scheduler answers at `scheduler`.
    """
    remote = scheduler is not None
    if remote:
        check_scheduler(scheduler)
    events: queue.SimpleQueue | None = None if remote else queue.SimpleQueue()
    points = sweep_points(
        model,
        sparsities,
        modes,
        x=x,
        y=y,
        prune_output=prune_output,
        methods=methods,
        budget=budget,
        calib=calib,
        finetune_epochs=finetune_epochs,
        train_data=train_data,
        gradual_steps=gradual_steps,
        seed=seed,
        engine=engine,
        plans=plans,
        events=events,
    )
    board = JobBoard.connect(scheduler, idle_s=math.inf) if remote else JobBoard(None, workers, math.inf)
    with board:
        job = board.submit("sweep", _for_workers(points) if remote else points, label="sweep")
        _follow(job, points, events, progress, train_progress)
        if (e := job.exception()) is not None:
            raise e
        results = job.results()
    return [results[i] for i in range(len(points))]


def _for_workers(points: list[SweepPoint]) -> list[SweepPoint]:
    """The points as they travel to Dask workers: this process's MNIST left out, since each worker loads its own
    (cached) instead of receiving 200 MB with every point."""
    if all(p.x is None and p.train_data is None for p in points):
        return points
    mnist = load_mnist()

    def travelling(p: SweepPoint) -> SweepPoint:
        on_test_set = p.x is mnist.x_test and p.y is mnist.y_test
        return replace(
            p,
            x=None if on_test_set else p.x,
            y=None if on_test_set else p.y,
            train_data=None if p.train_data is mnist else p.train_data,
        )

    return [travelling(p) for p in points]


def _follow(
    job: Job,
    points: list[SweepPoint],
    events: queue.SimpleQueue | None,
    progress: Callable[[SweepStep], None] | None,
    train_progress: ProgressFn | None,
) -> None:
    """Wait for a sweep's job, calling the progress callbacks in this thread: with the points' own events
    in-process (a start, then fine-tuning batches), or as each point finishes when they run elsewhere."""
    started = 0
    reported: set[int] = set()
    while True:
        settled = job.wait(0.05)
        if events is None:
            for i in sorted(set(job.results()) - reported):
                if progress is not None:
                    progress(points[i].step(len(reported), len(points)))
                reported.add(i)
        else:
            while True:
                try:
                    event = events.get_nowait()
                except queue.Empty:
                    break
                if isinstance(event, SweepPoint):
                    if progress is not None:
                        progress(event.step(started, len(points)))
                    started += 1
                elif train_progress is not None:
                    train_progress(event)
        if settled:
            return


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
    atomic_write(p, lambda tmp: Path(tmp).write_text(json.dumps([asdict(r) for r in records])))
    return p


def load_records(path: str | os.PathLike) -> list[SweepRecord] | None:
    """Records saved by `save_records`, or None when the file is missing or unreadable (recompute then)."""
    try:
        return [SweepRecord(**r) for r in json.loads(Path(path).read_text())]
    except (OSError, ValueError, TypeError):
        return None


def curve_path(net: Network, method: str, mode: str, budget: str = "layer", prune_output: bool = False) -> Path:
    """Where a curve (the DEFAULT_SPARSITIES sweep of one method, mode and budget) is kept on disk.

    Named by the network's fingerprint, so a retrained model gets new curves, and by a digest of the code that
    makes them (`code_digest`), so that a curve computed by other code is never read, in cache_dir():
    `curves/{fingerprint}-{method}-{mode}[-{budget} unless layer]-{int(prune_output)}-{code digest}.json`.

    Raises:
        ValueError: for an unknown method, mode or budget.
    """
    check_method(method)
    check_mode(mode)
    check_budget(budget)
    suffix = "" if budget == "layer" else f"-{budget}"
    fingerprint = memo_digest(net, "fingerprint", Network.fingerprint)
    name = f"{fingerprint}-{method}-{mode}{suffix}-{int(prune_output)}-{code_digest(method)}.json"
    return cache_dir() / "curves" / name


def code_digest(method: str) -> str:
    """A digest of the source of everything that makes `method`'s records: its modules
    (`obd.methods.registry.method_modules`: criteria, reconstruction, budgets, evaluation, with their settings)
    and this module (the records and the sparsities). Raises ValueError for an unknown method."""
    return source_digest(method_modules(method) + (__name__,))


def curve_points(
    net: Network,
    method: str,
    mode: str,
    budget: str = "layer",
    prune_output: bool = False,
    calib: Calibration | None = None,
    plans: Sequence[Plan] = (),
) -> list[SweepPoint]:
    """The tasks of one curve as the app draws and `python -m obd warm` caches it: DEFAULT_SPARSITIES on the
    MNIST test set, one-shot (see `sweep_points` for the arguments).

    Raises:
        ValueError: as `sweep_points`, including a method that does not prune in `mode`.
    """
    check_method_mode(method, mode)
    return sweep_points(
        net,
        DEFAULT_SPARSITIES,
        [mode],
        methods=[method],
        budget=budget,
        prune_output=prune_output,
        calib=calib,
        plans=plans,
    )


def load_curve(
    net: Network, method: str, mode: str, budget: str = "layer", prune_output: bool = False
) -> list[SweepRecord] | None:
    """A cached curve (see `curve_path`), or None when it is not on disk or unreadable."""
    return load_records(curve_path(net, method, mode, budget, prune_output))


def save_curve(
    records: list[SweepRecord], net: Network, method: str, mode: str, budget: str = "layer", prune_output: bool = False
) -> Path:
    """Cache a curve's records atomically (see `curve_path`); returns the file."""
    return save_records(records, curve_path(net, method, mode, budget, prune_output))


REFERENCE_WEIGHTS = 3_794_000  # the default challenge net's weights, on which SECONDS_PER_POINT was measured
# (method, mode) -> (plan setup s, mean s per point: prune or reconstruct, then evaluate the 10,000 test images);
# from `python -m benchmarks.quality` on the default net, 2 cores (its seconds-per-point table).
SECONDS_PER_POINT = {
    ("magnitude", "weight"): (0.5, 0.47),
    ("magnitude", "unit"): (0.0, 0.41),
    ("random", "weight"): (0.5, 0.43),
    ("random", "unit"): (0.0, 0.43),
    ("obd", "weight"): (3.0, 0.43),
    ("obd", "unit"): (2.7, 0.51),
    ("obd-fisher", "weight"): (1.1, 0.45),
    ("obd-fisher", "unit"): (0.8, 0.40),
    ("obs", "weight"): (0.7, 4.29),
    ("obs", "unit"): (8.8, 0.79),
    ("sparsegpt", "weight"): (0.6, 2.42),
    # chita refuses the default net: its figure is MLPNet's seconds per point (`python -m benchmarks.mlpnet`)
    # scaled up to the reference size, so that the estimate scales back down to the nets chita takes
    ("chita", "weight"): (0.0, 700.0),
}
FINETUNE_EPOCH_SECONDS = 12.0  # one epoch of fine-tuning the default net with fixed masks (as long as training)


def estimate_seconds(net: Network, method: str, mode: str, n_points: int, finetune_epochs: float = 0.0) -> float:
    """About how long a job of `n_points` sweep points takes, plan included.

    From this network's own cached curves of the method and mode when there are any (their measured seconds
    per point and plan setup, any budget); otherwise from the seconds per point measured on the default net
    (SECONDS_PER_POINT, 2 cores) scaled by the network's weight count, which is right for evaluation and
    fine-tuning but low for OBS and SparseGPT on small nets (their per-layer solves do not shrink as fast).

    Args:
        net: the unpruned network.
        method, mode: the criterion and mode (a pair `obd.methods.registry.supports`).
        n_points: points to compute (0: the plan alone).
        finetune_epochs: epochs of fine-tuning per point (0: one-shot).

    Raises:
        ValueError: for an unsupported method and mode, a negative n_points or finetune_epochs.
    """
    check_method_mode(method, mode)
    if isinstance(n_points, bool) or not isinstance(n_points, int) or n_points < 0:
        raise ValueError(f"n_points must be a whole number of at least 0, got {n_points!r}")
    if not finetune_epochs >= 0:
        raise ValueError(f"finetune_epochs must be at least 0, got {finetune_epochs!r}")
    scale = net.n_weights / REFERENCE_WEIGHTS
    setup, per_point = SECONDS_PER_POINT[(method, mode)]
    setup, per_point = setup * scale, per_point * scale
    for budget in BUDGETS:  # this net's own measurements, when it has any
        records = [
            r for po in (False, True) for r in load_curve(net, method, mode, budget, po) or () if r.finetune_epochs == 0
        ]
        if records:
            setup, per_point = records[0].setup_seconds, sum(r.seconds for r in records) / len(records)
            break
    return setup + n_points * (per_point + finetune_epochs * FINETUNE_EPOCH_SECONDS * scale)
