"""The teaching views' figures (plotly, no Streamlit): what the first layer sees, OBD against magnitude, the
network as a diagram, the confusion matrix and a drawn digit's probabilities.

Every figure draws numbers computed in obd.teach.explain, stays under 300 KB of JSON (numpy arrays travel as
plotly's binary arrays, float32) and is testable without a server. A sibling of obd/figures/plots.py, which holds the
dashboard's original figures.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import plotly.graph_objects as go

from obd.figures import plots
from obd.teach.explain import SIDE, Comparison, Diagram, ReceptiveFields

KEPT_COLOR = "#1f77b4"
PRUNED_COLOR = "#bbbbbb"
# the four ways two criteria can treat one weight: (label, colour)
AGREEMENT_STYLE = {
    (True, True): ("both keep", "#2ca02c"),
    (False, False): ("both delete", "#bbbbbb"),
    (False, True): ("OBD keeps, magnitude deletes", "#d62728"),
    (True, False): ("magnitude keeps, OBD deletes", "#1f77b4"),
}


GAP = 3  # pixels between two units' images in the receptive-field mosaic


def tile_origin(i: int, columns: int) -> tuple[int, int]:
    """(row, column) of unit i's top-left pixel in the receptive-field mosaic."""
    r, c = divmod(i, columns)
    return r * (SIDE + GAP), c * (SIDE + GAP)


def receptive_field_figure(fields: ReceptiveFields, columns: int = 4) -> go.Figure:
    """First-layer units as 28x28 images of their kept incoming weights, in a mosaic; pruned units in grey and
    crossed out.

    One mosaic, not one subplot per unit: plotly's subplots are slow to build, one per unit would add up.

    Args:
        fields: `obd.teach.explain.receptive_fields(...)`.
        columns: images per row.

    Returns:
        A Figure with two Heatmaps over the same mosaic (unit i's image at `tile_origin(i, columns)`, NaN
        between images): trace 0 the live units' kept weights on a diverging scale (red > 0 > blue; their
        pruned weights NaN, drawn as gaps), trace 1 the pruned units' dense |w| in grey. Each pruned unit is
        crossed out (two line shapes); every unit is labelled (an annotation, "· pruned" for pruned ones).
    """
    n = len(fields.units)
    rows = max(1, math.ceil(n / columns))
    height, width = rows * (SIDE + GAP) - GAP, columns * (SIDE + GAP) - GAP
    live = np.full((height, width), np.nan, dtype=np.float32)  # (rows, columns) of the mosaic
    pruned = np.full((height, width), np.nan, dtype=np.float32)
    shapes, labels = [], []  # set at once: plotly validates each add_shape/add_annotation call on its own
    for i in range(n):
        top, left = tile_origin(i, columns)
        tile = (slice(top, top + SIDE), slice(left, left + SIDE))
        if fields.alive[i]:
            live[tile] = np.where(fields.kept[i], fields.weights[i], np.nan)
        else:  # what the unit looked for before it was pruned
            pruned[tile] = np.abs(fields.dense_weights[i])
            shapes += [
                dict(type="line", x0=x0, x1=x1, y0=top, y1=top + SIDE - 1, line=dict(color="#d62728", width=2))
                for x0, x1 in ((left, left + SIDE - 1), (left + SIDE - 1, left))
            ]
        labels.append(
            dict(
                x=left + SIDE / 2 - 0.5,
                y=top - 0.5,
                yanchor="bottom",
                showarrow=False,
                text=f"unit {fields.units[i]}" + ("" if fields.alive[i] else " · pruned"),
                font=dict(size=11),
            )
        )
    fig = go.Figure(layout=dict(shapes=shapes, annotations=labels))
    scale = float(np.abs(fields.weights).max()) or 1.0  # (the grey of pruned units scales on its own)
    fig.add_trace(
        go.Heatmap(
            z=live,
            zmin=-scale,
            zmax=scale,
            colorscale="RdBu_r",
            hoverongaps=False,
            colorbar=dict(title="w", len=0.6),
            name="live units",
            hovertemplate="w = %{z:.3g}<extra></extra>",
        )
    )
    fig.add_trace(
        go.Heatmap(
            z=pruned,
            colorscale="Greys",
            showscale=False,
            hoverongaps=False,
            name="pruned units",
            hovertemplate="|w| before pruning = %{z:.3g}<extra></extra>",
        )
    )
    fig.update_xaxes(visible=False, constrain="domain")
    fig.update_yaxes(visible=False, autorange="reversed", scaleanchor="x")
    fig.update_layout(
        height=150 * rows + 80,
        margin=dict(l=10, r=10, t=60, b=10),
        plot_bgcolor="white",
        title="What the first layer's units look for (incoming weights; gaps = pruned weights)",
    )
    return fig


