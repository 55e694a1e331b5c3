"""One job interface for long work: a server-wide board of deduplicated jobs, run on threads or a Dask cluster.

A job is a list of independent tasks (plain callables) under a key: a curve's points, a speed table's rows.
`JobBoard` keeps one job per key, whoever asks for it, keeps at most `workers` tasks in flight on an executor,
and always starts the next task of the job someone touched last (its `first` task first), so the point a user
looks at is computed before the rest of its curve, and a curve nobody waits for any more (not touched for
`idle_s`) pauses with its results kept until someone asks again. Jobs of a higher `priority` that someone still
waits for go first, in the order they came (`_rank`). The executor is in-process threads by
default, or Dask's own `concurrent.futures` executor on a cluster (`executor(scheduler)`, `$OBD_SCHEDULER`):
obd only orders the tasks, Dask schedules them. Tasks travel to Dask workers with cloudpickle, so they must
not hold locks, queues or open files; the workers need obd installed (the same version) and MNIST.
"""

from __future__ import annotations

import concurrent.futures
import functools
import math
import os
import threading
import time
from collections.abc import Callable, Hashable, Sequence
from dataclasses import dataclass, field
from typing import Any, TypeVar

V = TypeVar("V")

SCHEDULER_ENV = "OBD_SCHEDULER"  # a Dask scheduler address for the app's jobs, e.g. tcp://10.0.0.5:8786
DEFAULT_IDLE_S = 60.0  # a job nobody touched for this long starts no new task (paused, results kept)
WAITING_S = 4.0  # a job of priority touched this recently still has someone waiting for it (pages poll every 0.5-4 s)

_clients: dict[str, Any] = {}  # scheduler address -> distributed.Client, one per process
_clients_lock = threading.Lock()  # held while connecting (up to Dask's timeout): not the caches' lock


def check_scheduler(address: object) -> str:
    """Validate a Dask scheduler address ("tcp://host:port"); raises ValueError saying what to give."""
    if not isinstance(address, str) or "://" not in address or not address.split("://", 1)[1]:
        raise ValueError(f"a Dask scheduler address looks like tcp://10.0.0.5:8786; got {address!r}")
    return address


def scheduler_address(scheduler: str | None = None) -> str | None:
    """The Dask scheduler to use: `scheduler` if given, else $OBD_SCHEDULER, else None (in-process).

    Raises:
        ValueError: for an address that is not of the form protocol://host:port.
    """
    address = scheduler or os.environ.get(SCHEDULER_ENV) or None
    return check_scheduler(address) if address is not None else None


def dask_client(address: str):
    """This process's `distributed.Client` for a scheduler address, connected once and shared.

    Raises:
        ValueError: for a malformed address.
        OSError: when no scheduler answers there (Dask's connect timeout, 30 s by default).
    """
    import distributed  # only a Dask run needs it (and its start-up cost)

    check_scheduler(address)
    with _clients_lock:
        client = _clients.get(address)
        if client is None or client.status not in ("running", "connecting", "newly-created"):
            client = _clients[address] = distributed.Client(address, set_as_default=False)
        return client


def _check_workers(workers: object) -> int:
    if isinstance(workers, bool) or not isinstance(workers, int) or workers < 1:
        raise ValueError(f"workers must be a whole number of at least 1, got {workers!r}")
    return workers


def executor(scheduler: str | None = None, workers: int = 1) -> concurrent.futures.Executor:
    """Where jobs run: in-process threads (default), or a Dask cluster's executor.

    Args:
        scheduler: a Dask scheduler address (tcp://host:port); None: $OBD_SCHEDULER if set, else threads.
        workers: threads of the in-process executor (ignored on Dask, whose workers are the cluster's).

    Returns:
        A `concurrent.futures.ThreadPoolExecutor`, or `distributed.Client(address).get_executor(pure=False)`.

    Raises:
        ValueError: for a malformed address or fewer than 1 worker.
        OSError: when no scheduler answers at the address.
    """
    _check_workers(workers)
    address = scheduler_address(scheduler)
    if address is None:
        return _threads(workers)
    # pure=True would make Dask hash every task (a 15 MB network) to merge equal ones: they are never merged here
    return dask_client(address).get_executor(pure=False)


def _threads(workers: int) -> concurrent.futures.ThreadPoolExecutor:
    return concurrent.futures.ThreadPoolExecutor(max_workers=workers, thread_name_prefix="obd-job")


