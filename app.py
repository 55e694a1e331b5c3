"""obd's dashboard: prune a Keras MLP on MNIST with a slider and see accuracy, latency, weights and curves at once.

Run: streamlit run app.py. This file only draws; every number comes from the obd package. Shared state
(the data, each model's read-only numpy network, pruning plans, evaluations, curves) is cached per process
in caches of bounded size; TensorFlow objects are never shared between sessions, and what one user makes
(fine-tuned points) stays in their session. benchmarks/load.py drives 8 concurrent sessions against it.
"""

from __future__ import annotations

import gc
import hashlib
import math
import os
import tempfile
import threading
from dataclasses import dataclass
from pathlib import Path

import obd  # noqa: F401  first: it sets the thread runtimes' environment, which OpenBLAS reads as numpy loads
import numpy as np
import streamlit as st

from obd import engines, plots
from obd.config import DEFAULT_PRESET, PRESETS, TrainConfig, preset_spec
from obd.data import DataError, load_mnist
from obd.evaluate import evaluate
from obd.finetune import check_gradual
from obd.images import digit_tile
from obd.methods import BUDGET_HELP, METHOD_HELP, METHODS, NEEDS_CALIBRATION, calibration, plan, saliency_map, supports
from obd.model import ModelFileError, cache_dir, cache_path, load_model, trained_model
from obd.network import Network, from_keras
from obd.pruning import BUDGETS, MODES, report
from obd.sweep import DEFAULT_SPARSITIES, load_records, save_records, sweep

QUICK_PICKS = (25, 50, 60, 70, 80, 90, 95, 97, 99)
LATENCY_BATCH = 100  # rows per call for the headline latency: stable enough, and quick to measure per state
DIGITS_SHOWN = 24
PRESET_ENV = "OBD_PRESET"  # the preset a fresh page opens with (a class on slow laptops may want "tiny")
DEFAULTS = {"mode": "weight", "method": "magnitude", "budget": "layer", "sparsity": 90,
            "preset": os.environ.get(PRESET_ENV) if os.environ.get(PRESET_ENV) in PRESETS else DEFAULT_PRESET}


@dataclass(frozen=True)
class ModelKey:
    """Names a base model in the caches: a preset, or an upload by content hash."""

    kind: str  # "preset" or "upload"
    name: str  # the preset's name, or the upload's sha256

    def label(self) -> str:
        return f"preset {self.name}" if self.kind == "preset" else f"upload {self.name[:8]}"


@dataclass(frozen=True)
class Choice:
    """How the model is pruned, apart from the sparsity: what every cached result is keyed by."""

    method: str  # one of obd.methods.METHODS
    mode: str  # "weight" or "unit"
    budget: str  # "layer" or "global"
    prune_output: bool  # prune the logits layer too

    def dense(self) -> "Choice":
        """The reference the metrics compare against (at sparsity 0 every choice is the dense model)."""
        return Choice("magnitude", self.mode, "layer", self.prune_output)


# ---------------------------------------------------------------- cached, shared, read-only state
@st.cache_resource(show_spinner="Loading MNIST…")
def data():
    return load_mnist()


@st.cache_resource
def _train_lock() -> threading.Lock:
    return threading.Lock()  # one training at a time per server: two sessions must not train the same model


@st.cache_resource(max_entries=8, show_spinner="Loading the model…")
def network(key: ModelKey) -> Network:
    """The read-only numpy network of a preset (cached on disk) or an upload (kept in the session's temp file)."""
    if key.kind == "preset":
        model, _, _ = trained_model(preset_spec(key.name), TrainConfig(), data())
    else:
        model = load_model(upload_path(key.name))
    net = from_keras(model)  # the Keras model is dropped here: only read-only arrays are shared
    del model
    # After every run Streamlit calls keras.backend.clear_session() and gc.collect(2); with TensorFlow loaded
    # each full collection rescans millions of long-lived objects (0.3 s per rerun on 2 cores). Freezing them
    # once (they live as long as the process) makes those collections cost milliseconds.
    gc.collect()
    gc.freeze()
    return net


