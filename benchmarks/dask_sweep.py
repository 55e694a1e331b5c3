"""One sweep in process and on a local Dask cluster of two worker processes: wall time and whether the records agree.

Run from the repository root: python -m benchmarks.dask_sweep [--preset tiny] [--methods magnitude obs]
                                                               [--sparsities 50 90 99] [--finetune-epochs 0.05]
Prints the in-process time, the cluster's start-up, its first run (each worker imports obd and builds its plans)
and a second run (plans cached in the workers), and the largest accuracy and loss differences between the
records (issue 14: a sweep on a local 2-worker cluster equals the in-process one, record for record); writes them
to benchmarks/results/dask_sweep.json.
On one 2-core machine two workers cannot beat one process by much: a cluster pays off with more machines.
"""

from __future__ import annotations

import argparse
import time

import obd  # noqa: F401  first: it sets the thread runtimes' environment, which OpenBLAS reads as numpy loads
from benchmarks import results
from obd.core.data import load_mnist
from obd.core.network import from_keras
from obd.methods.registry import METHODS, calibration
from obd.training.model import default_model
from obd.work.sweep import sweep


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--preset", default="tiny")
    parser.add_argument("--methods", nargs="+", default=["magnitude", "obs"], choices=list(METHODS))
    parser.add_argument("--sparsities", nargs="+", type=float, default=[50, 90, 99], help="in percent")
    parser.add_argument("--finetune-epochs", type=float, default=0.05, help="fine-tuning per point (0: one-shot)")
    args = parser.parse_args()
    import distributed

    data = load_mnist()
    net = from_keras(default_model(args.preset))
    settings = dict(
        modes=["weight", "unit"],
        methods=args.methods,
        calib=calibration(data),
        finetune_epochs=args.finetune_epochs,
        train_data=data,
    )
    ks = [k / 100 for k in args.sparsities]
    points = len(ks) * 2 * len(args.methods) * (2 if args.finetune_epochs else 1)
    print(
        f"{args.preset} net {'-'.join(map(str, net.sizes))}, methods {' '.join(args.methods)}, both modes, "
        f"{len(ks)} sparsities, fine-tuning {args.finetune_epochs:g} epochs: about {points} points"
    )

    start = time.perf_counter()
    local = sweep(net, ks, **settings)
    in_process = time.perf_counter() - start
    print(f"in process (one thread):           {in_process:7.1f} s")

    start = time.perf_counter()
    timings = [{"run": "in process (one thread)", "s": round(in_process, 1)}]
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None) as cluster:
        print(f"local cluster start (2 processes): {time.perf_counter() - start:7.1f} s")
        timings.append({"run": "local cluster start (2 processes)", "s": round(time.perf_counter() - start, 1)})
        runs = []
        for label in ("first run", "second run"):
            start = time.perf_counter()
            runs.append(sweep(net, ks, **settings, scheduler=cluster.scheduler_address))
            seconds = time.perf_counter() - start
            print(f"2 Dask workers, {label + ':':<18}{seconds:7.1f} s  ({in_process / seconds:.2f}x in-process)")
            timings.append({"run": f"2 Dask workers, {label}", "s": round(seconds, 1)})
    for remote in runs:
        assert [(r.method, r.mode, r.sparsity, r.finetune_epochs) for r in remote] == [
            (r.method, r.mode, r.sparsity, r.finetune_epochs) for r in local
        ]
    worst_acc = max(abs(a.accuracy - b.accuracy) for run in runs for a, b in zip(run, local))
    worst_loss = max(abs(a.loss - b.loss) / b.loss for run in runs for a, b in zip(run, local))
    print(
        f"records: {len(local)}; largest accuracy difference {worst_acc:.2g}, relative loss difference {worst_loss:.2g}"
    )
    results.write(
        "dask_sweep",
        {
            "preset": args.preset,
            "methods": args.methods,
            "sparsities %": args.sparsities,
            "fine-tuning epochs": args.finetune_epochs,
            "records": len(local),
            "timings": timings,
            "largest accuracy difference": worst_acc,
            "largest relative loss difference": worst_loss,
        },
    )


if __name__ == "__main__":
    main()
