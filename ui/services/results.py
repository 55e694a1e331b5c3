"""A state's results (its point: accuracy, loss, predictions; its pruned net; its latency) and a choice's curve:
each looked up in memory, then on disk, then computed by a background job (or inline when that is quick and the
session is the server's only one, `models.inline_ok` and `boards.alone`)."""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import asdict
from pathlib import Path

import numpy as np
import streamlit as st

from obd.core.cache import LruCache, atomic_write
from obd.core.pruning import LayerReport, Pruned, PruneReport, report
from obd.runtime import latency as timing
from obd.runtime.evaluate import Evaluation
from obd.runtime.speedups import Speedup
from obd.teach import facts
from obd.work.jobs import Job
from obd.work.sweep import DEFAULT_SPARSITIES, SweepPoint, SweepRecord, curve_path, load_records, save_records
from obd.work.warm import load_speed, save_speed, speed_table
from ui.services import boards
from ui.services.boards import URGENT, board_for, poll_s, submit
from ui.services.models import calib_for, data, estimate, inline_ok, network, plan_for, remembered, stores
from ui.services.state import Choice, ModelKey

LATENCY_BATCH = 100  # rows per call for the headline latency: what a served request looks like


def compute_point(key: ModelKey, c: Choice, k: int) -> dict:
    """Prune at k percent and evaluate on the test set (obd.work.sweep's point, as the curves and the CLI compute it);
    keeps the result (and the pruned net) for every session.

    Returns:
        {"accuracy", "loss", "predictions" (int8), "class_accuracy", "report", "record" (a SweepRecord)}
    """
    d = data()
    # "auto": the shrunk or sparse engine when that is faster
    pruned, ev, record = SweepPoint(
        network(key),
        c.method,
        c.mode,
        k / 100,
        c.budget,
        c.prune_output,
        engine="auto",
        x=d.x_test,
        y=d.y_test,
        calib=calib_for(c.method),
        plan=plan_for(key, c),
    ).run()
    point = {
        "accuracy": ev.accuracy,
        "loss": ev.loss,
        "predictions": ev.predictions.astype(np.int8),
        "class_accuracy": class_accuracy(ev.predictions, d.y_test),
        "report": report(pruned),
        "record": record,
    }
    stores()["points"].put((key, c, k), point)
    _pruned_store(c).put((key, c, k), pruned)
    _save_point(key, c, k, point)
    return point


def _point_file(key: ModelKey, c: Choice, k: int) -> Path:
    """Where a point is kept on disk, named like its curve (by the network's weights), so that a later start shows
    the metrics of a state seen before without building a plan or evaluating anything."""
    curve = curve_file(key, c)
    return curve.parent.parent / "points" / f"{curve.stem}-{k}.npz"


def _save_point(key: ModelKey, c: Choice, k: int, point: dict) -> None:
    """Keep a point on disk (12 KB: the predictions as int8); atomic, and a failure only costs a recomputation."""
    meta = {
        "accuracy": point["accuracy"],
        "loss": point["loss"],
        "record": asdict(point["record"]),
        "report": [asdict(layer) for layer in point["report"].layers],
    }

    def write(tmp: str) -> None:
        with open(tmp, "wb") as f:
            np.savez(
                f,
                predictions=point["predictions"],
                class_accuracy=point["class_accuracy"],
                meta=np.array(json.dumps(meta)),
            )

    try:
        atomic_write(_point_file(key, c, k), write)
    except OSError:
        pass


def _load_point(key: ModelKey, c: Choice, k: int) -> dict | None:
    """A point saved by `_save_point`, or None when it is not on disk or unreadable (then it is recomputed)."""
    try:
        with np.load(_point_file(key, c, k), allow_pickle=False) as z:
            meta = json.loads(str(z["meta"]))
            return {
                "accuracy": meta["accuracy"],
                "loss": meta["loss"],
                "predictions": z["predictions"],
                "class_accuracy": z["class_accuracy"],
                "record": SweepRecord(**meta["record"]),
                "report": PruneReport(tuple(LayerReport(**layer) for layer in meta["report"])),
            }
    except (OSError, ValueError, KeyError, TypeError):
        return None


def class_accuracy(predictions: np.ndarray, labels: np.ndarray) -> np.ndarray:
    return np.array([(predictions[labels == c] == c).mean() for c in range(10)])


def point_job_key(key: ModelKey, c: Choice, k: int) -> tuple:
    return ("point", key, c, k)


