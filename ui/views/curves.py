"""Accuracy-vs-sparsity curves of the methods this session chose, filled in point by point by background jobs,
and fine-tuning of one point or the whole curve (a background job too; its points stay in this session).

The chart's choices (which methods, accuracy or loss, the x axis) are the session's: their widgets keep their
values while another tab is open (`persist_state="session"`), and the CSV below the chart (and in Downloads)
holds exactly the curves it draws."""

from __future__ import annotations

import streamlit as st

from obd.core.pruning import MODES
from obd.figures import plots
from obd.methods.registry import METHODS, supports
from obd.training.finetune import check_gradual
from obd.work import export
from obd.work.sweep import DEFAULT_SPARSITIES, sweep
from ui.services import boards, chart_data, classroom, models, results
from ui.services.state import Choice, View

POLL_S = 0.5  # a running curve is redrawn this often, each new point as it lands
WARM_HINT_S = 30.0  # curves computed live for longer than this get the hint to run `python -m obd warm` first
KEEP = "session"  # the chart's choices outlive their widgets: a visit to another tab keeps them


def _on_curve_click() -> None:
    points = st.session_state.curves_chart.selection.points
    if points and "customdata" in points[0]:
        method, mode = points[0]["customdata"][:2]
        st.session_state.method, st.session_state.mode = method, mode
        st.session_state.sparsity = int(round(points[0]["customdata"][2]))
        st.session_state.curve_jump = True  # the chart's fragment reruns alone: it hands over to the whole page


def render(v: View) -> None:
    _chart(v, chart_data.wanted_curves(v.choice))
    if v.present:  # a projector's screen ends below the chart: the lesson's fine-tuning step needs its button there
        finetune_ui(v)
        _more_ui(v)
    else:
        _more_ui(v)
        finetune_ui(v)


def _chart(v: View, wanted: list[Choice]) -> None:
    """The chart as a fragment: while a curve is computed it redraws itself every POLL_S with the points so far."""
    # Looking a curve up touches its job, and the board runs the most recently touched job's tasks first: the
    # current choice's curve, whose first task is the current point, is looked up last so that the metrics wait
    # for one point, not for the other curves (in chromium the order of two timers decided it otherwise). The
    # curves of the shown mode are also looked up first: an idle board starts the first job submitted at once.
    mine = sorted((w for w in wanted if w.mode == v.choice.mode), key=lambda w: w == v.choice)
    asked = mine + [w for w in wanted if w.mode != v.choice.mode] + mine
    curve_jobs = [results.curve(v.key, w, v.k if w == v.choice else None)[1] for w in asked]
    # Curves held while a model trains draw once, not every POLL_S: redrawing the chart twice a second kept
    # chromium busy beside the training for all of it (the training banner reruns the page when it is done).
    running = any(job is not None and not job.held for job in curve_jobs)

    def chart() -> None:
        if st.session_state.pop("curve_jump", False):
            st.rerun()  # a click moved the controls, which live outside this fragment
        found = {w: results.curve(v.key, w, v.k if w == v.choice else None) for w in asked}
        records, jobs = chart_data.chart_records(v, found)
        if not v.present:  # (presenter mode: under the chart, which a projector's screen must show whole)
            _progress(v, jobs, found)
        metric, axis = _chart_options(v.present)
        fig = _figure(records, (v.choice.method, v.choice.mode, v.k / 100), metric, axis, v.present)
        st.plotly_chart(
            fig,
            key="curves_chart",
            on_select=_on_curve_click,
            selection_mode="points",
            height=classroom.chart_height(v.present),
        )
        if v.present:
            _progress(v, jobs, found)
        if not jobs and not v.present:  # (presenter mode: the screen is the chart's)
            st.download_button(
                "These curves (.csv)",
                export.curves_csv(records),
                export.filename("curves", v.choice.mode, v.choice.method, v.k / 100),
                "text/csv",
                key="curves_csv",
                on_click="ignore",
                help="every curve the chart draws, fine-tuned points included (as `python -m obd sweep --csv`)",
            )
        if not jobs and running:
            st.rerun()  # the last curve just finished: the rest of the page (the method list) may change too

    # While curves compute, the chart is a fragment that redraws itself; once they exist it is plain page content,
    # so a click on it reruns the page directly (a fragment's own rerun can be lost to a page rerun in between).
    st.fragment(chart, run_every=boards.poll_s(POLL_S))() if running else chart()
    if v.present:  # (the legend beside the chart says the same)
        return
    st.caption(
        f"{v.choice.budget.capitalize()} budget. Click a point to jump there. Colour = method, solid = weight "
        "pruning, dashed = unit pruning, diamonds = fine-tuned, star = where the controls are."
    )


