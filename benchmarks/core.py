"""Core timings on the default model: test-set evaluation (obd's numpy pass vs Keras) and mask computation.

Run from the repository root: python -m benchmarks.core   (prints medians; ratios come from one run; writes
benchmarks/results/core.json)
Targets (issue 2): evaluation of the 10,000 test images <= 0.6 s for the default 4x1000 net.
"""

from __future__ import annotations

import statistics
import time

import obd  # noqa: F401  first: it sets the thread runtimes' environment, which OpenBLAS reads as numpy loads
from benchmarks import results
from obd.core.data import load_mnist
from obd.core.network import from_keras
from obd.core.pruning import prune, rank, unit_mask, weight_mask
from obd.runtime.evaluate import evaluate
from obd.training.model import default_model


def median_seconds(fn, repeats: int) -> float:
    fn()  # warm-up: first calls pay for allocation and thread start-up
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def main() -> None:
    data = load_mnist()
    model = default_model()
    net = from_keras(model)
    x, y = data.x_test, data.y_test
    model.compile(loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    rows = [
        ("obd evaluate (numpy, one batch of 10,000)", median_seconds(lambda: evaluate(net, x, y), 5)),
        (
            "keras model.predict(batch_size=10000)",
            median_seconds(lambda: model.predict(x, batch_size=10_000, verbose=0), 3),
        ),
        ("keras model.evaluate (default batch 32)", median_seconds(lambda: model.evaluate(x, y, verbose=0), 2)),
    ]
    kernel = net.layers[1].kernel  # (1000, 1000)
    ranking = {m: rank(net, m) for m in ("weight", "unit")}
    rows += [
        ("weight_mask 1000x1000 at 90 %", median_seconds(lambda: weight_mask(kernel, 0.9), 5)),
        ("unit_mask 1000x1000 at 90 %", median_seconds(lambda: unit_mask(kernel, 0.9), 5)),
        ("rank(net, 'weight') (sort all 3.8 M weights once)", median_seconds(lambda: rank(net, "weight"), 3)),
        (
            "prune(net, 0.9, ranking) weight, whole net",
            median_seconds(lambda: prune(net, 0.9, ranking=ranking["weight"]), 5),
        ),
        (
            "prune(net, 0.9, ranking) unit, whole net",
            median_seconds(lambda: prune(net, 0.9, ranking=ranking["unit"]), 5),
        ),
    ]
    width = max(len(name) for name, _ in rows)
    accuracy = 100 * evaluate(net, x, y).accuracy
    print(f"default model {net.sizes}, {net.n_weights:,} weights, test accuracy {accuracy:.2f} %")
    for name, seconds in rows:
        print(f"{name:<{width}}  {1000 * seconds:9.1f} ms")
    print(f"speed-up of obd evaluate over model.evaluate: {rows[2][1] / rows[0][1]:.1f}x (target: <= 600 ms)")
    results.write(
        "core",
        {
            "model": "-".join(map(str, net.sizes)),
            "weights": net.n_weights,
            "test accuracy %": round(accuracy, 2),
            "timings": [{"what": name, "ms": round(1000 * seconds, 2)} for name, seconds in rows],
            "headline": [
                {
                    "result": "evaluate the 10,000 test images (default model, numpy)",
                    "figure": f"{1000 * rows[0][1]:.0f} ms",
                    "target": "≤ 600 ms",
                },
                {
                    "result": "default model's test accuracy (dense)",
                    "figure": f"{accuracy:.2f} %",
                    "target": "",
                },
            ],
        },
    )


if __name__ == "__main__":
    main()
