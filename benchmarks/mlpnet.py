"""The standard one-shot pruning benchmark of WoodFisher, CBS and CHITA: obd's methods on MLPNet, two ways trained.

MLPNet is 784-40-20-10, ReLU, no bias, on MNIST standardized with mean 0.1307 and std 0.3081. Two models, so that
no setting is tuned to one checkpoint: the `mlpnet` preset (SGD, rate 1e-3, momentum 0.5, batch 64, 25 epochs;
the published recipe), and the same net trained by plain SGD (rate 1e-2, no momentum) on other seeds. All three
layers are pruned, one-shot, no retraining, every method with its defaults (nothing set by hand).

Where each choice comes from: obs's and sparsegpt's dampings, chita's ridges, the loss-aware splits and the
magnitude fallback are chosen by obd on validation images (training images outside the calibration sample);
the "recommended" row takes, at each sparsity, whichever of obs and chita has the lower validation loss. The test
set only reports. Prints the test accuracy (mean over seeds) next to the published rows (CBS paper, Yu et al.
ICML 2022, mean of 5 runs; CHITA++'s reported 0.98 figure), the time each method's plan and sweep took, and
writes them to benchmarks/results/mlpnet.json. Targets: the recommended row >= CBS and >= magnitude - 0.1 at
every sparsity on both models, and >= 88 at 0.98 on the preset (CHITA++ reports 90.4); misses are listed.

    python -m benchmarks.mlpnet [--seeds 0 1 2] [--plain-seeds 3 4 5] [--calib 4096]
"""

from __future__ import annotations

import argparse
import time
from dataclasses import replace

import numpy as np

import obd  # noqa: F401  (sets thread variables before numpy loads)
from benchmarks import results
from obd.core.config import TrainConfig, preset_spec, preset_train_config
from obd.core.data import load_mnist
from obd.core.network import from_keras
from obd.methods.registry import Calibration, calibration, plan
from obd.runtime.evaluate import evaluate, score_logits
from obd.training.model import trained_model

SPARSITIES = (0.5, 0.6, 0.7, 0.8, 0.9, 0.95, 0.98)
CALIBRATION = 4096  # calibration images (training set): the sample every MLPNet figure is planned on
PUBLISHED = {  # CBS paper, Table 1, MLPNet on MNIST, mean of 5 runs
    "MP (published)": (93.93, 93.78, 93.62, 92.89, 90.30, 83.64, 32.25),
    "WoodFisher (published)": (94.02, 93.82, 93.77, 93.57, 91.69, 85.54, 38.26),
    "CBS (published)": (93.96, 93.96, 93.98, 93.90, 93.14, 88.92, 55.45),
}
CHITA_PLUS_PLUS_098 = 90.4  # CHITA++ (Benbaki et al. 2023), MLPNet at 0.98, as reported
TARGET_098 = 88.0  # issue 25: the recommended method at 0.98 on the published recipe (the preset), mean of its seeds
# the second model: the same net by plain SGD, a larger rate for the missing momentum
PLAIN_SGD = TrainConfig(
    epochs=25, batch_size=64, learning_rate=1e-2, optimizer="sgd", momentum=0.0, schedule="constant"
)
RUNS = (  # (label, method, budget): each with obd's defaults
    ("magnitude", "magnitude", "global"),
    ("obs loss-aware", "obs", "loss-aware"),
    ("chita loss-aware", "chita", "loss-aware"),
)
CHOICES = ("obs loss-aware", "chita loss-aware")  # the recommended row picks among these
RECOMMENDED = "recommended (lowest validation loss of obs/chita)"