def pixel_survival_figure(counts: np.ndarray, units: int) -> go.Figure:
    """How many first-layer connections each input pixel keeps, as a 28x28 heatmap.

    Args:
        counts: `obd.teach.explain.pixel_survival(mask)`, (28, 28) ints.
        units: the first layer's width (the most a pixel can keep).

    Returns:
        A Figure with one Heatmap whose z is `counts`.
    """
    counts = np.asarray(counts)
    empty = int((counts == 0).sum())
    fig = go.Figure(
        go.Heatmap(
            z=counts.astype(np.int32),
            zmin=0,
            zmax=units,
            colorscale="Viridis",
            colorbar=dict(title="kept"),
            hovertemplate="pixel (%{y}, %{x}): %{z} of " + f"{units:,}" + " kept<extra></extra>",
        )
    )
    fig.update_yaxes(autorange="reversed", scaleanchor="x", showticklabels=False, showgrid=False)
    fig.update_xaxes(showticklabels=False, showgrid=False, constrain="domain")
    fig.update_layout(
        title=f"Connections kept per pixel ({empty} of {counts.size} cut off)",
        height=380,
        margin=dict(l=10, r=10, t=50, b=10),
    )
    return fig


def _positive_floor(values: np.ndarray) -> float:
    positive = values[values > 0]
    return float(positive.min()) / 10 if positive.size else 1e-12


def criteria_figure(comp: Comparison) -> go.Figure:
    """Magnitude against OBD saliency for a sample of one layer's weights (or units), coloured by what each
    criterion keeps, with both cut lines (log axes).

    Scores of exactly 0 (weights from pixels that are blank in every calibration image have h_kk = 0) are
    drawn at a floor a decade below the smallest positive score; hover shows the true value.

    Args:
        comp: `obd.teach.explain.compare(...)`.

    Returns:
        A Figure: one Scatter per agreement class, a vertical line at the magnitude cut and a horizontal one
        at the OBD cut.
    """
    what = "weights" if comp.mode == "weight" else "units"
    x_floor, y_floor = _positive_floor(comp.magnitude), _positive_floor(comp.saliency)
    fig = go.Figure()
    for (by_magnitude, by_obd), (label, color) in AGREEMENT_STYLE.items():
        pick = (comp.kept_by_magnitude == by_magnitude) & (comp.kept_by_obd == by_obd)
        fig.add_trace(
            go.Scatter(
                x=np.maximum(comp.magnitude[pick], x_floor),
                y=np.maximum(comp.saliency[pick], y_floor),
                mode="markers",
                name=f"{label} ({int(pick.sum())})",
                marker=dict(color=color, size=5, opacity=0.7),
                customdata=np.stack([comp.index[pick], comp.magnitude[pick], comp.saliency[pick]], axis=1),
                hovertemplate=(
                    "#%{customdata[0]}: magnitude %{customdata[1]:.3g}, saliency %{customdata[2]:.3g}"
                    "<extra>" + label + "</extra>"
                ),
            )
        )
    for cut, axis in ((comp.cut_magnitude, "x"), (comp.cut_obd, "y")):
        if math.isfinite(cut):
            line = dict(color="black", width=1, dash="dash")
            if axis == "x":
                fig.add_vline(
                    x=max(cut, x_floor), line=line, annotation_text="magnitude cut", annotation_position="bottom left"
                )
            else:
                fig.add_hline(y=max(cut, y_floor), line=line, annotation_text="OBD cut", annotation_position="top left")
    a = comp.agreement
    fig.update_layout(
        title=(
            # two lines: one would run past a projector's half-width column (plotly never wraps a title)
            f"OBD keeps {a.obd_only:,} {what} that magnitude deletes,<br>and deletes {a.magnitude_only:,} it "
            f"keeps (of {a.total:,}; at {100 * comp.sparsity:g} %)"
        ),
        title_font_size=15,
        xaxis=dict(type="log", title="|w|" if comp.mode == "weight" else "column L2 norm (magnitude score)"),
        yaxis=dict(type="log", title="OBD saliency ½·h·w² (loss units)"),
        legend=dict(orientation="h", y=-0.2),
        height=460,
        margin=dict(l=60, r=20, t=70, b=40),
    )
    return fig


