"""Plan cost (issue 25): how long the recommended methods take with their defaults, and what they reach.

- The default net (784-1000x4-10): obs under the loss-aware budget, weight and unit mode; each plan's seconds
  (calibration activations, damping choices, loss profiles, unit orders) and then one point, 99 % of the weights or
  90 % of the units, with its test accuracy. Targets: each plan <= 60 s on 2 cores; 99 % weights >= 96.7 %,
  90 % units >= 98.0 %.
- MLPNet (the `mlpnet` preset, its seeds): chita under the loss-aware budget, its whole sweep (plan and the
  0.5 ... 0.98 points of benchmarks/mlpnet.py, all three layers), per seed. Target: <= 60 s.

Every timing shares the machine with whatever else runs: the result file keeps the load average beside them.

    OBD_MNIST_PATH=... python -m benchmarks.plan_cost [--seeds 0 1 2]
"""

from __future__ import annotations

import argparse
import time
from dataclasses import replace

import obd  # noqa: F401  (sets thread variables before numpy loads)
from benchmarks import results
from benchmarks.mlpnet import CALIBRATION, SPARSITIES
from obd.core.config import preset_spec, preset_train_config
from obd.core.data import load_mnist
from obd.core.network import from_keras
from obd.methods.registry import calibration, plan
from obd.runtime.evaluate import evaluate
from obd.training.model import default_model, trained_model

LIMIT_S = 60.0  # issue 25: a plan (default net) or a whole sweep (MLPNet) on 2 cores
DEFAULT_NET_POINTS = {"weight": (0.99, 96.7), "unit": (0.9, 98.0)}  # mode -> (sparsity, target test accuracy %)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2], help="seeds of the mlpnet preset")
    args = parser.parse_args()
    data = load_mnist()
    calib = calibration(data)
    net = from_keras(default_model(data=data))
    rows, misses = [], []
    for mode, (k, target) in DEFAULT_NET_POINTS.items():
        start = time.perf_counter()
        p = plan(net, "obs", mode, "loss-aware", calib=calib)
        plan_s = time.perf_counter() - start
        pruned = p.prune(k)
        point_s = time.perf_counter() - start - plan_s
        acc = 100 * evaluate(pruned.net, data.x_test, data.y_test).accuracy
        rows.append(
            {
                "net": "default net",
                "method": "obs loss-aware",
                "mode": mode,
                "plan s": round(plan_s, 1),
                "point s": round(point_s, 1),
                "sparsity": k,
                "test accuracy %": round(acc, 2),
            }
        )
        print(f"default net, obs loss-aware {mode}: plan {plan_s:.1f} s, {k:g}: {point_s:.1f} s, {acc:.2f} %")
        if plan_s > LIMIT_S:
            misses.append(f"default net, obs loss-aware {mode}: plan {plan_s:.1f} s > {LIMIT_S:g} s")
        if acc < target:
            misses.append(f"default net, obs loss-aware {mode} at {k:g}: {acc:.2f} % < {target:g} %")
    mlpnet_calib = calibration(data, CALIBRATION)  # benchmarks/mlpnet.py's sample
    for seed in args.seeds:
        model, _, _ = trained_model(preset_spec("mlpnet"), replace(preset_train_config("mlpnet"), seed=seed), data)
        mlpnet = from_keras(model)
        start = time.perf_counter()
        p = plan(mlpnet, "chita", "weight", "loss-aware", prune_output=True, calib=mlpnet_calib)
        plan_s = time.perf_counter() - start
        last = None
        for k in SPARSITIES:
            last = p.prune(k)
        sweep_s = time.perf_counter() - start
        assert last is not None, "SPARSITIES is not empty"
        acc = 100 * evaluate(last.net, data.x_test, data.y_test).accuracy
        rows.append(
            {
                "net": f"MLPNet seed {seed}",
                "method": "chita loss-aware",
                "mode": "weight",
                "plan s": round(plan_s, 1),
                "point s": round(sweep_s - plan_s, 1),
                "sparsity": SPARSITIES[-1],
                "test accuracy %": round(acc, 2),
            }
        )
        print(f"mlpnet seed {seed}, chita loss-aware: sweep of {len(SPARSITIES)} points {sweep_s:.1f} s, {acc:.2f} %")
        if sweep_s > LIMIT_S:
            misses.append(f"mlpnet seed {seed}, chita sweep {sweep_s:.1f} s > {LIMIT_S:g} s")
    print("targets:", "met" if not misses else "")
    for line in misses:
        print("  missed:", line)
    results.write(
        "plan_cost",
        {
            "seconds (plan: set-up; point: the sparsity shown, or the whole sweep's points for MLPNet)": rows,
            "targets missed": misses,
            "headline": [
                {
                    "result": f"{r['net']}, {r['method']} {r['mode']}: "
                    + ("whole sweep" if r["net"].startswith("MLPNet") else "plan"),
                    "figure": f"{r['plan s'] + (r['point s'] if r['net'].startswith('MLPNet') else 0):.1f} s",
                    "target": f"<= {LIMIT_S:g} s",
                }
                for r in rows[: len(DEFAULT_NET_POINTS) + 1]  # the default net's plans and the first seed's sweep
            ],
        },
    )


if __name__ == "__main__":
    main()
