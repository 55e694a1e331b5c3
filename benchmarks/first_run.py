"""First run and later starts as a new user meets them (issue 14): a fresh clone set up the README's way,
`streamlit run app.py`, Debian's chromium opening the page.

- first run: a `git clone` of the repository's HEAD into a temp folder, a `.venv` inside it (the README's
  layout: what Streamlit's file watcher would crawl), an empty OBD_CACHE_DIR. Prints seconds from the server's
  launch until the first usable page (a metric of the metrics row is visible) and until the default model is
  shown (the page names the default preset's sizes, "784 → 1000 → … → 10", wherever it writes them).
- later start: the same clone and venv with the cache filled (by the first run, or with the default model's
  files copied from `--cache-from`): seconds from launch to metrics, `--runs` times each in a returning
  user's browser (one browser context that opened the page before: Streamlit's static files in its HTTP cache)
  and in an empty one (a new context per start). The target is read on the returning browser: a later start is
  a user starting the app again. (The first start after this change also writes the network's .npz beside a
  .keras cached before it; a priming visit takes it.)

- training (`--phase training`): the default model's training in the app (a first run, the page open in chromium,
  as above) against `python -m obd train` in the same clone, each into an empty cache, `--rounds` times in the
  order CLI, app, app, CLI, ... so that a machine that speeds up or slows down over the minutes weighs on both
  alike. Prints each one's training seconds (the cache's .json) and the median ratio, app / CLI (target 1.15).

The venv: `--venv hardlink` (the default) hard-links this checkout's installed .venv into the clone (`cp -al`:
no network, seconds, the same 2.5 GB tree inside the project); `--venv fresh` runs the README's
`python3.11 -m venv .venv && pip install -r requirements.txt` (network, minutes). Either way the install time
is printed apart from the start-up times. MNIST comes from $OBD_MNIST_PATH (this machine is offline).
The clock starts when the server is launched; the browser is started before (a user's is already open).

Selectors: Streamlit's `[data-testid='stMetric']` for "usable", and the page's text for the default model's sizes,
so that either holds whichever element (caption, banner) the page puts them in. "Usable" is read in the page: a
script added before the page loads notes the time of the second animation frame after a metric with text and a
size is in the document (the frame after the one that painted it). Playwright's own wait polls, and while
chromium's main thread is busy (plotly's JavaScript) its poll lags the paint by up to seconds; that time is
printed beside it ("the harness saw it").

Usage: OBD_MNIST_PATH=/path/mnist.npz python -m benchmarks.first_run [--phase first|later|both|training]
           [--rev HEAD] [--venv hardlink|fresh] [--cache-from ~/.cache/obd] [--runs 3] [--rounds 3] [--timeout 900]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from playwright.sync_api import TimeoutError as PlaywrightTimeout
from playwright.sync_api import sync_playwright

import obd  # noqa: F401  first: it sets the thread runtimes' environment, which OpenBLAS reads as numpy loads
from benchmarks import results
from benchmarks.live_app import CHROMIUM, CHROMIUM_ARGS, ROOT, free_port, healthy, streamlit_command
from obd.core.config import CLASSES, DEFAULT_PRESET, INPUTS, preset_spec, preset_train_config
from obd.core.files import cache_path

TARGETS = {"usable_s": 30.0, "default_shown_s": 120.0, "later_metrics_s": 3.0, "app_vs_cli": 1.15}
METRIC = "[data-testid='stMetric']"
FIRST_CONTENT = ", ".join(f"[data-testid='{t}']" for t in ("stMetric", "stProgress", "stAlert", "stException"))
DEFAULT_SIZES = " → ".join(map(str, (INPUTS, *preset_spec(DEFAULT_PRESET).hidden, CLASSES)))
PAINT_PROBE = f"""
new MutationObserver((_, observer) => {{
  const m = document.querySelector("{METRIC}");
  if (m && m.getBoundingClientRect().width > 0 && m.innerText.trim()) {{
    observer.disconnect();
    requestAnimationFrame(() => requestAnimationFrame(() => {{ window.__metricPainted = Date.now(); }}));
  }}
}}).observe(document, {{subtree: true, childList: true, characterData: true}});
"""


def clone(source: Path, dest: Path, rev: str) -> None:
    """A fresh clone of `source` at `rev` (committed work only, as a user would get it)."""
    subprocess.run(["git", "clone", "--quiet", str(source), str(dest)], check=True)
    subprocess.run(["git", "checkout", "--quiet", rev], cwd=dest, check=True)


def make_venv(project: Path, how: str) -> float:
    """Set up `project/.venv`; returns the seconds it took."""
    start = time.perf_counter()
    venv = project / ".venv"
    if how == "hardlink":
        subprocess.run(["cp", "-al", str(ROOT / ".venv"), str(venv)], check=True)
    else:
        subprocess.run(["python3.11", "-m", "venv", str(venv)], check=True)
        subprocess.run(
            [str(venv / "bin" / "python"), "-m", "pip", "install", "--quiet", "-r", str(project / "requirements.txt")],
            check=True,
            cwd=project,
        )
    return time.perf_counter() - start


def cache_path_in(folder: Path) -> Path:
    """The default model's .keras file in a cache folder."""
    return folder / cache_path(preset_spec(DEFAULT_PRESET), preset_train_config(DEFAULT_PRESET)).name


