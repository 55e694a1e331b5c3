"""obd's dashboard: prune a Keras MLP on MNIST with a slider and see accuracy, latency, weights and curves at once.

Run: streamlit run app.py. This file is the entry: the sidebar, the state (kept in the address) and the routing
to the views in ui/; every number comes from the obd package. Only the open tab is built on a rerun, anything
slow runs as a background job on the server (ui/services/boards.py) while the page keeps answering, and a first visit
with nothing trained opens at once on the tiny preset while the chosen model trains in the background.
"""

from __future__ import annotations

import dataclasses
import importlib
import time

import streamlit as st

import obd  # noqa: F401  first: it sets the thread runtimes' environment, which OpenBLAS reads as numpy loads
from obd.core.config import PRESETS
from obd.core.data import DataError
from obd.core.files import ModelFileError
from obd.core.pruning import BUDGETS, MODES
from obd.methods.registry import BUDGET_HELP, METHOD_HELP, METHODS, supports
from ui.services import boards, classroom, models, runner_race, workarounds
from ui.services.state import (
    QUICK_PICKS,
    Choice,
    ModelKey,
    View,
    hold_controls,
    init_state_from_url,
    plain_text,
    remember_controls,
    write_url,
)
from ui.views import lesson, metrics

VIEWS = ("Curves", "Weights", "Predictions", "Draw", "Inside", "Compare", "Speed", "Downloads", "About")
FALLBACK_PRESET = "tiny"  # what a first visit runs on while the chosen preset trains (seconds to train)
SWITCH_NOTE_S = 30.0  # how long the page says it switched to the model that finished training
FIRST_PAINT_S = 0.5  # a session's first run pauses this long between the metrics row and the open tab
PRESENT_COLUMNS = (2, 3)  # presenter mode's lesson: its step's column against the open view's
PRESENT_CSS = """
<style>
html, body, [data-testid="stAppViewContainer"] { font-size: 19px; }
[data-testid="stMetricValue"] { font-size: 2rem; }
[data-testid="stMetricDelta"] { font-size: 0.72rem; }
[data-testid="stMainBlockContainer"] { max-width: 100%; padding: 0.6rem 1.5rem 0 1.5rem; }
[data-testid="stHeader"] { display: none; }
.st-key-view [role="tablist"] [role="tab"] p { font-size: 0.72rem; }
.st-key-view [role="tablist"] { gap: 0.55rem; }
</style>
"""
# A metric's delta wraps instead of ending in "…" (the speed-up, the weights in use: 1280 px share five metrics).
# On a phone (Streamlit stacks columns below 640 px) the metrics go three to a row in smaller type, the title
# shrinks, and the page's own sparsity slider shows (the sidebar's is folded away).
METRIC_CSS = """
<style>
[data-testid="stMetricDelta"], [data-testid="stMetricDelta"] * {
  white-space: normal !important; overflow: visible !important; text-overflow: clip !important; height: auto;
}
.st-key-phone { display: none; }
@media (max-width: 640px) {
  .st-key-phone { display: block; }
  h1 { font-size: 1.4rem !important; padding: 0 !important; }
  [data-testid="stMainBlockContainer"] { padding-top: 3.5rem !important; }
  [data-testid="stHorizontalBlock"]:has(> [data-testid="stColumn"] [data-testid="stMetric"]) {
    flex-flow: row wrap !important; gap: 0.3rem 0.8rem !important;
  }
  [data-testid="stColumn"]:has([data-testid="stMetric"]) {
    flex: 1 1 30% !important; min-width: 30% !important; width: 30% !important;
  }
  [data-testid="stMetricValue"] { font-size: 1.3rem !important; }
  [data-testid="stMetricLabel"] p, [data-testid="stMetricDelta"] p { font-size: 0.7rem !important; }
}
</style>
"""


# ---------------------------------------------------------------- sidebar
def _quick_key() -> str:
    return f"quick_{st.session_state.get('quick_picks', 0)}"


def _pick_sparsity() -> None:
    """Move the slider to the pick, and give the pills a new key: they never stay selected (a pick is an action;
    "90" lit while the slider reads 89 would be wrong), and a stale value a browser timer sends for the old key
    finds no widget to move the slider back."""
    if (pick := st.session_state.get(_quick_key())) is not None:
        st.session_state.sparsity = int(pick)
        st.session_state.quick_picks = st.session_state.get("quick_picks", 0) + 1


