"""Two settings side by side: A is the sidebar's, B is chosen here (mode, method, budget, sparsity); their
metrics, their points on the curves, and the test digits on which they disagree."""

from __future__ import annotations

import numpy as np
import streamlit as st

from obd.core.pruning import BUDGETS, MODES
from obd.figures.images import digit_tile
from obd.methods.registry import METHODS, supports
from obd.teach import plots as teach_plots
from ui.services import boards, models, results
from ui.services.state import Choice, View

POLL_S = 1.0
DIGITS_SHOWN = 24


def setting_b(v: View) -> tuple[Choice, int]:
    """B's controls; those not set yet (by the link or the user): the other mode at the sidebar's method (when it
    can), budget and sparsity."""
    s = st.session_state
    s.setdefault("compare_mode", "unit" if v.choice.mode == "weight" else "weight")
    s.setdefault("compare_budget", v.choice.budget)
    s.setdefault(
        "compare_method",
        v.choice.method if supports(v.choice.method, s.compare_mode, s.compare_budget) else "magnitude",
    )
    s.setdefault("compare_sparsity", v.k)
    cols = st.columns(4)
    link = {"bind": "query-params"}  # B is in the address too (?compare_mode=unit&compare_sparsity=50...)
    mode = cols[0].segmented_control("B: mode", MODES, key="compare_mode", required=True, **link)
    budget = cols[1].segmented_control("B: budget", BUDGETS, key="compare_budget", required=True, **link)
    methods = [m for m in METHODS if supports(m, mode, budget)]
    if s.compare_method not in methods:
        s.compare_method = "magnitude"
    method = cols[2].selectbox("B: method", methods, key="compare_method", **link)
    k = cols[3].slider("B: sparsity (%)", 0, 99, key="compare_sparsity", **link)
    return Choice(method, mode, budget, v.choice.prune_output), int(k)


def _metrics(label: str, c: Choice, k: int, point: dict, dense: dict) -> None:
    """One setting's row: what it is, then its accuracy, loss, weights in use and units kept."""
    r = point["report"]
    st.markdown(f"**{label}: {c.method}, {c.mode} pruning at {k} % ({c.budget} budget)**")
    col = st.columns(4)
    col[0].metric(
        f"{label}: test accuracy",
        f"{100 * point['accuracy']:.2f} %",
        f"{100 * (point['accuracy'] - dense['accuracy']):+.2f} pts vs dense",
    )
    col[1].metric(
        f"{label}: test loss",
        f"{point['loss']:.4f}",
        f"{point['loss'] - dense['loss']:+.4f} vs dense",
        delta_color="inverse",
    )
    col[2].metric(
        f"{label}: weights in use",
        f"{r.effective_weights:,}",
        f"of {r.total_weights:,}",
        delta_color="off",
        delta_arrow="off",
    )
    col[3].metric(
        f"{label}: units kept",
        f"{r.kept_units:,}",
        f"of {r.total_units:,} hidden",
        delta_color="off",
        delta_arrow="off",
    )


def render(v: View) -> None:
    """B's controls, then A and B: metrics, points on the curves, and the digits they disagree on."""
    cur = v.cur
    b, kb = setting_b(v)
    other = results.point(v.key, b, kb)
    if other is None:

        @st.fragment(run_every=boards.poll_s(POLL_S, urgent=True))  # its look (results.point) touches B's job
        def wait() -> None:
            job = results.point_job(v.key, b, kb)
            if job is not None and job.error:
                st.error(f"{job.label} failed: {job.error}")
            elif results.point(v.key, b, kb) is not None:
                st.rerun()
            else:
                st.progress(0.0, text=f"Computing B ({b.method} {b.mode} pruning at {kb} %) in the background…")

        wait()
        return
    dense = results.point(v.key, v.choice.dense(), 0)
    _metrics("A", v.choice, v.k, cur, dense)
    _metrics("B", b, kb, other, dense)
    curves(v, b, kb, cur, other)
    disagreements(cur, other)


@st.cache_resource(max_entries=32, show_spinner=False)  # figures are shared read-only, never changed
def _figure(key, a: Choice, ka: int, b: Choice, kb: int, count: int, _records: list, _points: list):
    """The curves with A and B marked; `count` names the records (a curve's only grow while it is computed)."""
    return teach_plots.settings_figure(_records, _points)


def curves(v: View, b: Choice, kb: int, cur: dict, other: dict) -> None:
    """A's and B's curves with both settings starred at their measured accuracy."""
    records, running = [], False
    for c, k in dict(((b, kb), (v.choice, v.k))).items():  # one curve when A and B share a choice
        rs, job = results.curve(v.key, c, k)
        records += rs
        running |= job is not None
    points = [
        ("A", v.choice.method, v.choice.mode, v.k / 100, cur["accuracy"]),
        ("B", b.method, b.mode, kb / 100, other["accuracy"]),
    ]
    st.plotly_chart(_figure(v.key, v.choice, v.k, b, kb, len(records), records, points), key="compare_curves")
    if running:
        st.caption("The curves fill in as their points are computed in the background (open Curves to follow).")


def disagreements(cur: dict, other: dict) -> None:
    """How many test digits A and B predict differently, who is right, and the first of them."""
    d = models.data()
    a, b = cur["predictions"], other["predictions"]
    differ = np.flatnonzero(a != b)
    a_right, b_right = int((a[differ] == d.y_test[differ]).sum()), int((b[differ] == d.y_test[differ]).sum())
    st.write(
        f"A and B disagree on **{len(differ):,}** of {len(a):,} test digits: A is right on {a_right:,} of "
        f"them, B on {b_right:,}."
    )
    tiles = st.container(horizontal=True, wrap=True, gap="small")
    for i in differ[:DIGITS_SHOWN]:
        tiles.image(digit_tile(d.x_test[i]), width=84, caption=f"{d.y_test[i]} · A {a[i]} · B {b[i]}")