def calib_for(method: str):
    """The shared calibration sample for the methods that read one, else None."""
    return calibration(data()) if method in NEEDS_CALIBRATION else None


@st.cache_resource(max_entries=32, show_spinner="Preparing the pruning method…")
def pruning_plan(key: ModelKey, c: Choice):
    return plan(network(key), c.method, c.mode, c.budget, c.prune_output, calib_for(c.method))


# A pruned default net is 19 MB (kernels and masks); it is only needed within one run (the metrics, latency and
# heatmap of a state; revisits come from the caches below), so one per session running at once is enough.
@st.cache_resource(max_entries=8, show_spinner=False)
def pruned(key: ModelKey, c: Choice, sparsity_pct: int):
    """The pruned network of one state (read-only arrays), shared by the metrics, latency and heatmap."""
    return pruning_plan(key, c).prune(sparsity_pct / 100)


@st.cache_data(max_entries=2048, show_spinner=False)  # ~11 KB each (the predictions): 22 MB when full
def point(key: ModelKey, c: Choice, sparsity_pct: int) -> dict:
    """Everything the page shows for one state, cached so that a revisited state is instant."""
    d = data()
    p = pruned(key, c, sparsity_pct)
    ev = evaluate(p.net, d.x_test, d.y_test, engine="auto")  # shrunk or sparse when that is faster
    return {"accuracy": ev.accuracy, "loss": ev.loss, "predictions": ev.predictions.astype(np.int8),
            "class_accuracy": class_accuracy(ev.predictions, d.y_test), "report": report(p)}


@st.cache_data(max_entries=256, show_spinner=False)
def latency(key: ModelKey, c: Choice, sparsity_pct: int) -> engines.Latency:
    """Dense vs "auto" engine latency on LATENCY_BATCH test images, measured once per state."""
    net = pruned(key, c, sparsity_pct).net
    return engines.latency(net, data().x_test[:LATENCY_BATCH], repeats=3)


@st.cache_data(max_entries=64, show_spinner=False)  # up to 340 KB each for the default net: 22 MB when full
def kernel_chart(key: ModelKey, c: Choice, sparsity_pct: int, layer: int, colour_by: str):
    """The heatmap of one layer for one state (a few hundred KB; cached so revisits cost nothing)."""
    net = network(key)
    p = pruned(key, c, sparsity_pct)
    name = f"{layer}: {net.layers[layer].name} ({net.layers[layer].inputs}×{net.layers[layer].units})"
    if colour_by == "weight":
        return plots.kernel_figure(p.net.layers[layer].kernel, p.masks[layer], f"Layer {name}")
    scores = saliencies(key, c.method)[layer]
    return plots.kernel_figure(scores, p.masks[layer], f"{c.method} saliency, layer {name}", signed=False)


# Per-weight float64 scores: 30 MB for the default net, the same for every sparsity and layer, so computed once.
@st.cache_resource(max_entries=4, show_spinner="Computing saliencies…")
def saliencies(key: ModelKey, method: str) -> list[np.ndarray]:
    """The dense network's per-weight scores of `method`, one array per layer (read-only)."""
    return saliency_map(network(key), method, calib_for(method))


@st.cache_resource(max_entries=8)
def curve_store(key: ModelKey, prune_output: bool) -> tuple[dict, threading.Lock]:
    """A model's curves, (method, mode, budget) -> list of SweepRecord, shared by every session and filled on demand,
    with the lock a session holds while it computes missing ones (so that sessions opening at once wait for one
    computation instead of each repeating it)."""
    return {}, threading.Lock()


def curve_file(key: ModelKey, c: Choice) -> Path:
    """Where a curve is kept on disk: named by the network's weights, so a retrained model gets new curves."""
    budget = "" if c.budget == "layer" else f"-{c.budget}"  # layer-budget curves keep their earlier names
    name = f"{network(key).fingerprint()}-{c.method}-{c.mode}{budget}-{int(c.prune_output)}.json"
    return cache_dir() / "curves" / name