def _from_phone_slider() -> None:
    st.session_state.sparsity = st.session_state.sparsity_phone


def phone_slider() -> None:
    """The sparsity slider again, in the page, shown on narrow screens only (PHONE_CSS): there the sidebar starts
    folded, and a shared link's first screen must hold the slider beside the accuracy. It moves the sidebar's."""
    st.session_state.sparsity_phone = st.session_state.sparsity  # the sidebar's value, whichever moved last
    st.container(key="phone").slider(
        "Sparsity (%)", 0, 99, step=1, key="sparsity_phone", on_change=_from_phone_slider, disabled=classroom.locked()
    )


def _upload_key(upload) -> ModelKey | None:
    """Validate an upload; on success remember it, on failure show why and keep the previous model."""
    raw = upload.getvalue()
    digest = models.upload_digest(raw)
    if st.session_state.get("upload_digest") == digest:
        return ModelKey("upload", digest)
    try:
        models.store_upload(raw, models.session_id())
    except ModelFileError as e:
        st.sidebar.error(plain_text(f"{upload.name}: {str(e).split(': ', 1)[-1]}"))  # names from the file: as text
        return None
    st.session_state.upload_digest = digest
    return ModelKey("upload", digest)


def model_ui(present: bool) -> ModelKey:
    """Preset or upload; returns the key of the model to use (a failed upload keeps the previous one)."""
    # folded in presenter mode: the slider fits the screen (in a keyed container: ?hide=model names it)
    box = st.sidebar.container(key="model_box").expander("Model", expanded=not present)
    lock = classroom.locked()
    preset = box.selectbox(
        "Preset",
        list(PRESETS),
        key="preset",
        help="challenge: 784-1000×4-10, no bias · notebook: 784-1000-1000-500-200-10 · "
        "tiny: 784-128-64-10, trains in seconds · mlpnet: 784-40-20-10, the one-shot "
        "pruning benchmark of WoodFisher, CBS and CHITA",
        disabled=lock,
        on_change=classroom.forget_linked_upload,
    )
    upload = box.file_uploader("…or upload a .keras MLP (Dense layers, 784 → 10)", type=["keras"], disabled=lock)
    key = ModelKey("preset", preset)
    if upload is not None:
        key = _upload_key(upload) or st.session_state.get("model_key", key)
    elif (linked := classroom.linked_upload()) is not None:  # ?upload=<digest>: a shared link's uploaded model
        key = linked
    classroom.write_model(key)
    st.session_state.model_key = key
    return key


def _on_mode() -> None:
    s = st.session_state
    if None in (s.mode, s.budget):  # a lost value, not a choice: hold_controls restores it before the widgets
        return
    if not supports(s.method, s.mode, s.budget):
        s.method_note = (f"{s.method} prunes single weights only: switched to obs for units.", "obs", s.mode)
        s.method = "obs"  # the reconstruction method that also removes units


def _on_budget() -> None:
    s = st.session_state
    if None in (s.mode, s.budget):  # as in _on_mode
        return
    if not supports(s.method, s.mode, s.budget):
        s.method_note = (f"{s.method} has no {s.budget} split: switched to magnitude.", "magnitude", s.mode)
        s.method = "magnitude"


def controls_ui(present: bool) -> tuple[Choice, int]:
    """Mode, method, budget, sparsity (percent) and whether the output layer is pruned."""
    sb = st.sidebar
    lock = classroom.locked()  # ?lock=1: a student's page follows the link, its controls shown but disabled
    mode = sb.segmented_control(
        "Mode",
        MODES,
        key="mode",
        required=True,
        on_change=_on_mode,
        disabled=lock,
        help="weight: single weights · unit: whole neurons (columns)",
    )
    methods = [m for m in METHODS if supports(m, mode, st.session_state.get("budget", "layer"))]
    method = sb.selectbox(
        "Method", methods, key="method", help=" · ".join(f"{m}: {METHOD_HELP[m]}" for m in methods), disabled=lock
    )
    if not present:
        sb.caption(METHOD_HELP[method])  # visible, not only in a tooltip
    if note := st.session_state.get("method_note"):  # shown until the method or the mode changes again
        if note[1:] == (method, mode):
            sb.info(note[0])
        else:
            del st.session_state.method_note
    budget = sb.segmented_control(
        "Budget",
        BUDGETS,
        key="budget",
        required=True,
        on_change=_on_budget,
        disabled=lock,
        help=" · ".join(f"{b}: {h}" for b, h in BUDGET_HELP.items()),
    )
    sparsity = sb.slider(
        "Sparsity (%)",
        0,
        99,
        step=1,
        key="sparsity",
        disabled=lock,
        help="the share of the hidden layers' weights (or units) removed: in each layer "
        "(layer budget) or in all of them together (global)",
    )
    sb.pills("Quick picks (%)", QUICK_PICKS, key=_quick_key(), on_change=_pick_sparsity, disabled=lock)
    prune_output = sb.checkbox("Prune the output layer too", key="prune_output", disabled=lock)
    sb.toggle("Presenter mode", key="present", help="large type and the slider, numbers and curves on one screen")
    sb.button(
        "Reset to the link",
        on_click=classroom.reset,
        key="reset_link",
        help="back to the state, tab and lesson step of the address this page was opened with",
    )
    return Choice(method, mode, budget, prune_output), sparsity


