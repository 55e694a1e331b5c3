"""Plotly figures for the dashboard and reports."""

from __future__ import annotations

from typing import Sequence

import numpy as np
import plotly.graph_objects as go

METHOD_COLORS = {"magnitude": "#1f77b4", "random": "#7f7f7f", "obd": "#d62728", "obd-fisher": "#ff9896",
                 "obs": "#2ca02c", "sparsegpt": "#9467bd"}
MODE_DASH = {"weight": "solid", "unit": "dash"}


def methods_figure(records: Sequence, current: tuple[str, str, float] | None = None,
                   metric: str = "accuracy") -> go.Figure:
    """Accuracy- (or loss-) vs-sparsity curves of every (method, mode, fine-tuning) in `records` on one chart.

    Args:
        records: `obd.sweep.SweepRecord`s (or anything with method, mode, sparsity, accuracy and
            finetune_epochs attributes; gradual_steps optional). Colour = method, dash = mode, dotted = fine-tuned;
            markers at measured points.
        current: (method, mode, sparsity) to mark: a star on that one-shot curve, linearly interpolated
            between the swept sparsities.
        metric: "accuracy" (in percent) or "loss" (test cross-entropy).

    Returns:
        A plotly Figure, sparsity in percent.
    """
    if metric not in ("accuracy", "loss"):
        raise ValueError(f"metric must be accuracy or loss, got {metric!r}")
    scale = 100.0 if metric == "accuracy" else 1.0
    fig = go.Figure()
    curves: dict[tuple[str, str, float, int], list] = {}
    for r in records:
        key = (r.method, r.mode, float(getattr(r, "finetune_epochs", 0.0)), int(getattr(r, "gradual_steps", 1)))
        curves.setdefault(key, []).append(r)
    for (method, mode, epochs, steps), rs in curves.items():
        rs = sorted(rs, key=lambda r: r.sparsity)
        name = (f"{method}, {mode}" + (f", fine-tuned {epochs:g} ep" if epochs else "")
                + (f" in {steps} steps" if steps > 1 else ""))
        fig.add_trace(go.Scatter(
            x=[100 * r.sparsity for r in rs], y=[scale * getattr(r, metric) for r in rs], name=name,
            # markers on the measured points: the lines between them are interpolation, and a click (which
            # moves the app there) selects markers only
            mode="lines+markers", marker=dict(size=9 if epochs else 7),
            line=dict(color=METHOD_COLORS.get(method), dash="dot" if epochs else MODE_DASH.get(mode, "solid")),
            hovertemplate="%{x:.0f} % sparsity: %{y:.4g}" + (" %" if metric == "accuracy" else "")
                          + "<extra>" + name + "</extra>"))
    if current is not None:
        method, mode, sparsity = current
        rs = sorted(curves.get((method, mode, 0.0, 1), []), key=lambda r: r.sparsity)
        if rs:
            value = np.interp(sparsity, [r.sparsity for r in rs], [getattr(r, metric) for r in rs])
            fig.add_trace(go.Scatter(
                x=[100 * sparsity], y=[scale * value], name=f"current: {method}, {mode}", mode="markers",
                marker=dict(symbol="star", size=16, color=METHOD_COLORS.get(method), line=dict(width=1))))
    fig.update_layout(xaxis_title="sparsity (%)", legend_title="method, mode",
                      yaxis_title="test accuracy (%)" if metric == "accuracy" else "test loss (cross-entropy)",
                      margin=dict(l=50, r=20, t=30, b=50), hovermode="closest")
    fig.update_xaxes(range=[0, 100])
    if metric == "accuracy":
        fig.update_yaxes(range=[0, 100])
    else:  # losses span 0.05 to above 2: a log axis keeps the dense end readable
        fig.update_yaxes(type="log")
    return fig


ENGINE_COLORS = {"dense": "#7f7f7f", "sparse": "#1f77b4", "shrunk": "#ff7f0e"}
SPEED_NOISE = 1.1  # speed-ups below this are within the timing noise of a shared 2-core machine


