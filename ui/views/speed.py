"""Measured latency of every engine against sparsity, at one batch size, against the FLOP-proportional ideal."""

from __future__ import annotations

import streamlit as st

from obd.figures import plots
from obd.runtime.speedups import speedup_text
from ui.services import boards, classroom, results
from ui.services.state import View

POLL_S = 1.0
BATCHES = (1, results.LATENCY_BATCH, 10_000)  # rows per call the table can be timed at


def render(v: View) -> None:
    batch = int(
        st.segmented_control(
            "Batch size",
            BATCHES,
            default=results.LATENCY_BATCH,  # the headline's batch: both then read the same sizes of call
            key="speed_batch",
            required=True,
            persist_state="session",  # the session's choice: kept while another tab is open
        )
    )
    about = (
        "Measured on this machine: the dense engine, the sparse kernel (weight pruning) and the physically "
        "shrunk network (unit pruning), each magnitude-pruned, against the ideal (FLOP-proportional) latency. "
        "Measured once per model and batch size in the background, then kept on disk."
    )
    measured = results.speed(v.key, v.choice, v.k, start=False)
    headline = (
        ""
        if measured is None
        else f"The headline's reading of this state ({v.choice.method} {v.choice.mode} pruning at {v.k} %, the "
        f"engine auto picks): {speedup_text(measured)}."
    )
    if not v.present:  # (presenter mode: below the chart, which a projector's screen must show whole)
        st.caption(about)
        st.markdown(headline)
    records, job = results.speed_job(v.key, batch, v.choice.prune_output)
    if records is None:

        @st.fragment(run_every=boards.poll_s(POLL_S))
        def wait() -> None:
            boards.board().touch(job.key)  # someone still waits: a job nobody touches pauses after a minute
            if job.error:
                st.error(f"Timing failed: {job.error}")
                return
            if job.finished:
                st.rerun()
            st.progress(0.0, text=f"{job.label}: running in the background ({job.elapsed_s:.0f} s so far)")

        wait()
        return
    figure = plots.speed_figure(records, batch, current=v.k / 100)
    if v.present:
        figure = plots.style_for_presenter(figure)
        st.plotly_chart(figure, key="speed_chart", height=classroom.chart_height(True))
        st.markdown(headline)
        st.info(plots.speed_reading(records, v.k / 100, batch))
        st.caption(about)
        return
    st.info(plots.speed_reading(records, v.k / 100, batch))
    st.plotly_chart(figure, key="speed_chart")
