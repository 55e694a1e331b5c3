"""Shared fixtures: real MNIST (via OBD_MNIST_PATH, the Keras cache, or one download), small real models, the
hostile model files and broken MNIST files of tests/bad_inputs.py, and for the browser tests a real dashboard
server (benchmarks/live_app.py) with Debian's chromium.

Every test runs with OBD_CACHE_DIR pointing at a temporary folder, so the user's cache is never touched.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
from _pytest.nodeid import coerce_node_id

import obd  # noqa: F401  first: it sets the thread runtimes' environment, which OpenBLAS reads as numpy loads
from bad_inputs import BadFile, MarkerDense, make_bad_files, make_mnist_variants
from benchmarks.live_app import CHROMIUM, Server, serve
from obd.core.config import preset_spec
from obd.core.data import load_mnist
from obd.core.network import Network, from_keras
from obd.runtime import threads
from obd.training.model import ModelSpec, TrainConfig, build_model, train, trained_model

SMALL_SPEC = ModelSpec((128, 64), use_bias=True)  # small enough to train in seconds on 2 cores
SMALL_TRAIN = TrainConfig(epochs=2, batch_size=64, train_limit=10000, seed=0)  # 314 steps


BROWSER_TIMEOUT_S = 900  # a browser test waits up to 240 s for each page run; the first one starts the server


# the thread counts each runtime reads as it loads: OpenBLAS, OpenMP (numba's workqueue too), TensorFlow
THREAD_VARIABLES = (
    "OPENBLAS_NUM_THREADS",
    "OMP_NUM_THREADS",
    "NUMBA_NUM_THREADS",
    "TF_NUM_INTRAOP_THREADS",
    "TF_NUM_INTEROP_THREADS",
)


def pytest_configure(config: pytest.Config) -> None:
    """Under pytest-xdist, each worker's runtimes get its share of the cores (set here, in the controller, for the
    workers it starts next). Two workers each running OpenBLAS, TensorFlow and numba on every core ran the
    BLAS-heavy tests several times slower than one at a time: teams of threads that wait for a core the other holds."""
    workers = config.getoption("numprocesses", None)
    if hasattr(config, "workerinput") or not isinstance(workers, int) or workers < 2:
        return
    share = str(max(1, threads.cores() // workers))
    for name in THREAD_VARIABLES:
        os.environ.setdefault(name, share)


@pytest.hookimpl(tryfirst=True)  # before pytest-xdist's own, which reads the groups into the test ids
def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Browser tests count as slow: each needs the dashboard's server and a chromium page, so `-m "not slow"`
    leaves them out of the quick loop. Unless they say otherwise, they get BROWSER_TIMEOUT_S, not the default.

    For pytest-xdist (`--dist loadgroup`, two workers): the tests of the one dashboard server form one group, so
    one worker starts it; the tests of a module with a module-scoped fixture form one group, so the fixture is
    built once; and the slow tests go first, so that the long ones do not start last on one worker while the
    other has nothing left to run."""
    for item in items:
        if "server" in getattr(item, "fixturenames", ()):
            item.add_marker(pytest.mark.xdist_group("server"))
        elif _module_fixtures(item):
            item.add_marker(pytest.mark.xdist_group(item.nodeid.split("::")[0]))
        group = item.get_closest_marker("xdist_group")
        if group is not None and config.getvalue("loadgroup") and "@" not in item.nodeid:
            # pytest-xdist 3.8 marks a group by suffixing `item._nodeid`, which pytest 9 no longer reads (the id is
            # `item._id`): without this, loadgroup runs every test on any worker
            item._id = coerce_node_id(f"{item.nodeid}@{group.args[0]}")
        if item.get_closest_marker("browser") is not None:
            item.add_marker(pytest.mark.slow)
            if item.get_closest_marker("timeout") is None:
                item.add_marker(pytest.mark.timeout(BROWSER_TIMEOUT_S))
    items.sort(key=_longest_first)  # stable: else as collected


def _longest_first(item: pytest.Item) -> tuple[bool, float]:
    """Slow tests first, and among them those allowed to wait longest (their timeout marker)."""
    timeout = item.get_closest_marker("timeout")
    return item.get_closest_marker("slow") is None, -float(timeout.args[0] if timeout and timeout.args else 0)


