"""Start-up (issue 14): a cached model opens without TensorFlow (obd.core.files's .npz beside the .keras, or the
.keras file's own weights read with h5py), both equal to what Keras loads, bit for bit; and training reports
its progress a few times a second, not after every batch.

Everything is real: MNIST, Keras models trained for a few steps, files on disk, a child Python process for the
import check.
"""

from __future__ import annotations

import ast
import dataclasses
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from obd.core.config import ModelSpec, TrainConfig
from obd.core.files import (
    ModelFileError,
    cache_path,
    cached_network,
    load_network,
    network_path,
    read_keras_file,
    save_network,
)
from obd.core.network import InputNorm, Network, from_keras
from obd.training.model import (
    PROGRESS_SECONDS,
    STEPS_PER_CALL,
    build_model,
    load_model,
    save_model,
    steps_per_call,
    train,
    trained_model,
)

ROOT = Path(__file__).resolve().parents[2]
QUICK = TrainConfig(epochs=0.2, batch_size=64, train_limit=2000, seed=3)  # 7 steps: the weights move off their init
PLAIN = ModelSpec((32, 16), use_bias=True)
STANDARDIZED = ModelSpec((16,), use_bias=False, input_norm=(0.1307, 0.3081))  # as the mlpnet preset
# The obd modules of the dashboard's view path; none may pull in TensorFlow or Keras (see view_path()).
VIEW_PATH = (
    "obd.core.config",
    "obd.core.data",
    "obd.core.network",
    "obd.core.files",
    "obd.core.pruning",
    "obd.runtime.evaluate",
    "obd.runtime.engines",
    "obd.methods.registry",
    "obd.figures.plots",
    "obd.work.sweep",
)


def same(a: object, b: object) -> bool:
    """Field-by-field equality of Networks, Layers and whatever they hold, arrays by dtype, shape and value; it
    walks the dataclasses' own fields, so a field added later is compared too."""
    if dataclasses.is_dataclass(a):
        return type(a) is type(b) and all(same(getattr(a, f.name), getattr(b, f.name)) for f in dataclasses.fields(a))
    if isinstance(a, np.ndarray):
        return isinstance(b, np.ndarray) and a.dtype == b.dtype and np.array_equal(a, b)
    if isinstance(a, (tuple, list)):
        return type(a) is type(b) and len(a) == len(b) and all(same(x, y) for x, y in zip(a, b))
    return type(a) is type(b) and a == b


def view_path() -> list[str]:
    """VIEW_PATH and every obd module the dashboard (app.py, ui/*.py) imports at module level, read from their
    source, so that a view added later is checked too."""
    modules = set(VIEW_PATH)
    for source in [ROOT / "app.py", *sorted((ROOT / "ui").glob("*.py"))]:
        for node in ast.parse(source.read_text()).body:  # module level only: imports inside functions are lazy
            if isinstance(node, ast.Import):
                modules.update(a.name for a in node.names if a.name.startswith("obd."))
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module == "obd":
                modules.update(f"obd.{a.name}" for a in node.names)  # from obd import engines, plots
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and (node.module or "").startswith("obd."):
                modules.add(node.module)
    return sorted(modules)


def keras_view(path: Path) -> Network:
    """The reference: what Keras itself loads from a .keras file."""
    return from_keras(load_model(path))


@pytest.fixture(scope="module")
def cached(mnist) -> Path:
    """A small model trained and cached by obd.training.model.trained_model (the session's temporary OBD_CACHE_DIR)."""
    _, path, _ = trained_model(PLAIN, QUICK, mnist)
    return path


@pytest.fixture
def legacy_cache(cached, tmp_path, monkeypatch) -> Path:
    """A cache folder as made before .npz files existed: the .keras file alone."""
    shutil.copy2(cached, tmp_path / cached.name)
    monkeypatch.setenv("OBD_CACHE_DIR", str(tmp_path))
    return tmp_path / cached.name


def test_training_caches_an_npz_equal_to_the_keras_model(cached, mnist):
    npz = network_path(cached)
    assert npz == cached.with_suffix(".npz") and npz.is_file()
    reference = keras_view(cached)
    net = cached_network(PLAIN, QUICK)
    assert same(net, reference) and net.fingerprint() == reference.fingerprint()
    assert np.array_equal(net.logits(mnist.x_test), reference.logits(mnist.x_test))


