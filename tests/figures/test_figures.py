"""The dashboard's pictures: kernel images stay small and honest (block size, pruned entries visible), and the
curve, speed and presenter figures carry obd's numbers. Real trained weights, no Streamlit."""

import re

import numpy as np
import pytest

from obd.figures import plots
from obd.figures.images import PRUNED, block_size, digit_tile, kernel_image
from obd.methods.registry import METHODS
from obd.runtime.bench import bench
from obd.runtime.speedups import Speedup, speedup_text
from obd.work.sweep import SweepRecord


def test_block_size_is_the_smallest_that_fits():
    assert block_size((1000, 1000), 90_000) == 4  # 250 x 250; 3 would give 334 x 334 > 90,000
    assert block_size((64, 10), 90_000) == 1
    assert block_size((784, 1000), 90_000) == 3  # 262 x 334


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


def trace(fig, name):
    return next(t for t in fig.data if t.name == name)


def test_methods_figure_marks_the_current_point_on_its_curve():
    records = [SweepRecord("weight", k, a, 0.1, 100) for k, a in [(0.0, 0.98), (0.5, 0.96), (0.9, 0.80)]]
    fig = plots.methods_figure(records, current=("magnitude", "weight", 0.7), x_axis="sparsity")
    star = trace(fig, "current point")
    assert star.x[0] == pytest.approx(70.0) and star.y[0] == pytest.approx(88.0)  # interpolated
    assert list(star.customdata[0]) == ["magnitude", "weight", pytest.approx(70.0)]


def test_on_the_compression_axis_the_star_sits_on_the_drawn_line():
    records = [SweepRecord("weight", k, a, 0.1, 100) for k, a in [(0.0, 0.98), (0.5, 0.96), (0.9, 0.80)]]
    fig = plots.methods_figure(records, current=("magnitude", "weight", 0.7))
    star, line = trace(fig, "current point"), trace(fig, "magnitude, weight")
    assert star.x[0] == pytest.approx(1 / 0.3)
    # collinear with its segment's ends in the plotted (log x, linear y) coordinates
    (x0, y0), (x1, y1) = (np.log10(line.x[1]), line.y[1]), (np.log10(line.x[2]), line.y[2])
    assert star.y[0] == pytest.approx(y0 + (y1 - y0) * (np.log10(star.x[0]) - x0) / (x1 - x0))
    assert 88.0 < star.y[0] < 96.0  # 70 % sits a third of the way from 2× to 10×: not the linear-in-k 88 %


def test_the_compression_axis_spreads_high_sparsities_and_clicks_map_back():
    ks = [0.0, 0.25, 0.5, 0.9, 0.95, 0.99]
    records = [SweepRecord("unit", k, 0.98 - 0.5 * k, 0.1, 100) for k in ks]
    fig = plots.methods_figure(records)
    line = trace(fig, "magnitude, unit")
    assert fig.layout.xaxis.type == "log"
    assert list(line.x) == pytest.approx([1 / (1 - k) for k in ks])  # compression 1× … 100×
    share = np.log10(line.x[-1] / line.x[-3]) / np.log10(line.x[-1])
    assert share == pytest.approx(0.5)  # 90–99 % fills half the axis, not its last tenth
    assert list(fig.layout.xaxis.tickvals) == pytest.approx([1, 2, 4, 10, 20, 100])
    assert [t.split("<br>")[0] for t in fig.layout.xaxis.ticktext] == ["0 %", "50 %", "75 %", "90 %", "95 %", "99 %"]
    assert fig.layout.xaxis.ticktext[3] == "90 %<br>10×"
    # the app maps a clicked point back to its state through customdata, whatever the axis
    assert [list(c) for c in line.customdata] == [["magnitude", "unit", pytest.approx(100 * k)] for k in ks]
    flat = plots.methods_figure(records, x_axis="sparsity")
    assert flat.layout.xaxis.type in (None, "linear") and list(trace(flat, "magnitude, unit").x) == pytest.approx(
        [100 * k for k in ks]
    )
    with pytest.raises(ValueError, match="compression or sparsity"):
        plots.methods_figure(records, x_axis="log")
    with pytest.raises(ValueError, match="x_axis='sparsity'"):
        plots.methods_figure(records + [SweepRecord("unit", 1.0, 0.1, 2.3, 10)])


