"""Warm the disk cache for a lecture: every method's curves and the engines' speed tables, computed ahead.

`python -m obd warm` runs `warm_curves` (each method x mode x budget, on threads or a Dask cluster through
`obd.work.jobs.JobBoard`) and `warm_speed` (latency tables at batch 1, 100 and 10,000, always on this machine: a
table timed elsewhere says nothing about the server). Both skip what is cached already. The files are the ones
the dashboard reads: curves by `obd.work.sweep.curve_path`, speed tables by `speed_path` here.
"""

from __future__ import annotations

import functools
import hashlib
import json
import math
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

from obd.core.cache import atomic_write, cache_dir, memo_digest, source_digest
from obd.core.data import load_mnist
from obd.core.network import Network, as_network
from obd.core.pruning import BUDGETS, MODES, check_budget
from obd.methods.registry import METHODS, NEEDS_CALIBRATION, calibration, check_method, supports
from obd.work.jobs import JobBoard
from obd.work.sweep import curve_points, estimate_seconds, load_curve, save_curve

SPEED_SPARSITIES = (0.0, 0.5, 0.8, 0.9, 0.95, 0.99)  # the dashboard's Speed tab
SPEED_BATCHES = (1, 100, 10_000)
SPEED_REPEATS = 3  # timed calls per engine, median kept


@dataclass(frozen=True)
class WarmPart:
    """One cached item of a warm run."""

    name: str  # e.g. "curve obs unit (global budget)", "speed table, batch 10,000"
    seconds: float  # compute time (summed over its points); 0 when it was cached already
    cached: bool  # found on disk, nothing computed
    error: str | None = None  # why it could not be computed (then nothing was saved)


def speed_path(net: Network, batch: int, prune_output: bool = False) -> Path:
    """Where an engines speed table of `net` at one batch size is kept: `{cache_dir}/speed/{fingerprint}-b{batch}-
    {int(prune_output)}-{machine_digest()}.json`: a table timed on another CPU or by other engine code is never
    read as this machine's."""
    fingerprint = memo_digest(net, "fingerprint", Network.fingerprint)
    return cache_dir() / "speed" / f"{fingerprint}-b{batch}-{int(prune_output)}-{machine_digest()}.json"


@functools.cache
def machine_digest() -> str:
    """A digest of this machine's CPU (`obd.runtime.bench.machine`: model, target, vectors, cores) and of the engine
    code (every module of obd.runtime)."""
    from obd.runtime.bench import machine  # llvmlite: asked once per process

    return hashlib.blake2b((machine() + source_digest(("obd.runtime.*",))).encode(), digest_size=8).hexdigest()


def speed_table(
    net: Network, batch: int, prune_output: bool = False, progress: Callable[[str], None] | None = None
) -> list[dict]:
    """The dashboard's speed table: `obd.runtime.bench.bench` of both modes at SPEED_SPARSITIES on the MNIST test set.

    Raises:
        ValueError: for a batch outside 1..10,000.
    """
    from obd.runtime.bench import bench  # numba: only a measurement needs it

    return bench(net, load_mnist().x_test, MODES, SPEED_SPARSITIES, (batch,), SPEED_REPEATS, prune_output, progress)


def load_speed(net: Network, batch: int, prune_output: bool = False) -> list[dict] | None:
    """A cached speed table, or None when it is not on disk or unreadable."""
    try:
        records = json.loads(speed_path(net, batch, prune_output).read_text())
    except (OSError, ValueError):
        return None
    return records if isinstance(records, list) else None


def save_speed(records: list[dict], net: Network, batch: int, prune_output: bool = False) -> Path:
    """Cache a speed table atomically (a reader never sees half a file); returns the file."""
    path = speed_path(net, batch, prune_output)
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write(path, lambda tmp: Path(tmp).write_text(json.dumps(records)))
    return path


def _prefixed(say: Callable[[str], None], prefix: str) -> Callable[[str], None]:
    """`say`, with `prefix` before each line."""
    return lambda line: say(prefix + line)


