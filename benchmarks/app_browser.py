"""What a user waits for in a real browser: `streamlit run app.py` on a local port, driven by Playwright in
Debian's chromium. Complements benchmarks/app_latency.py (AppTest: the script's own time, no browser).

Measures, with the model already in the disk cache ($OBD_CACHE_DIR):
- cold start: server launch -> the first page shows its metrics;
- slider change -> updated metrics: the slider is nudged with the keyboard (one step at a time, as a user
  does) and the clock stops when the "Weights kept" metric shows the new value; `--steps` new states upwards,
  then the same number back down (states seen before in the session);
- slider change -> page idle (every tab redrawn), for honesty: the heatmap and digits keep drawing after the
  metrics are up.

Usage: OBD_MNIST_PATH=/path/mnist.npz python -m benchmarks.app_browser [--preset challenge] [--mode weight]
           [--start 50] [--steps 6] [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import tempfile
import time
from pathlib import Path

from benchmarks.live_app import CHROMIUM, CHROMIUM_ARGS, IDLE, serve

TARGETS = {"cold_start_s": 10.0, "new_metrics_s": 0.6, "seen_metrics_s": 0.2}
WEIGHTS_KEPT_JS = """() => {
  const m = [...document.querySelectorAll("[data-testid='stMetric']")].find(e => e.innerText.includes("Weights kept"));
  return m ? m.querySelector("[data-testid='stMetricValue']").innerText : null;
}"""


def nudge(page, key: str) -> tuple[float, float]:
    """Press an arrow key on the focused slider: seconds until the metrics change, and until the page is idle."""
    before = page.evaluate(WEIGHTS_KEPT_JS)
    start = time.perf_counter()
    page.keyboard.press(key)
    page.wait_for_function(f"(b) => ({WEIGHTS_KEPT_JS})() !== b", arg=before, polling="raf", timeout=120_000)
    metrics = time.perf_counter() - start
    page.wait_for_selector(IDLE, timeout=120_000)
    return metrics, time.perf_counter() - start


def measure(preset: str, mode: str, start: int, steps: int) -> dict:
    from playwright.sync_api import sync_playwright

    log = Path(tempfile.mkdtemp(prefix="obd-bench-")) / "streamlit.log"
    with serve(preset, log) as server, sync_playwright() as p:
        url, launched = server.url, server.launched
        browser = p.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        page = browser.new_page(viewport={"width": 1400, "height": 1000})
        page.goto(f"{url}/?mode={mode}&sparsity={start}&preset={preset}", timeout=120_000)
        page.locator("[data-testid='stMetric']").filter(has_text="Weights kept").wait_for(timeout=300_000)
        cold = time.perf_counter() - launched
        page.wait_for_selector(IDLE, timeout=300_000)
        page.locator("[data-testid='stSlider'] input[type='range']").focus()
        new = [nudge(page, "ArrowRight") for _ in range(steps)]  # start+1 ... start+steps: never seen
        seen = [nudge(page, "ArrowLeft") for _ in range(steps)]  # back to start: all seen before
        browser.close()
    return {"preset": preset, "mode": mode, "start": start, "cold_start_s": cold,
            "new_metrics_s": statistics.median(m for m, _ in new), "seen_metrics_s": statistics.median(m for m, _ in seen),
            "new_idle_s": statistics.median(d for _, d in new), "seen_idle_s": statistics.median(d for _, d in seen),
            "samples": {"new": new, "seen": seen}}


def table(r: dict) -> str:
    rows = [("cold start, cached model -> metrics shown", "cold_start_s"),
            ("slider -> metrics shown, new state (median)", "new_metrics_s"),
            ("slider -> metrics shown, seen state (median)", "seen_metrics_s"),
            ("slider -> page idle, new state (median)", "new_idle_s"),
            ("slider -> page idle, seen state (median)", "seen_idle_s")]
    lines = [f"dashboard in chromium: preset {r['preset']}, {r['mode']} pruning from {r['start']} %, "
             f"{os.cpu_count()} cores", f"{'':46}{'measured':>10}  target"]
    for label, key in rows:
        target = TARGETS.get(key)
        verdict = "" if target is None else f"  <= {target:g} s {'ok' if r[key] <= target else 'MISSED'}"
        lines.append(f"{label:46}{r[key]:>8.2f} s{verdict}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--preset", default="challenge", help="the model to open (default: challenge, the default net)")
    ap.add_argument("--mode", default="weight", choices=("weight", "unit"))
    ap.add_argument("--start", type=int, default=50, help="sparsity (%%) to open at; the slider moves up from it")
    ap.add_argument("--steps", type=int, default=6, help="slider steps each way")
    ap.add_argument("--json", type=Path, help="also write the figures as JSON here")
    args = ap.parse_args(argv)
    if not 0 <= args.start <= 99 - args.steps:
        ap.error(f"--start must be between 0 and {99 - args.steps} for {args.steps} steps")
    result = measure(args.preset, args.mode, args.start, args.steps)
    print(table(result))
    if args.json:
        args.json.write_text(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