def finetuned_points(key: ModelKey, prune_output: bool) -> dict:
    """This session's fine-tuned curve points of a model, (method, mode, budget, sparsity_pct, epochs, steps) ->
    SweepRecord.

    Kept in the session, not shared: one user's retraining is not another's curve, and the points go when the
    session does."""
    # keyed by plain values: app.py runs afresh on every rerun, so each run's ModelKey is another class
    return st.session_state.setdefault("finetuned", {}).setdefault((key.kind, key.name, prune_output), {})


@st.cache_data(max_entries=16, show_spinner="Measuring latency across sparsities…")
def speed_records(key: ModelKey, batch: int, prune_output: bool) -> list[dict]:
    x = data().x_test
    return engines.bench(network(key), x, ("weight", "unit"), (0.0, 0.5, 0.8, 0.9, 0.95, 0.99), (batch,),
                         repeats=3, prune_output=prune_output)


def class_accuracy(predictions: np.ndarray, labels: np.ndarray) -> np.ndarray:
    return np.array([(predictions[labels == c] == c).mean() for c in range(10)])


# ---------------------------------------------------------------- URL state
def _url_int(value: str | None, default: int) -> int | None:
    try:
        v = float(value) if value is not None else default
    except ValueError:
        return None
    return int(round(v)) if math.isfinite(v) and 0 <= v <= 99 else None


def init_state_from_url() -> list[str]:
    """Seed the widgets from ?mode=&method=&budget=&sparsity=&preset= once per session; returns problems to show."""
    if "url_read" in st.session_state:
        return []
    st.session_state.url_read = True
    q, problems = st.query_params, []
    if os.environ.get(PRESET_ENV, DEFAULT_PRESET) not in PRESETS:
        problems.append(f"{PRESET_ENV}={os.environ[PRESET_ENV]!r} is not one of {', '.join(PRESETS)}; "
                        f"opening {DEFAULT_PRESET}.")
    checks = {"mode": MODES, "method": METHODS, "budget": BUDGETS, "preset": tuple(PRESETS)}
    for name, valid in checks.items():
        value = q.get(name, DEFAULTS[name])
        if value not in valid:
            problems.append(f"{name}={value!r} in the address is not one of {', '.join(valid)}; using {DEFAULTS[name]}.")
            value = DEFAULTS[name]
        st.session_state[name] = value
    if not supports(st.session_state.method, st.session_state.mode):
        problems.append(f"{st.session_state.method} prunes single weights only; showing weight pruning.")
        st.session_state.mode = "weight"
    k = _url_int(q.get("sparsity"), DEFAULTS["sparsity"])
    if k is None:
        problems.append(f"sparsity={q.get('sparsity')!r} in the address is not a percent from 0 to 99; "
                        f"using {DEFAULTS['sparsity']}.")
        k = DEFAULTS["sparsity"]
    st.session_state.sparsity = k
    return problems


def write_url(preset: str) -> None:
    st.query_params.update(mode=st.session_state.mode, method=st.session_state.method,
                           budget=st.session_state.budget, sparsity=str(st.session_state.sparsity), preset=preset)


# ---------------------------------------------------------------- sidebar
def _pick_sparsity() -> None:
    if st.session_state.get("quick") is not None:
        st.session_state.sparsity = int(st.session_state.quick)


def upload_path(digest: str) -> Path:
    """Where a checked upload lives, named by its content so that every session shares one copy."""
    return Path(tempfile.gettempdir()) / f"obd-upload-{digest}.keras"


def _upload_key(upload) -> ModelKey | None:
    """Validate an upload; on success remember it, on failure show why and keep the previous model."""
    raw = upload.getvalue()
    digest = hashlib.sha256(raw).hexdigest()
    if st.session_state.get("upload_digest") == digest:
        return ModelKey("upload", digest)
    path = upload_path(digest)
    # Each session checks its own copy: two sessions uploading the same file at once must not read (or delete)
    # a copy the other is still writing. Only a checked file takes the shared name, atomically.
    fd, mine = tempfile.mkstemp(prefix=f".obd-upload-{digest}.", suffix=".keras")
    with os.fdopen(fd, "wb") as f:
        f.write(raw)
    try:
        load_model(mine)
    except ModelFileError as e:
        os.unlink(mine)
        st.sidebar.error(f"{upload.name}: {str(e).split(': ', 1)[-1]}")
        return None
    os.replace(mine, path)
    st.session_state.upload_digest = digest
    return ModelKey("upload", digest)


