"""The dashboard's pictures: colour-mapped kernels stay small and honest (block size, pruned entries visible),
and the plotly figures carry obd's numbers. Real trained weights, no Streamlit."""

import numpy as np
import pytest

from obd import plots
from obd.images import PRUNED, block_size, digit_tile, kernel_image
from obd.pruning import prune, report, unit_mask, weight_mask
from obd.sweep import SweepRecord

MAX_JSON = 300_000  # bytes per heatmap figure (issue 3); a 1000x1000 go.Heatmap would be 5.6 MB


@pytest.fixture(scope="module")
def big_kernel():
    """A 1000x1000 kernel shaped like the default net's hidden layers (seeded Glorot-scale values)."""
    return np.random.default_rng(0).normal(0, 0.05, (1000, 1000)).astype(np.float32)


def test_block_size_is_the_smallest_that_fits():
    assert block_size((1000, 1000), 90_000) == 4  # 250 x 250; 3 would give 334 x 334 > 90,000
    assert block_size((64, 10), 90_000) == 1
    assert block_size((784, 1000), 90_000) == 3  # 262 x 334


@pytest.mark.parametrize("mode", ["weight", "unit"])
@pytest.mark.parametrize("sparsity", [0.0, 0.9])
def test_large_kernel_figures_stay_under_300_kb_and_say_what_a_pixel_is(big_kernel, mode, sparsity):
    mask = (weight_mask if mode == "weight" else unit_mask)(big_kernel, sparsity)
    fig = plots.kernel_figure(np.where(mask, big_kernel, 0), mask, "layer 1")
    assert len(fig.to_json()) <= MAX_JSON
    assert "each pixel = a 4x4 block" in fig.layout.title.text
    assert fig.data[0].dx == 4 and fig.data[0].x0 == 1.5  # axes count units and inputs, not pixels


def test_small_kernels_are_heatmaps_with_every_value_on_hover(small_net):
    layer = small_net.layers[-1]  # 64 x 10
    mask = weight_mask(layer.kernel, 0.5)
    fig = plots.kernel_figure(layer.kernel, mask, "logits")
    z = np.array(fig.data[0].z, dtype=float)
    assert fig.data[0].type == "heatmap" and z.shape == layer.kernel.shape
    assert np.isnan(z[~mask]).all() and np.allclose(z[mask], layer.kernel[mask])  # pruned entries drawn apart
    assert len(fig.to_json()) <= MAX_JSON


def test_unit_pruned_columns_are_black_and_signs_have_opposite_colours():
    w = np.tile(np.array([[-1.0, 1.0, 0.5, 2.0]]), (6, 1))  # (6 inputs, 4 units)
    mask = np.ones_like(w, dtype=bool)
    mask[:, 2] = False  # unit 2 pruned
    img = kernel_image(w, mask)
    assert img.block == 1 and img.rgb.shape == (6, 4, 3)
    assert (img.rgb[:, 2] == PRUNED).all()
    neg, pos = img.rgb[0, 0].astype(int), img.rgb[0, 1].astype(int)
    assert neg[2] > neg[0] and pos[0] > pos[2]  # blue for negative, red for positive


def test_opposite_signs_in_a_block_do_not_cancel_to_white():
    w = np.array([[0.9, -1.0], [0.1, 0.2]])  # one 2x2 block: the largest |w| is -1.0
    img = kernel_image(w, np.ones_like(w, dtype=bool), max_pixels=1)
    r, g, b = img.rgb[0, 0].astype(int)
    assert img.block == 2 and b > r + 50  # clearly blue, not the near-white of a mean of 0.05


def test_a_partly_pruned_block_is_darker_than_a_kept_one():
    w = np.ones((4, 4))
    mask = np.ones((4, 4), dtype=bool)
    mask[:2, :2] = [[False, True], [True, False]]  # half of the top-left 2x2 block pruned
    img = kernel_image(w, mask, max_pixels=4)
    assert img.block == 2
    assert img.rgb[0, 0].sum() < img.rgb[1, 1].sum()


def test_layer_and_class_figures_carry_obds_numbers(small_net, mnist):
    pruned = prune(small_net, 0.75, "unit")
    rep = report(pruned)
    fig = plots.layer_sparsity_figure(rep)
    units = dict(zip(fig.data[1].x, fig.data[1].y))
    assert units[rep.layers[0].name] == pytest.approx(75.0, abs=0.5)
    assert units[rep.layers[-1].name] == 0.0  # the output layer is not pruned by default
    dense, pruned_acc = np.full(10, 0.9), np.linspace(0.1, 1.0, 10)
    fig = plots.class_accuracy_figure(dense, pruned_acc)
    assert list(fig.data[1].y) == pytest.approx(list(100 * pruned_acc))


def test_methods_figure_marks_the_current_point_on_its_curve():
    records = [SweepRecord("weight", k, a, 0.1, 100) for k, a in [(0.0, 0.98), (0.5, 0.96), (0.9, 0.80)]]
    fig = plots.methods_figure(records, current=("magnitude", "weight", 0.7))
    star = fig.data[-1]
    assert star.x[0] == pytest.approx(70.0) and star.y[0] == pytest.approx(88.0)  # interpolated


def test_digit_tile_frames_the_digit(mnist):
    tile = digit_tile(mnist.x_test[0], (220, 30, 30))
    assert tile.shape == (84, 84, 3) and tile.dtype == np.uint8
    assert (tile[0, 0] == (220, 30, 30)).all()
    inside = tile[2:-2, 2:-2, 0].astype(float) / 255  # grey: the three channels are equal inside the frame
    digit = np.repeat(np.repeat(mnist.x_test[0].reshape(28, 28), 3, 0), 3, 1)[2:-2, 2:-2]
    assert np.abs(inside - digit).max() <= 1 / 255


def test_methods_figure_plots_the_loss_on_request():
    records = [SweepRecord("unit", k, 0.9, loss, 100) for k, loss in [(0.0, 0.05), (0.9, 2.0)]]
    fig = plots.methods_figure(records, current=("magnitude", "unit", 0.45), metric="loss")
    assert list(fig.data[0].y) == [0.05, 2.0] and fig.layout.yaxis.type == "log"
    assert fig.data[-1].y[0] == pytest.approx(1.025)
    with pytest.raises(ValueError, match="accuracy or loss"):
        plots.methods_figure(records, metric="f1")
