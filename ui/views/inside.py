"""Inside the network: the current state explained from its own numbers, the network as a diagram, what the
first layer's units look for, OBD against magnitude (a scatter, the counts and one weight worked through) and
the pruned model's confusion matrix. Numbers from obd.teach.explain, figures from obd.teach.plots."""

from __future__ import annotations

import streamlit as st

from obd.teach import explain, facts
from obd.teach import plots as teach_plots
from ui.services import boards, classroom, models, results
from ui.services.rankings import criteria, job_key, ranked_budget
from ui.services.state import INSIDE_KEY, INSIDE_PARTS, Choice, ModelKey, View

POLL_S = 1.0
FIELDS_SHOWN = 16  # first-layer units in the grid


@st.cache_resource(max_entries=32, show_spinner=False)
def comparison(key: ModelKey, c: Choice, k: int, layer: int, _criteria: explain.Criteria) -> tuple:
    """One state's comparison and its scatter (the criteria are named by key and choice: never hashed, they are
    large)."""
    comp = explain.compare(_criteria, k / 100, layer)
    return comp, teach_plots.criteria_figure(comp)


@st.cache_resource(max_entries=32, show_spinner=False)  # figures are shared read-only, never changed
def _state_figures(key: ModelKey, c: Choice, k: int) -> tuple:
    """The state's diagram and confusion matrix."""
    d = models.data()
    return (
        teach_plots.diagram_figure(explain.diagram(results.pruned(key, c, k))),
        teach_plots.confusion_figure(explain.confusion(d.y_test, results.point(key, c, k)["predictions"])),
    )


@st.cache_resource(max_entries=32, show_spinner=False)
def _first_layer_figures(key: ModelKey, c: Choice, k: int, pick: str) -> tuple:
    """The receptive-field grid and the pixel-survival map of a state."""
    mask = results.pruned(key, c, k).masks[0]
    fields = explain.receptive_fields(models.network(key), mask, FIELDS_SHOWN, pick)
    return (
        teach_plots.receptive_field_figure(fields),
        teach_plots.pixel_survival_figure(explain.pixel_survival(mask), mask.shape[1]),
    )


def example_text(comp: explain.Comparison, net) -> str:
    """One weight (or unit) worked through both criteria, in words."""
    e = comp.example
    layer = net.layers[e.layer].name
    if e.row is None:
        what = f"**Unit {e.column} of {layer}**: column norm ‖w‖ = {e.weight:.4g}, saliency Σ½·h·w² = {e.saliency:.3g}"
    else:
        source = f"pixel ({e.row // explain.SIDE}, {e.row % explain.SIDE})" if e.layer == 0 else f"unit {e.row}"
        what = (
            f"**Weight from {source} to unit {e.column} of {layer}**: w = {e.weight:.4g}, "
            f"h_kk = {e.hessian:.3g}, saliency ½·h_kk·w² = {e.saliency:.3g}"
        )
    verdict = lambda kept: "kept" if kept else "deleted"  # noqa: E731
    return (
        f"{what}. Ranked {e.magnitude_rank:,} of {e.of:,} by magnitude ({verdict(e.kept_by_magnitude)}) and "
        f"{e.obd_rank:,} by OBD ({verdict(e.kept_by_obd)}) at {100 * comp.sparsity:g} %."
    )


def render(v: View) -> None:
    """The explanation, then one part at a time: the diagram, the first layer, OBD against magnitude, the
    confusion matrix."""
    if results.pruned(v.key, v.choice, v.k) is None:
        results.wait_for_pruned(v)
        return
    explained = facts.explanation(results.state_facts(v.key, v.choice, v.k))
    if not v.present:  # (presenter mode: below the part, which a projector's screen must show whole)
        st.markdown(explained)
    criteria(v.key, v.choice)  # starts the rankings in the background now: ready when their part is opened
    # Lazy parts, as the page's own tabs: only the open one is built. Drawing all five figures at once took the
    # browser longer than the 0.5 s a view may take (issue 13; benchmarks/teach_views.py times each part).
    parts = st.tabs(
        INSIDE_PARTS, key=INSIDE_KEY, bind="query-params"
    )  # (named in ui.services.state: the lesson opens one)
    for part, tab in zip((_diagram, _first_layer_part, obd_vs_magnitude, _confusion), parts):
        if tab.open:
            with tab:
                part(v)
    if v.present:
        st.markdown(explained)