def curve_name(method: str, mode: str, budget: str) -> str:
    """How a curve is named in progress lines."""
    return f"curve {method} {mode} ({budget} budget)"


def warm_curves(
    model,
    methods: Iterable[str] = METHODS,
    budgets: Iterable[str] = BUDGETS,
    prune_output: bool = False,
    scheduler: str | None = None,
    progress: Callable[[str], None] | None = None,
) -> list[WarmPart]:
    """Compute and cache every curve of `methods` x both modes x `budgets` not on disk yet.

    Args:
        model: a Network or Keras model.
        methods: criteria (a mode or budget a method does not support is left out).
        budgets: from obd.core.pruning.BUDGETS (default: all).
        prune_output: prune the logits layer too.
        scheduler: a Dask scheduler address to run the points on (None: one thread here).
        progress: called with a line as each point finishes and each curve is saved.

    Returns:
        One WarmPart per curve, in order; a curve whose point failed has its error and is not saved.

    Raises:
        ValueError: for an unknown method or budget or a bad scheduler address (before any work).
        OSError: when no Dask scheduler answers at `scheduler`.
    """
    net = as_network(model)
    methods = [check_method(m) for m in methods]
    budgets = [check_budget(b) for b in budgets]
    wanted = [(m, mode, b) for m in methods for mode in MODES for b in budgets if supports(m, mode, b)]
    todo = [w for w in wanted if load_curve(net, *w, prune_output) is None]
    say = progress or (lambda line: None)
    reads_sample = any(m in NEEDS_CALIBRATION or b == "loss-aware" for m, _, b in todo)
    calib = calibration() if reads_sample else None  # one sample for all
    parts: dict[tuple, WarmPart] = {w: WarmPart(curve_name(*w), 0.0, True) for w in wanted if w not in todo}
    if todo:
        total = sum(estimate_seconds(net, m, mode, 10) for m, mode, _ in todo)
        say(f"{len(todo)} curves to compute ({len(wanted) - len(todo)} cached), about {total:.0f} s of work")
    board = JobBoard.connect(scheduler, idle_s=math.inf) if scheduler else JobBoard(None, 1, math.inf)
    with board:
        for w in reversed(todo):  # the last submitted goes first: so the curves run in the order listed
            board.submit(w, curve_points(net, w[0], w[1], w[2], prune_output, calib), label=curve_name(*w))
        shown = {w: 0 for w in todo}
        while len(parts) < len(wanted):
            time.sleep(0.2)
            for n, w in enumerate(todo, 1):
                job = board.get(w)
                if w in parts or job is None:
                    continue
                if job.done > shown[w]:
                    shown[w] = job.done
                    say(f"  [{n}/{len(todo)}] {job.label}: {job.done}/{job.total} points, {job.work_s:.1f} s")
                if job.error is not None:
                    parts[w] = WarmPart(job.label, job.work_s, False, job.error)
                    say(f"  [{n}/{len(todo)}] {job.label}: failed: {job.error}")
                elif job.finished:
                    results = job.results()
                    save_curve([results[i] for i in range(job.total)], net, *w, prune_output)
                    parts[w] = WarmPart(job.label, job.work_s, False)
    return [parts[w] for w in wanted]


def warm_speed(
    model,
    batches: Iterable[int] = SPEED_BATCHES,
    prune_output: bool = False,
    progress: Callable[[str], None] | None = None,
) -> list[WarmPart]:
    """Measure and cache the speed tables not on disk yet, on this machine, one after another (a table timed
    while other work runs would be wrong).

    Returns:
        One WarmPart per batch size.
    """
    net = as_network(model)
    say = progress or (lambda line: None)
    parts = []
    for batch in batches:
        name = f"speed table, batch {batch:,}"
        if load_speed(net, batch, prune_output) is not None:
            parts.append(WarmPart(name, 0.0, True))
            continue
        start = time.perf_counter()
        records = speed_table(net, batch, prune_output, _prefixed(say, f"  {name}: "))
        save_speed(records, net, batch, prune_output)
        parts.append(WarmPart(name, time.perf_counter() - start, False))
    return parts
