"""The thread runtimes the engines share: the cores this process may use, numba's thread count, OpenBLAS held to
one thread while row tiles (or many small LAPACK solves) run on every core, and the pool that runs those tiles.

OpenBLAS's thread count is process-wide (its pthreads build has no per-thread count), so a hold is counted:
the first caller in sets one thread, the last one out gives the count back. threadpoolctl finds and sets the
OpenBLAS libraries numpy and scipy load; anything else (MKL, an OpenMP build) is left alone and the tiles are off.
"""

from __future__ import annotations

import contextlib
import functools
import itertools
import os
import sys
import threading
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import psutil


def cores() -> int:
    """The cores this process may use (its CPU affinity where the OS has one)."""
    try:
        return len(psutil.Process().cpu_affinity() or ()) or psutil.cpu_count() or 1
    except (AttributeError, psutil.Error):  # no affinity on macOS
        return psutil.cpu_count() or 1


def numba_threads() -> int:
    """numba's thread count (numba is imported here, on first use)."""
    import numba

    return numba.get_num_threads()


@functools.cache
def _openblas(scipy_loaded: bool) -> tuple[Any, ...]:
    """The pthreads OpenBLAS libraries loaded now (numpy's, and scipy's once scipy.linalg is imported)."""
    from threadpoolctl import ThreadpoolController

    found = ThreadpoolController().select(internal_api="openblas").lib_controllers
    return tuple(lib for lib in found if getattr(lib, "threading_layer", "pthreads") == "pthreads")


def openblas() -> tuple[Any, ...]:
    """threadpoolctl's controllers of the pthreads OpenBLAS libraries this process has loaded; () for none."""
    return _openblas("scipy.linalg" in sys.modules)


_lock = threading.Lock()
_holders = 0  # callers inside `single_threaded_blas` now
_saved: list[tuple[Any, int]] = []  # (library, its thread count) to give back when the last one leaves


@contextlib.contextmanager
def single_threaded_blas() -> Iterator[None]:
    """OpenBLAS runs single-threaded while any caller is inside, and gets its thread counts back when the last
    one leaves. A dense matmul in another thread meanwhile runs on one core; the engines' timings never overlap
    one (`Readings` takes one reading at a time)."""
    global _holders, _saved
    libs = openblas()
    with _lock:
        if _holders == 0:
            _saved = [(lib, lib.num_threads) for lib in libs]
            for lib in libs:
                lib.set_num_threads(1)
        _holders += 1
    try:
        yield
    finally:
        with _lock:
            _holders -= 1
            if _holders == 0:
                for lib, n in _saved:
                    lib.set_num_threads(n)


def _after_fork_in_child() -> None:
    """A forked child has none of its parent's threads: a fresh pool when needed, a free lock, and OpenBLAS's
    thread counts back if a hold was active in the parent."""
    global _lock, _holders
    tile_pool.cache_clear()
    _lock = threading.Lock()
    if _holders:
        _holders = 0
        for lib, n in _saved:
            lib.set_num_threads(n)


@functools.cache
def tile_pool() -> tuple[ThreadPoolExecutor, int] | None:
    """(threads that run row tiles beside the caller, how many): one per core this process may use but the
    caller's; None on one core or when numpy's OpenBLAS thread count cannot be set."""
    n = cores()
    if n < 2 or not openblas():
        return None
    return ThreadPoolExecutor(n - 1, thread_name_prefix="obd-tiles"), n - 1


def on_every_core(tasks: int, body: Callable[[int], None]) -> None:
    """Run body(0), ..., body(tasks - 1) on every core this process may use: the calling thread and
    `tile_pool`'s, each taking the next task as it finishes one, with OpenBLAS single-threaded meanwhile (each
    task calls it on small matrices, where one thread per task beats a team per call). Serially, in the caller,
    where there is no pool. Returns once every task is done; the first error a task raised is raised here.

    Args:
        tasks: how many tasks.
        body: body(i) runs task i; the tasks must not depend on each other's order (they run concurrently).
    """
    pool = tile_pool() if tasks > 1 else None
    if pool is None:
        for i in range(tasks):
            body(i)
        return
    workers, helpers = pool
    counter = itertools.count()  # shared by the threads: the next task to take (next() is atomic in CPython)

    def run() -> None:
        while (i := next(counter)) < tasks:
            body(i)

    with single_threaded_blas():
        futures = [workers.submit(run) for _ in range(min(helpers, tasks - 1))]
        try:
            run()
        finally:
            for f in futures:
                f.result()  # waits for every helper (and re-raises its error) before BLAS gets its threads back


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork_in_child)
