"""Sweeps: one record per (mode, sparsity), values equal to pruning and evaluating directly."""

import csv
import io

import pytest

from obd.evaluate import evaluate
from obd.pruning import prune
from obd.sweep import CSV_COLUMNS, DEFAULT_SPARSITIES, sweep, to_csv


def test_default_sparsities():
    assert [round(100 * k) for k in DEFAULT_SPARSITIES] == [0, 25, 50, 60, 70, 80, 90, 95, 97, 99]


def test_sweep_matches_direct_pruning(small_net, small_model, mnist):
    steps = []
    x, y = mnist.x_test[:2000], mnist.y_test[:2000]
    records = sweep(small_model, x, y, [0.0, 0.5, 0.9], ["weight", "unit"], progress=steps.append)
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
        sweep(small_net, mnist.x_test[:10], mnist.y_test[:10], [0.5, 1.5])
    with pytest.raises(ValueError, match="mode must be one of"):
        sweep(small_net, mnist.x_test[:10], mnist.y_test[:10], [0.5], ["filter"])


def test_csv_columns(small_net, mnist):
    records = sweep(small_net, mnist.x_test[:500], mnist.y_test[:500], [0.25], ["unit"])
    rows = list(csv.DictReader(io.StringIO(to_csv(records))))
    assert tuple(rows[0])[:5] == CSV_COLUMNS
    assert rows[0]["mode"] == "unit" and float(rows[0]["sparsity"]) == 0.25
