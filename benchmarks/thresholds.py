"""Where the sparse engine starts to beat dense: the measurements behind obd.runtime.engines.SPARSE_MAX_DENSITY.

Run from the repository root: python -m benchmarks.thresholds [--repeats N]
Prunes the default model by weight magnitude to a grid of kept fractions, times the sparse engine against dense
at each batch size class "auto" distinguishes (`obd.runtime.engines.measure`: interleaved pairs, the median of per-pair
ratios, retaken while other processes use the machine; a noisy reading is starred), and prints
the speed-up table with, per batch size, the largest kept fraction at which sparse is at least MARGIN times
faster than dense next to the threshold obd uses now; writes them to benchmarks/results/thresholds.json.
"""

from __future__ import annotations

import argparse

from benchmarks import results
from obd.core.data import load_mnist
from obd.core.network import from_keras
from obd.core.pruning import prune

# obd.runtime.engines first: it sets the numba and OpenMP environment before TensorFlow (obd.training.model) starts.
from obd.runtime.engines import SPARSE_MAX_DENSITY, build_engine
from obd.runtime.latency import TimingConfig, measure
from obd.runtime.shrunk import nonzero_weights
from obd.training.model import default_model

KEPT = (0.4, 0.3, 0.25, 0.2, 0.15, 0.1, 0.05)  # fractions of hidden-layer weights kept (1 - sparsity)
BATCHES = (1, 4, 8, 16, 32, 64, 128, 256, 1000, 10_000)
MARGIN = 1.2  # a pick must beat dense by this much on the quiet machine to stay faster on a busy one


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=7, help="timed pairs per reading, at least (default 7)")
    args = parser.parse_args()
    x = load_mnist().x_test
    net = from_keras(default_model())
    config = TimingConfig(pairs=args.repeats)
    rows, noisy = {}, {}
    for kept in KEPT:
        pruned = prune(net, round(1 - kept, 4), "weight").net
        flop_ratio = pruned.n_weights / nonzero_weights(pruned)
        for batch in BATCHES:
            dense, sparse = (build_engine(pruned, kind, batch) for kind in ("dense", "sparse"))
            lat = measure(dense, sparse, x[:batch], flop_ratio, config)
            rows[(kept, batch)], noisy[(kept, batch)] = lat.speedup, lat.noisy
            print(
                f"  kept {kept:.2f} batch {batch:>6}: dense {lat.dense_ms:8.3f} ms, sparse {lat.engine_ms:8.3f} ms, "
                f"{lat.speedup:5.2f}x ({lat.speedup_range[0]:.2f}-{lat.speedup_range[1]:.2f}) {lat.note}",
                flush=True,
            )
    print("\nsparse speed-up over dense (default model, weight pruning of the hidden layers)\n")
    print(
        "| batch | " + " | ".join(f"{100 * k:g} % kept" for k in KEPT) + " | best kept >= "
        f"{MARGIN}x | obd's threshold |"
    )
    print("|---:|" + "---:|" * (len(KEPT) + 2))
    table = []
    for batch in BATCHES:
        fast = [k for k in KEPT if rows[(k, batch)] >= MARGIN]
        now = SPARSE_MAX_DENSITY[max(b for b in SPARSE_MAX_DENSITY if b <= batch)]
        print(
            f"| {batch:,} | "
            + " | ".join(f"{rows[(k, batch)]:.2f}x{'*' * noisy[(k, batch)]}" for k in KEPT)
            + f" | {max(fast) if fast else '-'} | {now} |"
        )
        table.append(
            {
                "batch": batch,
                **{f"{100 * k:g} % kept": f"{rows[(k, batch)]:.2f}x{'*' * noisy[(k, batch)]}" for k in KEPT},
                f"best kept >= {MARGIN}x": max(fast) if fast else None,
                "obd's threshold": now,
            }
        )
    results.write("thresholds", {"sparse speed-up over dense (* noisy)": table})


if __name__ == "__main__":
    main()
