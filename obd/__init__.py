"""obd: an interactive pruning lab for Keras MLPs on MNIST (magnitude, unit, Optimal Brain Damage and OBS pruning).

The public API, importable from `obd` directly (loaded on first use, so `import obd` stays cheap and never
imports TensorFlow):

    from obd import load_mnist, default_model, prune_model, plan, sweep, evaluate, from_keras

The layers, each importing only those before it: core (configuration, the numpy network, data, files, masks)
→ runtime (engines, latency) → methods (saliencies, OBS, the registry) → training (Keras: the only TensorFlow
importer) → figures, teach → work (jobs, sweeps, warm, export) → cli. docs/architecture.md says more.
"""

from __future__ import annotations

import importlib
import os
from typing import TYPE_CHECKING, Any

# TensorFlow's C++ start-up chatter (oneDNN and CPU-feature notices) would bury obd's own one-line messages;
# a user who wants it sets the variable themselves.
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
# Waiting OpenMP threads that spin take a core from the other runtimes (TensorFlow's, OpenBLAS's, numba's). It only
# reaches runtimes started after it is set, so it goes here, before any of them is imported.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
# OpenBLAS (numpy's BLAS) spins its workers for a long while after each matmul by default, holding the second core
# while numba's sparse kernel wants it; 2^16 cycles still bridges one pass's back-to-back layer matmuls. Read
# when OpenBLAS loads, so this too must precede the first numpy import.
os.environ.setdefault("OPENBLAS_THREAD_TIMEOUT", "16")
# numba's kernels (obd.runtime.kernels) are written for LLVM's SLP vectorizer, not its loop vectorizer: with numba's
# defaults they run several times slower. Read when numba loads; a user's own setting wins.
os.environ.setdefault("NUMBA_SLP_VECTORIZE", "1")
os.environ.setdefault("NUMBA_LOOP_VECTORIZE", "0")

__version__ = "0.1.0"

_API = {  # public name -> the module that defines it
    "ModelSpec": "obd.core.config",
    "TrainConfig": "obd.core.config",
    "PRESETS": "obd.core.config",
    "DataError": "obd.core.data",
    "Mnist": "obd.core.data",
    "load_mnist": "obd.core.data",
    "Network": "obd.core.network",
    "from_keras": "obd.core.network",
    "to_keras": "obd.core.network",
    "fit_pixels": "obd.runtime.evaluate",
    "ModelFileError": "obd.core.files",
    "save_network": "obd.core.files",
    "load_network": "obd.core.files",
    "MODES": "obd.core.pruning",
    "BUDGETS": "obd.core.pruning",
    "weight_mask": "obd.core.pruning",
    "unit_mask": "obd.core.pruning",
    "rank": "obd.core.pruning",
    "prune": "obd.core.pruning",
    "prune_model": "obd.core.pruning",
    "report": "obd.core.pruning",
    "Pruned": "obd.core.pruning",
    "EmptiedLayerWarning": "obd.core.pruning",
    "evaluate": "obd.runtime.evaluate",
    "build_engine": "obd.runtime.engines",
    "shrink": "obd.runtime.shrunk",
    "latency": "obd.runtime.latency",
    "bench": "obd.runtime.bench",
    "METHODS": "obd.methods.registry",
    "supports": "obd.methods.registry",
    "calibration": "obd.methods.registry",
    "plan": "obd.methods.registry",
    "prune_with": "obd.methods.registry",
    "saliency_map": "obd.methods.registry",
    "build_model": "obd.training.model",
    "train": "obd.training.model",
    "load_model": "obd.training.model",
    "save_model": "obd.training.model",
    "trained_model": "obd.training.model",
    "default_model": "obd.training.model",
    "finetune": "obd.training.finetune",
    "gradual": "obd.training.finetune",
    "sweep": "obd.work.sweep",
    "to_csv": "obd.work.sweep",
    "JobBoard": "obd.work.jobs",
}
__all__ = sorted(_API)


def __getattr__(name: str) -> Any:
    """Load a public name's module on first use (PEP 562)."""
    if name not in _API:
        raise AttributeError(f"module 'obd' has no attribute {name!r}")
    value = getattr(importlib.import_module(_API[name]), name)
    globals()[name] = value  # later lookups skip this function
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_API))


if TYPE_CHECKING:  # what type checkers and editors see; at run time `__getattr__` loads these on first use
    from obd.core.config import PRESETS, ModelSpec, TrainConfig
    from obd.core.data import DataError, Mnist, load_mnist
    from obd.core.files import ModelFileError, load_network, save_network
    from obd.core.network import Network, from_keras, to_keras
    from obd.core.pruning import (
        BUDGETS,
        MODES,
        EmptiedLayerWarning,
        Pruned,
        prune,
        prune_model,
        rank,
        report,
        unit_mask,
        weight_mask,
    )
    from obd.methods.registry import METHODS, calibration, plan, prune_with, saliency_map, supports
    from obd.runtime.bench import bench
    from obd.runtime.engines import build_engine
    from obd.runtime.evaluate import evaluate, fit_pixels
    from obd.runtime.latency import latency
    from obd.runtime.shrunk import shrink
    from obd.training.finetune import finetune, gradual
    from obd.training.model import build_model, default_model, load_model, save_model, train, trained_model
    from obd.work.jobs import JobBoard
    from obd.work.sweep import sweep, to_csv
