"""The server's job boards and who waits for them: the main board (plans, reconstructions, timings), the quick
board (masks and evaluations, so that they never queue behind minutes of reconstruction), the trainer, and how
often a waiting page looks for its results given how many sessions are connected.

Nothing slow runs in a page's script: it is a job on a board (one job per key, whoever asks first), and the page
draws what exists so far."""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from typing import Any

import streamlit as st
from streamlit import runtime
from streamlit.runtime.runtime import RuntimeState

from obd.core.config import preset_spec, preset_train_config
from obd.core.files import cache_path
from obd.methods.registry import ALGORITHMS
from obd.work.jobs import Job, JobBoard
from ui.services.models import data
from ui.services.state import Choice

# A state's point (or its pruned net) is what its page waits for before it shows anything: it goes ahead of the
# curves and timings, which pages touch on their timers for minutes (obd.work.jobs._rank).
URGENT = 1


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
# (a shared OBS link then showed its magnitude curve later: benchmarks/live_class.py)
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


def rebuild(c: Choice | None, key: tuple, tasks: list[Callable[[], Any]], **kwargs) -> Job:
    """`submit` for a job whose result lives in a cache outside the board: a finished job of that key is forgotten
    first, since its result was evicted (else the key returns the finished job and nothing builds it again)."""
    own = board() if c is None else board_for(c)
    if (done := own.get(key)) is not None and done.finished:
        own.forget(key)
    return submit(c, key, tasks, **kwargs)


@st.cache_resource(on_release=JobBoard.close)
def trainer() -> JobBoard:
    """Trainings run on a board of their own, in this process (they fill this machine's model cache), and never
    pause: a model someone chose is wanted even if they closed the tab."""
    return JobBoard(workers=1, idle_s=math.inf)


@st.cache_resource
def _train_progress() -> dict:
    return {}  # preset name -> its training's latest obd.training.model.TrainProgress


def preset_trained(name: str) -> bool:
    """Whether a preset's trained weights are in the disk cache."""
    return cache_path(preset_spec(name), preset_train_config(name)).is_file()


def train_now(name: str, progress: Callable, stop: Callable[[], bool] | None = None) -> None:
    """Train a preset in the calling thread, caching it on disk (`stop`: obd.training.model.train's)."""
    from obd.training.model import trained_model  # TensorFlow: only to train

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
    cores they slowed the default model's first training far below the CLI's pace; and a timing beside a training
    measures the training."""
    return trainer().busy()


def train_progress(name: str):
    return _train_progress().get(name)


def train_seconds_left(name: str) -> float:
    """From the training's own pace so far; before the first report, from the CLI's training time of the default
    net on a 2-core machine (the constant below) scaled by the preset's weight count and epochs."""
    p = train_progress(name)
    job = train_job(name, start=False)
    if p is not None and job is not None and p.step > 0:
        return job.elapsed_s * (p.steps - p.step) / p.step
    spec = preset_spec(name)
    sizes = (784, *spec.hidden, 10)
    weights = sum(a * b for a, b in zip(sizes, sizes[1:]))
    return 64.0 * weights / 3.794e6 * preset_train_config(name).epochs / 5


def sessions() -> int:
    """How many sessions are connected to the server (1 under AppTest, which runs no server)."""
    # Runtime has no public count of its sessions; its session manager's count is the one Streamlit's stats use.
    # AppTest runs the script under a mock Runtime that has no session manager.
    manager = getattr(runtime.get_instance(), "_session_mgr", None) if runtime.exists() else None
    return 1 if manager is None else max(1, manager.num_active_sessions())


def alone() -> bool:
    """Whether the page's session is the only one connected to the server.

    A new state of a quick method (`inline_ok`) is computed in the page's script only then, and shown as the run
    ends. With others connected it is a job on the quick board, one at a time: under a class's load the new states
    computed in their scripts shared the cores with every other session's rerun and set the server's time per run
    (benchmarks/load.py)."""
    return sessions() <= 1


POLL_SESSIONS = 8  # up to this many sessions connected, a waiting page looks for its results at its own pace


def poll_s(base: float, urgent: bool = False) -> float:
    """How often a page that waits for a background result (a curve, a timing) looks for it: every `base` seconds
    with up to POLL_SESSIONS sessions connected, proportionally less often with more. Each look is a fragment run
    on the server (the curves' chart is the costly one): with 30 sessions, each polling the curves and a timing
    twice a second, they took both cores and a move's numbers came seconds late (benchmarks/load.py).

    A page that waits for an URGENT job (a point, a rebuilt net) keeps `base`: such a wait lasts seconds, and each
    look touches the job, which keeps its priority only while touched within obd.work.jobs.WAITING_S (above 32 sessions
    a slowed look would come later than that, and the job would fall back behind curves and timings)."""
    return base if urgent else base * max(1.0, sessions() / POLL_SESSIONS)


def eta_text(job: Job) -> str:
    """ "3/10 done, about 40 s left" for a progress line."""
    if job.held:
        return f"{job.done}/{job.total} done; waits until the model in training is ready (it gets the cores)"
    left = f", about {job.eta_s:.0f} s left" if job.eta_s is not None else ""
    return f"{job.done}/{job.total} done{left}"
