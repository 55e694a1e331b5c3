"""Sweeps: one record per (mode, sparsity), values equal to pruning and evaluating directly."""

import csv
import io
import sys
from dataclasses import replace

import pytest

from bad_inputs import BUDGET_ERROR, FINETUNE_EPOCHS_ERROR, METHOD_ERROR, MODE_ERROR, SPARSITY_ERROR
from obd.core.pruning import prune
from obd.methods.registry import calibration, plan
from obd.runtime.evaluate import evaluate
from obd.work.sweep import CSV_COLUMNS, DEFAULT_SPARSITIES, sweep, to_csv


def test_default_sparsities():
    assert [round(100 * k) for k in DEFAULT_SPARSITIES] == [0, 25, 50, 60, 70, 80, 90, 95, 97, 99]


def test_sweep_matches_direct_pruning(small_net, small_model, mnist):
    steps = []
    x, y = mnist.x_test[:2000], mnist.y_test[:2000]
    records = sweep(small_model, [0.0, 0.5, 0.9], ["weight", "unit"], x=x, y=y, progress=steps.append)
    assert [(r.mode, r.sparsity) for r in records] == [(m, k) for m in ("weight", "unit") for k in (0, 0.5, 0.9)]
    assert [s.done for s in steps] == list(range(6)) and steps[0].total == 6
    for r in records:
        p = prune(small_net, r.sparsity, r.mode)
        ev = evaluate(p.net, x, y)
        assert r.accuracy == pytest.approx(ev.accuracy, abs=1e-12)
        assert r.loss == pytest.approx(ev.loss, rel=1e-6)
        assert r.kept_weights == sum(int(m.sum()) for m in p.masks)
    assert records[0].kept_weights == small_net.n_weights


def test_sweep_validates_before_working(small_net, mnist):
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        sweep(small_net, [0.5, 1.5], x=mnist.x_test[:10], y=mnist.y_test[:10])
    with pytest.raises(ValueError, match="mode must be one of"):
        sweep(small_net, [0.5], ["filter"], x=mnist.x_test[:10], y=mnist.y_test[:10])


@pytest.mark.parametrize("check", ["sparsity", "mode", "method", "budget", "finetune epochs"])
def test_a_sweep_calls_each_validator_before_working(check, small_net, mnist):
    """One bad value per validator (their own tests try every bad value), given where a sweep takes it."""
    x, y = mnist.x_test[:10], mnist.y_test[:10]
    calls = {
        "sparsity": (lambda: sweep(small_net, [0.5, 1.5], x=x, y=y), SPARSITY_ERROR),
        "mode": (lambda: sweep(small_net, [0.5], ["weight", "Weight"], x=x, y=y), MODE_ERROR),
        "method": (lambda: sweep(small_net, [0.5], ["weight"], x=x, y=y, methods=["magic"]), METHOD_ERROR),
        "budget": (lambda: sweep(small_net, [0.5], ["weight"], x=x, y=y, budget="world"), BUDGET_ERROR),
        "finetune epochs": (
            lambda: sweep(small_net, [0.5], ["weight"], x=x, y=y, finetune_epochs=-1, train_data=mnist),
            FINETUNE_EPOCHS_ERROR,
        ),
    }
    call, message = calls[check]
    with pytest.raises(ValueError, match=message):
        call()


def test_csv_columns(small_net, mnist):
    records = sweep(small_net, [0.25], ["unit"], x=mnist.x_test[:500], y=mnist.y_test[:500])
    rows = list(csv.DictReader(io.StringIO(to_csv(records))))
    assert tuple(rows[0])[:5] == CSV_COLUMNS
    assert rows[0]["mode"] == "unit" and float(rows[0]["sparsity"]) == 0.25


def test_records_round_trip_through_json_and_bad_files_read_as_none(small_net, mnist, tmp_path):
    from obd.work.sweep import load_records, save_records

    records = sweep(small_net, [0.0, 0.9], ["weight"], x=mnist.x_test[:300], y=mnist.y_test[:300])
    path = save_records(records, tmp_path / "curves" / "r.json")
    assert load_records(path) == records
    path.write_text("{broken")
    assert load_records(path) is None and load_records(tmp_path / "missing.json") is None


def test_auto_engine_evaluation_agrees_with_dense(small_net, mnist):
    from obd.runtime.evaluate import evaluate

    for k, mode in ((0.95, "weight"), (0.6, "unit")):
        net = prune(small_net, k, mode).net
        dense, auto = (
            evaluate(net, mnist.x_test, mnist.y_test),
            evaluate(net, mnist.x_test, mnist.y_test, engine="auto"),
        )
        assert abs(dense.accuracy - auto.accuracy) <= 2e-4  # at most two of 10,000 argmax ties may flip
        assert auto.loss == pytest.approx(dense.loss, rel=1e-4)


