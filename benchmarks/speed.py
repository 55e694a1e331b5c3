"""Inference speed from sparsity on the default model: dense vs shrunk (unit pruning) vs sparse (weight pruning).

Run from the repository root: python -m benchmarks.speed [--repeats N]
Prints, per mode, sparsity and batch size, the ms of dense and of the mode's engine, the speed-up (median of
per-pair ratios of interleaved calls, `obd.runtime.engines.measure`) with its interquartile range, the ideal
(FLOP-proportional) speed-up and the fraction of it reached, the targets of issue 4, what "auto" picks, and the
model file sizes; then the app's headline latency (batch 100) over both modes
and the quick-pick sparsities with issue 12's rules checked; writes the `bench` records to
benchmarks/results/speed.json. A reading taken while other processes used more than 15 % of the CPU is retaken,
and marked * (noisy) if it never got clean; speed-ups are ratios within one run, absolute times drift.
The figures of the last run are in benchmarks/RESULTS.md; docs/architecture.md says how the engines get them.
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

from benchmarks import results
from obd.core.data import load_mnist
from obd.core.network import Network, from_keras, to_keras
from obd.core.pruning import prune

# obd.runtime.engines first: it sets the numba and OpenMP environment before TensorFlow (obd.training.model) starts.
from obd.runtime.bench import bench, machine
from obd.runtime.engines import build_engine
from obd.runtime.latency import latency
from obd.training.model import default_model, save_model
from obd.work.export import save_shrunk, save_sparse

SPARSITIES = (0.0, 0.5, 0.8, 0.9, 0.95, 0.99)
BATCHES = (1, 10_000)
QUICK_PICKS = (0.25, 0.5, 0.6, 0.7, 0.8, 0.9, 0.95, 0.97, 0.99)  # the dashboard's quick picks
HEADLINE_BATCH = 100  # the dashboard's headline latency
TARGETS = {  # (mode, sparsity, batch) -> minimum speed-up over dense (issue 4)
    ("unit", 0.5, 10_000): 3,
    ("unit", 0.9, 10_000): 25,
    ("unit", 0.99, 10_000): 100,
    ("weight", 0.9, 10_000): 2,
    ("weight", 0.95, 10_000): 4,
    ("weight", 0.99, 10_000): 15,
    ("weight", 0.99, 1): 5,
}


def speed_rows(net: Network, records: list[dict]) -> tuple[list[str], list[dict]]:
    """One line per (mode, sparsity, batch): dense and engine ms, speed-up and range, ideal, target, auto; and
    the same as result rows."""
    lines = [
        f"{'mode':<7}{'sparsity':>9}{'batch':>7}{'dense ms':>11}{'engine':>8}{'ms':>10}{'speedup':>10}"
        f"{'IQR':>17}{'ideal':>8}{'of ideal':>9}{'target':>8}{'met':>5}  auto"
    ]
    dense = {(r["mode"], r["sparsity"], r["batch"]): r for r in records if r["engine"] == "dense"}
    rows = []
    for r in records:
        if r["engine"] == "dense":
            continue
        key = (r["mode"], r["sparsity"], r["batch"])
        target = TARGETS.get(key)
        auto = build_engine(prune(net, r["sparsity"], r["mode"]).net, "auto", r["batch"]).name
        auto_speedup = 1.0 if auto == "dense" else r["speedup"] if auto == r["engine"] else float("nan")
        iqr = f"{r['speedup_low']:.2f}-{r['speedup_high']:.2f}x"
        lines.append(
            f"{r['mode']:<7}{100 * r['sparsity']:>8g}%{r['batch']:>7}{dense[key]['ms']:>11.3f}{r['engine']:>8}"
            f"{r['ms']:>10.3f}{r['speedup']:>8.2f}x{'*' if r['noisy'] else ' '}{iqr:>17}"
            f"{r['ideal_speedup']:>7.1f}x{100 * r['speedup'] / r['ideal_speedup']:>8.0f}%"
            + (f"{target:>7}x{'yes' if r['speedup'] >= target else 'NO':>5}" if target else f"{'':>13}")
            + f"  {auto} ({auto_speedup:.2f}x)"
        )
        rows.append(
            {
                "mode": r["mode"],
                "sparsity %": round(100 * r["sparsity"], 2),
                "batch": r["batch"],
                "dense ms": round(dense[key]["ms"], 3),
                "engine": r["engine"],
                "engine ms": round(r["ms"], 3),
                "speed-up": round(r["speedup"], 2),
                "IQR": [round(r["speedup_low"], 2), round(r["speedup_high"], 2)],
                "noisy": r["noisy"],
                "ideal": round(r["ideal_speedup"], 1),
                "target": target,
                "auto": auto,
            }
        )
    return lines, rows


def headline_rows(net: Network, x) -> tuple[list[str], list[dict]]:
    """The app's headline latency (batch 100, magnitude pruning) at the quick picks, with issue 12's rules; and
    the same as result rows."""
    lines = [
        f"{'mode':<7}{'sparsity':>9}{'engine':>8}{'dense ms':>10}{'ms':>9}{'speedup':>10}{'IQR':>17}"
        f"{'FLOP ratio':>11}  note"
    ]
    rows = []
    for mode in ("weight", "unit"):
        speedups = []
        for k in QUICK_PICKS:
            lat = latency(prune(net, k, mode).net, x[:HEADLINE_BATCH])
            speedups.append(lat.speedup)
            iqr = f"{lat.speedup_range[0]:.2f}-{lat.speedup_range[1]:.2f}x"
            lines.append(
                f"{mode:<7}{100 * k:>8g}%{lat.engine:>8}{lat.dense_ms:>10.3f}{lat.engine_ms:>9.3f}"
                f"{lat.speedup:>8.2f}x{'*' if lat.noisy else ' '}{iqr:>17}{lat.flop_ratio:>10.1f}x  {lat.note}"
            )
            within = lat.speedup <= 1.2 * lat.flop_ratio * (1 + 1e-9)
            if not within:
                lines.append("  RULE BROKEN: above 1.2x its FLOP ratio")
            rows.append(
                {
                    "mode": mode,
                    "sparsity %": round(100 * k, 2),
                    "engine": lat.engine,
                    "dense ms": round(lat.dense_ms, 3),
                    "engine ms": round(lat.engine_ms, 3),
                    "speed-up": round(lat.speedup, 2),
                    "noisy": lat.noisy,
                    "FLOP ratio": round(lat.flop_ratio, 1),
                    "within 1.2x FLOP ratio": within,
                }
            )
        monotone = speedups == sorted(speedups)
        lines.append(f"  {mode}: monotone in sparsity: {'yes' if monotone else 'NO'}")
        rows.append({"mode": mode, "sparsity %": "all quick picks", "monotone in sparsity": monotone})
    return lines, rows


def size_rows(net: Network) -> tuple[list[str], list[dict]]:
    """Model file sizes per sparsity: the dense .keras, the shrunk .keras (unit), the CSR npz (weight); and the
    same as result rows (MB)."""
    lines = [f"{'sparsity':>8}{'dense .keras':>14}{'unit: shrunk .keras':>21}{'weight: CSR .npz':>18}"]
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for k in SPARSITIES:
            unit, weight = prune(net, k, "unit").net, prune(net, k, "weight").net
            sizes = [
                save_model(to_keras(weight), Path(tmp) / "dense.keras").stat().st_size,
                save_shrunk(unit, Path(tmp) / "shrunk.keras").stat().st_size,
                save_sparse(weight, Path(tmp) / "sparse.npz").stat().st_size,
            ]
            lines.append(f"{100 * k:>7g}%" + "".join(f"{s / 1e6:>{w}.2f} MB" for s, w in zip(sizes, (11, 18, 15))))
            names = ("dense .keras MB", "unit: shrunk .keras MB", "weight: CSR .npz MB")
            rows.append({"sparsity %": round(100 * k, 2), **{n: round(s / 1e6, 2) for n, s in zip(names, sizes)}})
    return lines, rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--repeats", type=int, default=7, help="timed pairs per reading, at least (more for short calls)"
    )
    args = parser.parse_args()
    net = from_keras(default_model())
    x = load_mnist().x_test
    records = bench(
        net,
        x,
        ("weight", "unit"),
        SPARSITIES,
        BATCHES,
        args.repeats,
        progress=lambda line: print(f"  timing {line}", flush=True),
    )
    print(
        f"default model {'-'.join(map(str, net.sizes))}, {net.n_weights:,} weights; MNIST test images; "
        f"on {machine()}; speed-ups: medians of per-pair ratios against dense in the same run; * noisy"
    )
    lines, engines = speed_rows(net, records)
    print("\n".join(lines), flush=True)
    print(f"\nheadline latency, batch {HEADLINE_BATCH}, magnitude pruning (issue 12: <= 1.2x the FLOP ratio, monotone)")
    lines, headline_latency = headline_rows(net, x)
    print("\n".join(lines))
    print("\nmodel files")
    lines, sizes = size_rows(net)
    print("\n".join(lines))
    results.write(
        "speed",
        {
            "model": "-".join(map(str, net.sizes)),
            "weights": net.n_weights,
            "engines against dense": engines,
            f"headline latency, batch {HEADLINE_BATCH}": headline_latency,
            "model files": sizes,
            "headline": [
                {
                    "result": f"speed-up over dense, {r['mode']} pruning {r['sparsity %']:g} %, batch {r['batch']:,}"
                    f" ({r['engine']} engine)",
                    "figure": f"{r['speed-up']:.1f}×" + (" (noisy)" if r["noisy"] else ""),
                    "target": f"≥ {r['target']}×",
                }
                for r in engines
                if r["target"]
            ],
        },
    )


if __name__ == "__main__":
    main()
