"""What every session shares: MNIST, each model's read-only network, pruning plans, evaluated points, curves,
latencies, and the job board that computes the slow ones in the background.

Nothing slow runs in a page's script: a plan, a reconstruction, a curve, a latency or a training is a job on
the server-wide `board()` (one job per key, whoever asks first), and the page draws what exists so far. Only
work that takes well under a second (a mask from a plan already in memory, an evaluation) runs inline, and an
evaluation only while the session is the server's only one (`alone`).
Results are plain numpy or frozen dataclasses, shared read-only; TensorFlow objects are never shared.
"""

from __future__ import annotations

import gc
import hashlib
import json
import math
import os
import sys
import tempfile
import threading
import time
from collections import OrderedDict
from dataclasses import asdict
from pathlib import Path
from typing import Any, Callable, Hashable

import numpy as np
import streamlit as st
from streamlit import runtime
from streamlit.runtime.runtime import RuntimeState

from obd import engines, explain
from obd.evaluate import Evaluation
from obd.data import load_mnist
from obd.config import preset_spec, preset_train_config
from obd.jobs import Job, JobBoard
from obd.methods import ALGORITHMS, NEEDS_CALIBRATION, Plan, cached_plan, calibration, saliency_map
from obd.netfile import cache_path, cached_network
from obd.warm import load_speed, save_speed, speed_table
from obd.network import Network
from obd.pruning import LayerReport, PruneReport, Pruned, report
from obd.sweep import (DEFAULT_SPARSITIES, SweepPoint, SweepRecord, curve_path, estimate_seconds, load_records,
                       save_records)

from .state import Choice, ModelKey

# A state's point (or its pruned net) is what its page waits for before it shows anything: it goes ahead of the
# curves and timings, which pages touch on their timers for minutes (obd.jobs._rank).
URGENT = 1
LATENCY_BATCH = 100  # rows per call for the headline latency: what a served request looks like


class Store:
    """A bounded, thread-safe LRU map: what background jobs write and pages read."""

    def __init__(self, size: int) -> None:
        self._items: OrderedDict = OrderedDict()
        self._size = size
        self._lock = threading.Lock()

    def get(self, key: Hashable) -> Any:
        with self._lock:
            if key in self._items:
                self._items.move_to_end(key)
                return self._items[key]
        return None

    def put(self, key: Hashable, value: Any) -> None:
        with self._lock:
            self._items[key] = value
            self._items.move_to_end(key)
            while len(self._items) > self._size:
                self._items.popitem(last=False)


@st.cache_resource(show_spinner="Loading MNIST…")
def data():
    return load_mnist()


@st.cache_resource(on_release=JobBoard.close)  # cleared caches leave no jobs writing behind them
def board() -> JobBoard:
    """The server's job board: one background task at a time, so the other core keeps serving pages; on a Dask
    cluster when $OBD_SCHEDULER names one."""
    return JobBoard.connect(workers=1)


@st.cache_resource(on_release=JobBoard.close)
def quick_board() -> JobBoard:
    """A second board for the methods whose points are a mask and an evaluation (magnitude, random, OBD): their
    curves take seconds and must not queue behind a reconstruction that takes minutes, as a shared link to an
    OBS view would otherwise make its magnitude baseline wait."""
    return JobBoard.connect(workers=1)


def board_for(c: Choice) -> JobBoard:
    """The board that computes a choice's points and curves."""
    return board() if c.method in ALGORITHMS else quick_board()


QUICK_FIRST_S = 30.0  # the longest a main-board task waits for the quick board to be idle
# ...and idle for this long: a page asks for its point (main board) a moment before its curves (quick board),
# and on a fresh server an OBS plan that started in that moment shared the cores with the magnitude curves
# (a shared OBS link: its magnitude curve 10-11 s instead of about 9)
QUICK_QUIET_S = 2.0


def behind_quick(tasks: list[Callable[[], Any]]) -> list[Callable[[], Any]]:
    """Main-board tasks that start only once the quick board has been idle for QUICK_QUIET_S (or after
    QUICK_FIRST_S): the seconds-long results (a magnitude curve) come before the minutes-long ones, and a latency
    is never timed beside them (the timing's noise check cannot see other threads of this process)."""
    quick = quick_board()

    def wrap(task: Callable[[], Any]) -> Callable[[], Any]:
        def run() -> Any:
            deadline = time.monotonic() + QUICK_FIRST_S
            while quick.quiet_for() < QUICK_QUIET_S and time.monotonic() < deadline:
                time.sleep(0.05)
            return task()
        return run
    return [wrap(t) for t in tasks]


