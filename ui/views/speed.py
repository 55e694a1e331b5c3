"""Measured latency of every engine against sparsity, at one batch size, against the FLOP-proportional ideal."""

from __future__ import annotations

import streamlit as st

from obd.figures import plots
from ui.services import boards, results
from ui.services.state import View

POLL_S = 1.0


def render(v: View) -> None:
    batch = int(st.segmented_control("Batch size", [1, 100, 10_000], default=10_000, key="speed_batch", required=True))
    st.caption(
        "Measured on this machine: the dense engine, the sparse kernel (weight pruning) and the physically "
        "shrunk network (unit pruning), against the ideal (FLOP-proportional) latency. Measured once per "
        "model and batch size in the background, then kept on disk."
    )
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
    st.info(plots.speed_reading(records, v.k / 100, batch))
    st.plotly_chart(plots.speed_figure(records, batch, current=v.k / 100), key="speed_chart")
