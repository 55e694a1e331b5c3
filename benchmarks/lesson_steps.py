"""The lesson on a projector: every step of `?lesson=1&present=1` at 1280×720 in chromium, after `python -m obd warm`.

For each step it presses Next (the first step is opened by its link), times how long the page takes to show the
step's title with its numbers and go idle, checks that what the step talks about (its chart or view, and any
control it asks for) lies inside the viewport without scrolling, and saves a screenshot under
test-output/lesson/. Prints one line per step and writes benchmarks/results/lesson_steps.json.

Run from the repository root (MNIST at $OBD_MNIST_PATH; the cache is $OBD_CACHE_DIR, warmed first):
    python -m benchmarks.lesson_steps [--preset tiny] [--no-warm]
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from benchmarks.live_app import CHROMIUM, CHROMIUM_ARGS, IDLE, ROOT, serve
from obd.teach import lesson

OUTPUT = ROOT / "test-output" / "lesson"
PROJECTOR = {"width": 1280, "height": 720}
TARGET_S = 1.0  # each step answers its Next within this (the target)
STEP_TIMEOUT_MS = 240_000  # a cold step may compute curves


def named(step: lesson.Step) -> list[tuple[str, str]]:
    """What a step talks about, as (what, CSS selector) pairs that must be on screen: the chart of its view, the
    whole tab strip (its last tab) and the controls its text asks for."""
    chart = ("the chart", "[data-testid='stTabPanel'] .js-plotly-plot:visible")
    last_tab = ("every view's tab", ".st-key-view [role='tablist'] [role='tab'] >> nth=-1")  # none scrolled away
    wanted = [chart, last_tab]
    if "{loss_first}" in step.text:  # "switch the curves to the loss"
        wanted.append(("the Plot toggle", "[data-testid='stTabPanel'] [data-testid='stButtonGroup']:visible"))
    if "Fine-tune this point" in step.text:
        wanted.append(("the fine-tune button", "button:has-text('Fine-tune this point'):visible"))
    return wanted


def on_screen(page, selector: str) -> tuple[bool, dict | None]:
    """Whether the first element matching `selector` lies wholly inside the viewport (no scrolling), and its box."""
    locator = page.locator(selector).first
    if locator.count() == 0:
        return False, None
    box = locator.bounding_box()
    if box is None:
        return False, None
    inside = box["x"] >= 0 and box["y"] >= 0 and box["x"] + box["width"] <= PROJECTOR["width"] + 0.5
    return inside and box["y"] + box["height"] <= PROJECTOR["height"] + 0.5, box


def wait_for_step(page, n: int, timeout_ms: int = STEP_TIMEOUT_MS) -> None:
    """Until step n's title shows with its numbers (not "being computed") and the page is idle."""
    title = f"Lesson {n}/{len(lesson.STEPS)} · {lesson.STEPS[n - 1].title}"
    page.get_by_text(title).wait_for(timeout=timeout_ms)
    page.wait_for_function(
        "() => !/The numbers for this step are being computed|Rebuilding the/.test(document.body.innerText)",
        timeout=timeout_ms,
    )
    page.wait_for_selector(IDLE, timeout=timeout_ms)
    page.locator(named(lesson.STEPS[n - 1])[0][1]).first.wait_for(timeout=timeout_ms)


def walk(url: str, shots: bool = True) -> list[dict]:
    """Open the lesson in presenter mode and go through every step with Next; one row per step."""
    from playwright.sync_api import sync_playwright

    rows = []
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport=PROJECTOR)
            start = time.perf_counter()
            page.goto(f"{url}/?lesson=1&present=1", timeout=60_000)
            wait_for_step(page, 1)
            seconds = time.perf_counter() - start
            for n in range(1, len(lesson.STEPS) + 1):
                if n > 1:
                    start = time.perf_counter()
                    page.get_by_role("button", name="Next ▶").click()
                    try:
                        wait_for_step(page, n)
                    except Exception:  # the page's state says why: kept for the reader
                        OUTPUT.mkdir(parents=True, exist_ok=True)
                        page.screenshot(path=str(OUTPUT / f"step{n}-stuck.png"))
                        raise
                    seconds = time.perf_counter() - start
                page.wait_for_timeout(300)  # plotly's own layout pass after the run
                seen = {what: on_screen(page, selector) for what, selector in named(lesson.STEPS[n - 1])}
                if shots:
                    OUTPUT.mkdir(parents=True, exist_ok=True)
                    page.screenshot(path=str(OUTPUT / f"step{n}.png"))
                rows.append(
                    {
                        "step": n,
                        "title": lesson.STEPS[n - 1].title,
                        "seconds": round(seconds, 3),
                        "on_screen": all(ok for ok, _ in seen.values()),
                        "off_screen": [what for what, (ok, _) in seen.items() if not ok],
                    }
                )
        finally:
            browser.close()
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--preset", default="tiny", help="the preset the server opens (default: tiny)")
    parser.add_argument("--no-warm", action="store_true", help="skip `python -m obd warm` (the cache is warm)")
    args = parser.parse_args()
    if not args.no_warm:
        subprocess.run(
            [
                sys.executable,
                "-m",
                "obd",
                "warm",
                "--preset",
                args.preset,
                "--methods",
                "magnitude",
                "obd",
                "obs",
                "--batch",
                "100",
            ],
            check=True,
            cwd=ROOT,
        )
    with tempfile.TemporaryDirectory() as tmp, serve(args.preset, Path(tmp) / "server.log") as server:
        walk(server.url, shots=False)  # the first walk fills the server's memory (what a rehearsal does)
        rows = walk(server.url)
    for r in rows:
        where = "on screen" if r["on_screen"] else f"OFF SCREEN: {', '.join(r['off_screen'])}"
        print(f"step {r['step']}: {r['seconds']:.2f} s  {where}  ({r['title']})")
    later = [r["seconds"] for r in rows[1:]]
    figures = {
        "preset": args.preset,
        "viewport": f"{PROJECTOR['width']}x{PROJECTOR['height']}",
        "steps": rows,
        "next_median_s": round(statistics.median(later), 3),
        "next_max_s": round(max(later), 3),
        "all_on_screen": all(r["on_screen"] for r in rows),
        "headline": [
            {
                "result": "lesson: a step's Next, after warm (1280×720, chromium)",
                "figure": f"{max(later):.2f} s at most",
                "target": f"≤ {TARGET_S:g} s",
            }
        ],
    }
    print(f"Next: median {figures['next_median_s']:.2f} s, max {figures['next_max_s']:.2f} s (target ≤ {TARGET_S:g} s)")
    from benchmarks import results

    print(f"wrote {results.write('lesson_steps', figures)}")


if __name__ == "__main__":
    main()
