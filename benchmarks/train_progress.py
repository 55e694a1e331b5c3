"""In-app training against the CLI's (issue 14: "in-app training within 15 % of the CLI's time").

The dashboard redraws a progress bar at every report `obd.training.model.train` makes; redrawn after every batch it
trained at about 15 batches/s against 37 in `python -m obd train`. Reports are now throttled
(`obd.training.model.PROGRESS_SECONDS`). This trains the default net for one epoch, in one process, three ways:

- cli: with the CLI's own progress printer (`obd.cli.training_printer`, what `python -m obd train` passes);
- ui, every batch: a consumer that does `--work-ms` of CPU work per report (a UI redraw holds the GIL),
  reported after every batch (progress_seconds=0, the old behaviour);
- ui, throttled: the same consumer at the default throttle;
- fine-tune, masks: as cli, holding fixed masks (90 % weight pruning) as fine-tuning does, which should cost
  no more than plain training (the masks apply inside the compiled step).

Each run builds a fresh model with the same seed and counts its whole `train` call (Keras' tracing included,
as the CLI's is). The three alternate `--repeat` times (cli, every, throttled, cli, ...) so that a machine
busy with other work slows them alike; prints each one's median batches/s, its wall time relative to the
cli run's in each round, and the process CPU time (all threads) relative to the cli's, which other processes
on a shared machine disturb less than the wall clock; writes them to benchmarks/results/train_progress.json.

Usage: OBD_MNIST_PATH=/path/mnist.npz python -m benchmarks.train_progress [--preset challenge] [--epochs 1]
           [--work-ms 25] [--repeat 2]
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import io
import statistics
import time

import obd  # noqa: F401  first: it sets the thread runtimes' environment, which OpenBLAS reads as numpy loads
from benchmarks import results
from obd.cli import training_printer
from obd.core.config import preset_spec, preset_train_config
from obd.core.data import load_mnist
from obd.core.network import from_keras
from obd.core.pruning import prune
from obd.training.model import PROGRESS_SECONDS, build_model, train

TARGET = 1.15  # in-app training may take at most 15 % longer than the CLI's; fine-tuning with masks likewise
MASKED_SPARSITY = 0.9


def busy(ms: float):
    """A progress consumer that keeps the CPU (and the GIL) busy for `ms` per call, as a UI redraw does."""

    def consume(_progress) -> None:
        end = time.perf_counter() + ms / 1000
        while time.perf_counter() < end:
            pass

    return consume


def timed(
    preset: str, epochs: float, progress, progress_seconds: float, data, masked: bool = False
) -> tuple[float, int, int, float]:
    """Seconds for one `train` call of a fresh model (masked: with the masks of MASKED_SPARSITY weight pruning), its
    number of batches, the reports it made, and the process CPU seconds it took."""
    config = dataclasses.replace(preset_train_config(preset), epochs=epochs)
    model = build_model(preset_spec(preset), config.seed)
    masks = list(prune(from_keras(model), MASKED_SPARSITY).masks) if masked else None
    reports = []

    def counted(p) -> None:
        reports.append(p.steps)
        progress(p)

    start, cpu = time.perf_counter(), time.process_time()
    train(model, data, config, counted, masks=masks, progress_seconds=progress_seconds)
    return time.perf_counter() - start, reports[-1], len(reports), time.process_time() - cpu


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--preset", default="challenge")
    ap.add_argument("--epochs", type=float, default=1.0)
    ap.add_argument("--work-ms", type=float, default=25.0, help="CPU work per progress report of the ui consumer")
    ap.add_argument("--repeat", type=int, default=2, help="rounds of the three runs, interleaved")
    args = ap.parse_args()
    data = load_mnist()

    # name -> [(seconds, batches, reports, cpu)]
    runs: dict[str, list] = {"cli": [], "ui, every batch": [], "ui, throttled": [], "fine-tune, masks": []}
    for _ in range(args.repeat):
        with contextlib.redirect_stderr(io.StringIO()):  # the printer's lines would interleave with the table
            runs["cli"].append(timed(args.preset, args.epochs, training_printer(), PROGRESS_SECONDS, data))
        runs["ui, every batch"].append(timed(args.preset, args.epochs, busy(args.work_ms), 0.0, data))
        runs["ui, throttled"].append(timed(args.preset, args.epochs, busy(args.work_ms), PROGRESS_SECONDS, data))
        with contextlib.redirect_stderr(io.StringIO()):
            masked = timed(args.preset, args.epochs, training_printer(), PROGRESS_SECONDS, data, masked=True)
        runs["fine-tune, masks"].append(masked)

    steps = runs["cli"][0][1]
    print(
        f"{args.preset}, {args.epochs:g} epoch(s) = {steps} batches, {args.repeat} round(s); ui consumer: "
        f"{args.work_ms:g} ms of CPU per report; throttle {PROGRESS_SECONDS} s"
    )
    print(
        f"{'run':<18} {'median s':>9} {'batches/s':>10} {'reports':>8} {'wall vs cli, per round':>24} "
        f"{'CPU vs cli, per round':>24}"
    )
    cli = runs["cli"]
    ratios, rows = {}, []
    for name, rs in runs.items():
        seconds = [r[0] for r in rs]
        ratios[name] = [r[0] / c[0] for r, c in zip(rs, cli)]
        walls = " ".join(f"{x:.2f}x" for x in ratios[name])
        cpus = " ".join(f"{r[3] / c[3]:.2f}x" for r, c in zip(rs, cli))
        print(
            f"{name:<18} {statistics.median(seconds):9.1f} {steps / statistics.median(seconds):10.1f} "
            f"{rs[0][2]:8d} {walls:>24} {cpus:>24}"
        )
        rows.append(
            {
                "run": name,
                "median s": round(statistics.median(seconds), 1),
                "batches/s": round(steps / statistics.median(seconds), 1),
                "reports": rs[0][2],
                "wall vs cli, per round": [round(x, 2) for x in ratios[name]],
                "CPU vs cli, per round": [round(r[3] / c[3], 2) for r, c in zip(rs, cli)],
            }
        )
    median = statistics.median(ratios["ui, throttled"])
    tuned = statistics.median(ratios["fine-tune, masks"])
    print(
        f"target: in-app (throttled) time <= {TARGET:.2f}x the cli's: median {median:.2f}x, "
        f"{'met' if median <= TARGET else 'NOT met'}; fine-tuning with masks {tuned:.2f}x, "
        f"{'met' if tuned <= TARGET else 'NOT met'}"
    )
    results.write(
        "train_progress",
        {
            "preset": args.preset,
            "epochs": args.epochs,
            "batches": steps,
            "ui work per report, ms": args.work_ms,
            "runs": rows,
            "headline": [
                {
                    "result": "training with the app's progress reports, against the CLI's (wall time)",
                    "figure": f"{median:.2f}×",
                    "target": f"≤ {TARGET:.2f}×",
                },
                {
                    "result": f"fine-tuning with fixed masks ({MASKED_SPARSITY:.0%} weights), against training",
                    "figure": f"{tuned:.2f}×",
                    "target": f"≤ {TARGET:.2f}×",
                },
            ],
        },
    )


if __name__ == "__main__":
    main()
