"""What every session shares read-only: MNIST, each model's numpy network (a cached preset or a checked upload),
the calibration sample, the methods' plans and saliencies, and the bounded in-memory caches behind them.
Results are plain numpy or frozen dataclasses; TensorFlow objects are never shared."""

from __future__ import annotations

import hashlib
import os
import tempfile
import threading
from collections import OrderedDict
from collections.abc import Callable, Hashable
from pathlib import Path
from typing import Any

import numpy as np
import streamlit as st
from streamlit.runtime.scriptrunner import get_script_run_ctx

from obd.core.cache import LruCache
from obd.core.config import preset_spec, preset_train_config
from obd.core.data import load_mnist
from obd.core.files import cached_network
from obd.core.modelcheck import check_keras_file
from obd.core.network import Network
from obd.methods.registry import NEEDS_CALIBRATION, Plan, cached_plan, calibration, saliency_map
from obd.work.sweep import estimate_seconds
from ui.services.state import Choice, ModelKey
from ui.services.workarounds import freeze_imports


@st.cache_resource(show_spinner="Loading MNIST…")
def data():
    return load_mnist()


@st.cache_resource
def stores() -> dict[str, LruCache]:
    # points: ~11 KB each (the predictions), 22 MB when full. Pruned nets are 19 MB each for the default net
    # (kernels and masks), needed only by the views drawn from a net and the latency of recent states: "pruned"
    # keeps the ones a reconstruction or a Hessian made (seconds to minutes to remake), "remade" the few of the
    # methods whose net is a mask from a plan in memory (magnitude, random: milliseconds to remake, so kept briefly).
    return {
        "points": LruCache(2048),
        "pruned": LruCache(6),
        "remade": LruCache(2),
        "latency": LruCache(512),
        "curves": LruCache(256),
        "structures": LruCache(2048),
        "figures": LruCache(64),
        "networks": LruCache(8),
        "estimates": LruCache(512),
    }


def remembered(store: str, key: Hashable, load: Callable[[], Any]) -> Any:
    """The one lookup of every shared result: the in-memory store's, else `load()`'s (from disk, or computed when
    that is quick), kept in the store when it is not None. None when neither has it.

    Args:
        store: a name in `stores()`.
        key: the result's key there.
        load: reads (or makes) the result; returns None when it has none.
    """
    cache = stores()[store]
    if (found := cache.get(key)) is None and (found := load()) is not None:
        cache.put(key, found)
    return found


def estimate(key: ModelKey, method: str, mode: str, points: int, epochs: float = 0.0) -> float:
    """obd.work.sweep.estimate_seconds, kept per question: it reads the network's cached curves for their measured
    seconds per point, too slow to repeat on every rerun."""
    k = (key, method, mode, points, epochs)
    return remembered("estimates", k, lambda: estimate_seconds(network(key), method, mode, points, epochs))


UPLOADS_CAP_BYTES = 2**30  # the checked uploads kept in the temp folder, all together: four of the largest allowed


def upload_path(digest: str) -> Path:
    """Where a checked upload lives, named by its content so that every session shares one copy."""
    return Path(tempfile.gettempdir()) / f"obd-upload-{digest}.keras"


def upload_digest(raw: bytes) -> str:
    return hashlib.sha256(raw).hexdigest()