def test_sweep_in_the_issues_form_evaluates_on_the_mnist_test_set(small_net, mnist):
    """sweep(model, sparsities, modes): without x and y it loads the test set (OBD_MNIST_PATH here)."""
    (default,) = sweep(small_net, [0.5], ["weight"])
    (explicit,) = sweep(small_net, [0.5], ["weight"], x=mnist.x_test, y=mnist.y_test)
    assert default.accuracy == explicit.accuracy and default.loss == explicit.loss
    with pytest.raises(ValueError, match="both x and y"):
        sweep(small_net, [0.5], ["weight"], x=mnist.x_test)


def test_sweep_skips_the_modes_a_method_does_not_support(small_net, mnist):
    x, y = mnist.x_test[:500], mnist.y_test[:500]
    calib = calibration(mnist, 256)
    records = sweep(small_net, [0.5], ["weight", "unit"], x=x, y=y, methods=["magnitude", "sparsegpt"], calib=calib)
    assert [(r.method, r.mode) for r in records] == [
        ("magnitude", "weight"),
        ("magnitude", "unit"),
        ("sparsegpt", "weight"),
    ]
    with pytest.raises(ValueError, match="none of the methods sparsegpt prunes in mode unit"):
        sweep(small_net, [0.5], ["unit"], x=x, y=y, methods=["sparsegpt"], calib=calib)


def test_a_sweep_reuses_prebuilt_plans_and_refuses_foreign_ones(small_net, mnist):
    x, y = mnist.x_test[:500], mnist.y_test[:500]
    calib = calibration(mnist, 256)
    built = plan(small_net, "obs", "unit", calib=calib)
    reused = sweep(small_net, [0.5, 0.8], ["unit"], x=x, y=y, methods=["obs"], calib=calib, plans=[built])
    fresh = sweep(small_net, [0.5, 0.8], ["unit"], x=x, y=y, methods=["obs"], calib=calib)
    assert [r.accuracy for r in reused] == [r.accuracy for r in fresh]
    assert all(r.setup_seconds == built.seconds for r in reused), "the plan's setup is not repeated"
    with pytest.raises(ValueError, match="built for another network, budget or prune_output"):
        sweep(small_net, [0.5], ["unit"], x=x, y=y, methods=["obs"], calib=calib, budget="global", plans=[built])


def _without_timing(records):
    from dataclasses import replace

    return [replace(r, seconds=0.0, setup_seconds=0.0) for r in records]


def assert_same_records(there, here):
    """Equal record for record but for timing; the loss to 1e-6: a Dask worker runs one OpenBLAS thread (Dask's
    default), which sums the float32 matmuls in another order than this process's threads (last bits)."""
    from dataclasses import replace

    def lossless(records):
        return [replace(r, loss=0.0) for r in _without_timing(records)]

    assert lossless(there) == lossless(here)
    assert [r.loss for r in there] == pytest.approx([r.loss for r in here], rel=1e-6)


def test_a_sweep_on_a_two_worker_dask_cluster_equals_the_in_process_one(small_net, mnist, monkeypatch):
    """The issue's check: the same points on a local 2-worker Dask cluster (separate processes) give the same
    records, one-shot and fine-tuned in gradual steps, in the same order; progress reports every point."""
    distributed = pytest.importorskip("distributed")
    # Workers start by "spawn", which re-runs the parent's __main__ file; after an AppTest in this process that is
    # app.py, whose page components need a Streamlit runtime. Workers need none of the parent's main module.
    monkeypatch.delattr(sys.modules["__main__"], "__file__", raising=False)
    calib = calibration(mnist, 256)
    x, y = mnist.x_test[:2000], mnist.y_test[:2000]
    one_shot = dict(
        sparsities=[0.0, 0.5, 0.9], modes=["weight", "unit"], x=x, y=y, methods=["magnitude", "obd"], calib=calib
    )
    tuned = dict(sparsities=[0.9], modes=["weight"], finetune_epochs=0.05, gradual_steps=2, train_data=mnist)
    local = sweep(small_net, **one_shot), sweep(small_net, **tuned)
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None) as cluster:
        steps = []
        remote = (
            sweep(small_net, **one_shot, scheduler=cluster.scheduler_address, progress=steps.append),
            sweep(small_net, **tuned, scheduler=cluster.scheduler_address),
        )
        workers = cluster.scheduler.workers
        assert len(workers) == 2 and all(len(w.processing) == 0 for w in workers.values())
    assert sorted(s.done for s in steps) == list(range(12)) and {s.total for s in steps} == {12}
    for here, there in zip(local, remote):
        assert_same_records(there, here)
    assert [r.finetune_epochs for r in remote[1]] == [0.0, 0.05] and remote[1][1].gradual_steps == 2


def test_a_sweep_names_a_bad_scheduler_before_working(small_net):
    with pytest.raises(ValueError, match="tcp://"):
        sweep(small_net, [0.5], scheduler="localhost:8786")