def _module_fixtures(item: pytest.Item) -> bool:
    """Whether the test uses a module-scoped fixture (pytest's fixture info; a plain function item has it)."""
    info = getattr(item, "_fixtureinfo", None)
    defs = getattr(info, "name2fixturedefs", {}) if info is not None else {}
    return any(d.scope == "module" for fixturedefs in defs.values() for d in fixturedefs)


@pytest.fixture(scope="session", autouse=True)
def _isolated_cache(tmp_path_factory):
    old = os.environ.get("OBD_CACHE_DIR")
    os.environ["OBD_CACHE_DIR"] = str(tmp_path_factory.mktemp("obd-cache"))
    yield
    if old is None:
        os.environ.pop("OBD_CACHE_DIR", None)
    else:
        os.environ["OBD_CACHE_DIR"] = old


@pytest.fixture(scope="session")
def mnist():
    """The full, real MNIST."""
    return load_mnist()


@pytest.fixture(scope="session")
def small_model(mnist):
    """A 784-128-64-10 MLP with biases, trained for 2 epochs (314 steps) on 10,000 real training images."""
    model = build_model(SMALL_SPEC, seed=0)
    train(model, mnist, SMALL_TRAIN)
    return model


@pytest.fixture(scope="session")
def small_net(small_model) -> Network:
    return from_keras(small_model)


@pytest.fixture(scope="session")
def chromium() -> str:
    """Debian's chromium, for Playwright. Without it or the playwright package a browser test skips, saying what
    is missing; under CI=true it fails instead, since CI (.ci/run) installs both and a skipped browser test would
    pass unseen. `playwright install` is never needed."""
    missing = None
    if not CHROMIUM.is_file():
        missing = f"Debian's chromium is not installed at {CHROMIUM} (apt-get install -y chromium)"
    else:
        try:
            import playwright  # noqa: F401
        except ImportError:
            missing = "the playwright package is not installed (pip install -r requirements.txt)"
    if missing is not None:
        if os.environ.get("CI") == "true":
            pytest.fail(f"CI runs every browser test: {missing}", pytrace=False)
        pytest.skip(missing)
    return str(CHROMIUM)


@pytest.fixture(scope="session")
def tiny(mnist) -> Network:
    """The tiny preset, trained into the test session's cache before the server starts, so the app loads it."""
    return from_keras(trained_model(preset_spec("tiny"), TrainConfig(), mnist)[0])


@pytest.fixture(scope="session")
def server(tiny, tmp_path_factory) -> Server:
    """One `streamlit run app.py` (tiny preset, the session's temporary cache) for every browser test."""
    log = tmp_path_factory.mktemp("streamlit") / "server.log"
    try:
        with serve("tiny", log, start_timeout=90) as running:  # 90 s: a busy 2-core machine
            yield running
    except RuntimeError as e:  # the server did not start: the log says why
        pytest.fail(str(e))


@pytest.fixture
def rng():
    return np.random.default_rng(1234)


@pytest.fixture(scope="session")
def markers(tmp_path_factory) -> dict[str, Path]:
    """Files that code from a hostile model would create: none may ever exist."""
    d = tmp_path_factory.mktemp("markers")
    MarkerDense.marker = d / "custom-layer-ran"
    yield {"lambda": d / "lambda-ran", "custom": MarkerDense.marker}
    MarkerDense.marker = None


@pytest.fixture(scope="session")
def bad_files(tmp_path_factory, markers) -> dict[str, BadFile]:
    """Every kind of bad model file (`bad_inputs.BAD_FILE_NAMES`), built once."""
    return make_bad_files(tmp_path_factory.mktemp("bad-models"), markers)


@pytest.fixture(scope="session")
def bad_mnist(tmp_path_factory, mnist) -> dict[str, tuple[Path, str]]:
    """Every kind of broken MNIST file (`bad_inputs.MNIST_BAD`): (path, what the error must say)."""
    return make_mnist_variants(tmp_path_factory.mktemp("bad-mnist"), Path(mnist.source).read_bytes())


@pytest.fixture
def empty_cache(tmp_path, monkeypatch) -> Path:
    """An OBD_CACHE_DIR that does not exist yet: a test asserts it still does not (nothing was written)."""
    cache = tmp_path / "cache"
    monkeypatch.setenv("OBD_CACHE_DIR", str(cache))
    return cache
