"""Dashboard interaction timings against issue 3's targets, through Streamlit's AppTest (the real script, in
process; the browser's rendering is not included).

Run from the repository root: python -m benchmarks.app_latency [--preset challenge]
Targets: slider change -> updated metrics, median <= 0.6 s (new state) and <= 0.2 s (a state seen before in the
session); cold start with the cached model <= 10 s (a fresh process: imports, data, model, first page);
curves for 10 sparsities x 2 modes <= 8 s the first time. The model must be cached already (python -m obd train).
Writes the figures to benchmarks/results/app_latency.json.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

from benchmarks import results

APP = str(Path(__file__).resolve().parents[1] / "app.py")
NEW = (50, 60, 70, 80, 85, 91, 93, 96)
MODES = ("weight", "unit")

COLD = """
import time, sys
start = time.perf_counter()
from streamlit.testing.v1 import AppTest
at = AppTest.from_file(sys.argv[1], default_timeout=600)
at.query_params.update(preset=sys.argv[2], mode="weight", sparsity="90")
at.run()
assert not at.exception, at.exception
print(time.perf_counter() - start)
"""


def cold_start(preset: str) -> float:
    """Seconds for a fresh Python process to import everything and render the first page."""
    out = subprocess.run([sys.executable, "-c", COLD, APP, preset], capture_output=True, text=True, check=True)
    return float(out.stdout.strip().splitlines()[-1])


def slider_moves(at) -> list[float]:
    """Seconds per slider move through NEW in each mode (the mode switch itself is not timed)."""
    times = []
    for mode in MODES:
        at.segmented_control(key="mode").set_value(mode).run()
        for k in NEW:
            start = time.perf_counter()
            at.slider(key="sparsity").set_value(k).run()
            times.append(time.perf_counter() - start)
    return times


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--preset", default="challenge")
    args = parser.parse_args()
    from streamlit.testing.v1 import AppTest

    from obd.core.cache import cache_dir

    curves = cache_dir() / "curves"
    shutil.rmtree(curves, ignore_errors=True)  # the first start computes the curves (then keeps them on disk)
    first = cold_start(args.preset)
    cold = cold_start(args.preset)

    at = AppTest.from_file(APP, default_timeout=600)
    at.query_params.update(preset=args.preset, mode="weight", sparsity="90")
    at.run()
    new = slider_moves(at)  # every (mode, sparsity) for the first time
    seen = slider_moves(at)  # the same states again
    assert not at.exception, at.exception

    print(f"preset {args.preset}, {os.cpu_count()} cores")
    print(
        f"{'first start (computes the curves)':<42}{first:8.2f} s   (curves target <= 8 s: {first - cold:.2f} s extra)"
    )
    print(f"{'cold start, model and curves cached':<42}{cold:8.2f} s   target <= 10 s")
    print(
        f"{'slider change, new state: median':<42}{statistics.median(new):8.3f} s   target <= 0.6 s "
        f"(p90 {statistics.quantiles(new, n=10)[-1]:.3f} s, n={len(new)})"
    )
    print(
        f"{'slider change, seen state: median':<42}{statistics.median(seen):8.3f} s   target <= 0.2 s "
        f"(p90 {statistics.quantiles(seen, n=10)[-1]:.3f} s, n={len(seen)})"
    )
    rows = [
        ("first start (computes the curves)", first, None),
        ("curves the first time (first start - cold start)", first - cold, 8.0),
        ("cold start, model and curves cached", cold, 10.0),
        ("slider change, new state: median", statistics.median(new), 0.6),
        ("slider change, new state: p90", statistics.quantiles(new, n=10)[-1], None),
        ("slider change, seen state: median", statistics.median(seen), 0.2),
        ("slider change, seen state: p90", statistics.quantiles(seen, n=10)[-1], None),
    ]
    results.write(
        "app_latency",
        {
            "preset": args.preset,
            "timings": [{"what": what, "s": round(s, 3), "target s": target} for what, s, target in rows],
        },
    )


if __name__ == "__main__":
    main()