def model_ui() -> ModelKey:
    """Preset or upload; returns the key of the model to use (a failed upload keeps the previous one)."""
    st.sidebar.header("Model")
    preset = st.sidebar.selectbox("Preset", list(PRESETS), key="preset",
                                  help="challenge: 784-1000×4-10, no bias · notebook: 784-1000-1000-500-200-10 · "
                                       "tiny: 784-128-64-10, trains in seconds")
    upload = st.sidebar.file_uploader("…or upload a .keras MLP (Dense layers, 784 → 10)", type=["keras"])
    key = ModelKey("preset", preset)
    if upload is not None:
        key = _upload_key(upload) or st.session_state.get("model_key", key)
    st.session_state.model_key = key
    return key


def _on_mode() -> None:
    if not supports(st.session_state.method, st.session_state.mode):
        st.session_state.method_note = (f"{st.session_state.method} prunes single weights only: "
                                        "switched to obs for units.")
        st.session_state.method = "obs"  # the reconstruction method that also removes units


def controls_ui() -> tuple[Choice, int]:
    """Mode, method, budget, sparsity (percent) and whether the output layer is pruned."""
    st.sidebar.header("Pruning")
    mode = st.sidebar.segmented_control("Mode", MODES, key="mode", required=True, on_change=_on_mode,
                                        help="weight: single weights · unit: whole neurons (columns)")
    methods = [m for m in METHODS if supports(m, mode)]
    method = st.sidebar.selectbox("Method", methods, key="method", format_func=lambda m: f"{m} — {METHOD_HELP[m]}")
    if note := st.session_state.pop("method_note", None):
        st.sidebar.info(note)
    budget = st.sidebar.segmented_control("Budget", BUDGETS, key="budget", required=True,
                                          help=" · ".join(f"{b}: {h}" for b, h in BUDGET_HELP.items()))
    sparsity = st.sidebar.slider("Sparsity (%)", 0, 99, step=1, key="sparsity",
                                 help="the share of the hidden layers' weights (or units) removed: in each layer "
                                      "(layer budget) or in all of them together (global)")
    st.sidebar.pills("Quick picks (%)", QUICK_PICKS, key="quick", on_change=_pick_sparsity)
    prune_output = st.sidebar.checkbox("Prune the output layer too", value=False, key="prune_output")
    return Choice(method, mode, budget, prune_output), sparsity


# ---------------------------------------------------------------- model loading with first-time training
def ensure_trained(key: ModelKey) -> None:
    """Train a preset the first time, with a progress bar; later starts load it from the disk cache."""
    if key.kind != "preset" or cache_path(preset_spec(key.name), TrainConfig()).is_file():
        return
    with _train_lock():
        if cache_path(preset_spec(key.name), TrainConfig()).is_file():
            return
        bar = st.progress(0.0, text=f"Training the {key.name} model once (it is cached afterwards)…")

        def show(p) -> None:
            bar.progress(p.step / p.steps, text=f"Training {key.name}: epoch {p.epoch}/{p.epochs}, batch "
                                                  f"{p.step}/{p.steps}, accuracy so far {100 * p.accuracy:.2f} %")

        trained_model(preset_spec(key.name), TrainConfig(), data(), show)
        bar.empty()