def trained_seconds(cache: Path) -> float | None:
    """The default model's training seconds as its cache's .json records them, or None when it is not there."""
    meta = cache_path_in(cache).with_suffix(".json")
    return json.loads(meta.read_text())["train_seconds"] if meta.is_file() else None


def project_env(project: Path, cache: Path) -> dict[str, str]:
    """This environment as a user's shell in `project` would have it: its own venv first on PATH, the model cache
    `cache`, and none of this checkout's own settings (OBD_PRESET, the venv, PYTHONPATH)."""
    env = {k: v for k, v in os.environ.items() if k not in ("OBD_PRESET", "VIRTUAL_ENV", "PYTHONPATH")}
    env.update(OBD_CACHE_DIR=str(cache), PATH=f"{project / '.venv' / 'bin'}:{env.get('PATH', '')}")
    return env


def cli_training(project: Path, cache: Path, log: Path) -> float:
    """`python -m obd train` (the default model) in `project` with its own venv, into `cache`; its training
    seconds."""
    with open(log, "ab") as out:
        subprocess.run(
            [str(project / ".venv" / "bin" / "python"), "-m", "obd", "train"],
            cwd=project,
            check=True,
            env=project_env(project, cache),
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    return trained_seconds(cache)


def fill_cache(cache: Path, source: Path) -> None:
    """Copy the default model's cache files (.keras, and its .json/.npz where present) from `source` to `cache`."""
    keras_file = cache_path_in(source)
    if not keras_file.is_file():
        raise SystemExit(
            f"first_run: error: {keras_file} is missing; train it first (python -m obd train) or run --phase both"
        )
    for suffix in (".keras", ".json", ".npz"):
        f = keras_file.with_suffix(suffix)
        if f.is_file():
            shutil.copy2(f, cache / f.name)


def start(project: Path, cache: Path, log: Path, port: int | None = None) -> tuple[subprocess.Popen, str, float]:
    """`streamlit run app.py` in `project` with its own venv, as the README says (headless, on `port` or a free
    one; the app's .streamlit/config.toml decides everything else). Returns the process, its URL and its launch
    time."""
    port = port or free_port()
    env = project_env(project, cache)
    cmd = streamlit_command(str(project / ".venv" / "bin" / "python"), "app.py", port)
    launched = time.perf_counter()
    with open(log, "ab") as out:
        proc = subprocess.Popen(cmd, cwd=project, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
    return proc, f"http://127.0.0.1:{port}", launched


def stop(proc: subprocess.Popen) -> None:
    """End the server we started (its own process group: streamlit and any worker it spawned)."""
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()


def open_page(
    browser, project: Path, cache: Path, log: Path, timeout_s: float, wait_default: bool, port: int | None = None
) -> dict:
    """Launch the server, open the page, and time what the user sees (seconds from launch; each printed as it
    happens, since a first run can take minutes). `browser`: a Playwright browser (a new context each call: an
    empty HTTP cache) or a browser context (its cache kept between calls, as a returning user's browser, which
    finds the app at the same address: pass `port`)."""
    proc, url, launched = start(project, cache, log, port)
    out: dict[str, float | str | None] = {}

    def seen(name: str, what: str = "") -> None:
        out[name] = time.perf_counter() - launched
        print(f"    {out[name]:7.1f} s  {name.removesuffix('_s')}{what}", flush=True)

    try:
        while not healthy(url):
            if proc.poll() is not None or time.perf_counter() - launched > timeout_s:
                raise RuntimeError(f"streamlit did not start (exit code {proc.poll()}):\n{log.read_text()[-3000:]}")
            time.sleep(0.05)
        seen("health_s")
        page = browser.new_page()
        page.add_init_script(PAINT_PROBE)
        page.set_viewport_size({"width": 1400, "height": 1000})
        page.goto(url, timeout=timeout_s * 1000)
        first = page.wait_for_selector(FIRST_CONTENT, state="visible", timeout=timeout_s * 1000)
        if first.get_attribute("data-testid") == "stException":
            raise RuntimeError(f"the page shows an exception:\n{first.inner_text()[:2000]}")
        seen("first_content_s", f" ({first.get_attribute('data-testid')})")
        page.wait_for_selector(METRIC, state="visible", timeout=timeout_s * 1000)
        seen("harness_saw_metric_s")
        painted_ms = page.wait_for_function("window.__metricPainted", timeout=timeout_s * 1000).json_value()
        # both clocks are the wall clock: the launch's perf_counter reading moved onto it
        out["usable_s"] = painted_ms / 1000 - (time.time() - (time.perf_counter() - launched))
        print(f"    {out['usable_s']:7.1f} s  usable (metrics painted, timed in the page)", flush=True)
        if wait_default:  # None when it is not shown in time: the page is then left as it was
            left = max(1.0, timeout_s - (time.perf_counter() - launched))
            try:
                page.wait_for_function(
                    "s => document.body.innerText.includes(s)", arg=DEFAULT_SIZES, polling=250, timeout=left * 1000
                )
                page.wait_for_selector(METRIC, state="visible", timeout=left * 1000)
                seen("default_shown_s")
            except PlaywrightTimeout:
                out["default_shown_s"] = None
        page.close()
    finally:
        stop(proc)
    return out


def verdict(value: float | None, target: float) -> str:
    return (
        "not measured"
        if value is None
        else f"{value:6.1f} s (target <= {target:g} s: {'met' if value <= target else 'NOT met'})"
    )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--phase", choices=("first", "later", "both", "training"), default="both")
    ap.add_argument("--venv", choices=("hardlink", "fresh"), default="hardlink")
    ap.add_argument("--source", type=Path, default=ROOT, help="the git repository to clone")
    ap.add_argument("--rev", default="HEAD", help="the commit to check out in the clone")
    ap.add_argument(
        "--cache-from",
        type=Path,
        default=Path.home() / ".cache" / "obd",
        help="later phase alone: the cache folder to copy the default model's files from",
    )
    ap.add_argument("--runs", type=int, default=3, help="later starts to measure")
    ap.add_argument("--rounds", type=int, default=3, help="training phase: trainings of each kind (CLI, app)")
    ap.add_argument("--timeout", type=float, default=900.0, help="seconds to wait for each page state")
    args = ap.parse_args()
    if not os.environ.get("OBD_MNIST_PATH"):
        raise SystemExit("first_run: error: set OBD_MNIST_PATH to an mnist.npz (this benchmark never downloads)")
    work = Path(tempfile.mkdtemp(prefix="obd-first-run-"))
    project, cache, log = work / "obd", work / "cache", work / "streamlit.log"
    cache.mkdir()
    figures: dict = {"phase": args.phase, "venv": args.venv, "targets": TARGETS}
    try:
        clone(args.source, project, args.rev)
        head = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], cwd=project, capture_output=True, text=True
        ).stdout.strip()
        install_s = make_venv(project, args.venv)
        print(
            f"clone of {args.source} at {head} in {project}; .venv ({args.venv}) set up in {install_s:.1f} s "
            "(not counted below)",
            flush=True,
        )
        figures["commit"] = head
        if args.phase == "later":
            fill_cache(cache, args.cache_from.expanduser())
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
            if args.phase in ("first", "both"):
                print("first run (empty cache), seconds from the server's launch:", flush=True)
                first = open_page(browser, project, cache, log, args.timeout, wait_default=True)
                trained = trained_seconds(cache)
                print(f"  usable page:          {verdict(first.get('usable_s'), TARGETS['usable_s'])}")
                print(
                    f"  default model shown:  {verdict(first.get('default_shown_s'), TARGETS['default_shown_s'])}"
                    f"; its training took {trained} s (the cache's .json)"
                )
                figures["first run"] = {**first, "default model's training s": trained}
            if args.phase == "training":
                seconds: dict[str, list[float]] = {"cli": [], "app": []}
                # CLI, app, app, CLI, ...: every prefix of even length holds as many of each
                for i, kind in enumerate((("cli", "app", "app", "cli") * args.rounds)[: 2 * args.rounds]):
                    empty = work / f"{kind}-cache-{i}"
                    empty.mkdir()
                    if kind == "cli":
                        seconds[kind].append(cli_training(project, empty, log))
                    else:
                        open_page(browser, project, empty, log, args.timeout, wait_default=True)
                        seconds[kind].append(trained_seconds(empty))
                    print(f"  {kind} training {len(seconds[kind])}: {seconds[kind][-1]} s", flush=True)
                ratio = statistics.median(seconds["app"]) / statistics.median(seconds["cli"])
                print(
                    f"  in-app training / CLI training, medians of {args.rounds}: {ratio:.2f}x (target <= "
                    f"{TARGETS['app_vs_cli']:g}x: {'met' if ratio <= TARGETS['app_vs_cli'] else 'NOT met'})"
                )
                figures["training s"] = seconds
                figures["in-app training / CLI training, medians"] = round(ratio, 2)
            if args.phase in ("later", "both"):
                # A later start is a user starting the app again: their browser has opened it before and keeps
                # Streamlit's static files (hashed names, cached by the browser). One context that opened the page
                # once stands for that browser; a new context per start (nothing cached) is printed beside it.
                returning, port = browser.new_context(), free_port()
                open_page(returning, project, cache, log, args.timeout, wait_default=False, port=port)
                starts: dict[str, list[dict]] = {"returning browser": [], "empty browser cache": []}
                for i in range(args.runs):
                    for how, where, at in (
                        ("returning browser", returning, port),
                        ("empty browser cache", browser, None),
                    ):
                        print(f"later start {i + 1} (model cache filled; {how}):", flush=True)
                        starts[how].append(
                            open_page(where, project, cache, log, args.timeout, wait_default=False, port=at)
                        )
                for how, runs in starts.items():
                    times = [r["usable_s"] for r in runs]
                    saw = [r["harness_saw_metric_s"] for r in runs]
                    print(
                        f"  later start to metrics, {how}, median of {len(times)}: "
                        f"{verdict(statistics.median(times), TARGETS['later_metrics_s'])} "
                        f"(each: {', '.join(f'{t:.1f}' for t in times)}; the harness saw them at "
                        f"{', '.join(f'{t:.1f}' for t in saw)})"
                    )
                figures["later starts to metrics s"] = {
                    how: [r["usable_s"] for r in runs] for how, runs in starts.items()
                }
                returning.close()
            browser.close()
        watcher = [line for line in log.read_text(errors="replace").splitlines() if "notify" in line.lower()]
        print(f"server log: {log} ({len(watcher)} file-watcher warnings)")
        figures["file-watcher warnings"] = len(watcher)
        results.write("first_run" if args.phase == "both" else f"first_run-{args.phase}", figures)
    finally:
        shutil.rmtree(project / ".venv", ignore_errors=True)  # hard links or 2.5 GB: never left behind


if __name__ == "__main__":
    sys.exit(main())