def speed_figure(records: Sequence[dict], batch: int = 10_000, current: float | None = None) -> go.Figure:
    """Latency of each engine against sparsity, with each mode's ideal (FLOP-proportional) latency.

    Args:
        records: `obd.engines.bench` records ({"engine", "mode", "sparsity", "batch", "ms", "speedup",
            "ideal_speedup"}); only those of `batch` are drawn.
        batch: the batch size to show.
        current: a sparsity (fraction) to mark with a vertical line, e.g. the dashboard's slider.

    Returns:
        A plotly Figure: sparsity in percent, milliseconds per call on a log axis. Solid = measured,
        dotted = ideal (dense ms / ideal speed-up); dash = unit pruning.
    """
    fig = go.Figure()
    rows = [r for r in records if r["batch"] == batch]
    for mode in ("weight", "unit"):
        for engine in ("dense", "sparse", "shrunk"):
            rs = sorted((r for r in rows if r["mode"] == mode and r["engine"] == engine), key=lambda r: r["sparsity"])
            if not rs:
                continue
            name = f"{engine} ({mode} pruning)"
            fig.add_trace(go.Scatter(
                x=[100 * r["sparsity"] for r in rs], y=[r["ms"] for r in rs], name=name, mode="lines+markers",
                line=dict(color=ENGINE_COLORS[engine], dash=MODE_DASH[mode]),
                customdata=[r["speedup"] for r in rs],
                hovertemplate="%{x:g} %: %{y:.3g} ms, %{customdata:.2f}x dense<extra>" + name + "</extra>"))
        dense = sorted((r for r in rows if r["mode"] == mode and r["engine"] == "dense"), key=lambda r: r["sparsity"])
        if dense:
            fig.add_trace(go.Scatter(
                x=[100 * r["sparsity"] for r in dense], y=[r["ms"] / r["ideal_speedup"] for r in dense],
                name=f"ideal ({mode} pruning)", mode="lines", line=dict(color="#2ca02c", dash="dot"),
                hovertemplate="%{x:g} %: ideal %{y:.3g} ms<extra>ideal, " + mode + "</extra>"))
    if current is not None:
        fig.add_vline(x=100 * current, line=dict(color="black", width=1, dash="dot"))
    fig.update_layout(title=f"Latency per call, batch {batch:,}", xaxis_title="sparsity (%)",
                      yaxis_title="ms per call", yaxis_type="log", legend=dict(orientation="h", y=-0.2))
    return fig


def speed_reading(records: Sequence[dict], sparsity: float, batch: int = 10_000) -> str:
    """A one-line honest reading of measured `bench` records, e.g. "weight pruning at 60 % is not faster on
    this CPU (sparse 0.93x dense, ideal 2.5x); unit pruning at 60 % is faster on this CPU (shrunk 4.10x
    dense, ideal 5.4x), at batch 10,000." Uses the nearest measured sparsity and says so when it differs.

    Args:
        records: `obd.engines.bench` records.
        sparsity: the fraction asked about.
        batch: the batch size to read.

    Returns:
        The reading, or a line saying that nothing was measured at that batch size.
    """
    parts = []
    for mode in ("weight", "unit"):
        rs = [r for r in records if r["mode"] == mode and r["batch"] == batch and r["engine"] != "dense"]
        if not rs:
            continue
        r = min(rs, key=lambda r: abs(r["sparsity"] - sparsity))
        faster = r["speedup"] >= SPEED_NOISE
        nearest = "" if abs(r["sparsity"] - sparsity) < 0.005 else f" (nearest measured: {100 * r['sparsity']:g} %)"
        parts.append(f"{mode} pruning at {100 * sparsity:g} %{nearest} is {'' if faster else 'not '}faster on this "
                     f"CPU ({r['engine']} {r['speedup']:.2f}x dense, ideal {r['ideal_speedup']:.1f}x)")
    if not parts:
        return f"no speed measured at batch {batch:,}"
    return "; ".join(parts) + f", at batch {batch:,}."