def cluster_threads(scheduler: str) -> int:
    """The number of tasks a Dask cluster runs at once (its workers' threads), to fill it with a JobBoard.

    Raises:
        ValueError, OSError: as `dask_client`; ValueError also when the cluster has no worker yet.
    """
    threads = sum(dask_client(scheduler).nthreads().values())
    if threads < 1:
        raise ValueError(f"the Dask cluster at {scheduler} has no workers; start some (dask worker {scheduler})")
    return threads


def _check_first(first: object, total: int) -> int | None:
    if first is not None and (isinstance(first, bool) or not isinstance(first, int) or not 0 <= first < total):
        raise ValueError(f"first must be a task index in [0, {total - 1}], got {first!r}")
    return first  # type: ignore[return-value]


def _timed(task: Callable[[], Any]) -> tuple[float, Any]:
    """Run one task where the executor runs it, timing it there (a Dask worker's clock, not the queue's)."""
    start = time.perf_counter()
    value = task()
    return time.perf_counter() - start, value


@dataclass(eq=False)
class Job:
    """A board's job: `total` independent tasks under `key`. Every accessor is a thread-safe snapshot."""

    key: Hashable
    label: str
    total: int
    _tasks: Sequence[Callable[[], Any]] = field(repr=False)
    _lock: threading.RLock = field(repr=False)  # the board's: one lock orders every change
    _parallel: int = field(default=1, repr=False)  # the board's workers, for the ETA
    _idle_s: float = field(default=DEFAULT_IDLE_S, repr=False)
    _pending: list[int] = field(default_factory=list, repr=False)  # task indices not started, next first
    _results: dict[int, Any] = field(default_factory=dict, repr=False)
    _running: int = field(default=0, repr=False)
    _task_s: float = field(default=0.0, repr=False)  # summed task seconds, for the mean
    _error: str | None = field(default=None, repr=False)
    _exception: BaseException | None = field(default=None, repr=False)
    _created: float = field(default_factory=time.monotonic, repr=False)
    _ended: float | None = field(default=None, repr=False)
    _touched: float = field(default_factory=time.monotonic, repr=False)
    _order: int = field(default=0, repr=False)  # the board's touch counter when last touched: higher goes first
    _settled: threading.Event = field(default_factory=threading.Event, repr=False)
    _hold: Callable[[], bool] | None = field(default=None, repr=False)  # while it answers True, no task starts
    priority: int = 0  # while someone waits for it, a job of higher priority starts its tasks first (`_rank`)

    def results(self) -> dict[int, Any]:
        """Task index -> result for every task finished so far (a copy)."""
        with self._lock:
            return dict(self._results)

    @property
    def done(self) -> int:
        """Tasks finished."""
        with self._lock:
            return len(self._results)

    @property
    def finished(self) -> bool:
        """Every task has its result."""
        with self._lock:
            return len(self._results) == self.total

    @property
    def error(self) -> str | None:
        """ "Type: message" of the task that failed (the job then starts nothing more), or None."""
        with self._lock:
            return self._error

    def exception(self) -> BaseException | None:
        """The failed task's exception itself (to re-raise), or None."""
        with self._lock:
            return self._exception

    @property
    def running(self) -> int:
        """Tasks in flight now."""
        with self._lock:
            return self._running

    @property
    def paused(self) -> bool:
        """Tasks wait but none starts: nobody touched the job for the board's idle_s (a touch resumes it)."""
        with self._lock:
            return self._error is None and bool(self._pending) and time.monotonic() - self._touched > self._idle_s

    @property
    def held(self) -> bool:
        """Tasks wait because the job's `hold` says so (e.g. while a model trains); a touch after it lets go
        starts them."""
        with self._lock:
            return self._error is None and bool(self._pending) and self._hold is not None and self._hold()

    @property
    def elapsed_s(self) -> float:
        """Seconds from submission to the last result (or failure), or to now while it is unsettled."""
        with self._lock:
            return (self._ended if self._ended is not None else time.monotonic()) - self._created

    @property
    def work_s(self) -> float:
        """Seconds its finished tasks took where they ran, summed (compute time, without queueing)."""
        with self._lock:
            return self._task_s

    @property
    def eta_s(self) -> float | None:
        """Seconds still to go from the mean task time so far, with the board's workers on this job alone;
        0 when finished, None before the first result or after a failure."""
        with self._lock:
            done = len(self._results)
            if self._error is not None or done == 0:
                return None
            return self._task_s / done * (self.total - done) / self._parallel

    def wait(self, timeout: float | None = None) -> bool:
        """Block until the job is finished or has failed; returns whether it did within `timeout` seconds."""
        return self._settled.wait(timeout)


