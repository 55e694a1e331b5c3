"""Workarounds for how Streamlit runs scripts: freezing long-lived objects out of the garbage collector's sight
(`freeze_imports`). The guard against lost runs is ui.services.runner_race."""

from __future__ import annotations

import gc
import sys
import threading

_frozen_at = 0  # len(sys.modules) at the last freeze_imports


_freeze_lock = threading.Lock()


def freeze_imports() -> None:
    """Move every live object out of the garbage collector's sight (gc.freeze) whenever modules were imported
    since the last time: the page calls this after each run, so it acts a few times per process.

    A full collection walks every container object alive: Streamlit's after every run unless runner.postScriptGC
    is off (it is, in .streamlit/config.toml), Python's own whenever the long-lived objects have grown by a
    quarter. The long-lived ones are the modules' (TensorFlow's millions when it is loaded; numba's and
    llvmlite's once the first latency job compiled the sparse engine, tens of ms per collection on 2 cores;
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