# ---------------------------------------------------------------- which model is shown
def shown_model(key: ModelKey) -> ModelKey:
    """The chosen model if it is ready; on a first visit the tiny preset while the chosen one trains in the
    background (with a banner that follows its progress and switches the page over when it is done)."""
    if key.kind != "preset" or boards.preset_trained(key.name):
        if st.session_state.get("waited_for") == key.name:  # announce the switch for a while, not one rerun
            st.session_state.switched = (key.name, time.monotonic())
            del st.session_state.waited_for
        name, at = st.session_state.get("switched", (None, 0.0))
        if name == key.name and time.monotonic() - at < SWITCH_NOTE_S:
            st.success(f"The {key.name} model finished training: the page now shows it.")
        return key
    if key.name == FALLBACK_PRESET:
        _train_here(key.name)
        return key
    if not boards.preset_trained(FALLBACK_PRESET) and boards.train_progress(key.name) is None:
        # first the seconds-long training, then the minutes-long one: side by side on 2 cores they slow each
        # other, the first usable page and the default model alike (benchmarks/first_run.py measures both)
        _train_here(FALLBACK_PRESET, then=key.name)
    st.session_state.waited_for = key.name
    _training_banner(key.name)
    if not boards.preset_trained(FALLBACK_PRESET):
        _train_here(FALLBACK_PRESET)
    return ModelKey("preset", FALLBACK_PRESET)


def _train_here(name: str, then: str | None = None) -> None:
    """Train a small preset in this run, with a progress bar (seconds); later starts load it from the disk cache.
    `then`: the preset whose training starts next, named in the bar's text."""
    after = f"; then the {then} model trains in the background while the page runs on {name}" if then else ""
    bar = st.progress(0.0, text=f"Training the {name} model once (seconds; it is cached afterwards{after})…")
    boards.train_now(
        name,
        lambda p: bar.progress(
            p.step / p.steps,
            text=f"Training {name}: epoch {p.epoch}/{p.epochs}, accuracy so far {100 * p.accuracy:.2f} %",
        ),
    )
    bar.empty()


def _training_banner(name: str) -> None:
    """The banner that follows the chosen preset's training, and starts it. Not in a session's first run: its
    first point (which compiles the sparse kernel on a new machine) takes about twice as long beside the training,
    and so does the first usable page. The banner's first tick comes after that run (a rerun waits for the run in
    progress: runner.fastReruns is off)."""

    @st.fragment(run_every=boards.poll_s(1.0))
    def banner() -> None:
        if boards.preset_trained(name):
            st.rerun()
        job = boards.train_job(name, start=st.session_state.get("painted", False))
        if job is not None and job.error:
            st.error(f"Training the {name} model failed: {job.error}")
            return
        p = boards.train_progress(name)
        where = (
            f"epoch {p.epoch}/{p.epochs}, {100 * p.step / p.steps:.0f} %, accuracy so far {100 * p.accuracy:.1f} %"
            if p is not None
            else "starting"
        )
        st.info(
            f"The **{name}** model is training in the background ({where}; about "
            f"{boards.train_seconds_left(name):.0f} s left). Meanwhile the page runs on the {FALLBACK_PRESET} "
            "model, which trains in seconds; it switches over by itself when training is done."
        )

    banner()


# ---------------------------------------------------------------- page
NEEDS_POINT = ("Weights", "Predictions", "Inside", "Compare", "Downloads")  # views drawn from the state's point