def submit(c: Choice | None, key: tuple, tasks: list[Callable[[], Any]], **kwargs) -> Job:
    """Submit a job for choice `c` (None: a measurement) to its board; main-board work waits behind quick work."""
    if c is not None and c.method not in ALGORITHMS:
        return quick_board().submit(key, tasks, **kwargs)
    return board().submit(key, behind_quick(tasks), **kwargs)


@st.cache_resource(on_release=JobBoard.close)
def trainer() -> JobBoard:
    """Trainings run on a board of their own, in this process (they fill this machine's model cache), and never
    pause: a model someone chose is wanted even if they closed the tab."""
    return JobBoard(workers=1, idle_s=math.inf)


@st.cache_resource
def _train_progress() -> dict:
    return {}  # preset name -> its training's latest obd.model.TrainProgress


def preset_trained(name: str) -> bool:
    """Whether a preset's trained weights are in the disk cache."""
    return cache_path(preset_spec(name), preset_train_config(name)).is_file()


def train_now(name: str, progress: Callable, stop: Callable[[], bool] | None = None) -> None:
    """Train a preset in the calling thread, caching it on disk (`stop`: obd.model.train's)."""
    from obd.model import trained_model  # TensorFlow: only to train

    trained_model(preset_spec(name), preset_train_config(name), data(), progress, stop)


def server_stopping() -> bool:
    """Whether the server was told to stop (Ctrl-C, SIGTERM). Python waits for the job threads before it exits, so
    a training that asks this lets the server end: it used to run on until the training was done (minutes)."""
    return runtime.exists() and runtime.get_instance().state in (RuntimeState.STOPPING, RuntimeState.STOPPED)


def train_job(name: str, start: bool = True) -> Job | None:
    """The background training of a preset (started by the first page that needs it, shared by all); it ends,
    caching nothing, when the server is told to stop. `start=False` only looks: None when it has not started."""
    def run() -> None:
        train_now(name, lambda p: _train_progress().__setitem__(name, p), stop=server_stopping)
    if not start:
        return trainer().get(("train", name))
    return trainer().submit(("train", name), [run], label=f"training the {name} model")


def training() -> bool:
    """Whether a model trains in the background. Curves and latency timings wait meanwhile (`submit`'s hold): on 2
    cores they had the default model's first training take 113-114 s beside the page, against 64 s for the CLI; and
    a timing beside a training measures the training."""
    return trainer().busy()


def train_progress(name: str):
    return _train_progress().get(name)


def train_seconds_left(name: str) -> float:
    """From the training's own pace so far; before the first report, from the CLI's measured 64 s for the
    default net scaled by the preset's weight count."""
    p = train_progress(name)
    job = train_job(name, start=False)
    if p is not None and job is not None and p.step > 0:
        return job.elapsed_s * (p.steps - p.step) / p.step
    spec = preset_spec(name)
    sizes = (784, *spec.hidden, 10)
    weights = sum(a * b for a, b in zip(sizes, sizes[1:]))
    return 64.0 * weights / 3.794e6 * preset_train_config(name).epochs / 5


@st.cache_resource
def stores() -> dict[str, Store]:
    # points: ~11 KB each (the predictions), 22 MB when full. Pruned nets are 19 MB each for the default net
    # (kernels and masks), needed only by the views drawn from a net and the latency of recent states: "pruned"
    # keeps the ones a reconstruction or a Hessian made (seconds to minutes to remake), "remade" the few of the
    # methods whose net is a mask from a plan in memory (magnitude, random: 10 ms to remake, so not kept for long).
    return {"points": Store(2048), "pruned": Store(6), "remade": Store(2), "latency": Store(512),
            "curves": Store(256), "structures": Store(2048), "figures": Store(64), "networks": Store(8),
            "estimates": Store(512)}


def estimate(key: ModelKey, method: str, mode: str, points: int, epochs: float = 0.0) -> float:
    """obd.sweep.estimate_seconds, kept per question: it reads the network's cached curves for their measured
    seconds per point, too slow to repeat on every rerun."""
    k = (key, method, mode, points, epochs)
    if (found := stores()["estimates"].get(k)) is None:
        found = estimate_seconds(network(key), method, mode, points, epochs)
        stores()["estimates"].put(k, found)
    return found