def _diagram(v: View) -> None:
    st.plotly_chart(
        _state_figures(v.key, v.choice, v.k)[0], key="inside_diagram", height=classroom.chart_height(v.present)
    )


def _first_layer_part(v: View) -> None:
    if models.network(v.key).layers[0].inputs != explain.SIDE * explain.SIDE:
        st.info("The first layer's units can be drawn as images only for 784 (28×28) inputs.")
    else:
        first_layer(v)


def _confusion(v: View) -> None:
    st.plotly_chart(_state_figures(v.key, v.choice, v.k)[1], key="inside_confusion")


def first_layer(v: View) -> None:
    """The first layer's units as images and the connections each pixel keeps (a fragment: its radio reruns
    it only)."""

    @st.fragment
    def show() -> None:
        pick = st.radio(
            "Units shown",
            explain.PICKS,
            horizontal=True,
            key="inside_pick",
            persist_state="session",  # the session's choice: kept while another tab or part is open
            format_func=lambda p: {"strongest": "the strongest", "spread": "strongest to weakest"}[p],
        )
        fields, pixels = _first_layer_figures(v.key, v.choice, v.k, pick)
        cols = st.columns([3, 2])
        cols[0].plotly_chart(fields, key="inside_fields")
        cols[1].plotly_chart(pixels, key="inside_pixels")
        cols[1].caption(
            "Weight pruning cuts the border pixels off first: they are blank in almost every digit, "
            "so nothing made their weights grow (Han et al. 2015 saw the same on LeNet-300-100)."
        )

    show()


def obd_vs_magnitude(v: View) -> None:
    """The scatter, the counts and the worked example, once the rankings exist (built in the background)."""
    c = criteria(v.key, v.choice)
    if c is None:
        job = boards.board().get(job_key(v.key, v.choice))

        @st.fragment(run_every=boards.poll_s(POLL_S))
        def wait() -> None:
            if job is not None and job.error:
                st.error(f"Ranking failed: {job.error}")
            elif criteria(v.key, v.choice) is not None:
                st.rerun()
            else:
                st.progress(0.0, text="Computing the Hessian diagonal and both rankings in the background…")

        wait()
        return
    net = models.network(v.key)
    layers = [i for i, order in enumerate(c.by_magnitude.orders) if order is not None]

    @st.fragment
    def show() -> None:
        above = st.container() if v.present else st  # presenter mode: the scatter first, the layer under it
        layer = st.selectbox(
            "Layer",
            layers,
            key="inside_layer",
            persist_state="session",
            format_func=lambda i: f"{i}: {net.layers[i].name} ({net.layers[i].inputs}×{net.layers[i].units})",
        )
        comp, figure = comparison(v.key, v.choice, v.k, layer, c)
        above.plotly_chart(figure, key="inside_criteria", height=classroom.chart_height(v.present))
        if ranked_budget(v.choice) != v.choice.budget:
            st.caption(
                f"Compared with a per-layer budget: the {v.choice.budget} budget splits the sparsity between "
                "layers by the loss, so neither criterion alone decides it."
            )
        what = "weights" if comp.mode == "weight" else "units"
        a = comp.agreement
        st.markdown(
            f"Over every pruned layer, **OBD keeps {a.obd_only:,} {what} that magnitude deletes** "
            f"and deletes {a.magnitude_only:,} that magnitude keeps; they agree on {a.both_kept:,} kept "
            f"and {a.both_pruned:,} deleted."
        )
        st.markdown(example_text(comp, net))

    show()
