"""Plotly figures for the dashboard and reports."""

from __future__ import annotations

from typing import Sequence

import numpy as np
import plotly.graph_objects as go

METHOD_COLORS = {"magnitude": "#1f77b4", "random": "#7f7f7f", "obd": "#d62728", "obs": "#2ca02c"}
MODE_DASH = {"weight": "solid", "unit": "dash"}


def methods_figure(records: Sequence, current: tuple[str, str, float] | None = None) -> go.Figure:
    """Accuracy-vs-sparsity curves of every (method, mode, fine-tuning) in `records` on one chart.

    Args:
        records: `obd.sweep.SweepRecord`s (or anything with method, mode, sparsity, accuracy and
            finetune_epochs attributes). Colour = method, dash = mode, dotted with markers = fine-tuned.
        current: (method, mode, sparsity) to mark: a star on that one-shot curve, linearly interpolated
            between the swept sparsities.

    Returns:
        A plotly Figure, sparsity and accuracy in percent.
    """
    fig = go.Figure()
    curves: dict[tuple[str, str, float], list] = {}
    for r in records:
        curves.setdefault((r.method, r.mode, float(getattr(r, "finetune_epochs", 0.0))), []).append(r)
    for (method, mode, epochs), rs in curves.items():
        rs = sorted(rs, key=lambda r: r.sparsity)
        name = f"{method}, {mode}" + (f", fine-tuned {epochs:g} ep" if epochs else "")
        fig.add_trace(go.Scatter(
            x=[100 * r.sparsity for r in rs], y=[100 * r.accuracy for r in rs], name=name,
            mode="lines+markers" if epochs else "lines",
            line=dict(color=METHOD_COLORS.get(method), dash="dot" if epochs else MODE_DASH.get(mode, "solid")),
            hovertemplate="%{x:.0f} % sparsity: %{y:.2f} %<extra>" + name + "</extra>"))
    if current is not None:
        method, mode, sparsity = current
        rs = sorted(curves.get((method, mode, 0.0), []), key=lambda r: r.sparsity)
        if rs:
            acc = np.interp(sparsity, [r.sparsity for r in rs], [r.accuracy for r in rs])
            fig.add_trace(go.Scatter(
                x=[100 * sparsity], y=[100 * acc], name=f"current: {method}, {mode}", mode="markers",
                marker=dict(symbol="star", size=16, color=METHOD_COLORS.get(method), line=dict(width=1))))
    fig.update_layout(xaxis_title="sparsity (%)", yaxis_title="test accuracy (%)", legend_title="method, mode",
                      margin=dict(l=50, r=20, t=30, b=50), hovermode="closest")
    fig.update_xaxes(range=[0, 100])
    fig.update_yaxes(range=[0, 100])
    return fig