def test_keras_weights_read_with_h5py_equal_keras_and_are_cached(legacy_cache, mnist):
    reference = keras_view(legacy_cache)
    net = read_keras_file(legacy_cache)
    assert same(net, reference) and net.fingerprint() == reference.fingerprint()
    assert np.array_equal(net.logits(mnist.x_test), reference.logits(mnist.x_test))
    assert not network_path(legacy_cache).exists()
    assert same(cached_network(PLAIN, QUICK), reference)
    assert same(load_network(network_path(legacy_cache)), reference), "the .npz is written for the next start"


@pytest.mark.parametrize("first", ["normalization", "rescaling"])
def test_input_transforms_are_read_and_stored_exactly(first, tmp_path, mnist):
    """A first Normalization (the mlpnet preset's) or Rescaling layer: h5py reader and .npz both give from_keras."""
    import keras

    if first == "normalization":
        model = build_model(STANDARDIZED, seed=1)
    else:
        model = keras.Sequential(
            [
                keras.Input((784,)),
                keras.layers.Rescaling(1 / 255, offset=-0.5, name="scale"),
                keras.layers.Dense(8, activation="relu", name="hidden"),
                keras.layers.Dense(10, name="logits"),
            ],
            name="rescaled",
        )
    train(model, mnist, QUICK)
    path = save_model(model, tmp_path / "m.keras")
    reference = keras_view(path)
    assert isinstance(reference.input_norm, InputNorm)
    h5 = read_keras_file(path)
    stored = load_network(save_network(reference, tmp_path / "m.npz"))
    for net in (h5, stored):
        assert same(net, reference) and net.fingerprint() == reference.fingerprint()
        assert np.array_equal(net.logits(mnist.x_test[:2000]), reference.logits(mnist.x_test[:2000]))


def test_a_stale_or_damaged_npz_is_replaced_from_the_keras_file(legacy_cache, mnist):
    reference = keras_view(legacy_cache)
    npz = network_path(legacy_cache)
    other = from_keras(build_model(PLAIN, seed=9))
    save_network(other, npz)
    older = legacy_cache.stat().st_mtime_ns - 10**9
    os.utime(npz, ns=(older, older))  # as after a retraining that rewrote the .keras but died before the .npz
    assert same(cached_network(PLAIN, QUICK), reference)
    assert same(load_network(npz), reference), "the stale .npz was rewritten"
    npz.write_bytes(b"PK\x03\x04 not really a zip")  # newer than the .keras, but damaged
    with pytest.raises(ModelFileError, match="not a readable obd network file"):
        load_network(npz)
    assert same(cached_network(PLAIN, QUICK), reference)


def test_nothing_cached_or_unreadable_gives_none(tmp_path, monkeypatch, cached):
    monkeypatch.setenv("OBD_CACHE_DIR", str(tmp_path))
    assert cached_network(PLAIN, QUICK) is None
    cache_path(PLAIN, QUICK).write_bytes(b"\x00" * 100)  # a damaged .keras and no .npz: trained_model retrains
    assert cached_network(PLAIN, QUICK) is None
    with pytest.raises(ModelFileError, match="not a Keras 3 .keras file"):
        read_keras_file(cache_path(PLAIN, QUICK))


def test_network_files_refuse_foreign_content(tmp_path):
    np.savez(tmp_path / "plain.npz", kernel=np.zeros((784, 10), np.float32))
    with pytest.raises(ModelFileError, match="not a readable obd network file"):
        load_network(tmp_path / "plain.npz")
    meta = {
        "format": "obd-network",
        "version": 1,
        "network": {"dataclass": {"class": "Popen", "fields": {}}},
    }  # only obd.core.network's classes are built
    np.savez(tmp_path / "evil.npz", __meta__=np.array(json.dumps(meta)))
    with pytest.raises(ModelFileError, match="unknown class 'Popen'"):
        load_network(tmp_path / "evil.npz")
    with pytest.raises(ModelFileError, match="no such network file"):
        load_network(tmp_path / "missing.npz")
    with pytest.raises(ValueError, match="must end in .npz"):
        save_network(from_keras(build_model(PLAIN)), tmp_path / "net.bin")


