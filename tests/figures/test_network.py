"""The figures of one pruned network: colour-mapped kernels stay small and honest (block size, pruned entries
visible, a colour bar saying what colours mean), and the per-layer and per-class charts carry obd's numbers.
Real trained weights, no Streamlit."""

import numpy as np
import pytest

from obd.core.pruning import prune, report, unit_mask, weight_mask
from obd.figures import network
from obd.figures.images import POSITIVE, kernel_image

MAX_JSON = 300_000  # bytes per heatmap figure (issue 3); a 1000x1000 go.Heatmap would be 5.6 MB


@pytest.fixture(scope="module")
def big_kernel():
    """A 1000x1000 kernel shaped like the default net's hidden layers (seeded Glorot-scale values)."""
    return np.random.default_rng(0).normal(0, 0.05, (1000, 1000)).astype(np.float32)


@pytest.mark.parametrize("mode", ["weight", "unit"])
@pytest.mark.parametrize("sparsity", [0.0, 0.9])
def test_large_kernel_figures_stay_under_300_kb_and_say_what_a_pixel_is(big_kernel, mode, sparsity):
    mask = (weight_mask if mode == "weight" else unit_mask)(big_kernel, sparsity)
    fig = network.kernel_figure(np.where(mask, big_kernel, 0), mask, "layer 1")
    assert len(fig.to_json()) <= MAX_JSON
    assert fig.layout.title.text == "layer 1"
    assert "each pixel = a 4×4 block: its largest kept weight" in fig.layout.title.subtitle.text
    assert fig.data[0].dx == 4 and fig.data[0].x0 == 1.5  # axes count units and inputs, not pixels


def colour_bar(fig):
    """The one trace of a kernel figure that shows a colour scale."""
    shown = [
        t
        for t in fig.data
        if (t.type == "heatmap" and t.showscale is not False) or (t.type == "scatter" and t.marker.showscale)
    ]
    assert len(shown) == 1
    return shown[0]


def test_a_large_kernels_colour_bar_is_the_images_own_scale(big_kernel):
    mask = weight_mask(big_kernel, 0.9)
    fig = network.kernel_figure(big_kernel, mask, "layer 1")
    bar = colour_bar(fig)
    assert bar.marker.colorbar.title.text.startswith("weight") and "black = pruned" in bar.marker.colorbar.title.text
    img = kernel_image(big_kernel, mask)
    assert (bar.marker.cmin, bar.marker.cmax) == (-img.scale, img.scale)
    one = kernel_image(np.array([[img.scale]]), np.ones((1, 1), dtype=bool))  # full colour at the bar's top
    assert bar.marker.colorscale[-1][1] == "rgb({},{},{})".format(*one.rgb[0, 0])
    assert tuple(one.rgb[0, 0]) == tuple(POSITIVE.astype(np.uint8))


@pytest.mark.parametrize("size", [1000, 40])  # an image and a hoverable heatmap
def test_a_saliency_map_says_score_not_sign(big_kernel, size):
    scores = big_kernel[:size, :size] ** 2  # non-negative, like ½·h·w²
    mask = unit_mask(big_kernel[:size, :size], 0.5)
    fig = network.kernel_figure(scores, mask, "obd saliency, layer 1", signed=False, value_name="obd saliency")
    bar = colour_bar(fig)
    title = (bar.marker.colorbar if bar.type == "scatter" else bar.colorbar).title.text
    assert title.startswith("obd saliency") and "black = pruned" in title
    assert "sign" not in fig.layout.title.subtitle.text and "obd saliency" in fig.layout.title.subtitle.text
    low = bar.marker.cmin if bar.type == "scatter" else bar.zmin
    assert low == 0  # a white-to-red scale from zero, not a diverging one
    assert len(fig.to_json()) <= MAX_JSON


def test_small_kernels_are_heatmaps_with_every_value_on_hover(small_net):
    layer = small_net.layers[-1]  # 64 x 10
    mask = weight_mask(layer.kernel, 0.5)
    fig = network.kernel_figure(layer.kernel, mask, "logits")
    z = np.array(fig.data[0].z, dtype=float)
    assert fig.data[0].type == "heatmap" and z.shape == layer.kernel.shape
    assert np.isnan(z[~mask]).all() and np.allclose(z[mask], layer.kernel[mask])  # pruned entries drawn apart
    assert len(fig.to_json()) <= MAX_JSON
    assert colour_bar(fig).colorbar.title.text.startswith("weight") and fig.layout.plot_bgcolor == "black"


def test_layer_and_class_figures_carry_obds_numbers(small_net, mnist):
    pruned = prune(small_net, 0.75, "unit")
    rep = report(pruned)
    fig = network.layer_sparsity_figure(rep)
    units = dict(zip(fig.data[1].x, fig.data[1].y))
    assert units[rep.layers[0].name] == pytest.approx(75.0, abs=0.5)
    assert units[rep.layers[-1].name] == 0.0  # the output layer is not pruned by default
    dense, pruned_acc = np.full(10, 0.9), np.linspace(0.1, 1.0, 10)
    fig = network.class_accuracy_figure(dense, pruned_acc)
    assert list(fig.data[1].y) == pytest.approx(list(100 * pruned_acc))
    digits = [str(d) for d in range(10)]  # every digit labelled, not only the even ones
    assert fig.layout.xaxis.type == "category" and list(fig.layout.xaxis.tickvals) == digits
    assert list(fig.layout.xaxis.ticktext) == digits
