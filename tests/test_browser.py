"""End to end in a real browser: `streamlit run app.py` on a free local port, driven by Playwright in Debian's
chromium. Opens a shared address (?mode=unit&sparsity=90), waits for the run to finish, checks the accuracy
against obd and that no exception box is shown, and saves a screenshot under test-output/ (git-ignored); and
clicks a point of the accuracy-vs-sparsity curves, which must move the mode, slider, URL and metrics there.

Skips, saying why, only when chromium or the playwright package is missing; CI (.ci/run) installs both.
`playwright install` is never needed: the test launches the system chromium.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from obd.config import TrainConfig, preset_spec
from obd.evaluate import evaluate
from obd.model import trained_model
from obd.network import from_keras
from obd.pruning import prune

pytestmark = pytest.mark.browser

ROOT = Path(__file__).resolve().parents[1]
CHROMIUM = Path("/usr/bin/chromium")  # Debian's package; Playwright's own download is not available offline
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
                 "--disable-sync", "--no-first-run"]
OUTPUT = ROOT / "test-output"
START_TIMEOUT = 90  # seconds for the server to answer /_stcore/health on a busy 2-core machine
RUN_TIMEOUT_MS = 240_000  # the first page run computes the curves


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _healthy(url: str) -> bool:
    try:
        with urllib.request.urlopen(f"{url}/_stcore/health", timeout=2) as r:
            return r.read().decode().strip() == "ok"
    except OSError:
        return False


@pytest.fixture(scope="module")
def sync_playwright():
    if not CHROMIUM.is_file():
        pytest.skip(f"Debian's chromium is not installed at {CHROMIUM} (apt-get install -y chromium)")
    api = pytest.importorskip("playwright.sync_api", reason="the playwright package is not installed "
                                                           "(pip install -r requirements.txt)")
    return api.sync_playwright


@pytest.fixture(scope="module")
def tiny(mnist):
    """The tiny preset, trained into the test session's cache before the server starts, so the app loads it."""
    return from_keras(trained_model(preset_spec("tiny"), TrainConfig(), mnist)[0])


@pytest.fixture(scope="module")
def server(tiny, tmp_path_factory):
    port = _free_port()
    url = f"http://127.0.0.1:{port}"
    log = tmp_path_factory.mktemp("streamlit") / "server.log"
    env = {**os.environ, "OBD_PRESET": "tiny"}  # OBD_CACHE_DIR is the session's temporary cache (conftest)
    cmd = [sys.executable, "-m", "streamlit", "run", str(ROOT / "app.py"), "--server.headless", "true",
           "--server.address", "127.0.0.1", "--server.port", str(port), "--browser.gatherUsageStats", "false"]
    with open(log, "wb") as out:
        proc = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + START_TIMEOUT
        while not _healthy(url):
            if proc.poll() is not None or time.monotonic() > deadline:
                pytest.fail(f"streamlit did not start (exit code {proc.poll()}):\n{log.read_text()[-3000:]}")
            time.sleep(0.5)
        yield url
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()


def test_a_shared_address_opens_that_state_in_chromium(server, sync_playwright, tiny, mnist):
    want = evaluate(prune(tiny, 0.9, "unit").net, mnist.x_test, mnist.y_test).accuracy
    OUTPUT.mkdir(exist_ok=True)
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport={"width": 1400, "height": 1100})
            page.goto(f"{server}/?mode=unit&sparsity=90", timeout=60_000)
            accuracy = page.locator("[data-testid='stMetric']").filter(has_text="Test accuracy")
            accuracy.wait_for(timeout=RUN_TIMEOUT_MS)
            page.wait_for_selector("[data-testid='stApp'][data-test-script-state='notRunning']",
                                   timeout=RUN_TIMEOUT_MS)
            page.screenshot(path=str(OUTPUT / "dashboard-unit-90.png"), full_page=True)
            value = accuracy.locator("[data-testid='stMetricValue']").inner_text()
            exceptions = page.locator("[data-testid='stException']").count()
        finally:
            browser.close()
    assert value.strip() == f"{100 * want:.2f} %"
    assert exceptions == 0


IDLE = "[data-testid='stApp'][data-test-script-state='notRunning']"
POINT_XY = """([name, x]) => {  // page coordinates of the curve point (name, x), from plotly's own axes
    const gd = document.querySelector('.js-plotly-plot'), fl = gd._fullLayout, box = gd.getBoundingClientRect();
    const t = gd._fullData.find(t => t.name === name), j = t.x.indexOf(x);
    return [box.left + fl._size.l + fl.xaxis.l2p(t.x[j]), box.top + fl._size.t + fl.yaxis.l2p(t.y[j])];
}"""


def test_clicking_a_curve_point_moves_the_controls_there(server, sync_playwright, tiny, mnist):
    want = evaluate(prune(tiny, 0.5, "unit").net, mnist.x_test, mnist.y_test).accuracy
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport={"width": 1400, "height": 1100})
            page.goto(f"{server}/?mode=weight&sparsity=90", timeout=60_000)
            page.wait_for_selector(".js-plotly-plot .scatterlayer", timeout=RUN_TIMEOUT_MS)
            page.wait_for_selector(IDLE, timeout=RUN_TIMEOUT_MS)
            x, y = page.evaluate(POINT_XY, ["magnitude, unit", 50])
            page.mouse.move(x, y)  # plotly picks the point under the pointer on hover, then the click selects it
            page.mouse.click(x, y)
            page.wait_for_url("**sparsity=50**", timeout=30_000)
            page.wait_for_selector(IDLE, timeout=RUN_TIMEOUT_MS)
            accuracy = page.locator("[data-testid='stMetric']").filter(has_text="Test accuracy")
            value = accuracy.locator("[data-testid='stMetricValue']").inner_text()
            slider = page.locator("[data-testid='stSlider'] input[type='range']").first.input_value()
            exceptions = page.locator("[data-testid='stException']").count()
        finally:
            browser.close()
    assert "mode=unit" in page.url
    assert slider == "50"
    assert value.strip() == f"{100 * want:.2f} %"
    assert exceptions == 0