# ---------------------------------------------------------------- page sections
def metrics_ui(key: ModelKey, c: Choice, k: int) -> dict:
    """The top row: accuracy and loss against the dense model, weights and units kept, latency; returns the
    state's cached results for the tabs below."""
    dense = point(key, c.dense(), 0)
    cur = point(key, c, k)
    r = cur["report"]
    col = st.columns(5)
    col[0].metric("Test accuracy", f"{100 * cur['accuracy']:.2f} %",
                  f"{100 * (cur['accuracy'] - dense['accuracy']):+.2f} pts vs dense")
    col[1].metric("Test loss", f"{cur['loss']:.4f}", f"{cur['loss'] - dense['loss']:+.4f} vs dense",
                  delta_color="inverse")
    col[2].metric("Weights kept", f"{r.kept_weights:,}",
                  f"{r.compression:.1f}× smaller" if r.kept_weights else "none kept", delta_color="off",
                  delta_arrow="off", help=f"of {r.total_weights:,}; {r.effective_weights:,} still fed by a live unit")
    col[3].metric("Units kept", f"{r.kept_units:,}", f"of {r.total_units:,} hidden", delta_color="off",
                  delta_arrow="off")
    lat = latency(key, c, k)  # timed after the others are on screen
    col[4].metric(f"Latency, batch {LATENCY_BATCH:,}", ms_text(lat.engine_ms),
                  speedup_text(lat.speedup, lat.engine), delta_color="off", delta_arrow="off",
                  help=f"dense: {ms_text(lat.dense_ms)}; the engine is the one obd.engines picks (auto)")
    return cur


def ms_text(ms: float) -> str:
    """A duration with three significant digits, in µs below a millisecond: "0.412 ms" would read as zero at .1f."""
    return f"{ms * 1000:.0f} µs" if ms < 1 else f"{ms:.3g} ms" if ms < 100 else f"{ms:.0f} ms"


def speedup_text(ratio: float, engine: str) -> str:
    """Short enough for a metric's delta: "5.2× faster · shrunk", "1.1× slower · sparse"."""
    return f"{ratio:.1f}× faster · {engine}" if ratio >= 1 else f"{1 / ratio:.1f}× slower · {engine}"


def _on_curve_click() -> None:
    points = st.session_state.curves_chart.selection.points
    if points and "customdata" in points[0]:
        method, mode = points[0]["customdata"][:2]
        st.session_state.method, st.session_state.mode = method, mode
        st.session_state.sparsity = int(round(points[0]["x"]))


def _fill_curves(key: ModelKey, store: dict, wanted: list[Choice]) -> None:
    """Put every wanted curve in the shared store, keyed (method, mode, budget): from disk if saved, else computed
    with a progress bar and saved. The caller holds the store's lock."""
    for c in wanted:
        if curve_id(c) not in store and (saved := load_records(curve_file(key, c))) is not None:
            store[curve_id(c)] = saved
    missing = [c for c in wanted if curve_id(c) not in store]
    if not missing:
        return
    bar = st.progress(0.0, text="Computing accuracy-vs-sparsity curves (once per model)…")
    for i, c in enumerate(missing):
        def show(step, i=i, c=c) -> None:
            bar.progress((i + step.done / step.total) / len(missing),
                         text=f"Curves: {c.method}, {c.mode} pruning ({c.budget} budget) at {100 * step.sparsity:g} %")
        store[curve_id(c)] = sweep(network(key), DEFAULT_SPARSITIES, [c.mode], x=data().x_test, y=data().y_test,
                                   prune_output=c.prune_output, progress=show, methods=[c.method], budget=c.budget,
                                   calib=calib_for(c.method), engine="auto")
        save_records(store[curve_id(c)], curve_file(key, c))
    bar.empty()


def curve_id(c: Choice) -> tuple[str, str, str]:
    """A curve's key in the shared store: plain values, since each rerun of app.py defines Choice anew."""
    return c.method, c.mode, c.budget


def computed_methods(key: ModelKey, c: Choice, store: dict) -> list[str]:
    """The methods whose curves (every mode they support) exist already, in the shared store or on disk."""
    def have(curve: Choice) -> bool:
        return curve_id(curve) in store or curve_file(key, curve).is_file()
    return [m for m in METHODS
            if all(have(Choice(m, md, c.budget, c.prune_output)) for md in MODES if supports(m, md))]