def point(key: ModelKey, c: Choice, k: int) -> dict | None:
    """The state's results if they exist (or are quick to make here); else None, with a background job started."""
    if (found := _known_point(key, c, k)) is not None:
        return found
    if inline_ok(c) and boards.alone():
        return compute_point(key, c, k)
    job = _submit_point(key, c, k, f"about {estimate(key, c.method, c.mode, 1):.0f} s", priority=URGENT)
    if job.finished and job.error is None:  # done between the lookup and the submit
        return stores()["points"].get((key, c, k)) or compute_point(key, c, k)
    return None


def prefetch(key: ModelKey, c: Choice, k: int) -> None:
    """Start a state's point in the background (never inline) unless it is in memory, on disk or under way: for a
    state the user is likely to open next (the lesson's next step)."""
    if _known_point(key, c, k) is None and point_job(key, c, k) is None:
        _submit_point(key, c, k, "ahead of the lesson")


def _known_point(key: ModelKey, c: Choice, k: int) -> dict | None:
    """The state's point from memory or disk, else None."""
    return remembered("points", (key, c, k), lambda: _load_point(key, c, k))


def _submit_point(key: ModelKey, c: Choice, k: int, note: str, **kwargs) -> Job:
    """The background job computing a state's point (`note` ends its label)."""
    tasks = [lambda: compute_point(key, c, k) and None]
    return submit(c, point_job_key(key, c, k), tasks, label=f"{c.method} {c.mode} pruning at {k} % ({note})", **kwargs)


def point_job(key: ModelKey, c: Choice, k: int) -> Job | None:
    return board_for(c).get(point_job_key(key, c, k))


def pruned(key: ModelKey, c: Choice, k: int) -> Pruned | None:
    """The pruned network of a state: kept from its point, or made here when that is quick; otherwise None, with a
    background job making it (a point read from disk has no pruned net; an OBS one takes a reconstruction)."""
    if (found := _pruned_quick(key, c, k)) is not None:
        return found
    boards.rebuild(
        c,
        ("pruned", key, c, k),
        [lambda: compute_point(key, c, k) and None],
        label=f"rebuilding the {c.method} {c.mode} network at {k} %",
        priority=URGENT,
    )
    return stores()["pruned"].get((key, c, k))


def baseline_choice(c: Choice) -> Choice:
    """What a state is compared with in words: magnitude pruning of the same mode, budget and output layer."""
    return Choice("magnitude", c.mode, c.budget, c.prune_output)


def state_facts(key: ModelKey, c: Choice, k: int, start: bool = True) -> facts.Facts:
    """The numbers the explanation and the lesson quote for a state whose point and pruned net exist: its
    latency (`speed`; its timing started unless `start` is False) and magnitude's point at the same sparsity,
    once they exist."""
    return _facts(key, c, k, speed(key, c, k, start), point(key, baseline_choice(c), k) is not None)


@st.cache_resource(max_entries=64, show_spinner=False)
def _facts(key: ModelKey, c: Choice, k: int, measured: Speedup | None, with_baseline: bool) -> facts.Facts:
    # kept per state: finding the shrunk shapes takes a quarter second for the default net
    ev = lambda p: Evaluation(p["accuracy"], p["loss"], p["predictions"])  # noqa: E731
    baseline = ev(point(key, baseline_choice(c), k)) if with_baseline else None
    return facts.facts(
        network(key),
        pruned(key, c, k),
        ev(point(key, c.dense(), 0)),
        ev(point(key, c, k)),
        c.method,
        measured,
        baseline,
    )


def wait_for_pruned(v) -> None:
    """A view's placeholder while the state's pruned network is rebuilt in the background; reruns the page when
    it exists (a `ui.services.state.View`)."""
    st.info(f"Rebuilding the {v.choice.method} {v.choice.mode} network at {v.k} % in the background…")

    @st.fragment(run_every=poll_s(1.0, urgent=True))
    def poll() -> None:
        if stores()["pruned"].get((v.key, v.choice, v.k)) is not None:
            st.rerun()
        board_for(v.choice).touch(("pruned", v.key, v.choice, v.k))

    poll()


def _pruned_now(key: ModelKey, c: Choice, k: int) -> Pruned:
    """`pruned`, computed in the calling thread if need be: for tasks that already run in the background."""
    if (found := _pruned_quick(key, c, k)) is not None:
        return found
    compute_point(key, c, k)
    return stores()["pruned"].get((key, c, k))


def _pruned_store(c: Choice) -> LruCache:
    """Where a choice's pruned nets are kept: "remade" for those a plan in memory remakes in 10 ms (`inline_ok`),
    "pruned" for those a reconstruction or a Hessian made."""
    return stores()["remade" if inline_ok(c) else "pruned"]