def _rank(job: Job, now: float) -> tuple:
    """A job's place in the queue (highest first). A priority counts while someone waits for the job (touched in the
    last WAITING_S), and those go first come, first served: 30 pages waiting for their points, each touching its own
    twice a second, made "most recently touched" a lottery, and the unlucky waited longest. A job whose page moved on
    takes its place among the others again, by its last touch (the point of a slider step not stopped at does not
    hold up the curve being watched)."""
    if job.priority > 0 and now - job._touched <= WAITING_S:
        return (job.priority, -job._created)
    return (0, job._order)


class JobBoard:
    """Server-wide: one job per key (deduplicated across callers/sessions); at most `workers` tasks in flight on
    the executor; the next task comes from the most recently touched job (after any of a higher priority that
    someone waits for, `_rank`), its `first` task first.

    Tasks of a job not touched for `idle_s` are not started (the job is paused, its results kept); a later
    submit or touch resumes it. A failed task stops its job (its error says why); submitting the key again
    starts it afresh. Nothing runs in the background but the executor: the board dispatches when a job is
    submitted or touched and when a task ends.
    """

    def __init__(
        self, executor: concurrent.futures.Executor | None = None, workers: int = 1, idle_s: float = DEFAULT_IDLE_S
    ) -> None:
        """
        Args:
            executor: where tasks run (see `executor()`); None: a thread pool of `workers` threads, owned and
                shut down by `close()`.
            workers: tasks in flight at most (on Dask, `cluster_threads(address)` fills the cluster).
            idle_s: seconds without a touch after which a job's remaining tasks wait (math.inf: never).

        Raises:
            ValueError: for fewer than 1 worker or an idle_s that is not a positive number.
        """
        self.workers = _check_workers(workers)
        if isinstance(idle_s, bool) or not isinstance(idle_s, (int, float)) or math.isnan(idle_s) or idle_s <= 0:
            raise ValueError(f"idle_s must be a number of seconds greater than 0 (math.inf: never), got {idle_s!r}")
        self.idle_s = float(idle_s)
        self._owned = executor is None
        self._executor = executor if executor is not None else _threads(workers)
        self._lock = threading.RLock()
        self._jobs: dict[Hashable, Job] = {}
        self._in_flight = 0
        self._touches = 0
        self._dispatching = False
        self._active_at = time.monotonic()  # when a task last ended (or the board was made)

    @classmethod
    def connect(cls, scheduler: str | None = None, workers: int = 1, idle_s: float = DEFAULT_IDLE_S) -> JobBoard:
        """A board on threads, or filling a Dask cluster when `scheduler` (or $OBD_SCHEDULER) names one.

        Raises:
            ValueError, OSError: as `executor` and `cluster_threads`.
        """
        address = scheduler_address(scheduler)
        if address is None:
            return cls(None, workers, idle_s)
        board = cls(executor(address), cluster_threads(address), idle_s)
        board._owned = True  # its ClientExecutor; the shared Client stays open for the process
        return board

    def submit(
        self,
        key: Hashable,
        tasks: Sequence[Callable[[], Any]],
        *,
        label: str = "",
        first: int | None = None,
        hold: Callable[[], bool] | None = None,
        priority: int = 0,
    ) -> Job:
        """Start a job, or return the one already under `key` (running, paused or done; not failed), touched.

        Args:
            key: any hashable naming the work (equal keys = the same work, whoever asks).
            tasks: independent callables; a result is whatever one returns.
            label: words for a progress line.
            first: index of the task to run before the others.
            hold: asked before each of the job's tasks would start: while it answers True none starts (other
                jobs go ahead). The board asks again at each submit, touch and task end, so a job someone waits
                for (and touches) starts soon after the hold lets go.
            priority: among the jobs ready to start a task, those of the highest priority go first (a result a
                page waits for before one it draws in part), first come, first served, while someone waits for
                them (touched in the last WAITING_S); a job nobody touched for that long counts as priority 0,
                where the most recently touched goes first.

        Returns:
            The Job; its results fill in as tasks end.

        Raises:
            ValueError: for a `first` outside the tasks.
        """
        with self._lock:
            job = self._jobs.get(key)
            if job is not None and job._error is None:
                self._touch(job, first)
                return job
            _check_first(first, len(tasks))
            job = Job(
                key,
                label,
                len(tasks),
                list(tasks),
                self._lock,
                self.workers,
                self.idle_s,
                list(range(len(tasks))),
                _hold=hold,
                priority=priority,
            )
            if not tasks:
                job._ended = job._created
                job._settled.set()
            self._jobs[key] = job
            self._touch(job, first)
            return job

    def get(self, key: Hashable) -> Job | None:
        """The job under `key`, or None."""
        with self._lock:
            return self._jobs.get(key)

    def jobs(self) -> list[Job]:
        """Every job on the board, most recently touched first."""
        with self._lock:
            return sorted(self._jobs.values(), key=lambda j: -j._order)

    def touch(self, key: Hashable, first: int | None = None) -> None:
        """Someone still waits for `key`: its tasks go ahead of untouched jobs (and resume if it was paused),
        task `first` ahead of its others. A missing key is ignored.

        Raises:
            ValueError: for a `first` outside the job's tasks.
        """
        with self._lock:
            job = self._jobs.get(key)
            if job is not None:
                self._touch(job, first)

    def cancel(self, key: Hashable) -> None:
        """Start no more tasks of `key` (tasks running finish); the job fails with error "cancelled"."""
        with self._lock:
            job = self._jobs.get(key)
            if job is not None and job._error is None and not job.finished:
                self._fail(job, "cancelled", None)

    def forget(self, key: Hashable) -> None:
        """Cancel `key` and drop it from the board, so its results can be freed."""
        with self._lock:
            self.cancel(key)
            self._jobs.pop(key, None)

    def busy(self) -> bool:
        """A task is running (the latency probe uses it to avoid timing while work runs)."""
        with self._lock:
            return self._in_flight > 0

    def quiet_for(self) -> float:
        """Seconds since a task last ran on the board (or since it was made); 0 while one runs."""
        with self._lock:
            return 0.0 if self._in_flight else time.monotonic() - self._active_at

    def close(self) -> None:
        """Cancel every job and shut down the executor the board owns (running tasks finish)."""
        with self._lock:
            for key in list(self._jobs):
                self.cancel(key)
        if self._owned:  # only tasks in flight are in the executor: the board holds back the rest
            self._executor.shutdown(wait=False)

    def __enter__(self) -> JobBoard:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    # -- internals, all under self._lock
    def _touch(self, job: Job, first: int | None) -> None:
        if _check_first(first, job.total) is not None:
            if first in job._pending:
                job._pending.remove(first)
                job._pending.insert(0, first)
        self._touches += 1
        job._order = self._touches
        job._touched = time.monotonic()
        self._dispatch()

    def _next_job(self) -> Job | None:
        now = time.monotonic()
        ready = [
            j
            for j in self._jobs.values()
            if j._pending and j._error is None and now - j._touched <= self.idle_s and not j.held
        ]
        return max(ready, key=lambda j: _rank(j, now), default=None)

    def _dispatch(self) -> None:
        # A task that ends at once calls back into here on this thread (the lock is re-entrant): the loop
        # below goes on instead, so tiny tasks do not nest one call per task.
        if self._dispatching:
            return
        self._dispatching = True
        try:
            while self._in_flight < self.workers and (job := self._next_job()) is not None:
                i = job._pending.pop(0)
                job._running += 1
                self._in_flight += 1
                try:
                    future = self._executor.submit(_timed, job._tasks[i])
                except Exception as e:  # a shut-down executor or a task Dask cannot pickle
                    job._running -= 1
                    self._in_flight -= 1
                    self._fail(job, f"{type(e).__name__}: {e}", e)
                    continue
                future.add_done_callback(functools.partial(self._ended, job, i))
        finally:
            self._dispatching = False

    def _ended(self, job: Job, i: int, future: concurrent.futures.Future) -> None:
        with self._lock:
            job._running -= 1
            self._in_flight -= 1
            self._active_at = time.monotonic()
            if future.cancelled():
                if job._error is None:
                    self._fail(job, "cancelled", None)
            elif (e := future.exception()) is not None:
                if job._error is None:
                    self._fail(job, f"{type(e).__name__}: {e}", e)
            else:
                seconds, value = future.result()
                job._results[i] = value
                job._task_s += seconds
                if len(job._results) == job.total:
                    job._ended = time.monotonic()
                    job._settled.set()
            self._dispatch()

    def _fail(self, job: Job, message: str, exception: BaseException | None) -> None:
        job._error = message
        job._exception = exception
        job._pending.clear()
        job._ended = time.monotonic()
        job._settled.set()