def diagram_figure(d: Diagram) -> go.Figure:
    """The network as layers and bands. A layer's bar is as tall as its live units (the outline: its dense
    width), so unit pruning narrows it; the band between two layers joins their live units and is as opaque
    as the share of the possible connections between them that still work, so weight pruning thins it.

    Args:
        d: `obd.teach.explain.diagram(pruned)`.

    Returns:
        A Figure: one filled band (Scatter) per layer pair, then bars for the dense widths and the live widths.
    """
    fig = go.Figure()
    xs = list(range(len(d.units)))
    labels = ["input"] + list(d.names)
    top = max(d.units)
    for i in range(len(d.weights)):
        density = min(1.0, d.effective[i] / max(d.alive[i] * d.alive[i + 1], 1))
        h0, h1 = d.alive[i] / top, d.alive[i + 1] / top
        fig.add_trace(
            go.Scatter(
                x=[i + 0.12, i + 0.88, i + 0.88, i + 0.12, i + 0.12],
                y=[h0 / 2, h1 / 2, -h1 / 2, -h0 / 2, h0 / 2],
                fill="toself",
                mode="lines",
                line=dict(width=0),
                fillcolor=f"rgba(31,119,180,{max(density, 0.04):.3f})",
                hoverinfo="text",
                showlegend=False,
                name=f"{labels[i]} → {labels[i + 1]}",
                text=(
                    f"{labels[i]} → {labels[i + 1]}: {d.effective[i]:,} of {d.weights[i]:,} connections work "
                    f"({100 * d.effective[i] / d.weights[i]:.1f} %; {d.kept[i]:,} kept by the mask)"
                ),
            )
        )
    fig.add_trace(
        go.Bar(
            x=xs,
            y=[u / top for u in d.units],
            base=[-u / top / 2 for u in d.units],
            width=0.22,
            marker=dict(color="rgba(0,0,0,0)", line=dict(color=PRUNED_COLOR, width=1.5)),
            name="dense width",
            customdata=list(d.units),
            textposition="outside",
            textfont=dict(size=12),
            cliponaxis=False,
            text=[f"{a:,}" if a == u else f"{a:,} of {u:,}" for a, u in zip(d.alive, d.units)],
            hovertemplate="%{customdata:,} units dense<extra></extra>",
        )
    )
    fig.add_trace(
        go.Bar(
            x=xs,
            y=[a / top for a in d.alive],
            base=[-a / top / 2 for a in d.alive],
            width=0.22,
            marker_color=KEPT_COLOR,
            name="live units",
            customdata=list(d.alive),
            hovertemplate="%{customdata:,} units live<extra></extra>",
        )
    )
    fig.update_layout(
        barmode="overlay",
        title="The network: bar = units that still work, band = connections that do",
        xaxis=dict(tickmode="array", tickvals=xs, ticktext=labels, showgrid=False, zeroline=False),
        yaxis=dict(visible=False, range=[-0.6, 0.65]),
        height=380,
        margin=dict(l=10, r=10, t=50, b=30),
        legend=dict(orientation="h", y=-0.1),
        plot_bgcolor="white",
    )
    return fig