def upload_path(digest: str) -> Path:
    """Where a checked upload lives, named by its content so that every session shares one copy."""
    return Path(tempfile.gettempdir()) / f"obd-upload-{digest}.keras"


def upload_digest(raw: bytes) -> str:
    return hashlib.sha256(raw).hexdigest()


def network(key: ModelKey) -> Network:
    """The read-only numpy network of a cached preset or a checked upload (looked up by the key's own hash: a
    page calls this a dozen times a run, and Streamlit's argument hashing would cost more than the lookup).

    Raises:
        LookupError: for a preset that is not trained yet.
    """
    if (found := stores()["networks"].get(key)) is None:
        found = _load_network(key)
        stores()["networks"].put(key, found)
    return found


@st.cache_resource(max_entries=8, show_spinner="Loading the model…")
def _load_network(key: ModelKey) -> Network:
    if key.kind == "preset":
        net = cached_preset(key.name)
        if net is None:
            raise LookupError(f"the {key.name} model is not trained yet")
    else:
        from obd.model import load_model  # TensorFlow: only for reading an upload
        from obd.network import from_keras

        net = from_keras(load_model(upload_path(key.name)))
    freeze_imports()
    return net


_frozen_at = 0  # len(sys.modules) at the last freeze_imports
_freeze_lock = threading.Lock()


def freeze_imports() -> None:
    """Move every live object out of the garbage collector's sight (gc.freeze) whenever modules were imported
    since the last time: the page calls this after each run, so it acts a few times per process.

    A full collection walks every container object alive: Streamlit's after every run unless runner.postScriptGC
    is off (it is, in .streamlit/config.toml), Python's own whenever the long-lived objects have grown by a
    quarter. The long-lived ones are the modules' (TensorFlow's millions when it is loaded; numba's and
    llvmlite's 100,000 once the first latency job compiled the sparse engine, 20-35 ms per collection on 2 cores;
    plotly's validators), and they arrive with imports. A collection first, so that only live objects are frozen;
    frozen objects are still freed by reference counting, so what stays is at most the cycles alive at one of these
    few moments.
    """
    global _frozen_at
    if len(sys.modules) == _frozen_at:
        return
    with _freeze_lock:
        if (n := len(sys.modules)) != _frozen_at:
            gc.collect()
            gc.freeze()
            _frozen_at = n


def cached_preset(name: str) -> Network | None:
    """A preset's trained network from the disk cache without importing TensorFlow, or None if not trained."""
    return cached_network(preset_spec(name), preset_train_config(name))


def calib_for(method: str):
    """The shared calibration sample for the methods that read one, else None."""
    return _calibration() if method in NEEDS_CALIBRATION else None


@st.cache_resource(show_spinner=False)
def _calibration():
    return calibration(data())


def plan_for(key: ModelKey, c: Choice) -> Plan:
    """The method's k-independent plan, built once per process (by whichever job or page asks first)."""
    return cached_plan(network(key), c.method, c.mode, c.budget, c.prune_output, calib_for(c.method))


INLINE_METHODS = ("magnitude", "random")  # plans in about a second, then a mask: quick enough for the page's script


def inline_ok(c: Choice) -> bool:
    """Whether a new sparsity of this choice is quick enough to compute in the page's own script: pruning is a
    mask from a plan that takes about a second (OBD's Hessian takes several, a reconstruction minutes: jobs)."""
    return c.method in INLINE_METHODS and c.budget != "loss-aware"  # the loss-aware split measures every layer


def sessions() -> int:
    """How many sessions are connected to the server (1 under AppTest, which runs no server)."""
    # Runtime has no public count of its sessions; its session manager's count is the one Streamlit's stats use.
    # AppTest runs the script under a mock Runtime that has no session manager.
    manager = getattr(runtime.get_instance(), "_session_mgr", None) if runtime.exists() else None
    return 1 if manager is None else max(1, manager.num_active_sessions())


def alone() -> bool:
    """Whether the page's session is the only one connected to the server.

    A new state of a quick method (`inline_ok`) is computed in the page's script only then: 0.3-0.7 s for the
    default net, shown as the run ends. With others connected it is a job on the quick board, one at a time:
    under a class's load (30 sessions) the new states computed in their scripts took 2.3 s a run at the median,
    sharing the cores with every other session's rerun, and set the server's p95 per run at 1.3 s."""
    return sessions() <= 1