def curves_ui(key: ModelKey, c: Choice, k: int) -> None:
    store, lock = curve_store(key, c.prune_output)
    if "extra_methods" not in st.session_state:  # a new session shows every method computed so far (free)
        st.session_state.extra_methods = [m for m in computed_methods(key, c, store)
                                          if m not in ("magnitude", c.method)]
    shown = dict.fromkeys(("magnitude", c.method) + tuple(st.session_state.extra_methods))
    wanted = [Choice(m, md, c.budget, c.prune_output) for m in shown for md in MODES if supports(m, md)]
    if any(curve_id(w) not in store for w in wanted):
        if not lock.acquire(blocking=False):  # another session is computing them: wait for its results
            with st.spinner("Another session is computing the curves…"):
                lock.acquire()
        try:
            _fill_curves(key, store, wanted)
        finally:
            lock.release()
    records = [r for w in wanted for r in store[curve_id(w)]]
    records += [r for r in finetuned_points(key, c.prune_output).values() if r.budget == c.budget]
    metric = st.segmented_control("Plot", ["accuracy", "loss"], default="accuracy", key="curve_metric",
                                  required=True)
    fig = plots.methods_figure(records, current=(c.method, c.mode, k / 100), metric=metric)
    for trace in fig.data:  # let a click on a curve move the controls there
        meta = trace.name.split(", ")
        if len(meta) >= 2 and meta[0] in METHODS and meta[1] in MODES:
            trace.customdata = [[meta[0], meta[1]]] * len(trace.x)
    st.plotly_chart(fig, key="curves_chart", on_select=_on_curve_click, selection_mode="points")
    st.caption(f"{c.budget.capitalize()} budget. Click a point to jump there. Colour = method, dashed = unit pruning, "
               "dotted = fine-tuned.")
    others = [m for m in METHODS if m not in ("magnitude", c.method)]  # magnitude, the baseline, is always drawn
    cols = st.columns([4, 1])
    cols[0].multiselect("Curves of other methods (magnitude's are always drawn)", others, key="extra_methods",
                        help="the first time, a curve is computed (obs and sparsegpt reconstruct every point: about "
                             "a minute each for the default net), then kept on disk and shown to every session")
    cols[1].button("Compare all methods", on_click=lambda: st.session_state.update(extra_methods=others),
                   disabled=set(others) <= set(st.session_state.extra_methods))


def finetune_ui(key: ModelKey, c: Choice, k: int) -> None:
    """Fine-tune this point or the whole curve with the masks fixed, optionally pruning gradually; the results
    join the curves chart as dotted lines (this session only)."""
    try:
        check_gradual(c.method, c.mode)
        gradual_ok = True
    except ValueError:
        gradual_ok = False
    if done_text := st.session_state.pop("finetune_done", None):
        st.success(done_text)
    cols = st.columns([1, 1, 2, 2])
    epochs = cols[0].number_input("Epochs", 0.1, 5.0, 1.0, 0.1, key="ft_epochs",
                                  help="fine-tuning epochs per point, fractions allowed (~18 s an epoch for the "
                                       "default net on 2 cores; seconds for tiny)")
    steps = cols[1].number_input("Pruning steps", 1, 10, 1, key="ft_steps", disabled=not gradual_ok,
                                 help="1: prune once, then fine-tune · more: prune gradually (tfmot's "
                                      "PolynomialDecay), fine-tuning between the steps (not obs or sparsegpt)")
    steps = int(steps) if gradual_ok else 1
    curve = [x for x in DEFAULT_SPARSITIES if x > 0]
    this_point = cols[2].button(f"Fine-tune this point ({c.method}, {c.mode}, {k} %)")
    whole_curve = cols[3].button(f"Fine-tune the whole curve ({len(curve)} points)")
    ks = curve if whole_curve else [k / 100] if this_point else None
    if ks is None:
        return
    d = data()
    bar = st.progress(0.0, text="Fine-tuning…")
    done = [0]

    def point_started(step) -> None:
        done[0] = step.done // 2  # each point gives a one-shot and a fine-tuned record

    def batch_done(p) -> None:
        part = (p.stage - 1 + p.step / p.steps) / p.stages
        bar.progress((done[0] + part) / len(ks), text=f"Fine-tuning at {100 * p.sparsity:.3g} % (point "
                     f"{done[0] + 1}/{len(ks)}, step {p.stage}/{p.stages}): batch {p.step}/{p.steps}, "
                     f"training accuracy {100 * p.accuracy:.2f} %")

    records = sweep(network(key), ks, [c.mode], x=d.x_test, y=d.y_test, prune_output=c.prune_output,
                    progress=point_started, methods=[c.method], budget=c.budget, calib=calib_for(c.method),
                    finetune_epochs=float(epochs), train_data=d, gradual_steps=steps, train_progress=batch_done,
                    plans=[pruning_plan(key, c)])
    bar.empty()
    mine = finetuned_points(key, c.prune_output)
    for tuned in records[1::2]:
        mine[(c.method, c.mode, c.budget, round(100 * tuned.sparsity), tuned.finetune_epochs, steps)] = tuned
    how = f" in {steps} pruning steps" if steps > 1 else ""
    if len(ks) == 1:
        done_text = (f"Fine-tuned for {epochs:g} epochs{how}: test accuracy {100 * records[1].accuracy:.2f} % "
                     f"(one-shot: {100 * records[0].accuracy:.2f} %). Its point is on the curves chart.")
    else:
        done_text = f"Fine-tuned {len(ks)} points for {epochs:g} epochs each{how}; the dotted curve is on the chart."
    st.session_state.finetune_done = done_text
    st.rerun()  # the chart above was drawn before these points existed


