"""Figures of one pruned network: a layer's kernel (pruned entries black, a colour bar saying what colours mean),
the share pruned per layer and the accuracy per class; colours from `obd.figures.plots`' palette."""

from __future__ import annotations

from typing import Any

import numpy as np
import plotly.graph_objects as go

from obd.figures.images import NEGATIVE, POSITIVE, ZERO, kernel_image
from obd.figures.plots import GREY, OKABE_ITO


def _colorscale(signed: bool) -> list[list]:
    """The plotly colour scale of `obd.figures.images.kernel_image`'s colours: blue-white-red, or white-red for
    scores."""

    def rgb(c: np.ndarray) -> str:
        return f"rgb({int(c[0])},{int(c[1])},{int(c[2])})"

    if signed:
        return [[0.0, rgb(NEGATIVE)], [0.5, rgb(ZERO)], [1.0, rgb(POSITIVE)]]
    return [[0.0, rgb(ZERO)], [1.0, rgb(POSITIVE)]]


def kernel_figure(
    values: np.ndarray,
    mask: np.ndarray,
    title: str,
    signed: bool = True,
    hover_max: int = 12_000,
    value_name: str | None = None,
) -> go.Figure:
    """A kernel (rows = inputs, columns = units) with pruned entries in black and a colour bar saying what the
    colours mean.

    Small kernels (at most `hover_max` entries) become a Heatmap with every value on hover; larger ones a
    block-downsampled PNG (`obd.figures.images.kernel_image`) that stays well under 300 KB, with the block size in
    the subtitle so nobody mistakes a pixel for a weight.

    Args:
        values: (inputs, units) weights, or non-negative scores with signed=False.
        mask: bool, same shape, True = kept.
        title: the chart title.
        signed: diverging colours (blue < 0 < red) for signed weights; white-to-red for scores.
        hover_max: the largest kernel drawn as a Heatmap.
        value_name: what a colour measures, for the colour bar and subtitle; "weight" (signed) or
            "score" (not signed) by default, e.g. "obd saliency".

    Returns:
        A plotly Figure; its title is `title`, its subtitle says what a pixel is.
    """
    from plotly import express as px  # pulls in pandas: loaded on the first large kernel only

    value_name = value_name or ("weight" if signed else "score")
    colorbar: dict[str, Any] = dict(title=dict(text=f"{value_name}<br>black = pruned", side="top"), thickness=14)
    if values.size <= hover_max:
        shown = np.where(mask, values, np.nan)  # pruned entries: no colour (the black background shows)
        scale = float(np.nanmax(np.abs(shown))) if np.any(mask) else 1.0
        fig = go.Figure(
            go.Heatmap(
                z=shown,
                zmid=0 if signed else None,
                zmin=-scale if signed else 0,
                zmax=scale,
                colorbar=colorbar,
                colorscale=_colorscale(signed),
                hoverongaps=False,
                hovertemplate="input %{y}, unit %{x}: %{z:.4g}<extra></extra>",
            )
        )
        subtitle = f"each cell = 1 {value_name}; pruned entries black"
    else:
        img = kernel_image(values, mask, signed=signed)
        b = img.block
        fig = px.imshow(img.rgb, binary_string=True)
        per_pixel = (
            f"each pixel = 1 {value_name}" if b == 1 else f"each pixel = a {b}×{b} block: its largest kept {value_name}"
        )
        subtitle = f"{per_pixel}; darker = more of it pruned, black = all"
        # axes in kernel indices, not pixels: pixel j covers units j*b .. j*b+b-1
        fig.update_traces(
            x0=(b - 1) / 2,
            dx=b,
            y0=(b - 1) / 2,
            dy=b,
            hovertemplate=f"inputs ≈ %{{y:.0f}}, units ≈ %{{x:.0f}} ({b}×{b} block)<extra></extra>",
        )
        # an image has no colour scale of its own: an empty marker trace carries the one kernel_image used
        # (full colour at its 99th-percentile scale; larger values are clipped to it)
        colorbar["title"]["text"] = f"{value_name} (clipped)<br>black = pruned"
        fig.add_trace(
            go.Scatter(
                x=[None],
                y=[None],
                mode="markers",
                showlegend=False,
                hoverinfo="skip",
                marker=dict(
                    colorscale=_colorscale(signed),
                    cmin=-img.scale if signed else 0,
                    cmax=img.scale,
                    color=[0.0],
                    showscale=True,
                    colorbar=colorbar,
                ),
            )
        )
    fig.update_xaxes(title="unit (column)", showgrid=False)
    fig.update_yaxes(title="input (row)", showgrid=False, autorange="reversed")
    fig.update_layout(
        title=dict(text=title, subtitle=dict(text=subtitle)),
        plot_bgcolor="black",
        margin=dict(l=50, r=10, t=70, b=40),
        height=500,
    )
    return fig


def layer_sparsity_figure(report) -> go.Figure:
    """Per-layer share of weights and units pruned, from `obd.core.pruning.report(...)`."""
    names = [l.name or f"layer {i}" for i, l in enumerate(report.layers)]
    fig = go.Figure(
        [
            go.Bar(
                name="weights pruned",
                x=names,
                y=[100 * (1 - l.kept_weights / l.total_weights) for l in report.layers],
                marker_color=OKABE_ITO["blue"],
            ),
            go.Bar(
                name="units pruned",
                x=names,
                y=[100 * (1 - l.kept_units / l.total_units) for l in report.layers],
                marker_color=OKABE_ITO["orange"],
            ),
        ]
    )
    fig.update_layout(
        barmode="group",
        yaxis_title="% pruned",
        yaxis_range=[0, 100],
        height=300,
        margin=dict(l=50, r=20, t=30, b=40),
        title="Sparsity per layer",
    )
    return fig


def class_accuracy_figure(dense: np.ndarray, pruned: np.ndarray) -> go.Figure:
    """Per-class test accuracy of the dense and the pruned network, every digit labelled.

    Args:
        dense: (classes,) accuracy fractions of the dense network, one per digit.
        pruned: (classes,) the same for the pruned network.

    Returns:
        A grouped bar chart on a category axis (plotly would read "0".."9" as numbers and label every other one).
    """
    digits = [str(d) for d in range(len(dense))]
    fig = go.Figure(
        [
            go.Bar(name="dense", x=digits, y=100 * np.asarray(dense), marker_color=GREY),
            go.Bar(name="pruned", x=digits, y=100 * np.asarray(pruned), marker_color=OKABE_ITO["vermillion"]),
        ]
    )
    fig.update_xaxes(type="category", tickmode="array", tickvals=digits, ticktext=digits)
    fig.update_layout(
        barmode="group",
        xaxis_title="digit",
        yaxis_title="accuracy (%)",
        height=300,
        margin=dict(l=50, r=20, t=30, b=40),
        title="Accuracy per class",
    )
    return fig
