"""Sweeps: one record per (mode, sparsity), values equal to pruning and evaluating directly."""

import csv
import io

import pytest

from obd.evaluate import evaluate
from obd.methods import calibration, plan
from obd.pruning import prune
from obd.sweep import CSV_COLUMNS, DEFAULT_SPARSITIES, sweep, to_csv


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


def test_csv_columns(small_net, mnist):
    records = sweep(small_net, [0.25], ["unit"], x=mnist.x_test[:500], y=mnist.y_test[:500])
    rows = list(csv.DictReader(io.StringIO(to_csv(records))))
    assert tuple(rows[0])[:5] == CSV_COLUMNS
    assert rows[0]["mode"] == "unit" and float(rows[0]["sparsity"]) == 0.25


def test_records_round_trip_through_json_and_bad_files_read_as_none(small_net, mnist, tmp_path):
    from obd.sweep import load_records, save_records

    records = sweep(small_net, [0.0, 0.9], ["weight"], x=mnist.x_test[:300], y=mnist.y_test[:300])
    path = save_records(records, tmp_path / "curves" / "r.json")
    assert load_records(path) == records
    path.write_text("{broken")
    assert load_records(path) is None and load_records(tmp_path / "missing.json") is None


def test_auto_engine_evaluation_agrees_with_dense(small_net, mnist):
    from obd.evaluate import evaluate

    for k, mode in ((0.95, "weight"), (0.6, "unit")):
        net = prune(small_net, k, mode).net
        dense, auto = evaluate(net, mnist.x_test, mnist.y_test), evaluate(net, mnist.x_test, mnist.y_test, engine="auto")
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
    assert [(r.method, r.mode) for r in records] == [("magnitude", "weight"), ("magnitude", "unit"),
                                                     ("sparsegpt", "weight")]
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