def confusion_figure(matrix: np.ndarray, title: str = "Confusion matrix of the pruned network") -> go.Figure:
    """A confusion matrix (rows = true digit, columns = predicted) with counts in the cells: the diagonal
    (right answers) in blue, the mistakes in red, each on its own scale so that a few dozen mistakes show next
    to a thousand right answers.

    Args:
        matrix: `obd.teach.explain.confusion(labels, predictions)`, (10, 10) ints.
        title: the chart's title.

    Returns:
        A Figure with two Heatmaps: trace 0 the diagonal, trace 1 the rest (NaN where the other one draws);
        together their z is the matrix.
    """
    m = np.asarray(matrix).astype(np.float32)
    digits = [str(i) for i in range(m.shape[0])]
    diagonal = np.eye(m.shape[0], dtype=bool)
    fig = go.Figure()
    for part, scale, name in ((diagonal, "Blues", "right"), (~diagonal, "Reds", "mistaken")):
        z = np.where(part, m, np.nan)
        fig.add_trace(
            go.Heatmap(
                z=z,
                x=digits,
                y=digits,
                text=np.where(part, m.astype(np.int32).astype(str), ""),
                texttemplate="%{text}",
                colorscale=scale,
                zmin=0,
                zmax=max(float(np.nanmax(z)), 1.0),
                showscale=False,
                hoverongaps=False,
                hovertemplate="true %{y}, predicted %{x}: %{z:.0f} " + name + "<extra></extra>",
            )
        )
    fig.update_yaxes(title="true digit", autorange="reversed", scaleanchor="x", dtick=1)
    fig.update_xaxes(title="predicted digit", side="top", constrain="domain", dtick=1)
    fig.update_layout(title=title, height=460, margin=dict(l=50, r=10, t=80, b=10), plot_bgcolor="white")
    return fig


def probabilities_figure(dense: np.ndarray, pruned: np.ndarray) -> go.Figure:
    """The dense and the pruned network's probabilities for one digit, as bar pairs.

    Args:
        dense, pruned: (10,) softmax probabilities (`obd.teach.explain.probabilities`).

    Returns:
        A Figure with two Bar traces (dense, pruned), percent per digit.
    """
    digits = [str(i) for i in range(len(dense))]
    fig = go.Figure(
        [
            go.Bar(
                name=f"dense: {int(np.argmax(dense))}",
                x=digits,
                y=100 * np.asarray(dense, dtype=np.float64),
                marker_color="#7f7f7f",
            ),
            go.Bar(
                name=f"pruned: {int(np.argmax(pruned))}",
                x=digits,
                y=100 * np.asarray(pruned, dtype=np.float64),
                marker_color="#d62728",
            ),
        ]
    )
    fig.update_layout(
        barmode="group",
        xaxis_title="digit",
        yaxis=dict(title="probability (%)", range=[0, 100]),
        height=300,
        margin=dict(l=50, r=10, t=30, b=40),
        legend=dict(orientation="h", y=1.15),
    )
    return fig


def settings_figure(records: Sequence, points: Sequence[tuple[str, str, str, float, float]]) -> go.Figure:
    """Accuracy curves (obd.figures.plots.methods_figure) with several settings marked and labelled on them.

    Args:
        records: the SweepRecords of every curve to draw.
        points: (label, method, mode, sparsity as a fraction, accuracy as a fraction) per setting, e.g.
            ("A", "obd", "weight", 0.9, 0.911).

    Returns:
        The curves' Figure plus one labelled marker trace per setting (the last len(points) traces), placed at
        the setting's own measured accuracy.
    """
    fig = plots.methods_figure(records, current=None)
    colours = plots.method_colors(method for _, method, *_ in points)
    for label, method, mode, sparsity, accuracy in points:
        fig.add_trace(
            go.Scatter(
                x=plots.axis_position([sparsity]),
                y=[100 * accuracy],
                mode="markers+text",
                text=[label],
                textposition="top center",
                textfont=dict(size=16),
                name=f"{label}: {method}, {mode}",
                customdata=[[method, mode, 100 * sparsity]],
                marker=dict(symbol="star", size=18, color=colours[method], line=dict(color="black", width=1)),
                hovertemplate=f"{label}: {method}, {mode} at %{{customdata[2]:g}} %: %{{y:.2f}} %<extra></extra>",
            )
        )
    return fig