def route(name: str, v: View) -> None:
    """Draw the open tab's view. Its module (ui/views/<name>.py) is imported here, on first use: the views' libraries
    (plotly, scipy's image tools) then load after the metrics are drawn, where at the top of this file they delayed
    a later start's first run before anything showed."""
    # pandas before any view: plotly reads sys.modules["pandas"] without importing it, and a module that a job's
    # thread is still importing would be seen half initialized ("no attribute Series"); an import waits for it.
    # Here, not at the top: its import is slow, so it comes after the metrics row (`_let_the_metrics_paint`).
    import pandas  # noqa: F401

    view = importlib.import_module(f"ui.views.{name.lower()}")
    if name in NEEDS_POINT:
        if v.cur is None:  # (a statement, not a conditional expression: Streamlit's magic would print None)
            st.info(f"{name} appears once this point is computed.")
            return
    view.render(v)


def _let_the_metrics_paint() -> None:
    """A session's first run pauses between the metrics row and the open tab. The tab (the curves chart is plotly's
    megabytes of JavaScript) and the latency timing competed with the browser's first paint of the metrics for the
    2 cores. Streamlit sends each element as it is drawn, so the browser paints the metrics during the pause
    (benchmarks/first_run.py times a later start to the metrics).
    Once per session, and a sleep: no CPU. (A timer fragment whose first tick reran the page did the same, but its
    ticks went on until that rerun started, and under a class's load the server drowned in them.)"""
    time.sleep(FIRST_PAINT_S)


def _state() -> tuple:
    s = st.session_state
    return s.get("mode"), s.get("method"), s.get("budget"), s.get("sparsity"), s.get("preset")


def main() -> None:
    runner_race.install()  # before any fragment's timer can lose a run (ui/services/runner_race.py)
    st.set_page_config(page_title="obd · pruning lab", page_icon="✂️", layout="wide")
    problems = init_state_from_url()
    hold_controls()
    if bad_lesson := lesson.start_from_url(VIEWS):
        problems.append(bad_lesson)
    problems += classroom.read_link(VIEWS)
    if problems:  # shown until the first control is moved (polls rerun the page too)
        st.session_state.url_problems = (problems, _state())
    painted = st.session_state.get("painted", False)  # this session's first run has paused for the metrics
    present = bool(st.session_state.get("present"))
    if present:
        st.html(PRESENT_CSS)
    else:
        st.title("obd — pruning lab")
    st.html(METRIC_CSS + classroom.hide_css(VIEWS))
    problems, at = st.session_state.get("url_problems", ([], None))
    for p in problems if at == _state() else ():
        st.warning(p)
    try:
        models.data()
    except DataError as e:
        st.error(f"MNIST could not be loaded. {e}")
        st.stop()
    chosen = model_ui(present)
    c, k = controls_ui(present)
    remember_controls()
    write_url()
    try:
        key = shown_model(chosen)
        net = models.network(key)
    except (ValueError, LookupError) as e:  # obd.training.model.ModelFileError is a ValueError
        st.error(f"The model could not be loaded: {plain_text(str(e))}")  # an upload's message quotes its file
        st.stop()
    st.caption(
        f"Model: {key.label()} · {' → '.join(map(str, net.sizes))} · {c.method} {c.mode} pruning "
        f"at {k} % ({c.budget} budget)"
        + (f" · fed {net.describe_input()}" if key.kind == "upload" else "")  # which pixels an upload takes
    )
    phone_slider()
    v = View(key, c, k, present, painted)
    beside = present and bool(st.session_state.get("lesson"))  # a projector's lesson: the step beside its view
    lesson_box = st.container()  # above the numbers it quotes, filled once they exist
    v = dataclasses.replace(v, cur=metrics.render(v), tabs=VIEWS)
    if beside:  # 1280x720: the metrics, then the step's text and buttons in a column left of the open view
        lesson_box, view_box = st.columns(PRESENT_COLUMNS, gap="medium")
    else:
        view_box = st.container()
    with lesson_box:
        lesson.render(v)
    with view_box:
        tabs = st.tabs(VIEWS, key="view", bind="query-params")  # lazy: only the open tab's code runs
    if not painted:
        _let_the_metrics_paint()
        st.session_state.painted = True
        v = dataclasses.replace(v, painted=True)
    for name, tab in zip(VIEWS, tabs):
        if tab.open:
            with tab:
                route(name, v)
    metrics.poll_latency(v)
    workarounds.freeze_imports()  # keeps Streamlit's collection after each run from rescanning modules loaded since


if __name__ == "__main__":
    main()