def test_curves_are_cached_under_their_established_names(small_net, mnist):
    from obd.core.cache import cache_dir
    from obd.work.sweep import code_digest, curve_path, curve_points, load_curve, save_curve

    path = curve_path(small_net, "obd", "unit", "global", True)
    fp = small_net.fingerprint()
    assert path == cache_dir() / "curves" / f"{fp}-obd-unit-global-1-{code_digest('obd')}.json"
    magnitude = curve_path(small_net, "magnitude", "weight")
    assert magnitude.name == f"{fp}-magnitude-weight-0-{code_digest('magnitude')}.json"
    # each method's name carries the digest of its own code: obs's reconstruction modules are not magnitude's
    assert code_digest("obs") != code_digest("magnitude") and code_digest("obs") == code_digest("sparsegpt")
    assert load_curve(small_net, "magnitude", "weight") is None
    points = curve_points(small_net, "magnitude", "weight")
    assert [p.sparsity for p in points] == list(DEFAULT_SPARSITIES) and all(p.x is None for p in points)
    records = [p() for p in points[:2]]
    save_curve(records, small_net, "magnitude", "weight")
    assert load_curve(small_net, "magnitude", "weight") == records
    assert records[1].accuracy == evaluate(prune(small_net, 0.25, "weight").net, mnist.x_test, mnist.y_test).accuracy
    with pytest.raises(ValueError, match="sparsegpt prunes single weights only"):
        curve_points(small_net, "sparsegpt", "unit")


def test_estimates_scale_with_the_network_and_the_work(small_net, mnist, tmp_path, monkeypatch):
    from obd.work.sweep import estimate_seconds, save_curve

    monkeypatch.setenv("OBD_CACHE_DIR", str(tmp_path))  # no curve of this net measured yet: the default net's table

    magnitude = estimate_seconds(small_net, "magnitude", "weight", 10)
    assert 0 < magnitude < estimate_seconds(small_net, "obs", "weight", 10)
    assert estimate_seconds(small_net, "magnitude", "weight", 20) > magnitude
    assert estimate_seconds(small_net, "magnitude", "weight", 10, finetune_epochs=1) > 10 * magnitude
    with pytest.raises(ValueError, match="n_points"):
        estimate_seconds(small_net, "magnitude", "weight", -1)
    measured = sweep(small_net, DEFAULT_SPARSITIES, ["unit"], methods=["obs"], calib=calibration(mnist, 256))
    save_curve(measured, small_net, "obs", "unit")  # once a curve exists, its own timings make the estimate
    assert estimate_seconds(small_net, "obs", "unit", 10) == pytest.approx(
        measured[0].setup_seconds + sum(r.seconds for r in measured)
    )


def test_a_pair_the_budget_does_not_support_is_left_out_like_sparsegpt_units():
    from obd.work.sweep import sweep_pairs

    pairs = sweep_pairs(["magnitude", "random", "sparsegpt"], ["weight", "unit"], budget="loss-aware")
    assert pairs == [("magnitude", "weight"), ("magnitude", "unit"), ("sparsegpt", "weight")]
    assert ("random", "weight") in sweep_pairs(["random"], ["weight"], budget="global")
    with pytest.raises(ValueError, match="none of the methods random prunes in mode weight with the loss-aware"):
        sweep_pairs(["random"], ["weight"], budget="loss-aware")


def test_the_fallback_mark_round_trips_through_csv_and_json(small_net, mnist, tmp_path):
    """A point's record says whether its method fell back to magnitude, as the plan's pruning did, and the mark
    survives the CSV and the JSON cache."""
    from obd.methods.registry import cached_plan
    from obd.work.sweep import load_records, save_records

    calib = calibration(mnist, 256)
    ks = [0.5, 0.97]
    records = sweep(small_net, ks, ["weight"], methods=["obs"], calib=calib, x=mnist.x_test[:300], y=mnist.y_test[:300])
    p = cached_plan(small_net, "obs", "weight", "layer", False, calib)
    assert [r.fallback for r in records] == [p.prune(k).fallback for k in ks]
    marked = [replace(records[0], fallback=True), records[1]]
    rows = list(csv.DictReader(io.StringIO(to_csv(marked))))
    assert [row["fallback"] for row in rows] == ["True", str(records[1].fallback)]
    assert load_records(save_records(marked, tmp_path / "r.json")) == marked


def test_cache_names_change_with_the_code_and_the_machine(small_net, tmp_path, monkeypatch):
    """A module's digest follows its source; speed tables are named by the CPU and the engine code."""
    import obd.runtime.bench
    from obd.core.cache import source_digest
    from obd.work import warm

    (tmp_path / "made_here.py").write_text("RESULT = 1\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    before = source_digest(("made_here", "obd.core.pruning"))
    source_digest.cache_clear()
    (tmp_path / "made_here.py").write_text("RESULT = 2\n")
    assert source_digest(("made_here", "obd.core.pruning")) != before
    with pytest.raises(ValueError, match="no source file"):
        source_digest(("no_such_module_here",))
    here = warm.speed_path(small_net, 100)
    warm.machine_digest.cache_clear()
    monkeypatch.setattr(obd.runtime.bench, "machine", lambda: "Another CPU (x86-64, AVX2), 2 cores")
    elsewhere = warm.speed_path(small_net, 100)
    warm.machine_digest.cache_clear()
    assert here != elsewhere and here.parent == elsewhere.parent
