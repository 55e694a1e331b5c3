"""A real dashboard for benchmarks and tests: `streamlit run app.py` on a free local port, the chromium that drives
it, and what its metrics must say for a given state according to obd.

Shared by benchmarks/live_class.py, benchmarks/load.py, tests/conftest.py (the browser tests' server) and
tests/ui/test_app_reliability.py, so that the server is started, and the page read, in one way everywhere.
"""

from __future__ import annotations

import ast
import contextlib
import os
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np

import obd  # noqa: F401  first: it sets the thread runtimes' environment, which OpenBLAS reads as numpy loads
from obd.core.network import Network
from obd.core.pruning import report
from obd.methods.registry import Plan, plan
from obd.runtime.evaluate import evaluate

ROOT = Path(__file__).resolve().parents[1]
CHROMIUM = Path("/usr/bin/chromium")  # Debian's package: Playwright never downloads a browser here
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
IDLE = "[data-testid='stApp'][data-test-script-state='notRunning']"
METRICS = ("Test accuracy", "Test loss", "Weights kept", "Units kept")  # the labels whose values depend on the state


@dataclass(frozen=True)
class Server:
    """A running dashboard: its address, its process id (for its memory) and when it was launched."""

    url: str
    pid: int
    launched: float  # time.perf_counter() just before the process started


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def healthy(url: str) -> bool:
    """Whether the Streamlit server at `url` answers its health check."""
    try:
        with urllib.request.urlopen(f"{url}/_stcore/health", timeout=2) as r:
            return r.read().decode().strip() == "ok"
    except OSError:
        return False


def streamlit_command(python: str, app: str, port: int, *options: str) -> list[str]:
    """`python -m streamlit run app` headless on 127.0.0.1:port, then `options` (more `streamlit run` flags)."""
    return [
        python,
        "-m",
        "streamlit",
        "run",
        app,
        "--server.headless",
        "true",
        "--server.address",
        "127.0.0.1",
        "--server.port",
        str(port),
        *options,
    ]


@contextlib.contextmanager
def serve(preset: str, log: Path, start_timeout: float = 120.0, options: tuple[str, ...] = ()) -> Iterator[Server]:
    """A headless `streamlit run app.py` on a free port, opening `preset`; stopped on exit.

    The model comes from $OBD_CACHE_DIR (trained there first if missing) and MNIST from $OBD_MNIST_PATH, as the
    caller's environment says.

    Args:
        preset: the OBD_PRESET the server opens with.
        log: file that receives the server's stdout and stderr.
        start_timeout: seconds to wait for the health check to pass.
        options: more `streamlit run` flags, after (and so overriding) these, e.g. ("--browser.gatherUsageStats",
            "true") to have every run's page profile sent (benchmarks/load.py reads its execution time).

    Yields:
        the running Server.

    Raises:
        RuntimeError: the server exited or did not answer within `start_timeout` (with the log's tail).
    """
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    cmd = streamlit_command(
        sys.executable,
        str(ROOT / "app.py"),
        port,
        "--browser.gatherUsageStats",
        "false",
        "--server.fileWatcherType",
        "none",  # a watcher over the repository only adds load
        *options,
    )
    launched = time.perf_counter()
    with open(log, "wb") as out:
        proc = subprocess.Popen(
            cmd, cwd=ROOT, env={**os.environ, "OBD_PRESET": preset}, stdout=out, stderr=subprocess.STDOUT
        )
    try:
        while not healthy(url):
            if proc.poll() is not None or time.perf_counter() - launched > start_timeout:
                raise RuntimeError(f"streamlit did not start (exit code {proc.poll()}):\n{log.read_text()[-3000:]}")
            time.sleep(0.05)
        yield Server(url, proc.pid, launched)
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()


def rss_mb(pid: int) -> float:
    """Resident memory of a process in MB (VmRSS from /proc: no psutil needed on Linux)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError(f"no VmRSS for process {pid}")


def _stat(pid: int) -> list[str]:
    return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()  # after "(name)", which may hold spaces


def cpu_s(pid: int) -> float:
    """CPU seconds (user + system) a process has used so far, from /proc/PID/stat."""
    fields = _stat(pid)
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")  # utime, stime: fields 14, 15 of stat


def descendants_cpu_s(root: int, skip: int | None = None) -> float:
    """CPU seconds used so far by every living descendant of process `root` (not `root` itself), leaving out
    process `skip` and its descendants: e.g. the browser a benchmark drives, without the server it measures."""
    parent = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            with contextlib.suppress(OSError, IndexError):  # a process may exit while we read
                parent[int(entry.name)] = int(_stat(int(entry.name))[1])  # ppid: field 4 of stat

    def under(pid: int) -> bool:
        while pid in parent and pid not in (root, skip):
            pid = parent[pid]
        return pid == root

    total = 0.0
    for pid in parent:
        if pid not in (root, skip) and under(pid):
            with contextlib.suppress(OSError):
                total += cpu_s(pid)
    return total


def app_constant(name: str) -> object:
    """A literal constant of the dashboard (e.g. QUICK_PICKS in ui/services/state.py), read from its source: importing
    the page's modules outside a server would set up Streamlit's caches without a runtime.

    Raises:
        KeyError: neither app.py nor ui/services/state.py assigns a literal to `name`.
    """
    for source in (ROOT / "app.py", ROOT / "ui" / "services" / "state.py"):
        for node in ast.parse(source.read_text()).body:
            if isinstance(node, ast.Assign) and any(getattr(t, "id", None) == name for t in node.targets):
                return ast.literal_eval(node.value)
    raise KeyError(f"the dashboard has no literal constant {name}")


def state_caption(mode: str, sparsity_pct: int, method: str = "magnitude", budget: str = "layer") -> str:
    """How the dashboard's caption ends for a state: "… · magnitude unit pruning at 90 % (layer budget)"."""
    return f"{method} {mode} pruning at {sparsity_pct} % ({budget} budget)"


class Expected:
    """What the dashboard's metrics must show for each (mode, sparsity) of one network, computed with obd alone.

    Args:
        net: the dashboard's base network (the same weights the server loads).
        x: (n, 784) float32 test images.
        y: (n,) integer labels.
        method: the pruning method the sessions use.
    """

    def __init__(self, net: Network, x: np.ndarray, y: np.ndarray, method: str = "magnitude"):
        self.net, self.x, self.y, self.method = net, x, y, method
        self._plans: dict[str, Plan] = {}  # ranked once per mode: any sparsity then costs milliseconds
        self._texts: dict[tuple[str, int], dict[str, str]] = {}

    def __call__(self, mode: str, sparsity_pct: int) -> dict[str, str]:
        """The metric texts {label: value} the page shows for this state (formatted as app.py formats them)."""
        if (mode, sparsity_pct) not in self._texts:
            self._texts[mode, sparsity_pct] = self._compute(mode, sparsity_pct)
        return self._texts[mode, sparsity_pct]

    def _compute(self, mode: str, sparsity_pct: int) -> dict[str, str]:
        if mode not in self._plans:
            self._plans[mode] = plan(self.net, self.method, mode)
        pruned = self._plans[mode].prune(sparsity_pct / 100)
        ev = evaluate(pruned.net, self.x, self.y, engine="auto")  # the engine the app evaluates with
        r = report(pruned)
        return {
            "Test accuracy": f"{100 * ev.accuracy:.2f} %",
            "Test loss": f"{ev.loss:.4f}",
            "Weights kept": f"{r.kept_weights:,}",
            "Units kept": f"{r.kept_units:,}",
        }