def _pruned_quick(key: ModelKey, c: Choice, k: int) -> Pruned | None:
    """The state's pruned net if it is kept, or remade here when its pruning is a mask from its plan (the same net
    its point was evaluated on, in about 10 ms with the plan in memory, no evaluation); else None."""
    if (found := _pruned_store(c).get((key, c, k))) is None and inline_ok(c):
        found = plan_for(key, c).prune(k / 100)
        _pruned_store(c).put((key, c, k), found)
    return found


# ---------------------------------------------------------------- latency
def latency(key: ModelKey, c: Choice, k: int, start: bool = True) -> timing.Latency | None:
    """Dense vs the engine "auto" picks on LATENCY_BATCH test images, measured as a background job (so it never
    runs beside other background work); None until measured. `start=False` only looks: no job is started.

    A latency depends on the pruned net's structure only (obd.runtime.latency.structure_key): obd.runtime.latency keeps
    one reading per structure, so nets of identical shapes read identically and a second state of the same shapes
    costs no timing. Finding the structure takes a shrink of the net (a quarter second for the default one), so
    the job does that too, and the page keeps the result per state.
    """
    if (structure := stores()["structures"].get((key, c, k))) is not None:
        if (found := stores()["latency"].get(structure)) is not None:
            return found

    def measure() -> timing.Latency:
        net = _pruned_now(key, c, k).net
        structure = timing.structure_key(net)
        reading = timing.latency(net, data().x_test[:LATENCY_BATCH])
        stores()["latency"].put(structure, reading)
        stores()["structures"].put((key, c, k), structure)
        return reading

    if not start:
        return None
    job = submit(None, ("latency", key, c, k), [measure], label="timing the pruned network", hold=boards.training)
    return job.results().get(0) if job.finished else None


def speed(key: ModelKey, c: Choice, k: int, start: bool = True) -> Speedup | None:
    """The state's `latency` as the one reading every text words (`obd.runtime.speedups.speedup_text`)."""
    lat = latency(key, c, k, start)
    return None if lat is None else Speedup.of_latency(lat, LATENCY_BATCH)


# ---------------------------------------------------------------- curves
def curve_file(key: ModelKey, c: Choice) -> Path:
    return curve_path(network(key), c.method, c.mode, c.budget, c.prune_output)


def curve_job_key(key: ModelKey, c: Choice) -> tuple:
    return ("curve", key, c)


def curve(key: ModelKey, c: Choice, k_first: int | None = None) -> tuple[list[SweepRecord], Job | None]:
    """A curve's records so far (all of them once computed) and its job while it runs.

    The first time, a background job computes the points of DEFAULT_SPARSITIES (the current sparsity first when
    it is one of them), each joining the shared points as it finishes; the finished curve is saved to disk.
    """
    cid = (key, c)
    if (done := remembered("curves", cid, lambda: load_records(curve_file(key, c)))) is not None:
        return done, None
    ks = [round(100 * s) for s in DEFAULT_SPARSITIES]
    first = ks.index(k_first) if k_first in ks else None
    jk = curve_job_key(key, c)
    job = board_for(c).get(jk)
    if job is None:
        tasks = [_curve_task(key, c, k) for k in ks]
        about = estimate(key, c.method, c.mode, len(ks))
        job = submit(
            c,
            jk,
            tasks,
            label=f"{c.method} {c.mode} curve ({c.budget} budget, about {about:.0f} s)",
            first=first,
            hold=boards.training,
        )
    else:
        board_for(c).touch(jk, first=first)
    results = job.results()
    records = [results[i] for i in sorted(results)]
    if job.finished and job.error is None and len(records) == len(ks):
        save_records(records, curve_file(key, c))
        stores()["curves"].put(cid, records)
        return records, None
    return records, job


def _curve_task(key: ModelKey, c: Choice, k: int) -> Callable[[], SweepRecord]:
    def task() -> SweepRecord:
        found = stores()["points"].get((key, c, k))
        return (found or compute_point(key, c, k))["record"]

    return task


def speed_job(key: ModelKey, batch: int, prune_output: bool) -> tuple[list[dict] | None, Job | None]:
    """The engines' latency table at one batch size (from the disk cache, which `python -m obd warm` fills, or a
    background job); the job is None when the table came from the disk."""
    net = network(key)
    if (saved := load_speed(net, batch, prune_output)) is not None:
        return saved, None

    def measure() -> list[dict]:
        records = speed_table(net, batch, prune_output)
        save_speed(records, net, batch, prune_output)
        return records

    job = submit(None, ("speed", key, batch, prune_output), [measure], label=f"timing the engines at batch {batch:,}")
    return (job.results().get(0) if job.finished else None), job