POLL_SESSIONS = 8  # up to this many sessions connected, a waiting page looks for its results at its own pace


def poll_s(base: float, urgent: bool = False) -> float:
    """How often a page that waits for a background result (a curve, a timing) looks for it: every `base` seconds
    with up to POLL_SESSIONS sessions connected, proportionally less often with more. Each look is a fragment run
    on the server (2-25 ms; the curves' chart is the costly one): with 30 sessions, each polling the curves and a
    timing twice a second, they were 80 runs a second and took both cores; a move's numbers took 2.9-3.6 s at the median
    (30 sessions x 60 s), 0.28 s with these polls.

    A page that waits for an URGENT job (a point, a rebuilt net) keeps `base`: such a wait lasts seconds, and each
    look touches the job, which keeps its priority only while touched within obd.jobs.WAITING_S (above 32 sessions
    a slowed look of 1 s would come later than that, and the job would fall back behind curves and timings)."""
    return base if urgent else base * max(1.0, sessions() / POLL_SESSIONS)


def compute_point(key: ModelKey, c: Choice, k: int) -> dict:
    """Prune at k percent and evaluate on the test set (obd.sweep's point, as the curves and the CLI compute it);
    keeps the result (and the pruned net) for every session.

    Returns:
        {"accuracy", "loss", "predictions" (int8), "class_accuracy", "report", "record" (a SweepRecord)}
    """
    d = data()
    # "auto": the shrunk or sparse engine when that is faster
    pruned, ev, record = SweepPoint(network(key), c.method, c.mode, k / 100, c.budget, c.prune_output,
                                    engine="auto", x=d.x_test, y=d.y_test, calib=calib_for(c.method),
                                    plan=plan_for(key, c)).run()
    point = {"accuracy": ev.accuracy, "loss": ev.loss, "predictions": ev.predictions.astype(np.int8),
             "class_accuracy": class_accuracy(ev.predictions, d.y_test), "report": report(pruned), "record": record}
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
    meta = {"accuracy": point["accuracy"], "loss": point["loss"], "record": asdict(point["record"]),
            "report": [asdict(layer) for layer in point["report"].layers]}
    path = _point_file(key, c, k)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.{os.getpid()}.{threading.get_ident()}.tmp")
        with open(tmp, "wb") as f:
            np.savez(f, predictions=point["predictions"], class_accuracy=point["class_accuracy"],
                     meta=np.array(json.dumps(meta)))
        os.replace(tmp, path)
    except OSError:
        pass


def _load_point(key: ModelKey, c: Choice, k: int) -> dict | None:
    """A point saved by `_save_point`, or None when it is not on disk or unreadable (then it is recomputed)."""
    try:
        with np.load(_point_file(key, c, k), allow_pickle=False) as z:
            meta = json.loads(str(z["meta"]))
            return {"accuracy": meta["accuracy"], "loss": meta["loss"], "predictions": z["predictions"],
                    "class_accuracy": z["class_accuracy"], "record": SweepRecord(**meta["record"]),
                    "report": PruneReport(tuple(LayerReport(**layer) for layer in meta["report"]))}
    except (OSError, ValueError, KeyError, TypeError):
        return None


def class_accuracy(predictions: np.ndarray, labels: np.ndarray) -> np.ndarray:
    return np.array([(predictions[labels == c] == c).mean() for c in range(10)])


def point_job_key(key: ModelKey, c: Choice, k: int) -> tuple:
    return ("point", key, c, k)


def point(key: ModelKey, c: Choice, k: int) -> dict | None:
    """The state's results if they exist (or are quick to make here); else None, with a background job started."""
    if (found := stores()["points"].get((key, c, k))) is not None:
        return found
    if (saved := _load_point(key, c, k)) is not None:
        stores()["points"].put((key, c, k), saved)
        return saved
    if inline_ok(c) and alone():
        return compute_point(key, c, k)
    about = estimate(key, c.method, c.mode, 1)
    job = submit(c, point_job_key(key, c, k), [lambda: compute_point(key, c, k) and None],
                 label=f"{c.method} {c.mode} pruning at {k} % (about {about:.0f} s)", priority=URGENT)
    if job.finished and job.error is None:  # done between the lookup and the submit
        return stores()["points"].get((key, c, k)) or compute_point(key, c, k)
    return None


