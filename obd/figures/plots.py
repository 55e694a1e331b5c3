"""Plotly figures for the dashboard and reports: readable on a phone, a projector and by colour-blind eyes.

Every chart that spans sparsities can spread the high ones, where methods differ, on a log axis of the
compression 1/(1-k) (1× … 100×), labelled in sparsity percent; log axes carry 1-2-5 ticks; colours come from
the Okabe-Ito palette, one hue per method, and line styles tell the modes apart.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import numpy as np
import plotly.graph_objects as go

from obd.runtime.speedups import Speedup, speedup_text

# Okabe & Ito (2008), safe for every common colour-vision deficiency; grey (neutral, for the random control)
# added. Fixed per known method so a method keeps its colour whatever else is drawn.
OKABE_ITO = {
    "blue": "#0072B2",
    "vermillion": "#D55E00",
    "orange": "#E69F00",
    "green": "#009E73",
    "purple": "#CC79A7",
    "sky": "#56B4E9",
    "black": "#000000",
    "yellow": "#F0E442",
}
GREY = "#888888"
METHOD_COLORS = {
    "magnitude": OKABE_ITO["blue"],
    "random": GREY,
    "obd": OKABE_ITO["vermillion"],
    "obd-fisher": OKABE_ITO["orange"],
    "obs": OKABE_ITO["green"],
    "sparsegpt": OKABE_ITO["purple"],
    "chita": OKABE_ITO["sky"],
}
SPARE_COLORS = (OKABE_ITO["black"], OKABE_ITO["yellow"])  # for methods not named above
MODE_DASH = {"weight": "solid", "unit": "dash"}
# the dotted variant of each mode's style, for derived lines (fine-tuned curves, ideal latencies): still
# telling the modes apart
DOTTED_DASH = {"weight": "dot", "unit": "dashdot"}
X_AXES = ("compression", "sparsity")
# a horizontal legend at the bottom of the chart: it wraps into rows on a phone and pushes the plot up, never
# squeezing it to a strip beside a legend column, and never overlaps the two-line sparsity ticks or axis title
PHONE_LEGEND = dict(orientation="h", x=0, xanchor="left", yref="container", y=0, yanchor="bottom")
# the compression axis labels these sparsities; 25 % (1.33×) would collide with 0 % on a phone, so it and the
# other swept sparsities get unlabelled grid lines
SPARSITY_TICKS = (0.0, 0.5, 0.75, 0.9, 0.95, 0.99, 0.999)
SPARSITY_GRID = (0.25, 0.6, 0.7, 0.8, 0.97, 0.995)


def method_colors(methods: Iterable[str]) -> dict[str, str]:
    """One colour per method: the fixed one for obd's methods, spare Okabe-Ito colours for others.

    Args:
        methods: method names (repeats allowed).

    Returns:
        {method: hex colour}. Methods without a fixed colour take the spare colours in alphabetical order, so
        a method's colour does not depend on the order of the records; past the spares they repeat.
    """
    methods = list(methods)
    known = dict.fromkeys(m for m in methods if m in METHOD_COLORS)
    others = sorted(set(methods) - set(known))
    colours = {m: METHOD_COLORS[m] for m in known}
    colours.update({m: SPARE_COLORS[i % len(SPARE_COLORS)] for i, m in enumerate(others)})
    return colours


def axis_position(sparsity: float | Sequence[float] | np.ndarray, x_axis: str = "compression") -> np.ndarray:
    """Where a sparsity (fraction) sits on a sparsity chart's x axis.

    Args:
        sparsity: fraction(s) in [0, 1) (up to 1 for x_axis="sparsity").
        x_axis: "compression" (1/(1-k), drawn on a log axis) or "sparsity" (percent, linear).

    Returns:
        The x coordinate(s) as a float array.

    Raises:
        ValueError: for an unknown x_axis, or a sparsity of 100 % on the compression axis (infinite).
    """
    if x_axis not in X_AXES:
        raise ValueError(f"x_axis must be compression or sparsity, got {x_axis!r}")
    k = np.asarray(sparsity, dtype=np.float64)
    if x_axis == "sparsity":
        return 100 * k
    if np.any(k >= 1):
        raise ValueError("a sparsity of 100 % has no compression ratio: draw it with x_axis='sparsity'")
    return 1 / (1 - k)


def _style_sparsity_axis(fig: go.Figure, x_axis: str, sparsities: Sequence[float]) -> None:
    """x axis of a chart against sparsity: log compression with ticks "90 %" over "10×", or plain percent."""
    if x_axis == "sparsity":
        fig.update_xaxes(title="sparsity (%)", range=[-2, 102], dtick=10)
        return
    top = max(max(sparsities, default=0.0), 0.99)  # at least 1× … 100×: charts of one model line up
    ticks = [k for k in SPARSITY_TICKS if k <= top + 1e-9]
    fig.update_xaxes(
        type="log",
        title="sparsity · compression 1/(1−k), log scale",
        tickvals=list(axis_position(ticks)),
        ticktext=[f"{100 * k:g} %<br>{1 / (1 - k):.3g}×" for k in ticks],
        minor=dict(tickvals=list(axis_position([k for k in SPARSITY_GRID if k <= top])), showgrid=True),
        # log10 units; the margins keep the 0 % and top markers whole
        range=[np.log10(0.93), np.log10(float(axis_position(top)) * 1.08)],
    )


def log_ticks(lo: float, hi: float) -> list[float]:
    """Round tick values for a log axis covering [lo, hi]: 1-2-5 per decade, 1-3 over more than 2.5 decades,
    powers of ten over more than 4; the first at or below lo, the last at or above hi.

    Args:
        lo: the smallest value drawn (> 0).
        hi: the largest value drawn (>= lo).

    Returns:
        Increasing tick values, e.g. [0.05, 0.1, 0.2, 0.5, 1, 2, 5] for 0.055 … 2.3.

    Raises:
        ValueError: unless 0 < lo <= hi.
    """
    if not 0 < lo <= hi:
        raise ValueError(f"a log axis needs 0 < lo <= hi, got {lo!r}, {hi!r}")
    decades = np.log10(hi / lo)
    mantissas = (1, 2, 5) if decades <= 2.5 else (1, 3) if decades <= 4 else (1,)
    exponents = range(int(np.floor(np.log10(lo))), int(np.ceil(np.log10(hi))) + 1)
    ticks = [float(f"{m}e{e}") for e in exponents for m in mantissas]  # via text: 3e-1 is 0.3, not 0.30000000000000004
    first = max(t for t in ticks if t <= lo * (1 + 1e-9))
    last = min(t for t in ticks if t >= hi * (1 - 1e-9))
    return [t for t in ticks if first <= t <= last]


def _style_log_y(fig: go.Figure, values: Iterable[float]) -> None:
    """A log y axis with `log_ticks` labels ("0.05, 0.1, 0.2", never plotly's bare minor digits)."""
    values = [v for v in values if v is not None and v > 0]
    if not values:  # nothing drawn yet: plotly's own log axis
        fig.update_yaxes(type="log")
        return
    ticks = log_ticks(min(values), max(values))
    fig.update_yaxes(
        type="log", tickvals=ticks, ticktext=[f"{t:,g}" for t in ticks], range=[np.log10(ticks[0]), np.log10(ticks[-1])]
    )


def _legend_key(fig: go.Figure, name: str, group: str, line: dict, marker: dict | None = None) -> None:
    """A legend-only entry (no data, no customdata) that explains a colour or a line style."""
    fig.add_trace(
        go.Scatter(
            x=[None],
            y=[None],
            name=name,
            legendgroup=group,
            mode="lines+markers" if marker else "lines",
            line=line,
            marker=marker,
            hoverinfo="skip",
        )
    )


def methods_figure(
    records: Sequence,
    current: tuple[str, str, float] | None = None,
    metric: str = "accuracy",
    x_axis: str = "compression",
) -> go.Figure:
    """Accuracy- (or loss-) vs-sparsity curves of every (method, mode, fine-tuning) in `records` on one chart.

    Colour = method (Okabe-Ito), solid = weight pruning, dashed = unit pruning; fine-tuned curves are dotted
    (weight) or dash-dotted (unit) with diamond markers, drawn over the current point's star so neither hides
    the other. The legend, below the plot in rows that fit a phone, has one entry per method (clicking it hides
    all that method's curves) and one per line style, not one per curve.

    Args:
        records: `obd.work.sweep.SweepRecord`s (or anything with method, mode, sparsity, accuracy, loss and
            finetune_epochs attributes; gradual_steps optional).
        current: (method, mode, sparsity) to mark: a star on that one-shot curve, interpolated along the line
            as drawn (straight in the axes' own scales) between the swept sparsities.
        metric: "accuracy" (in percent, linear axis) or "loss" (test cross-entropy, log axis).
        x_axis: "compression" (1/(1-k) on a log axis, ticks labelled in sparsity percent: spreads 90–99 %) or
            "sparsity" (percent, linear).

    Returns:
        A plotly Figure. Each curve's name is "method, mode[, fine-tuned E ep[ in S steps]]" and every point
        carries customdata [method, mode, sparsity in percent] (the star too), so a click maps back to a
        state whatever the x axis. Legend-only entries have no customdata.

    Raises:
        ValueError: for an unknown metric or x_axis, or a 100 % sparsity on the compression axis.
    """
    if metric not in ("accuracy", "loss"):
        raise ValueError(f"metric must be accuracy or loss, got {metric!r}")
    axis_position(0.0, x_axis)  # validates x_axis before anything is drawn
    scale = 100.0 if metric == "accuracy" else 1.0
    unit_text = " %" if metric == "accuracy" else ""
    curves: dict[tuple[str, str, float, int], list] = {}
    for r in records:
        key = (r.method, r.mode, float(getattr(r, "finetune_epochs", 0.0)), int(getattr(r, "gradual_steps", 1)))
        curves.setdefault(key, []).append(r)
    colours = method_colors(method for method, *_ in curves)
    where = "%{customdata[2]:g} % sparsity" + (" (%{x:.3g}×)" if x_axis == "compression" else "")
    fig = go.Figure()
    tuned_traces = []
    for (method, mode, epochs, steps), rs in curves.items():
        rs = sorted(rs, key=lambda r: r.sparsity)
        name = (
            f"{method}, {mode}"
            + (f", fine-tuned {epochs:g} ep" if epochs else "")
            + (f" in {steps} steps" if steps > 1 else "")
        )
        trace = go.Scatter(
            x=axis_position([r.sparsity for r in rs], x_axis),
            y=[scale * getattr(r, metric) for r in rs],
            name=name,
            legendgroup=method,
            showlegend=False,
            customdata=[[method, mode, 100 * r.sparsity] for r in rs],
            # markers on the measured points: the lines between them are interpolation, and a click (which
            # moves the app there) selects markers only
            mode="lines+markers",
            line=dict(color=colours[method], dash=(DOTTED_DASH if epochs else MODE_DASH).get(mode, "solid")),
            marker=dict(symbol="diamond", size=10, line=dict(color="white", width=1)) if epochs else dict(size=6),
            hovertemplate=f"{where}: %{{y:.4g}}{unit_text}<extra>{name}</extra>",
        )
        if epochs:
            tuned_traces.append(trace)
        else:
            fig.add_trace(trace)
    if current is not None:
        method, mode, sparsity = current
        rs = sorted(curves.get((method, mode, 0.0, 1), []), key=lambda r: r.sparsity)
        if rs:
            xs = axis_position([r.sparsity for r in rs], x_axis)
            ys = np.array([scale * getattr(r, metric) for r in rs])
            x = axis_position(sparsity, x_axis)
            on_log_x, on_log_y = x_axis == "compression", metric == "loss"
            y = np.interp(np.log(x) if on_log_x else x, np.log(xs) if on_log_x else xs, np.log(ys) if on_log_y else ys)
            fig.add_trace(
                go.Scatter(
                    x=[float(x)],
                    y=[float(np.exp(y) if on_log_y else y)],
                    name="current point",
                    legendgroup="current",
                    mode="markers",
                    customdata=[[method, mode, 100 * sparsity]],
                    marker=dict(
                        symbol="star", size=18, color=colours.get(method, GREY), line=dict(color="black", width=1)
                    ),
                    hovertemplate=f"{where}: %{{y:.4g}}{unit_text}<extra>current: {method}, {mode}</extra>",
                )
            )
    fig.add_traces(tuned_traces)  # after the star: a fine-tuned point at the current sparsity stays visible
    for method in colours:
        _legend_key(fig, method, method, dict(color=colours[method], width=3))
    for mode in dict.fromkeys(mode for _, mode, _, _ in curves):
        _legend_key(fig, f"{mode} pruning", f"style: {mode}", dict(color="#444444", dash=MODE_DASH.get(mode, "solid")))
    if tuned_traces:
        _legend_key(
            fig,
            "after fine-tuning",
            "style: tuned",
            dict(color="#444444", dash="dot"),
            dict(symbol="diamond", size=10, color="#444444"),
        )
    fig.update_layout(
        yaxis_title="test accuracy (%)" if metric == "accuracy" else "test loss (cross-entropy)",
        margin=dict(l=50, r=10, t=10, b=10),
        hovermode="closest",
        height=480,
        legend=PHONE_LEGEND,
    )
    _style_sparsity_axis(fig, x_axis, [r.sparsity for r in records])
    if metric == "accuracy":
        fig.update_yaxes(range=[0, 101])
    else:  # losses span 0.05 to above 2: a log axis keeps the dense end readable
        _style_log_y(fig, [y for t in fig.data for y in t.y])
    return fig


ENGINE_COLORS = {"dense": GREY, "sparse": OKABE_ITO["blue"], "shrunk": OKABE_ITO["orange"]}
IDEAL_COLOR = OKABE_ITO["green"]
NOISY_LEGEND = "open: noisy (CPU shared)"  # short: the legend sits beside a presenter's half-width chart


def speed_figure(
    records: Sequence[dict], batch: int = 10_000, current: float | None = None, x_axis: str = "compression"
) -> go.Figure:
    """Latency of each engine against sparsity, with each mode's ideal (FLOP-proportional) latency.

    Args:
        records: `obd.runtime.engines.bench` records ({"engine", "mode", "sparsity", "batch", "ms", "speedup",
            "ideal_speedup"}); only those of `batch` are drawn.
        batch: the batch size to show.
        current: a sparsity (fraction) to mark with a vertical line, e.g. the dashboard's slider.
        x_axis: "compression" (log, where the ideal latency of weight pruning is a straight line) or "sparsity".

    Returns:
        A plotly Figure: milliseconds per call on a log axis with round ticks. Solid = measured, dotted = ideal
        (dense ms / ideal speed-up), dash-dotted for unit pruning; dash = unit pruning; open markers = noisy
        readings, named in the legend when there are any. customdata per measured point: [sparsity %, speed-up,
        `obd.runtime.speedups.speedup_text`], the reading's own words.

    Raises:
        ValueError: for an unknown x_axis.
    """
    axis_position(0.0, x_axis)
    fig = go.Figure()
    rows = [r for r in records if r["batch"] == batch]
    for mode in ("weight", "unit"):
        for engine in ("dense", "sparse", "shrunk"):
            rs = sorted((r for r in rows if r["mode"] == mode and r["engine"] == engine), key=lambda r: r["sparsity"])
            if not rs:
                continue
            name = f"{engine}, {mode}"  # as the curves name "method, mode": short enough beside a narrow chart
            fig.add_trace(
                go.Scatter(
                    x=axis_position([r["sparsity"] for r in rs], x_axis),
                    y=[r["ms"] for r in rs],
                    name=name,
                    mode="lines+markers",
                    line=dict(color=ENGINE_COLORS[engine], dash=MODE_DASH[mode]),
                    marker=dict(symbol=["circle-open" if r.get("noisy") else "circle" for r in rs], size=8),
                    customdata=[[100 * r["sparsity"], r["speedup"], speedup_text(Speedup.of_record(r))] for r in rs],
                    hovertemplate="%{customdata[0]:g} %: %{y:.3g} ms, %{customdata[2]}<extra>" + name + "</extra>",
                )
            )
        dense = sorted((r for r in rows if r["mode"] == mode and r["engine"] == "dense"), key=lambda r: r["sparsity"])
        if dense:
            fig.add_trace(
                go.Scatter(
                    x=axis_position([r["sparsity"] for r in dense], x_axis),
                    y=[r["ms"] / r["ideal_speedup"] for r in dense],
                    name=f"ideal, {mode}",
                    mode="lines",
                    line=dict(color=IDEAL_COLOR, dash=DOTTED_DASH[mode]),
                    customdata=[[100 * r["sparsity"], r["ideal_speedup"]] for r in dense],
                    hovertemplate="%{customdata[0]:g} %: ideal %{y:.3g} ms, %{customdata[1]:.1f}× dense<extra>ideal, "
                    + mode
                    + "</extra>",
                )
            )
    if current is not None:
        fig.add_vline(x=float(axis_position(current, x_axis)), line=dict(color="black", width=1, dash="dot"))
    fig.update_layout(
        title=f"Latency per call, batch {batch:,}",
        yaxis_title="ms per call",
        height=480,
        margin=dict(l=50, r=10, t=50, b=10),
        legend=PHONE_LEGEND,
    )
    _style_sparsity_axis(fig, x_axis, [r["sparsity"] for r in rows])
    _style_log_y(fig, [y for t in fig.data for y in t.y])
    if any(r.get("noisy") and r["engine"] != "dense" for r in rows):
        fig.add_trace(
            go.Scatter(
                x=[None],
                y=[None],
                name=NOISY_LEGEND,
                mode="markers",
                marker=dict(symbol="circle-open", size=8, color="#444444"),
                hoverinfo="skip",
            )
        )
    return fig


def speed_reading(records: Sequence[dict], sparsity: float, batch: int = 10_000) -> str:
    """A one-line honest reading of measured `bench` records, in the speed figure's words
    (`obd.runtime.speedups.speedup_text`), e.g. "weight pruning at 60 %: no faster (0.93×) (batch 10,000; 2.5×
    fewer multiply-adds); unit pruning at 60 %: 4.1× faster than dense (shrunk engine, batch 10,000; 5.4× fewer
    multiply-adds)." Uses the nearest measured sparsity and says so when it differs.

    Args:
        records: `obd.runtime.engines.bench` records.
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
        nearest = "" if abs(r["sparsity"] - sparsity) < 0.005 else f" (nearest measured: {100 * r['sparsity']:g} %)"
        parts.append(f"{mode} pruning at {100 * sparsity:g} %{nearest}: {speedup_text(Speedup.of_record(r))}")
    if not parts:
        return f"no speed measured at batch {batch:,}"
    return "; ".join(parts) + "."


PRESENTER_SCALE = 1.6  # 12 px text becomes 19 px: readable from the back of a room on a 1280x720 projector


def style_for_presenter(fig: go.Figure, scale: float = PRESENTER_SCALE) -> go.Figure:
    """A copy of `fig` in large type for a projector (the dashboard's `?present=1`): every font, line and
    marker scaled up, the legend in a column beside the plot (a short, wide screen).

    Args:
        fig: any figure of this module.
        scale: the factor on plotly's 12 px default text; lines and markers grow by its square root.

    Returns:
        A new Figure; `fig` is unchanged.

    Raises:
        ValueError: unless scale >= 1.
    """
    if not scale >= 1:
        raise ValueError(f"presenter scale must be at least 1, got {scale!r}")
    big = go.Figure(fig)
    grow = float(np.sqrt(scale))
    big.update_layout(
        font_size=round(12 * scale),
        title_font_size=round(17 * scale),
        hoverlabel_font_size=round(13 * scale),
        # a projector is wide and short: the legend goes beside the plot, not in rows under it
        legend=dict(
            orientation="v",
            x=1.01,
            xanchor="left",
            y=1,
            yanchor="top",
            yref="paper",
            font_size=round(9 * scale),
            tracegroupgap=0,
        ),
    )  # 10 entries fit a 360 px chart
    for trace in big.data:
        if trace.type != "scatter":
            continue
        trace.line.width = (trace.line.width or 2) * grow
        if isinstance(trace.marker.size, (int, float)):
            trace.marker.size = trace.marker.size * grow
    return big
