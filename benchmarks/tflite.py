"""TensorFlow Lite exports of the pruned default model: their accuracy against obd's, and their speed against the
dense TFLite model, measured in TFLite's own interpreter.

Run from the repository root: python -m benchmarks.tflite [--repeats N] [--sparsity PCT]
Exports the dense network, the weight-pruned one (magnitude, the converter's EXPERIMENTAL_SPARSITY optimisation)
and the unit-pruned one (shrunk) with `obd.work.export.tflite_model`; prints, per model, its file size, its test
accuracy in TFLite next to obd's, and per batch size its ms per call and speed-up over the dense TFLite model (the
median of per-pair ratios of interleaved calls, with the interquartile range); writes
benchmarks/results/tflite.json.
"""

from __future__ import annotations

import argparse

import numpy as np

from benchmarks import results
from obd.core.data import Mnist, load_mnist
from obd.core.network import Network, from_keras
from obd.core.pruning import prune

# obd.runtime first: it sets the numba and OpenMP environment before TensorFlow (obd.training.model) starts.
from obd.runtime.bench import machine
from obd.runtime.evaluate import evaluate
from obd.runtime.threads import cores
from obd.training.model import default_model
from obd.work.export import tflite_model, tflite_runner, tflite_speedup, user_inputs

BATCHES = (1, 100, 10_000)
EVAL_BATCH = 1000  # rows per interpreter call when measuring accuracy


def tflite_accuracy(model: bytes, net: Network, data: Mnist) -> float:
    """The TFLite model's test accuracy, the images fed as the user's model takes them."""
    run = tflite_runner(model, EVAL_BATCH, cores())
    inputs = user_inputs(net, data.x_test)
    predictions = [run(inputs[i : i + EVAL_BATCH]).argmax(axis=1) for i in range(0, len(inputs), EVAL_BATCH)]
    return float((np.concatenate(predictions) == data.y_test).mean())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=15, help="timed pairs per batch size (default 15)")
    parser.add_argument(
        "--sparsities", type=float, nargs="+", default=[90.0, 99.0], help="sparsities in percent (default 90 99)"
    )
    args = parser.parse_args()
    data = load_mnist()
    net = from_keras(default_model())
    dense = tflite_model(net)
    print(f"TFLite exports of the default model {'-'.join(map(str, net.sizes))}, timed on {machine()}")
    print(f"dense TFLite model: {len(dense) / 2**20:.2f} MB, accuracy {100 * tflite_accuracy(dense, net, data):.2f} %")
    print(
        f"{'mode':<8}{'pct':>5}{'MB':>7}{'obd acc':>9}{'TFLite acc':>11}{'batch':>7}{'dense ms':>10}{'ms':>9}  speed-up"
    )
    rows, headline = [], []
    for mode in ("weight", "unit"):
        for pct in args.sparsities:
            pruned = prune(net, pct / 100, mode).net
            model = tflite_model(pruned)
            ours, theirs = evaluate(pruned, data.x_test, data.y_test).accuracy, tflite_accuracy(model, pruned, data)
            for batch in BATCHES:
                timing = tflite_speedup(dense, model, user_inputs(pruned, data.x_test[:batch]), args.repeats, cores())
                rows.append(
                    {
                        "mode": mode,
                        "sparsity": pct / 100,
                        "bytes": len(model),
                        "obd_accuracy": ours,
                        "tflite_accuracy": theirs,
                        "batch": batch,
                        **timing,
                    }
                )
                print(
                    f"{mode:<8}{pct:>5g}{len(model) / 2**20:>7.2f}{100 * ours:>8.2f}%{100 * theirs:>10.2f}%{batch:>7}"
                    f"{timing['dense_ms']:>10.3f}{timing['ms']:>9.3f}  {timing['speedup']:.2f}x "
                    f"({timing['speedup_low']:.2f}-{timing['speedup_high']:.2f})"
                )
            if pct == 90:
                figures = ", ".join(f"{r['speedup']:.2f}x at batch {r['batch']:,}" for r in rows[-len(BATCHES) :])
                headline.append(
                    {
                        "result": f"TFLite export, {mode} pruning 90 % (magnitude), vs the dense TFLite model",
                        "figure": f"{figures}; accuracy {100 * theirs:.2f} % (obd {100 * ours:.2f} %)",
                        "target": "speed-up measured; accuracy = obd's +-0.1 points",
                    }
                )
    results.write("tflite", {"machine": machine(), "rows": rows, "headline": headline})


if __name__ == "__main__":
    main()