def _progress(v: View, jobs: list, found: dict) -> None:
    """The curves still computing, each with its progress, and when they take long the hint to compute them all
    before a class."""
    for job in jobs:
        if job.error:
            st.error(f"{job.label} failed: {job.error}")
        else:
            st.progress(job.done / job.total, text=f"{job.label}: {boards.eta_text(job)}")
    left = sum(
        models.estimate(v.key, w.method, w.mode, len(DEFAULT_SPARSITIES)) for w, (_, job) in found.items() if job
    )
    if left >= WARM_HINT_S:
        st.caption(
            f"These curves take about {left:.0f} s here. Before a class, `python -m obd warm` computes every "
            "curve once, so that none is computed while the room waits."
        )


def _figure(records: list, current: tuple, metric: str, axis: str, present: bool):
    """The chart, built once per content: a rerun that changes nothing here costs no figure building (a finished
    curve's records never change, a running one's only grow, so the count of records names them)."""
    signature = (
        tuple((r.method, r.mode, r.budget, r.finetune_epochs, r.gradual_steps, r.sparsity) for r in records),
        current,
        metric,
        axis,
        present,
    )
    if (fig := models.stores()["figures"].get(signature)) is None:
        fig = plots.methods_figure(records, current=current, metric=metric, x_axis=axis)
        if present:  # slider, numbers and this chart on one 1280x720 screen
            fig = plots.style_for_presenter(fig)
        models.stores()["figures"].put(signature, fig)
    return fig


def _chart_options(present: bool) -> tuple[str, str]:
    """What to plot against what, chosen above the chart (kept for the session). Presenter mode, where the screen
    is short, shows the accuracy/loss choice only (a lesson step asks for it); the axis stays as last chosen."""
    cols = st.columns([2, 2, 3]) if not present else [st]
    metric = cols[0].segmented_control(
        "Plot",
        ["accuracy", "loss"],
        default="accuracy",
        key="curve_metric",
        required=True,
        persist_state=KEEP,
        label_visibility="collapsed" if present else "visible",  # (a projector's screen is short)
    )
    if present:
        return metric, st.session_state.get("curve_axis", "compression")
    axis = cols[1].segmented_control(
        "x axis",
        ["compression", "sparsity"],
        default="compression",
        key="curve_axis",
        required=True,
        help="compression = 1 / (1 − sparsity) on a log scale spreads 90–99 %, where the methods differ",
        persist_state=KEEP,
    )
    return metric, axis


def _more_ui(v: View) -> None:
    c = v.choice
    others = [
        m
        for m in METHODS
        if m not in ("magnitude", c.method)  # magnitude, the baseline, is always drawn
        and any(supports(m, md, c.budget) for md in MODES)
    ]
    # a method the budget does not support (random under loss-aware) leaves the choice, not the page
    st.session_state.extra_methods = [m for m in st.session_state.get("extra_methods", []) if m in others]
    missing = [Choice(m, md, c.budget, c.prune_output) for m in others for md in MODES if supports(m, md, c.budget)]
    missing = [w for w in missing if not results.curve_file(v.key, w).is_file()]
    about = sum(models.estimate(v.key, w.method, w.mode, len(DEFAULT_SPARSITIES)) for w in missing)
    cols = st.columns([4, 1])
    cols[0].multiselect(
        "Curves of other methods (magnitude's are always drawn)",
        others,
        key="extra_methods",
        persist_state=KEEP,
        help="computed in the background the first time (obs and sparsegpt reconstruct every point: "
        "about a minute each on the default net), then kept on disk for everyone",
    )
    cols[1].button(
        "Compare all methods",
        on_click=lambda: st.session_state.update(extra_methods=others),
        disabled=set(others) <= set(st.session_state.get("extra_methods", [])),
        help=f"computes the {len(missing)} missing curves in the background: about {about:.0f} s"
        if missing
        else "every curve is computed already: drawn at once",
        key="compare_all",
    )


def finetune_ui(v: View) -> None:
    """Fine-tune this point or the whole curve with the masks fixed, optionally pruning gradually, as a background
    job; the results join the chart as diamonds (this session only)."""
    c, k = v.choice, v.k
    try:
        check_gradual(c.method, c.mode)
        gradual_ok = True
    except ValueError:
        gradual_ok = False
    if v.present:  # a projector's narrow column: the one button a lesson step asks for, the epochs last chosen
        epochs = float(st.session_state.get("ft_epochs", 1.0))
        per_point = models.estimate(v.key, c.method, c.mode, 1, epochs)
        if st.button(
            "Fine-tune this point",
            help=f"{c.method}, {c.mode}, {k} %, {epochs:g} epoch{'s' if epochs != 1 else ''}: about "
            f"{per_point:.0f} s on this machine, in the background",
            key="ft_point",
        ):
            st.session_state.finetune_job = _start(v, (k / 100,), epochs, 1)
    else:
        _finetune_buttons(v, gradual_ok)
    if done_text := st.session_state.get("finetune_done"):  # kept until the next fine-tuning starts
        st.success(done_text)
    if (jk := st.session_state.get("finetune_job")) is not None:
        _finetune_progress(v, jk)