def prune_model(net, calib: Calibration, data) -> tuple[dict[str, list[float]], dict[str, float], dict[str, int]]:
    """Every run on one model: test accuracies (%) per sparsity, seconds (plan and sweep), fallbacks."""
    acc: dict[str, list[float]] = {RECOMMENDED: []}
    seconds, fallbacks = {}, {}
    val_loss: dict[str, list[float]] = {}
    for label, method, budget in RUNS:
        start = time.perf_counter()
        p = plan(net, method, "weight", budget, prune_output=True, calib=calib)
        acc[label], val_loss[label], fallbacks[label] = [], [], 0
        for k in SPARSITIES:
            pruned = p.prune(k)
            fallbacks[label] += pruned.fallback
            acc[label].append(100 * evaluate(pruned.net, data.x_test, data.y_test).accuracy)
            val_loss[label].append(score_logits(pruned.net.logits(calib.x_val), calib.y_val).loss)
        seconds[label] = time.perf_counter() - start
        print(f"  {label:<22}" + " ".join(f"{a:6.2f}" for a in acc[label]) + f"  {seconds[label]:.1f} s", flush=True)
    for j in range(len(SPARSITIES)):  # chosen on validation images, never on the test accuracies above
        pick = min(CHOICES, key=lambda label: val_loss[label][j])
        acc[RECOMMENDED].append(acc[pick][j])
    print(f"  {'recommended':<22}" + " ".join(f"{a:6.2f}" for a in acc[RECOMMENDED]), flush=True)
    return acc, seconds, fallbacks


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2], help="seeds of the mlpnet preset")
    parser.add_argument("--plain-seeds", type=int, nargs="*", default=[3, 4, 5], help="seeds of the plain-SGD model")
    parser.add_argument("--calib", type=int, default=CALIBRATION, help="calibration images (training set)")
    args = parser.parse_args()
    data = load_mnist()
    calib = calibration(data, args.calib)
    # (name, training, seeds, the 0.98 target beside CBS's): CHITA++'s figure is for the published recipe only
    models = [("mlpnet preset (SGD, momentum 0.5)", preset_train_config("mlpnet"), args.seeds, TARGET_098)]
    if args.plain_seeds:
        models.append(("plain SGD (rate 1e-2, no momentum)", PLAIN_SGD, args.plain_seeds, None))
    labels = [RECOMMENDED] + [label for label, *_ in RUNS]
    figures: dict = {"calibration images": args.calib, "validation images": len(calib.x_val), "models": []}
    headline, misses = [], []
    for name, config, seeds, target in models:
        acc = {label: [] for label in labels}
        seconds = {label: [] for label, *_ in RUNS}
        fallbacks = {label: 0 for label, *_ in RUNS}
        dense = []
        for seed in seeds:
            model, path, trained = trained_model(preset_spec("mlpnet"), replace(config, seed=seed), data)
            net = from_keras(model)
            dense.append(100 * evaluate(net, data.x_test, data.y_test).accuracy)
            print(
                f"{name}, seed {seed}: {path.name} ({'trained now' if trained else 'cached'}), dense {dense[-1]:.2f} %"
            )
            a, s, f = prune_model(net, calib, data)
            for label in labels:
                acc[label].append(a[label])
            for label in seconds:
                seconds[label].append(s[label])
                fallbacks[label] += f[label]
        print(f"\n{name}: one-shot, all 3 layers; mean of seeds {seeds} (dense {np.mean(dense):.2f} %)")
        print(f"| method | {' | '.join(f'{k:g}' for k in SPARSITIES)} | s per seed (plan + {len(SPARSITIES)} points) |")
        print("|---|" + "---:|" * (len(SPARSITIES) + 1))
        table = []
        for label, row in PUBLISHED.items():
            print(f"| {label} | {' | '.join(f'{a:.2f}' for a in row)} | |")
            table.append({"method": label, **{f"{k:g}": a for k, a in zip(SPARSITIES, row)}})
        means = {label: np.mean(acc[label], axis=0) for label in labels}
        for label in labels:
            note = f" ({fallbacks[label]} points fell back to magnitude)" if fallbacks.get(label) else ""
            time_s = f"{np.mean(seconds[label]):.1f}" if label in seconds else ""
            print(f"| {label}{note} | {' | '.join(f'{a:.2f}' for a in means[label])} | {time_s} |")
            row = {
                "method": f"obd {label}{note}",
                **{f"{k:g}": round(float(a), 2) for k, a in zip(SPARSITIES, means[label])},
            }
            if label in seconds:
                row["s per seed"] = round(float(np.mean(seconds[label])), 1)
            table.append(row)
        cbs, magnitude, best = PUBLISHED["CBS (published)"], means["magnitude"], means[RECOMMENDED]
        for k, b, c, m in zip(SPARSITIES, best, cbs, magnitude):
            if b < c or b < m - 0.1:
                misses.append(f"{name} at {k:g}: recommended {b:.2f}, CBS {c:.2f}, magnitude {m:.2f}")
            if k == 0.98 and target is not None and b < target:
                misses.append(f"{name} at 0.98: recommended {b:.2f} < {target:g} (CHITA++ {CHITA_PLUS_PLUS_098})")
        figures["models"].append(
            {
                "model": name,
                "seeds": seeds,
                "dense test accuracy % per seed": [round(d, 2) for d in dense],
                "test accuracy %, mean of the seeds": table,
            }
        )
        headline += [
            {
                "result": f"MLPNet ({name}), one-shot, recommended method, {k:g} sparsity: test accuracy",
                "figure": f"{b:.2f} %",
                "target": (
                    f">= {target:g} (CHITA++ {CHITA_PLUS_PLUS_098})"
                    if k == 0.98 and target is not None
                    else f">= CBS {c:.2f}"
                ),
            }
            for k, b, c in zip(SPARSITIES, best, cbs)
            if k in (0.9, 0.98)
        ]
    print(
        f"\ntargets (recommended >= CBS and >= magnitude - 0.1 at every sparsity; >= {TARGET_098:g} at 0.98 on the "
        "preset):",
        "met" if not misses else "",
    )
    for line in misses:
        print("  missed:", line)
    figures["targets missed"] = misses
    figures["headline"] = headline
    results.write("mlpnet", figures)


if __name__ == "__main__":
    main()