def weights_ui(key: ModelKey, c: Choice, k: int, cur: dict) -> None:
    net = network(key)
    names = [f"{i}: {l.name} ({l.inputs}×{l.units})" for i, l in enumerate(net.layers)]
    cols = st.columns([2, 2])
    i = cols[0].selectbox("Layer", range(len(names)), format_func=lambda j: names[j], key="layer")
    show = cols[1].radio("Colour by", ["weight", "saliency"], horizontal=True, key="colour_by",
                         help=f"saliency: the {c.method} score that decides what is pruned")
    st.plotly_chart(kernel_chart(key, c, k, i, show), key="kernel_chart")
    st.plotly_chart(plots.layer_sparsity_figure(cur["report"]), key="layer_chart")


def predictions_ui(key: ModelKey, c: Choice, cur: dict) -> None:
    d = data()
    dense = point(key, c.dense(), 0)
    dense_pred = dense["predictions"]
    pred = cur["predictions"]
    changed = np.flatnonzero(dense_pred != pred)
    same = np.flatnonzero(dense_pred == pred)
    shown = np.concatenate([changed, same])[:DIGITS_SHOWN]
    st.write(f"**{len(changed):,}** of {len(pred):,} test digits changed their prediction; "
             f"changed ones first, framed in red (green frame: still right, grey: wrong in both).")
    cols = st.columns(8)
    for j, idx in enumerate(shown):
        right = pred[idx] == d.y_test[idx]
        frame = (220, 30, 30) if idx in set(changed) else ((40, 170, 60) if right else (150, 150, 150))
        cols[j % 8].image(digit_tile(d.x_test[idx], frame), caption=f"label {d.y_test[idx]} · dense {dense_pred[idx]} "
                          f"· pruned {pred[idx]}")
    st.plotly_chart(plots.class_accuracy_figure(dense["class_accuracy"], cur["class_accuracy"]), key="class_chart")


def speed_ui(key: ModelKey, mode: str, k: int, prune_output: bool) -> None:
    batch = st.segmented_control("Batch size", [1, 100, 10_000], default=10_000, key="speed_batch", required=True)
    st.caption("Measured on this machine: the dense engine, the sparse kernel (weight pruning) and the physically "
               "shrunk network (unit pruning), against the ideal (FLOP-proportional) latency.")
    if not st.toggle("Measure (a few seconds; ~30 s at batch 10,000 for the default net)", key="speed_on"):
        return
    records = speed_records(key, int(batch), prune_output)
    st.info(plots.speed_reading(records, k / 100, int(batch)))
    st.plotly_chart(plots.speed_figure(records, int(batch), current=k / 100), key="speed_chart")


