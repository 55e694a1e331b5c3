"""The teaching figures draw the numbers obd.teach.explain computed (receptive fields and pixel survival checked
value by value against the masks) and each stays under 300 KB of JSON. A small real network on real MNIST."""

import numpy as np
import pytest

import obd  # noqa: F401  first: it sets the thread runtimes' environment
from obd.methods.registry import calibration, plan
from obd.methods.saliency import hessian_diagonal
from obd.runtime.evaluate import evaluate
from obd.teach import explain
from obd.teach import plots as teach_plots

MAX_JSON = 300_000  # bytes per figure (issue 13)


@pytest.fixture(scope="module", params=["weight", "unit"])
def pruned(request, small_net):
    return plan(small_net, "magnitude", request.param).prune(0.8)


def small_enough(fig) -> bool:
    return len(fig.to_json()) <= MAX_JSON


def test_receptive_field_figure_shows_the_masked_weights_and_crosses_out_pruned_units(small_net, pruned):
    mask = pruned.masks[0]
    fields = explain.receptive_fields(small_net, mask, 16, "spread")
    fig = teach_plots.receptive_field_figure(fields)
    assert small_enough(fig) and len(fig.data) == 2
    live, dead = (np.asarray(t.z, dtype=np.float64) for t in fig.data)
    kernel = small_net.layers[0].kernel
    for i, (unit, alive) in enumerate(zip(fields.units, fields.alive)):
        top, left = teach_plots.tile_origin(i, 4)
        tile = (slice(top, top + 28), slice(left, left + 28))
        z = (live if alive else dead)[tile].ravel()
        assert np.isnan((dead if alive else live)[tile]).all()  # each unit in exactly one of the two traces
        if alive:  # kept weights on the diverging scale, pruned weights as gaps
            assert np.array_equal(np.isnan(z), ~mask[:, unit])
            assert np.allclose(z[mask[:, unit]], kernel[mask[:, unit], unit])
        else:  # a pruned unit: its dense pattern in grey
            assert not mask[:, unit].any() and np.allclose(z, np.abs(kernel[:, unit]))
    crosses = 2 * int((~fields.alive).sum())
    assert len(fig.layout.shapes) == crosses and (crosses > 0) == (pruned.mode == "unit")
    assert sum("pruned" in a.text for a in fig.layout.annotations) == int((~fields.alive).sum())
    assert np.isnan(live[:, 28:31]).all()  # the gap between the first two columns of images


def test_pixel_survival_figure_counts_each_pixels_kept_connections(pruned):
    counts = explain.pixel_survival(pruned.masks[0])
    fig = teach_plots.pixel_survival_figure(counts, pruned.masks[0].shape[1])
    z = np.asarray(fig.data[0].z)
    assert small_enough(fig) and z.shape == (28, 28)
    assert np.array_equal(z.ravel(), pruned.masks[0].sum(axis=1))
    assert f"({int((z == 0).sum())} of 784 cut off)" in fig.layout.title.text


@pytest.mark.parametrize("mode", ["weight", "unit"])
def test_criteria_figure_colours_each_point_by_what_each_criterion_keeps(small_net, mnist, mode):
    calib = calibration(mnist, 256)
    c = explain.criteria(small_net, hessian_diagonal(small_net, calib.x, calib.y), mode)
    comp = explain.compare(c, 0.8, layer=0, sample=2000)
    fig = teach_plots.criteria_figure(comp)
    assert small_enough(fig)
    for trace, (by_magnitude, by_obd) in zip(fig.data, teach_plots.AGREEMENT_STYLE):
        pick = (comp.kept_by_magnitude == by_magnitude) & (comp.kept_by_obd == by_obd)
        assert np.array_equal(np.asarray(trace.customdata)[:, 0], comp.index[pick])
        assert np.allclose(np.asarray(trace.customdata)[:, 2], comp.saliency[pick])
    assert sum(len(t.x) for t in fig.data) == len(comp.index)
    assert f"OBD keeps {comp.agreement.obd_only:,}" in fig.layout.title.text
    assert len(fig.layout.shapes) == 2  # both cut lines


def test_diagram_figure_draws_the_live_widths(small_net):
    d = explain.diagram(plan(small_net, "magnitude", "unit").prune(0.5))
    fig = teach_plots.diagram_figure(d)
    bands, dense, live = fig.data[:-2], fig.data[-2], fig.data[-1]
    assert small_enough(fig) and len(bands) == 3
    assert list(live.customdata) == [784, 64, 32, 10] and list(dense.customdata) == [784, 128, 64, 10]
    assert "64 of 128" in dense.text[1]


def test_confusion_figure_holds_the_matrix(small_net, mnist):
    m = explain.confusion(mnist.y_test, evaluate(small_net, mnist.x_test, mnist.y_test).predictions)
    fig = teach_plots.confusion_figure(m)
    right, wrong = (np.asarray(t.z, dtype=np.float64) for t in fig.data)
    assert small_enough(fig)
    assert np.array_equal(np.where(np.isnan(right), wrong, right), m)
    assert np.isnan(right[~np.eye(10, dtype=bool)]).all() and np.isnan(np.diag(wrong)).all()


def test_probabilities_figure_pairs_dense_and_pruned(small_net, mnist, pruned):
    dense, pruned_p = (explain.probabilities(n, mnist.x_test[3]) for n in (small_net, pruned.net))
    fig = teach_plots.probabilities_figure(dense, pruned_p)
    assert small_enough(fig)
    assert np.allclose(fig.data[0].y, 100 * dense) and np.allclose(fig.data[1].y, 100 * pruned_p)
    assert fig.data[0].name == f"dense: {dense.argmax()}"
