"""The headline row: accuracy and loss against the dense model, what is kept (honestly counted), and latency."""

from __future__ import annotations

import streamlit as st

from obd.methods.registry import METHOD_HELP
from obd.runtime.speedups import speedup_text
from ui.services import boards, results
from ui.services.state import View

POLL_S = 0.5  # how often a waiting page looks for its results: short enough to feel immediate
# ...and for a latency while a model trains: the timing waits for the training (minutes), and looking twice a
# second meant two page updates a second beside it in every open browser
HELD_POLL_S = 5.0
MEASURING = "…"  # the latency's value while it is being timed (a word would not fit the metric's width)


def ms_text(ms: float) -> str:
    """A duration with three significant digits, in µs below a millisecond: "0.412 ms" would read as zero at .1f."""
    return f"{ms * 1000:.0f} µs" if ms < 1 else f"{ms:.3g} ms" if ms < 100 else f"{ms:.0f} ms"


def count_text(n: int) -> str:
    """A count in three significant digits: 388,400 -> "388k", 3,794,000 -> "3.79M", 940 -> "940"."""
    for div, suffix in ((1e6, "M"), (1e3, "k")):
        if n >= div:
            return f"{n / div:.3g}{suffix}"
    return f"{n:,}"


def render(v: View) -> dict | None:
    """Draw the metrics row; returns the state's results, or None while a background job computes them (the row
    then shows the job's progress and reruns the page once the results exist)."""
    dense = results.point(v.key, v.choice.dense(), 0)
    cur = results.point(v.key, v.choice, v.k)
    if cur is None or dense is None:
        _waiting(v)
        return None
    r = cur["report"]
    col = st.columns(5)
    col[0].metric(
        "Test accuracy",
        f"{100 * cur['accuracy']:.2f} %",
        f"{100 * (cur['accuracy'] - dense['accuracy']):+.2f} pts vs dense",
    )
    if cur["record"].fallback:  # the point is magnitude's network: say so beside the accuracy it shows
        col[0].caption(f"⚠️ {v.choice.method} found nothing better than magnitude here: this is magnitude's network")
    if emptied := [layer.name for layer in r.layers if layer.kept_weights == 0]:  # EmptiedLayerWarning's case
        col[0].caption(
            f"⚠️ {'layers' if len(emptied) > 1 else 'layer'} {', '.join(emptied)} kept no weight: the network "
            "predicts one class whatever the image"
        )
    col[1].metric(
        "Test loss", f"{cur['loss']:.4f}", f"{cur['loss'] - dense['loss']:+.4f} vs dense", delta_color="inverse"
    )
    col[2].metric(
        "Weights kept",
        f"{r.kept_weights:,}",
        f"in use {count_text(r.effective_weights)} · {count_text(r.flops)} FLOPs/image",
        delta_color="off",
        delta_arrow="off",
        help=f"of {r.total_weights:,} ({r.compression:.1f}× fewer). In use: {r.effective_weights:,}, the "
        f"kept weights between two live units (a dead unit's weights do nothing). FLOPs: "
        f"{r.flops:,} multiply-adds per image as the engines run it, {r.flop_ratio:.1f}× fewer than "
        "dense.",
    )
    col[3].metric(
        "Units kept", f"{r.kept_units:,}", f"of {r.total_units:,} hidden", delta_color="off", delta_arrow="off"
    )
    _latency(col[4], v, r)
    if v.present and not st.session_state.get("lesson"):  # (a lesson's step says it, beside its view)
        st.caption(
            f"**{v.choice.method}**: {METHOD_HELP[v.choice.method]}. "
            + (
                "Weight pruning zeroes single weights; the matrices keep their shape."
                if v.choice.mode == "weight"
                else "Unit pruning removes whole neurons: the matrices physically shrink."
            )
        )
    return cur


def _latency(col, v: View, r) -> None:
    """Latency through the engine obd.runtime.engines picks, measured in the background once per network structure."""
    lat = results.latency(v.key, v.choice, v.k, start=v.painted)  # a timing beside the first paint slows it
    measured = results.speed(v.key, v.choice, v.k, start=False)  # the same reading, as every text words it
    if lat is None or measured is None:
        what = "timed once the model in training is ready" if boards.training() else "timing…"
        col.metric(
            f"Latency, batch {results.LATENCY_BATCH:,}",
            MEASURING,
            f"{what} · FLOPs {r.flop_ratio:.1f}×",
            delta_color="off",
            delta_arrow="off",
        )
        return
    col.metric(
        f"Latency, batch {results.LATENCY_BATCH:,}",
        ms_text(lat.engine_ms),
        speedup_text(measured, short=True),
        delta_color="off",
        delta_arrow="off",
        help=f"Measured {speedup_text(measured)}. Dense: {ms_text(lat.dense_ms)} per call of "
        f"{results.LATENCY_BATCH:,} images. The engine obd.runtime.engines picks (auto), timed in {lat.repeats} "
        "interleaved pairs with dense after a warm-up: the median of the per-pair ratios; FLOPs = the "
        "ideal speed-up (multiply-adds). The Speed tab times each engine against sparsity. "
        + (lat.note or "A clean reading: nothing else ran."),
    )


def _waiting(v: View) -> None:
    """Progress of the job computing this state; reruns the page when its results exist."""

    @st.fragment(run_every=boards.poll_s(POLL_S, urgent=True))  # its look (results.point) touches the job
    def poll() -> None:
        job = results.point_job(v.key, v.choice, v.k)
        if results.point(v.key, v.choice, v.k) is not None and results.point(v.key, v.choice.dense(), 0) is not None:
            st.rerun()
        if job is not None and job.error:
            st.error(f"Computing this point failed: {job.error}")
            return
        ahead = [j for j in boards.board_for(v.choice).jobs() if not j.finished and j is not job]
        queue = f" (after: {', '.join(j.label for j in ahead[:2])})" if ahead else ""
        st.info(
            f"Computing {v.choice.method} {v.choice.mode} pruning at {v.k} % in the background{queue}. "
            f"The controls keep working; the numbers appear here when ready."
        )
        st.progress(
            0.0 if job is None else job.done / max(job.total, 1), text="" if job is None else boards.eta_text(job)
        )

    poll()


def latency_poll_s() -> float:
    """How often a page looks for its latency: `boards.poll_s` of POLL_S, or of HELD_POLL_S while a model trains."""
    return boards.poll_s(HELD_POLL_S if boards.training() else POLL_S)


def poll_latency(v: View) -> None:
    """While the latency is measured, look for it every POLL_S and rerun the page once it exists; every HELD_POLL_S
    while a model trains (timings wait for it). Called at the end of the page: a fragment placed before the views
    would shift their positions, and with them their fragments' identities, between the run that measures and the
    run that shows."""
    if results.point(v.key, v.choice, v.k) is None or results.latency(v.key, v.choice, v.k) is not None:
        return

    @st.fragment(run_every=latency_poll_s())
    def poll() -> None:
        if results.latency(v.key, v.choice, v.k) is not None:
            st.rerun()

    poll()