ABOUT = r"""
**Pruning** deletes parts of a trained network and asks what that costs. A Keras `Dense` kernel has shape
(inputs, units); a column is one output unit.

* **Weight pruning** (unstructured) at sparsity $k$: in each pruned kernel of $n$ entries, zero the
  $\mathrm{round}(k\,n)$ entries with the smallest $|w|$.
* **Unit pruning** (structured) at $k$: in each pruned kernel of $c$ columns, zero the $\mathrm{round}(k\,c)$
  columns with the smallest $\lVert w_{:,j}\rVert_2$, and their biases; the unit then outputs exactly 0.
  The count comes from the columns, never the rows.
* The output (logits) layer is left whole unless you tick the box.

**Optimal Brain Damage** (LeCun, Denker & Solla, 1990) estimates how much the loss $L$ grows when weight
$w_k$ is deleted, from a second-order Taylor expansion at a trained minimum (gradient ≈ 0) with the Hessian's
off-diagonal terms ignored:

$$ s_k = \tfrac12\, h_{kk}\, w_k^2, \qquad h_{kk} = \frac{\partial^2 L}{\partial w_k^2}. $$

Magnitude pruning is the special case $h_{kk} = 1$. **obd** uses the Gauss-Newton diagonal, which for a ReLU
network is the exact $h_{kk}$; **obd-fisher** uses the empirical Fisher diagonal (the mean squared per-example
gradient), a common stand-in that understates $h_{kk}$ on images the network already gets right.
**Optimal Brain Surgeon** (Hassibi & Stork, 1993) keeps the
off-diagonal terms: deleting $w_q$ costs $w_q^2 / (2[H^{-1}]_{qq})$ and the other weights move by
$\delta w = -\frac{w_q}{[H^{-1}]_{qq}} H^{-1} e_q$ to compensate. obd applies it layer by layer with
$H = X^\top X$ from a calibration sample of the layer's inputs (as Optimal Brain Compression and SparseGPT do):
**obs** chooses the weights to drop by that cost, then refits every column's kept weights by least squares;
**sparsegpt** (Frantar & Alistarh, 2023) goes through the inputs in order, dropping each one's chosen weights and
spreading the error over the inputs not yet passed, which is cheaper and, at high sparsity, clearly worse.

OBD was meant for small steps with retraining in between: in one shot, its diagonal Hessian can rank worse than
plain magnitude. The curves show what each method buys, measured, not promised.
"""


def main() -> None:
    st.set_page_config(page_title="obd · pruning lab", page_icon="✂️", layout="wide")
    problems = init_state_from_url()
    st.title("obd — pruning lab")
    for p in problems:
        st.warning(p)
    try:
        data()
    except DataError as e:
        st.error(f"MNIST could not be loaded. {e}")
        st.stop()
    key = model_ui()
    c, k = controls_ui()
    write_url(st.session_state.preset)
    try:
        ensure_trained(key)
        network(key)
    except (ModelFileError, ValueError) as e:
        st.error(f"The model could not be loaded: {e}")
        st.stop()
    st.caption(f"Model: {key.label()} · {' → '.join(map(str, network(key).sizes))} · {c.method} {c.mode} pruning "
               f"at {k} % ({c.budget} budget)")
    cur = metrics_ui(key, c, k)
    tabs = st.tabs(["Curves", "Weights", "Predictions", "Speed", "About"])
    with tabs[0]:
        curves_ui(key, c, k)
        finetune_ui(key, c, k)
    with tabs[1]:
        weights_ui(key, c, k, cur)
    with tabs[2]:
        predictions_ui(key, c, cur)
    with tabs[3]:
        speed_ui(key, c.mode, k, c.prune_output)
    with tabs[4]:
        st.markdown(ABOUT)


if __name__ == "__main__":
    main()