def test_view_path_and_cached_network_never_import_tensorflow(legacy_cache):
    """In a fresh interpreter: the view path's modules (the dashboard's own obd imports included), then the cached
    network twice (from the .keras with h5py, then from the .npz that wrote), and neither tensorflow nor keras is
    ever imported."""
    code = f"""
import sys
import obd
import {", ".join(view_path())}
from obd.core.config import ModelSpec, TrainConfig
from obd.core.files import cached_network, network_path, cache_path
spec, config = {PLAIN!r}, {QUICK!r}
first = cached_network(spec, config)
assert network_path(cache_path(spec, config)).is_file()
second = cached_network(spec, config)
print(first.fingerprint(), second.fingerprint(), sorted(m for m in ("tensorflow", "keras") if m in sys.modules))
"""
    env = dict(os.environ, OBD_CACHE_DIR=str(legacy_cache.parent))
    r = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    first, second, loaded = r.stdout.split(maxsplit=2)
    assert first == second == keras_view(legacy_cache).fingerprint()
    assert loaded.strip() == "[]", f"TensorFlow or Keras was imported: {loaded}"


def test_the_dashboards_module_imports_leave_out_pandas_and_scipy_linalg():
    """What a session's first run imports before it paints the metrics: app.py's module-level imports. pandas
    (0.35 s) waits for the first view drawn, scipy.linalg (0.2 s) for the first reconstruction."""
    code = "import sys, app; print(sorted(m for m in ('pandas', 'scipy.linalg') if m in sys.modules))"
    r = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == "[]", f"imported before the first paint: {r.stdout}"


def test_progress_is_reported_a_few_times_a_second_and_at_the_last_batch(mnist):
    seen: list[tuple[float, int]] = []

    def slow_consumer(p) -> None:  # a UI redraw: 20 ms of work per report
        seen.append((time.monotonic(), p.step))
        time.sleep(0.02)

    config = TrainConfig(epochs=1, batch_size=16, train_limit=6000)  # 375 steps, a few seconds on 2 cores
    started = time.monotonic()
    train(build_model(ModelSpec((64,), True)), mnist, config, progress=slow_consumer)
    elapsed = time.monotonic() - started
    steps = [s for _, s in seen]
    assert steps[0] == STEPS_PER_CALL and steps[-1] == 375 and steps == sorted(set(steps))  # after the first call
    gaps = np.diff([t for t, _ in seen[:-1]])  # the last report comes whenever training ends
    assert np.all(gaps >= PROGRESS_SECONDS), gaps.min()
    assert len(seen) <= elapsed / PROGRESS_SECONDS + 2
    every = []
    train(
        build_model(ModelSpec((64,), True)),
        mnist,
        TrainConfig(epochs=1, batch_size=500, train_limit=3000),
        progress=lambda p: every.append(p.step),
        progress_seconds=0,
    )
    assert every == [1, 2, 3, 4, 5, 6]
    with pytest.raises(ValueError, match="progress_seconds"):
        train(build_model(ModelSpec((8,), True)), mnist, config, progress=every.append, progress_seconds=-1)


@pytest.mark.parametrize("epochs, calls", [(2, 24), (1.5, 12), (47 / 24, 23)])  # whole, mid-epoch, a prime end
def test_many_batches_per_call_train_the_same_weights_and_stop_where_asked(mnist, epochs, calls):
    config = TrainConfig(epochs=epochs, train_limit=3000)  # 24 batches an epoch (the last one short)
    steps = round(epochs * 24)
    assert steps_per_call(steps, 24, every_batch=False) == calls and steps_per_call(steps, 24, True) == 1
    weights, reports = [], []
    for every_batch in (True, False):
        seen: list[int] = []
        model = build_model(ModelSpec((32,), True))
        every = 0 if every_batch else 1
        train(model, mnist, config, progress=lambda p, seen=seen: seen.append(p.step), progress_seconds=every)
        weights.append(model.get_weights())
        reports.append(seen)
    assert reports[0] == list(range(1, steps + 1)) and reports[1][-1] == steps
    for one, many in zip(*weights):
        np.testing.assert_allclose(many, one, rtol=0, atol=1e-6)


def test_streamlit_reads_the_server_settings_a_class_relies_on():
    # read through Streamlit's own parser from the project's directory, as `streamlit run app.py` does, so a
    # misspelt key or a broken file fails here. Each setting's reason is beside it in .streamlit/config.toml:
    # no file watcher over a .venv inside the project (start-up), one script thread per session (fastReruns), and
    # no full garbage collection after every run (postScriptGC: 74 % of the server's GIL time under 30 sessions)
    code = (
        "from streamlit import config; config.get_config_options(force_reparse=True); "
        "print([config.get_option(k) for k in ('server.fileWatcherType', 'server.runOnSave', "
        "'runner.fastReruns', 'runner.postScriptGC')])"
    )
    out = subprocess.run(
        [sys.executable, "-c", code],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "HOME": str(ROOT / "tests")},
    )  # no user config of this machine
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.strip().splitlines()[-1] == "['none', False, False, False]"
