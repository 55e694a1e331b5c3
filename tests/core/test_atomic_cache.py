"""Nothing lost (issue 6): a process killed (SIGKILL) while it saves or trains leaves the previous model file
byte-identical and loadable, and its partial temp file is never taken as the model; stale temp files are
cleaned up by the next save. Each test runs real child processes (real TensorFlow, real .keras writes).
"""

from __future__ import annotations

import hashlib
import os
import selectors
import signal
import subprocess
import sys
import time
import zipfile
from pathlib import Path

import numpy as np
import pytest

from obd.core.cache import STALE_TEMP_SECONDS
from obd.core.config import ModelSpec, TrainConfig
from obd.core.files import cache_path
from obd.training.model import build_model, load_model, save_model, trained_model

ROOT = Path(__file__).resolve().parents[2]
SPEC = ModelSpec((64,), True)
CONFIG = TrainConfig(epochs=5, batch_size=32, train_limit=20_000)  # 3,125 steps: it is killed long before the end

# Child processes. Each prints a line when it reaches the point where the parent kills it.
SLOW_SAVE = f"""
import sys, time, zipfile
from obd.training.model import build_model, save_model
from obd.core.config import ModelSpec
close = zipfile.ZipFile.close
def stalled_close(self):  # the archive is half written: entries on disk, no central directory yet
    if self.mode == "w":
        print("writing", self.filename, flush=True)
        time.sleep(600)
    close(self)
zipfile.ZipFile.close = stalled_close
save_model(build_model({SPEC!r}, seed=1), sys.argv[1])
"""
SAVE_LOOP = f"""
import sys
from obd.training.model import build_model, save_model
from obd.core.config import ModelSpec
models = [build_model({SPEC!r}, seed=s) for s in (1, 2)]
i = 0
while True:
    save_model(models[i % 2], sys.argv[1])
    print("saved", i, flush=True)
    i += 1
"""
TRAIN = f"""
from obd.training.model import trained_model
from obd.core.config import ModelSpec, TrainConfig
def show(p):  # reports are a few a second, not every batch: any step at or past 20 will do
    if p.step >= 20:
        print("past step 20", flush=True)
trained_model({SPEC!r}, {CONFIG!r}, progress=show)
"""


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def weights_hash(model) -> str:
    return hashlib.sha256(b"".join(w.tobytes() for w in model.get_weights())).hexdigest()


def start(code: str, *args: object, cache: Path, log: Path) -> subprocess.Popen:
    env = dict(os.environ, OBD_CACHE_DIR=str(cache), PYTHONUNBUFFERED="1")
    return subprocess.Popen(
        [sys.executable, "-c", code, *map(str, args)],
        cwd=ROOT,
        env=env,
        text=True,
        stdout=subprocess.PIPE,
        stderr=log.open("w"),
    )


def wait_for(proc: subprocess.Popen, prefix: str, log: Path, timeout: float = 240) -> str:
    """The child's first stdout line starting with `prefix` (fails if it exits or takes too long first)."""
    sel = selectors.DefaultSelector()
    sel.register(proc.stdout, selectors.EVENT_READ)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if sel.select(timeout=1):
            line = proc.stdout.readline()
            if not line:
                break
            if line.startswith(prefix):
                return line.strip()
    proc.kill()
    pytest.fail(f"the child never printed {prefix!r}; stderr tail:\n{log.read_text()[-2000:]}")


def kill(proc: subprocess.Popen) -> None:
    proc.send_signal(signal.SIGKILL)
    assert proc.wait(timeout=60) == -signal.SIGKILL
    proc.stdout.close()


def folder_state(folder: Path) -> dict[str, str]:
    return {p.name: sha256(p) for p in sorted(folder.iterdir()) if p.is_file()}


@pytest.fixture
def cache(tmp_path, monkeypatch) -> Path:
    folder = tmp_path / "cache"
    folder.mkdir()
    monkeypatch.setenv("OBD_CACHE_DIR", str(folder))
    return folder


@pytest.fixture
def previous(cache):
    """A cache entry as a finished training leaves it: the model file and its metadata."""
    model = build_model(SPEC, seed=0)
    path = save_model(model, cache_path(SPEC, CONFIG))
    path.with_suffix(".json").write_text('{"train_seconds": 1.0}')
    return path, sha256(path), weights_hash(model)


def test_killed_in_the_middle_of_a_save_the_previous_cache_file_stays(previous, cache, tmp_path):
    path, file_hash, weights = previous
    log = tmp_path / "child.log"
    proc = start(SLOW_SAVE, path, cache=cache, log=log)
    temp = Path(wait_for(proc, "writing", log).split(" ", 1)[1])
    assert temp.parent == cache and temp != path and temp.stat().st_size > 0, "a half-written temp file"
    kill(proc)

    assert not zipfile.is_zipfile(temp), "the temp file really is partial"
    assert sha256(path) == file_hash, "the cache file is byte-identical"
    model, got, trained_now = trained_model(SPEC, CONFIG)
    assert got == path and not trained_now, "the previous model is loaded, not retrained"
    assert weights_hash(model) == weights, "and it is the previous model, not the partial one"
    assert temp.exists(), "a killed writer cannot clean up: its temp file is left..."
    assert temp.name.startswith(f".{path.name}.") and temp.name.endswith(".tmp.keras"), "...hidden, named apart"

    fresh = temp.with_name(temp.name.replace(".tmp", "x.tmp"))  # another, live writer's temp file
    fresh.write_bytes(b"in progress")
    old = time.time() - STALE_TEMP_SECONDS - 60
    os.utime(temp, (old, old))
    save_model(model, path)
    assert not temp.exists(), "the next save removes a stale temp file"
    assert fresh.exists(), "but not one that may still be written"
    assert weights_hash(load_model(path)) == weights


def test_killed_at_random_moments_of_repeated_saves_the_file_is_always_a_whole_model(cache, tmp_path):
    """Two children overwrite a file in a loop with two models and die at random moments; each file is
    whole every time: one of the two models, never a mix or a partial file."""
    expected = {weights_hash(build_model(SPEC, seed=s)) for s in (1, 2)}
    rng = np.random.default_rng()
    runs = []
    for i in range(2):
        path, log = cache / f"m{i}.keras", tmp_path / f"child{i}.log"
        runs.append((start(SAVE_LOOP, path, cache=cache, log=log), path, log))
    for proc, _, log in runs:
        wait_for(proc, "saved 1", log)
    for proc, _, _ in runs:
        time.sleep(rng.uniform(0, 0.3))
        kill(proc)
    for _, path, _ in runs:
        assert weights_hash(load_model(path)) in expected
    names = sorted(p.name for p in cache.iterdir())
    assert [n for n in names if not n.startswith(".")] == ["m0.keras", "m1.keras"]
    assert len(names) <= 4 and all(n.endswith(".tmp.keras") for n in names if n.startswith(".")), (
        "at most one hidden temp file per killed writer"
    )


def test_killed_during_training_nothing_is_written_and_the_other_entries_stay(cache, tmp_path):
    other_spec = ModelSpec((8,), True)
    other = save_model(build_model(other_spec, seed=3), cache_path(other_spec, CONFIG))
    before = folder_state(cache)
    log = tmp_path / "child.log"
    proc = start(TRAIN, cache=cache, log=log)
    wait_for(proc, "past step 20", log)
    kill(proc)

    assert folder_state(cache) == before, "no file added, changed or left behind"
    assert not cache_path(SPEC, CONFIG).exists()
    model, _, trained_now = trained_model(other_spec, CONFIG)
    assert not trained_now and weights_hash(model) == weights_hash(load_model(other))