def curve_records(methods, modes=("weight", "unit")):
    return [
        SweepRecord(mode, k, 0.9 - k / 2, 0.1 + k, 100, method=m)
        for m in methods
        for mode in modes
        for k in (0.0, 0.5, 0.9)
    ]


def test_one_colour_per_method_and_one_line_style_per_mode():
    methods = list(METHODS) + ["wanda", "movement"]  # new methods take the spare colours
    fig = plots.methods_figure(curve_records(methods))
    curves = [t for t in fig.data if t.customdata is not None]
    assert len(curves) == 2 * len(methods)
    colour = {t.name.split(", ")[0]: t.line.color for t in curves}
    assert all(t.line.color == colour[t.name.split(", ")[0]] for t in curves)  # both modes of a method: one hue
    assert len(set(colour.values())) == len(methods)  # 9 methods, the palette's 9 colours
    assert set(colour.values()) <= set(plots.OKABE_ITO.values()) | {plots.GREY}
    assert all(t.line.dash == {"weight": "solid", "unit": "dash"}[t.name.split(", ")[1]] for t in curves)
    alone = plots.methods_figure(curve_records(["obs"]))
    assert trace(alone, "obs, weight").line.color == colour["obs"]  # a method keeps its colour in any company


def test_the_legend_has_one_entry_per_method_and_per_style():
    records = curve_records(["magnitude", "obd"]) + [
        SweepRecord("weight", 0.9, 0.95, 0.2, 100, method="magnitude", finetune_epochs=1.0)
    ]
    fig = plots.methods_figure(records, current=("magnitude", "weight", 0.9))
    entries = [t.name for t in fig.data if t.showlegend is not False]
    assert sorted(entries) == sorted(
        ["magnitude", "obd", "weight pruning", "unit pruning", "after fine-tuning", "current point"]
    )
    curves = [t for t in fig.data if t.customdata is not None and t.name != "current point"]
    assert all(t.legendgroup == t.name.split(", ")[0] for t in curves)  # a method's entry toggles all its curves
    assert fig.layout.legend.orientation == "h"  # rows under the plot: fits a phone
    names = [t.name for t in fig.data]
    tuned = trace(fig, "magnitude, weight, fine-tuned 1 ep")
    # the fine-tuned point at the star's sparsity is drawn after (over) the star, as a diamond of its own style
    assert names.index(tuned.name) > names.index("current point")
    assert tuned.marker.symbol == "diamond" and tuned.line.dash == "dot"


@pytest.mark.parametrize(
    "lo, hi, want",
    [
        (0.0499, 2.3026, [0.02, 0.05, 0.1, 0.2, 0.5, 1, 2, 5]),  # the default net's losses: 1-2-5
        (0.3, 200, [0.3, 1, 3, 10, 30, 100, 300]),  # 2.8 decades: 1-3
        (0.02, 1500, [0.01, 0.1, 1, 10, 100, 1000, 10_000]),  # 4.9 decades: powers of ten
    ],
)
def test_log_ticks_are_round_and_cover_the_data(lo, hi, want):
    assert plots.log_ticks(lo, hi) == pytest.approx(want)
    with pytest.raises(ValueError, match="0 < lo <= hi"):
        plots.log_ticks(0.0, 1.0)


def round_labels(labels) -> bool:
    """Whether every label is a number of mantissa 1, 2, 3 or 5 ("0.05", "1,000"), never a bare minor digit."""
    return all(re.fullmatch(r"0\.0*[1235]|[1235]0{0,2}(,000)*", t) for t in labels)


def test_digit_tile_frames_the_digit(mnist):
    tile = digit_tile(mnist.x_test[0], (220, 30, 30))
    assert tile.shape == (84, 84, 3) and tile.dtype == np.uint8
    assert (tile[0, 0] == (220, 30, 30)).all()
    inside = tile[2:-2, 2:-2, 0].astype(float) / 255  # grey: the three channels are equal inside the frame
    digit = np.repeat(np.repeat(mnist.x_test[0].reshape(28, 28), 3, 0), 3, 1)[2:-2, 2:-2]
    assert np.abs(inside - digit).max() <= 1 / 255