def kernel_figure(values: np.ndarray, mask: np.ndarray, title: str, signed: bool = True,
                  hover_max: int = 12_000) -> go.Figure:
    """A kernel (rows = inputs, columns = units) with pruned entries in black.

    Small kernels (at most `hover_max` entries) become a Heatmap with every value on hover; larger ones a
    block-downsampled PNG (`obd.images.kernel_image`) that stays well under 300 KB, with the block size in
    the title so nobody mistakes a pixel for a weight.

    Args:
        values: (inputs, units) weights, or non-negative scores with signed=False.
        mask: bool, same shape, True = kept.
        title: the chart title; the block size is appended for images.
        signed: diverging colours for signed weights; white-to-red for scores.
        hover_max: the largest kernel drawn as a Heatmap.

    Returns:
        A plotly Figure.
    """
    from plotly import express as px

    from .images import kernel_image

    if values.size <= hover_max:
        shown = np.where(mask, values, np.nan)  # pruned entries: no colour (the dark background shows)
        scale = float(np.nanmax(np.abs(shown))) if np.any(mask) else 1.0
        fig = go.Figure(go.Heatmap(
            z=shown, zmid=0 if signed else None, zmin=-scale if signed else 0, zmax=scale,
            colorscale="RdBu_r" if signed else "Reds", hoverongaps=False,
            hovertemplate="input %{y}, unit %{x}: %{z:.4g}<extra></extra>"))
        fig.update_layout(plot_bgcolor="black", title=title + " (pruned entries black)")
    else:
        img = kernel_image(values, mask, signed=signed)
        b = img.block
        fig = px.imshow(img.rgb, binary_string=True)
        per_pixel = "each pixel = 1 weight" if b == 1 else f"each pixel = a {b}x{b} block"
        fig.update_layout(title=f"{title} ({per_pixel}; colour = its largest kept |value|, with sign; "
                                "darker = more of it pruned)")
        # axes in kernel indices, not pixels: pixel j covers units j*b .. j*b+b-1
        fig.update_traces(x0=(b - 1) / 2, dx=b, y0=(b - 1) / 2, dy=b,
                          hovertemplate=f"inputs ≈ %{{y:.0f}}, units ≈ %{{x:.0f}} ({b}x{b} block)<extra></extra>")
    fig.update_xaxes(title="unit (column)", showgrid=False)
    fig.update_yaxes(title="input (row)", showgrid=False, autorange="reversed")
    fig.update_layout(margin=dict(l=50, r=20, t=50, b=40), height=480)
    return fig


def layer_sparsity_figure(report) -> go.Figure:
    """Per-layer share of weights and units pruned, from `obd.pruning.report(...)`."""
    names = [l.name or f"layer {i}" for i, l in enumerate(report.layers)]
    fig = go.Figure([
        go.Bar(name="weights pruned", x=names, y=[100 * (1 - l.kept_weights / l.total_weights) for l in report.layers]),
        go.Bar(name="units pruned", x=names, y=[100 * (1 - l.kept_units / l.total_units) for l in report.layers]),
    ])
    fig.update_layout(barmode="group", yaxis_title="% pruned", yaxis_range=[0, 100], height=300,
                      margin=dict(l=50, r=20, t=30, b=40), title="Sparsity per layer")
    return fig


def class_accuracy_figure(dense: np.ndarray, pruned: np.ndarray) -> go.Figure:
    """Per-class test accuracy (fractions, one per digit) of the dense and the pruned network."""
    digits = [str(d) for d in range(len(dense))]
    fig = go.Figure([go.Bar(name="dense", x=digits, y=100 * np.asarray(dense), marker_color="#7f7f7f"),
                     go.Bar(name="pruned", x=digits, y=100 * np.asarray(pruned), marker_color="#d62728")])
    fig.update_layout(barmode="group", xaxis_title="digit", yaxis_title="accuracy (%)", height=300,
                      margin=dict(l=50, r=20, t=30, b=40), title="Accuracy per class")
    return fig
