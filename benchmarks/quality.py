"""Quality benchmark: test accuracy of every pruning method x mode x sparsity on the default model, with
compute times, plus fine-tuning at the hardest points; checks the issue's targets.

    OBD_MNIST_PATH=... python -m benchmarks.quality [--budget global] [--calib 4096] [--finetune-epochs 1 2]

Prints markdown tables and writes them to benchmarks/results/quality[-global][-METHODS].json.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks import results  # noqa: E402
from obd.core.data import load_mnist  # noqa: E402
from obd.core.network import from_keras  # noqa: E402
from obd.methods.registry import CALIBRATION_SIZE, METHODS, calibration, plan  # noqa: E402
from obd.runtime.evaluate import evaluate  # noqa: E402
from obd.training.finetune import finetune, gradual  # noqa: E402
from obd.training.model import default_model  # noqa: E402
from obd.work.sweep import DEFAULT_SPARSITIES, sweep  # noqa: E402

ONE_SHOT_TARGETS = {
    ("weight", 0.95): 0.970,
    ("weight", 0.97): 0.960,
    ("weight", 0.99): 0.90,
    ("unit", 0.8): 0.975,
    ("unit", 0.9): 0.970,
}  # best method, no retraining
FINETUNE_TARGETS = {("weight", 0.99): 0.975, ("unit", 0.9): 0.975}  # best method, <= 2 epochs
# (method, budget, pruning steps) fine-tuned at those points; steps > 1: obd.training.finetune.gradual
FINETUNE_RUNS = (("obs", "layer", 1), ("obs", "global", 1), ("magnitude", "layer", 1), ("magnitude", "layer", 4))


def grid(records, value) -> list[dict]:
    """One row per (method, mode): its setup seconds and `value` of its record at each sparsity."""
    ks = sorted({r.sparsity for r in records})
    rows: dict = {}
    for r in records:
        rows.setdefault((r.method, r.mode), {})[r.sparsity] = r
    return [
        {
            "method": method,
            "mode": mode,
            "setup s": round(next(iter(by_k.values())).setup_seconds, 1),
            **{f"{100 * k:g} %": round(value(by_k[k]), 2) if k in by_k else None for k in ks},
        }
        for (method, mode), by_k in rows.items()
    ]


def table(rows: list[dict]) -> str:
    """Markdown of `grid` rows."""
    lines = ["| " + " | ".join(rows[0]) + " |", "|---|---|" + "---:|" * (len(rows[0]) - 2)]
    lines += ["| " + " | ".join("" if v is None else f"{v}" for v in row.values()) + " |" for row in rows]
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--budget", default="layer", choices=["layer", "global"])
    parser.add_argument("--calib", type=int, default=CALIBRATION_SIZE, help="calibration images")
    parser.add_argument("--methods", nargs="+", default=list(METHODS), choices=list(METHODS))
    parser.add_argument(
        "--finetune-epochs",
        nargs="*",
        type=float,
        default=[2.0],
        help="fine-tuning runs at the fine-tuning target points (none: skip)",
    )
    args = parser.parse_args()

    data = load_mnist()
    net = from_keras(default_model())
    calib = calibration(data, args.calib)
    dense = evaluate(net, data.x_test, data.y_test).accuracy
    print(
        f"default model {'-'.join(map(str, net.sizes))}: {100 * dense:.2f} %; calibration {args.calib} training "
        f"images; budget {args.budget}",
        flush=True,
    )

    def show(step) -> None:
        print(
            f"  [{step.done + 1}/{step.total}] {step.method} {step.mode} {100 * step.sparsity:g} %",
            file=sys.stderr,
            flush=True,
        )

    records = sweep(
        net,
        DEFAULT_SPARSITIES,
        ("weight", "unit"),
        x=data.x_test,
        y=data.y_test,
        progress=show,
        methods=args.methods,
        budget=args.budget,
        calib=calib,
    )

    tuned = []
    for mode, k in FINETUNE_TARGETS:
        for method, budget, steps in [run for run in FINETUNE_RUNS if run[0] in args.methods]:
            one_shot = plan(net, method, mode, budget, calib=calib).prune(k)
            before = evaluate(one_shot.net, data.x_test, data.y_test).accuracy
            for epochs in args.finetune_epochs:
                start = time.perf_counter()
                tuned_net = (
                    gradual(net, k, data, epochs, steps, mode, method, budget).net
                    if steps > 1
                    else finetune(one_shot, data, epochs).net
                )
                ev = evaluate(tuned_net, data.x_test, data.y_test)
                tuned.append(
                    dict(
                        method=method,
                        budget=budget,
                        mode=mode,
                        sparsity=k,
                        finetune_epochs=epochs,
                        gradual_steps=steps,
                        one_shot=before,
                        accuracy=ev.accuracy,
                        loss=ev.loss,
                        seconds=time.perf_counter() - start,
                    )
                )
                print(
                    f"  fine-tuned {method} ({budget}, {steps} steps) {mode} {100 * k:g} % for {epochs:g} "
                    f"epochs: {100 * before:.2f} -> {100 * ev.accuracy:.2f} %",
                    file=sys.stderr,
                    flush=True,
                )

    print("\n### Test accuracy (%), one-shot, no retraining\n")
    accuracy, seconds = grid(records, lambda r: 100 * r.accuracy), grid(records, lambda r: r.seconds)
    print(table(accuracy))
    print("\n### Seconds per point (prune or reconstruct, then evaluate on 10,000 test images)\n")
    print(table(seconds))
    if tuned:
        print("\n### Fine-tuned with masks fixed (test accuracy %, seconds)\n")
        print(
            "| method | budget | mode | sparsity | one-shot | epochs | pruning steps | fine-tuned | seconds |\n"
            "|---|---|---|---:|---:|---:|---:|---:|---:|"
        )
        for t in tuned:
            print(
                f"| {t['method']} | {t['budget']} | {t['mode']} | {100 * t['sparsity']:g} % | "
                f"{100 * t['one_shot']:.2f} | {t['finetune_epochs']:g} | {t['gradual_steps']} | "
                f"{100 * t['accuracy']:.2f} | {t['seconds']:.0f} |"
            )

    print("\n### Targets (best method)\n")
    checks = []
    for (mode, k), target in ONE_SHOT_TARGETS.items():
        best = max((r for r in records if (r.mode, r.sparsity) == (mode, k)), key=lambda r: r.accuracy)
        checks.append(("one-shot", mode, k, target, best.accuracy, best.method))
    for (mode, k), target in FINETUNE_TARGETS.items():
        runs = [t for t in tuned if (t["mode"], t["sparsity"]) == (mode, k) and t["finetune_epochs"] <= 2]
        if runs:
            best = max(runs, key=lambda t: t["accuracy"])
            how = f"{best['gradual_steps']} steps, " if best["gradual_steps"] > 1 else ""
            checks.append(
                (
                    "fine-tuned",
                    mode,
                    k,
                    target,
                    best["accuracy"],
                    f"{best['method']} ({best['budget']}) + {how}{best['finetune_epochs']:g} ep",
                )
            )
    print("| setting | mode | sparsity | target | measured | method | met |\n|---|---|---:|---:|---:|---|---|")
    for kind, mode, k, target, acc, method in checks:
        print(
            f"| {kind} | {mode} | {100 * k:g} % | ≥ {100 * target:.1f} | {100 * acc:.2f} | {method} | "
            f"{'yes' if acc >= target else 'no'} |"
        )

    name = "-".join(
        ["quality"]
        + ([args.budget] if args.budget != "layer" else [])
        + (args.methods if args.methods != list(METHODS) else [])
    )  # a subset keeps the full table
    results.write(
        name,
        {
            "dense test accuracy %": round(100 * dense, 2),
            "calibration images": args.calib,
            "budget": args.budget,
            "test accuracy %, one-shot": accuracy,
            "seconds per point": seconds,
            "fine-tuned": [
                {**t, "one_shot": round(100 * t["one_shot"], 2), "accuracy": round(100 * t["accuracy"], 2)}
                for t in tuned
            ],
            "targets": [
                {
                    "setting": c[0],
                    "mode": c[1],
                    "sparsity %": round(100 * c[2], 2),
                    "target %": round(100 * c[3], 1),
                    "measured %": round(100 * c[4], 2),
                    "method": c[5],
                    "met": c[4] >= c[3],
                }
                for c in checks
            ],
            "headline": [
                {
                    "result": f"test accuracy, {c[0]}, {c[1]} pruning {100 * c[2]:g} % ({c[5]}, {args.budget} budget)",
                    "figure": f"{100 * c[4]:.2f} %",
                    "target": f"≥ {100 * c[3]:.1f} %",
                }
                for c in checks
            ],
        },
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