def test_methods_figure_plots_the_loss_on_request():
    records = [SweepRecord("unit", k, 0.9, loss, 100) for k, loss in [(0.0, 0.05), (0.9, 2.0)]]
    fig = plots.methods_figure(records, current=("magnitude", "unit", 0.45), metric="loss", x_axis="sparsity")
    assert list(fig.data[0].y) == [0.05, 2.0] and fig.layout.yaxis.type == "log"
    assert trace(fig, "current point").y[0] == pytest.approx(np.sqrt(0.05 * 2.0))  # halfway on the log axis
    assert list(fig.layout.yaxis.tickvals) == pytest.approx([0.05, 0.1, 0.2, 0.5, 1, 2])
    assert list(fig.layout.yaxis.ticktext) == ["0.05", "0.1", "0.2", "0.5", "1", "2"]
    with pytest.raises(ValueError, match="accuracy or loss"):
        plots.methods_figure(records, metric="f1")


@pytest.fixture(scope="module")
def speed_records(small_net, mnist) -> list[dict]:
    return bench(small_net, mnist.x_test, ["weight", "unit"], [0.0, 0.5, 0.9], [100], repeats=1)


def test_the_speed_figure_has_round_log_ticks_and_times_signs(speed_records):
    fig = plots.speed_figure(speed_records, batch=100, current=0.5)
    drawn = [y for t in fig.data for y in t.y if y is not None]  # (legend-only entries draw nothing)
    ticks = list(fig.layout.yaxis.tickvals)
    assert fig.layout.yaxis.type == "log" and ticks[0] <= min(drawn) and ticks[-1] >= max(drawn)
    assert round_labels(fig.layout.yaxis.ticktext), fig.layout.yaxis.ticktext
    assert fig.layout.xaxis.type == "log" and fig.layout.shapes[0].x0 == pytest.approx(2.0)  # 50 % = 2×
    hovers = [t.hovertemplate + " ".join(str(c[-1]) for c in t.customdata) for t in fig.data if t.customdata]
    assert all("×" in h and not re.search(r"\dx\b", h) for h in hovers)
    reading = plots.speed_reading(speed_records, 0.9, batch=100)
    assert "than dense" in reading and "batch 100" in reading and not re.search(r"\dx\b", reading)
    shrunk = next(r for r in speed_records if r["engine"] == "shrunk" and r["sparsity"] == 0.9)
    words = speedup_text(Speedup.of_record(shrunk))
    assert f"unit pruning at 90 %: {words}" in reading
    point = trace(fig, "shrunk, unit").customdata[-1]  # the figure's hover shows the same words
    assert point[1] == shrunk["speedup"] and point[2] == words


def test_a_noisy_reading_is_drawn_hollow_and_the_legend_says_what_hollow_means(speed_records):
    r = next(r for r in speed_records if r["engine"] == "sparse" and r["sparsity"] == 0.9)
    spread = {**r, "speedup": 2.0, "speedup_low": 1.5, "speedup_high": 2.5, "noisy": True}
    assert "1.5–2.5× faster than dense" in speedup_text(Speedup.of_record(spread))
    fig = plots.speed_figure(speed_records + [{**spread, "batch": 7}], batch=7)
    assert list(fig.data[0].marker.symbol) == ["circle-open"]  # a noisy reading is drawn hollow
    legend = [t for t in fig.data if t.name == plots.NOISY_LEGEND]
    assert len(legend) == 1 and legend[0].marker.symbol == "circle-open" and "noisy" in legend[0].name
    clean = [{**x, "noisy": False} for x in speed_records]
    assert plots.NOISY_LEGEND not in [t.name for t in plots.speed_figure(clean, batch=100).data]


def test_presenter_style_scales_the_type_and_leaves_the_figure_alone():
    records = curve_records(["magnitude"])
    fig = plots.methods_figure(records, current=("magnitude", "weight", 0.5))
    big = plots.style_for_presenter(fig)
    assert big.layout.font.size >= 19 and fig.layout.font.size is None
    assert (big.layout.legend.orientation, fig.layout.legend.orientation) == ("v", "h")  # beside: a wide screen
    assert trace(big, "magnitude, weight").marker.size > trace(fig, "magnitude, weight").marker.size
    with pytest.raises(ValueError, match="at least 1"):
        plots.style_for_presenter(fig, 0.5)