def point_job(key: ModelKey, c: Choice, k: int) -> Job | None:
    return board_for(c).get(point_job_key(key, c, k))


def pruned(key: ModelKey, c: Choice, k: int) -> Pruned | None:
    """The pruned network of a state: kept from its point, or made here when that is quick; otherwise None, with a
    background job making it (a point read from disk has no pruned net; an OBS one takes a reconstruction)."""
    if (found := _pruned_quick(key, c, k)) is not None:
        return found
    submit(c, ("pruned", key, c, k), [lambda: compute_point(key, c, k) and None],
           label=f"rebuilding the {c.method} {c.mode} network at {k} %", priority=URGENT)
    return stores()["pruned"].get((key, c, k))


@st.cache_resource(max_entries=64, show_spinner=False)
def state_facts(key: ModelKey, c: Choice, k: int, speedup: float | None, engine: str | None) -> explain.Facts:
    """The numbers the explanation and the lesson quote for a state whose point and pruned net exist (finding
    the shrunk shapes takes a quarter second for the default net, so they are kept per state)."""
    ev = lambda p: Evaluation(p["accuracy"], p["loss"], p["predictions"])  # noqa: E731
    return explain.facts(network(key), pruned(key, c, k), ev(point(key, c.dense(), 0)), ev(point(key, c, k)), c.method,
                         speedup, engine)


def wait_for_pruned(v) -> None:
    """A view's placeholder while the state's pruned network is rebuilt in the background; reruns the page when
    it exists (a `ui.state.View`)."""
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


def _pruned_store(c: Choice) -> Store:
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
def latency(key: ModelKey, c: Choice, k: int, start: bool = True) -> engines.Latency | None:
    """Dense vs the engine "auto" picks on LATENCY_BATCH test images, measured as a background job (so it never
    runs beside other background work); None until measured. `start=False` only looks: no job is started.

    A latency depends on the pruned net's structure only (obd.engines.structure_key): obd.engines keeps one
    reading per structure, so nets of identical shapes read identically and a second state of the same shapes
    costs no timing. Finding the structure takes a shrink of the net (a quarter second for the default one), so
    the job does that too, and the page keeps the result per state.
    """
    if (structure := stores()["structures"].get((key, c, k))) is not None:
        if (found := stores()["latency"].get(structure)) is not None:
            return found

    def measure() -> engines.Latency:
        net = _pruned_now(key, c, k).net
        structure = engines.structure_key(net)
        reading = engines.latency(net, data().x_test[:LATENCY_BATCH])
        stores()["latency"].put(structure, reading)
        stores()["structures"].put((key, c, k), structure)
        return reading

    if not start:
        return None
    job = submit(None, ("latency", key, c, k), [measure], label="timing the pruned network", hold=training)
    return job.results().get(0) if job.finished else None


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
    if (done := stores()["curves"].get(cid)) is not None:
        return done, None
    if (saved := load_records(curve_file(key, c))) is not None:
        stores()["curves"].put(cid, saved)
        return saved, None
    ks = [round(100 * s) for s in DEFAULT_SPARSITIES]
    first = ks.index(k_first) if k_first in ks else None
    jk = curve_job_key(key, c)
    job = board_for(c).get(jk)
    if job is None:
        tasks = [_curve_task(key, c, k) for k in ks]
        about = estimate(key, c.method, c.mode, len(ks))
        job = submit(c, jk, tasks, label=f"{c.method} {c.mode} curve ({c.budget} budget, about {about:.0f} s)",
                     first=first, hold=training)
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


# ---------------------------------------------------------------- saliency and speed tables
@st.cache_resource(max_entries=4, show_spinner="Computing saliencies…")
def saliencies(key: ModelKey, method: str) -> list[np.ndarray]:
    """The dense network's per-weight scores of `method`, one array per layer (30 MB for the default net)."""
    return saliency_map(network(key), method, calib_for(method))


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


def eta_text(job: Job) -> str:
    """"3/10 done, about 40 s left" for a progress line."""
    if job.held:
        return f"{job.done}/{job.total} done; waits until the model in training is ready (it gets the cores)"
    left = f", about {job.eta_s:.0f} s left" if job.eta_s is not None else ""
    return f"{job.done}/{job.total} done{left}"