class UploadStore:
    """The checked uploads in the temp folder: which session uses which, and the least recently used of the rest
    removed once they hold more than `cap` bytes together (a session's own upload is never removed while the
    session lives; files an earlier server left are the first to go).

    Args:
        folder: where the uploads live (`upload_path`'s folder).
        cap: the bytes all uploads may hold together before unused ones are removed.
        active: whether a session (by id) is still open.
    """

    def __init__(self, folder: Path, cap: int, active: Callable[[str], bool]) -> None:
        self.folder, self.cap, self.active = folder, cap, active
        self.lock = threading.Lock()
        self.sizes: OrderedDict[str, int] = OrderedDict()  # digest -> bytes, least recently used first
        self.users: dict[str, str] = {}  # session id -> the digest of its upload
        left = sorted(folder.glob("obd-upload-*.keras"), key=lambda p: p.stat().st_mtime)
        for p in left:
            self.sizes[p.stem.removeprefix("obd-upload-")] = p.stat().st_size

    def use(self, digest: str, session: str) -> None:
        """Record that `session` now uses the upload `digest` (already at `upload_path(digest)`), then remove the
        least recently used uploads no open session uses while all of them hold more than the cap."""
        with self.lock:
            self.sizes[digest] = (self.folder / f"obd-upload-{digest}.keras").stat().st_size
            self.sizes.move_to_end(digest)
            self.users[session] = digest
            self.users = {s: d for s, d in self.users.items() if s == session or self.active(s)}
            used = set(self.users.values())
            for victim in [d for d in self.sizes if d not in used]:
                if sum(self.sizes.values()) <= self.cap:
                    break
                (self.folder / f"obd-upload-{victim}.keras").unlink(missing_ok=True)
                del self.sizes[victim]

    def files(self) -> list[str]:
        """The digests kept, least recently used first."""
        with self.lock:
            return list(self.sizes)


def _session_open(session: str) -> bool:
    runtime = st.runtime.get_instance() if st.runtime.exists() else None
    return runtime is None or runtime.is_active_session(session)  # no runtime (a test's AppTest): keep it


@st.cache_resource
def uploads() -> UploadStore:
    """The process's one UploadStore over the temp folder."""
    return UploadStore(upload_path("x").parent, UPLOADS_CAP_BYTES, _session_open)


def session_id() -> str:
    """This script run's session id ("" outside a Streamlit run)."""
    ctx = get_script_run_ctx()
    return ctx.session_id if ctx is not None else ""


def store_upload(raw: bytes, session: str) -> str:
    """Check an uploaded model and keep it for every session under its content's digest.

    The file is checked without TensorFlow first (obd.core.modelcheck: a hostile file is refused in milliseconds,
    before anything is built), then loaded as `load_model` loads it. Each call checks its own copy: two sessions
    uploading the same file at once must not read (or delete) a copy the other is still writing; only a checked
    file takes the shared name, atomically.

    Args:
        raw: the uploaded bytes.
        session: the uploading session's id (its file is kept while the session lives).

    Returns:
        The upload's digest (`ModelKey("upload", digest)` names it).

    Raises:
        ModelFileError: the file is refused; the message names the temporary file first ("NAME: what was wrong").
    """
    digest = upload_digest(raw)
    fd, mine = tempfile.mkstemp(prefix=f".obd-upload-{digest}.", suffix=".keras")
    with os.fdopen(fd, "wb") as f:
        f.write(raw)
    try:
        check_keras_file(mine)
        from obd.training.model import load_model  # TensorFlow: only for a file that passed the checks

        load_model(mine)
    except BaseException:
        os.unlink(mine)
        raise
    os.replace(mine, upload_path(digest))
    uploads().use(digest, session)
    return digest


def network(key: ModelKey) -> Network:
    """The read-only numpy network of a cached preset or a checked upload (looked up by the key's own hash: a
    page calls this a dozen times a run, and Streamlit's argument hashing would cost more than the lookup).

    Raises:
        LookupError: for a preset that is not trained yet.
    """
    return remembered("networks", key, lambda: _load_network(key))


@st.cache_resource(max_entries=8, show_spinner="Loading the model…")
def _load_network(key: ModelKey) -> Network:
    if key.kind == "preset":
        net = cached_preset(key.name)
        if net is None:
            raise LookupError(f"the {key.name} model is not trained yet")
    else:
        from obd.core.network import from_keras
        from obd.runtime.evaluate import fit_pixels
        from obd.training.model import load_model  # TensorFlow: only for reading an upload

        net = fit_pixels(from_keras(load_model(upload_path(key.name))), data())  # on the pixels it takes
    freeze_imports()
    return net


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


# ---------------------------------------------------------------- saliency and speed tables
@st.cache_resource(max_entries=4, show_spinner="Computing saliencies…")
def saliencies(key: ModelKey, method: str) -> list[np.ndarray]:
    """The dense network's per-weight scores of `method`, one array per layer (30 MB for the default net)."""
    return saliency_map(network(key), method, calib_for(method))