def _finetune_buttons(v: View, gradual_ok: bool) -> None:
    """The epochs, the pruning steps and the two fine-tuning buttons in one row."""
    c, k = v.choice, v.k
    cols = st.columns([1, 1, 2, 2])
    epochs = float(
        cols[0].number_input(
            "Epochs",
            0.1,
            5.0,
            1.0,
            0.1,
            key="ft_epochs",
            persist_state="session",
            help="fine-tuning epochs per point, fractions allowed",
        )
    )
    steps = cols[1].number_input(
        "Pruning steps",
        1,
        10,
        1,
        key="ft_steps",
        persist_state="session",
        disabled=not gradual_ok,
        help="1: prune once, then fine-tune · more: prune gradually (tfmot's "
        "PolynomialDecay), fine-tuning between the steps (not obs or sparsegpt)",
    )
    steps = int(steps) if gradual_ok else 1
    curve = tuple(x for x in DEFAULT_SPARSITIES if x > 0)
    per_point = models.estimate(v.key, c.method, c.mode, 1, epochs)
    if cols[2].button(
        f"Fine-tune this point ({c.method}, {c.mode}, {k} %)",
        help=f"about {per_point:.0f} s on this machine, in the background",
        key="ft_point",
    ):
        st.session_state.finetune_job = _start(v, (k / 100,), epochs, steps)
    if cols[3].button(
        f"Fine-tune the whole curve ({len(curve)} points)",
        help=f"about {len(curve) * per_point:.0f} s on this machine, in the background",
        key="ft_curve",
    ):
        st.session_state.finetune_job = _start(v, curve, epochs, steps)


def _start(v: View, ks: tuple[float, ...], epochs: float, steps: int) -> tuple:
    """Submit a fine-tuning job, one task per point (shared across sessions, deduplicated by its settings)."""
    c, key = v.choice, v.key
    st.session_state.pop("finetune_done", None)
    jk = ("finetune", key, c, ks, epochs, steps)
    d = models.data()

    def task(k: float):
        def run():
            records = sweep(
                models.network(key),
                [k],
                [c.mode],
                x=d.x_test,
                y=d.y_test,
                prune_output=c.prune_output,
                methods=[c.method],
                budget=c.budget,
                calib=models.calib_for(c.method),
                finetune_epochs=epochs,
                train_data=d,
                gradual_steps=steps,
                plans=[models.plan_for(key, c)],
            )
            return records[1]  # the fine-tuned record after the one-shot one

        return run

    boards.submit(
        None,
        jk,
        [task(k) for k in ks],
        label=f"fine-tuning {c.method} {c.mode} ({len(ks)} "
        f"point{'s' if len(ks) > 1 else ''}, {epochs:g} epoch{'s' if epochs != 1 else ''} each)",
    )
    return jk


def _finetune_progress(v: View, jk: tuple) -> None:
    @st.fragment(run_every=boards.poll_s(POLL_S))
    def progress() -> None:
        job = boards.board().get(jk)
        if job is None:
            return
        boards.board().touch(jk)  # someone still waits: a job nobody touches pauses after a minute
        mine = chart_data.finetuned_points(v.key, v.choice.prune_output)
        for tuned in job.results().values():
            c = jk[2]
            mine[
                (c.method, c.mode, c.budget, round(100 * tuned.sparsity), tuned.finetune_epochs, tuned.gradual_steps)
            ] = tuned
        if job.error:
            st.error(f"Fine-tuning failed: {job.error}")
        elif not job.finished:
            st.progress(job.done / job.total, text=f"{job.label}: {boards.eta_text(job)}")
            return
        else:
            done = sorted(job.results().values(), key=lambda r: r.sparsity)
            _, _, _, _, epochs, steps = jk
            how = f" in {steps} pruning steps" if steps > 1 else ""
            st.session_state.finetune_done = (
                f"Fine-tuned {len(done)} point{'s' if len(done) > 1 else ''} for {epochs:g} "
                f"epoch{'s' if epochs != 1 else ''} each{how}: "
                + ", ".join(f"{100 * r.sparsity:g} % → {100 * r.accuracy:.2f} %" for r in done)
                + ". On the chart as diamonds."
            )
        del st.session_state.finetune_job
        st.rerun()  # the chart above was drawn before these points existed

    progress()
