"""The dashboard through Streamlit's AppTest: it runs, its numbers are obd's, the URL holds the state,
hostile addresses and bad uploads give messages instead of tracebacks. Uses the `tiny` preset (trains in
seconds into the test session's temporary cache)."""

import base64
import json
import re
import time

import numpy as np
import pytest
from apptest import APP, TIMEOUT, open_app, settle, shown
from streamlit.testing.v1 import AppTest

from obd.core.config import preset_spec
from obd.core.network import from_keras
from obd.core.pruning import report
from obd.methods.registry import plan
from obd.runtime.evaluate import evaluate, fit_pixels
from obd.training.model import build_model, save_model
from ui.views.metrics import count_text


def metric(at: AppTest, label: str):
    return next(m for m in at.metric if m.label == label)


def expected(net, mnist, method, mode, pct, budget="layer"):
    pruned = plan(net, method, mode, budget).prune(pct / 100)
    return evaluate(pruned.net, mnist.x_test, mnist.y_test, engine="auto"), report(pruned)


def assert_metrics_match(at, net, mnist, method, mode, pct, budget="layer"):
    ev, rep = expected(net, mnist, method, mode, pct, budget)
    dense = evaluate(net, mnist.x_test, mnist.y_test)
    assert not at.exception, at.exception
    assert metric(at, "Test accuracy").value == f"{100 * ev.accuracy:.2f} %"
    assert metric(at, "Test accuracy").delta == f"{100 * (ev.accuracy - dense.accuracy):+.2f} pts vs dense"
    assert metric(at, "Test loss").value == f"{ev.loss:.4f}"
    assert metric(at, "Weights kept").value == f"{rep.kept_weights:,}"
    assert (
        metric(at, "Weights kept").delta
        == f"in use {count_text(rep.effective_weights)} · {count_text(rep.flops)} FLOPs/image"
    )  # honest counts
    assert metric(at, "Units kept").value == f"{rep.kept_units:,}"
    assert metric(at, "Units kept").delta == f"of {rep.total_units:,} hidden"


def test_app_starts_from_a_url_and_shows_obds_numbers(tiny, mnist):
    at = open_app(mode="unit", sparsity="90")
    assert at.slider(key="sparsity").value == 90 and at.segmented_control(key="mode").value == "unit"
    assert_metrics_match(at, tiny, mnist, "magnitude", "unit", 90)
    assert not at.warning and not at.error
    lat = metric(at, "Latency, batch 100")  # the tiny net runs in microseconds: never shown as "0.0 ms"
    assert re.fullmatch(r"[1-9]\d* µs|[1-9][\d.]* ms", lat.value), lat.value
    engine = r"(shrunk|sparse)"
    head = rf"(\d+\.\d(–\d+\.\d)?× (faster|slower) · {engine}|no faster · {engine}|dense: no engine faster)"
    tail = r" · batch 100 · FLOPs \d+\.\d×( · above FLOPs: cache)?( · noisy)?"
    assert re.fullmatch(head + tail, lat.delta), lat.delta


def test_the_latency_headline_and_the_inside_text_word_one_reading_alike(tiny, mnist):
    """The chip's speed-up and the Inside view's explanation come from one reading and one function."""
    at = settle(open_app(view="Inside", mode="unit", sparsity="90"))
    assert not at.exception, at.exception
    chip = metric(at, "Latency, batch 100").delta
    text = " ".join(m.value for m in at.markdown)
    head = chip.split(" · ")[0]  # "5.2× faster", "no faster" or "dense: no engine faster"
    if head.startswith("dense"):
        assert "no engine runs it faster than dense at batch 100" in text
    else:
        assert f"measured {head} than dense" in text and "batch 100;" in text


def test_moving_the_slider_and_the_mode_updates_the_metrics(tiny, mnist):
    at = open_app(mode="weight", sparsity="50")
    assert_metrics_match(at, tiny, mnist, "magnitude", "weight", 50)
    settle(at.slider(key="sparsity").set_value(95).run())
    assert_metrics_match(at, tiny, mnist, "magnitude", "weight", 95)
    settle(at.segmented_control(key="mode").set_value("unit").run())
    assert_metrics_match(at, tiny, mnist, "magnitude", "unit", 95)
    settle(at.selectbox(key="method").set_value("random").run())
    assert_metrics_match(at, tiny, mnist, "random", "unit", 95)


def test_quick_picks_move_the_slider():
    at = open_app(sparsity="10")
    next(p for p in at.get("button_group") if p.label == "Quick picks (%)").set_value(97).run()
    assert at.slider(key="sparsity").value == 97 and not at.exception
    assert next(p for p in at.get("button_group") if p.label == "Quick picks (%)").value is None, (
        "a pick is an action: no pill stays lit when the slider moves on"
    )


def test_state_round_trips_through_the_url():
    at = open_app(mode="weight", sparsity="30")
    at.slider(key="sparsity").set_value(70).run()
    at.segmented_control(key="mode").set_value("unit").run()
    at.segmented_control(key="budget").set_value("global").run()
    params = {k: at.query_params[k] for k in ("mode", "sparsity", "preset", "method", "budget")}
    assert params == {"mode": "unit", "sparsity": "70", "preset": "tiny", "method": "magnitude", "budget": "global"}
    again = open_app(**params)
    assert again.slider(key="sparsity").value == 70 and again.segmented_control(key="mode").value == "unit"
    assert again.segmented_control(key="budget").value == "global"


@pytest.mark.parametrize("mode", ["weight", "unit"])
def test_the_global_budget_gives_obds_global_numbers(tiny, mnist, mode):
    at = open_app(mode=mode, sparsity="80", budget="global")
    assert_metrics_match(at, tiny, mnist, "magnitude", mode, 80, "global")
    layer, _ = expected(tiny, mnist, "magnitude", mode, 80)
    assert metric(at, "Test accuracy").value != f"{100 * layer.accuracy:.2f} %", "the budget changes the result"
    assert "global budget" in at.caption[0].value
    settle(at.segmented_control(key="budget").set_value("layer").run())
    assert_metrics_match(at, tiny, mnist, "magnitude", mode, 80, "layer")


@pytest.mark.slow  # computes the sparsegpt and obs curves
def test_sparsegpt_is_offered_for_weights_only(tiny, mnist):
    at = open_app(mode="weight", sparsity="70", method="sparsegpt")
    assert_metrics_match(at, tiny, mnist, "sparsegpt", "weight", 70)
    settle(at.segmented_control(key="mode").set_value("unit").run())
    options = at.selectbox(key="method").options  # as shown: "obs — Optimal Brain Surgeon, …"
    assert at.selectbox(key="method").value == "obs" and any(o.startswith("obs") for o in options)
    assert not any(o.startswith("sparsegpt") for o in options)
    assert any("switched to obs" in i.value for i in at.sidebar.info)
    assert_metrics_match(at, tiny, mnist, "obs", "unit", 70)
    again = open_app(mode="unit", method="sparsegpt")
    assert any("sparsegpt prunes single weights only" in w.value for w in again.warning)
    assert again.segmented_control(key="mode").value == "weight" and not again.exception


@pytest.mark.parametrize(
    "params, warning",
    [
        ({"sparsity": "abc"}, "sparsity=`'abc'` in the address is not a percent from 0 to 99"),
        ({"sparsity": "150"}, "sparsity=`'150'`"),
        ({"sparsity": "nan"}, "sparsity=`'nan'`"),
        ({"mode": "evil"}, "mode=`'evil'` in the address is not one of weight, unit"),
        ({"method": "<script>"}, "method=`'<script>'`"),
        ({"budget": "all"}, "budget=`'all'` in the address is not one of layer, global"),
    ],
)
def test_hostile_urls_fall_back_with_a_message(params, warning):
    at = open_app(**params)
    assert not at.exception
    assert any(warning in w.value for w in at.warning), [w.value for w in at.warning]
    assert at.metric, "the page still works with the defaults"


def test_a_bad_preset_in_the_url_is_refused(monkeypatch):
    monkeypatch.setenv("OBD_PRESET", "tiny")  # the fallback; the test cache holds no trained challenge net
    at = AppTest.from_file(APP, default_timeout=TIMEOUT)
    at.query_params.update({"preset": "../../etc/passwd", "sparsity": "1"})
    at.run()
    assert not at.exception
    assert any("preset=`'../../etc/passwd'` in the address is not one of" in w.value for w in at.warning)
    assert "preset tiny" in at.caption[0].value


def test_a_corrupt_upload_shows_an_error_and_keeps_the_model(tiny, mnist, tmp_path):
    at = open_app(mode="weight", sparsity="60")
    before = metric(at, "Test accuracy").value
    at.sidebar.file_uploader[0].set_value(
        ("broken.keras", b"PK\x03\x04 this is not a model", "application/octet-stream")
    )
    at.run()
    assert not at.exception
    errors = [shown(e.value) for e in at.sidebar.error]
    assert any("broken.keras" in e and "Keras" in e for e in errors), errors
    assert metric(at, "Test accuracy").value == before
    assert "preset tiny" in at.caption[0].value


def test_a_good_upload_is_used(mnist, tmp_path):
    model = build_model(preset_spec("tiny"), seed=3)  # untrained: about 10 % accuracy, unlike the preset
    path = save_model(model, tmp_path / "mine.keras")
    at = open_app(mode="weight", sparsity="0")
    at.sidebar.file_uploader[0].set_value(("mine.keras", path.read_bytes(), "application/octet-stream"))
    settle(at.run())
    assert not at.exception and "upload" in at.caption[0].value
    acc = evaluate(fit_pixels(from_keras(model), mnist), mnist.x_test, mnist.y_test).accuracy  # the app's pixels
    assert metric(at, "Test accuracy").value == f"{100 * acc:.2f} %"
    assert np.isfinite(acc)


def test_the_curves_switch_to_loss():
    at = open_app(mode="unit", sparsity="80")
    at.segmented_control(key="curve_metric").set_value("loss").run()
    assert not at.exception
    assert at.slider(key="sparsity").value == 80, "changing the plot keeps the state"


def test_an_unknown_preset_in_the_environment_is_named_and_ignored(monkeypatch):
    monkeypatch.setenv("OBD_PRESET", "bogus")
    at = open_app(mode="unit", sparsity="90")  # the address names tiny, so nothing needs training
    assert not at.exception
    assert any("OBD_PRESET=`'bogus'`" in w.value for w in at.warning), [w.value for w in at.warning]
    assert at.selectbox(key="preset").value == "tiny"


@pytest.mark.slow
@pytest.mark.timeout(1000)  # fine-tunes every point of a curve: it waits up to 900 s for them
def test_fine_tuning_the_whole_curve_gradually_draws_a_dotted_curve(tiny, mnist):
    at = open_app(mode="weight", sparsity="90")
    at.number_input(key="ft_epochs").set_value(0.1)
    at.number_input(key="ft_steps").set_value(2)
    settle(next(b for b in at.button if b.label.startswith("Fine-tune the whole curve")).click().run(), timeout=900)
    assert not at.exception and "9 points" in at.success[0].value and "in 2 pruning steps" in at.success[0].value
    traces = json.loads(at.get("plotly_chart")[0].proto.spec)["data"]  # the curves chart comes first
    tuned = next(t for t in traces if t.get("name") == "magnitude, weight, fine-tuned 0.1 ep in 2 steps")
    assert [c[2] for c in tuned["customdata"]] == pytest.approx([25, 50, 60, 70, 80, 90, 95, 97, 99])
    one_shot = next(t for t in traces if t.get("name") == "magnitude, weight")
    assert tuned["y"][-1] > one_shot["y"][-1] + 5, "fine-tuning recovers accuracy at 99 %"
    settle(at.segmented_control(key="budget").set_value("global").run())
    names = [t.get("name") for t in json.loads(at.get("plotly_chart")[0].proto.spec)["data"]]
    assert not any("fine-tuned" in str(n) for n in names), "layer-budget fine-tuning is not drawn for global"


def test_gradual_steps_are_off_for_the_reconstruction_methods():
    at = open_app(mode="weight", sparsity="50", method="obs")
    assert at.number_input(key="ft_steps").disabled and not at.exception


@pytest.mark.slow  # every method's curve, chita's staged one the longest
@pytest.mark.timeout(1000)  # it waits up to 900 s for them
def test_compare_all_methods_draws_every_curve_but_only_in_that_session():
    # the global budget's curves: the layer budget's, which other tests' sessions show, stay magnitude only
    at = open_app(mode="weight", sparsity="60", budget="global")
    other = open_app(mode="weight", sparsity="60", budget="global")
    # chita's staged curve is most of it: a minute or more on a busy 2-core machine
    settle(next(b for b in at.button if b.label == "Compare all methods").click().run(), timeout=900)
    assert not at.exception
    names = {t.get("name") for t in json.loads(at.get("plotly_chart")[0].proto.spec)["data"]}
    expected = {f"{m}, {md}" for m in ("magnitude", "random", "obd", "obd-fisher", "obs") for md in ("weight", "unit")}
    assert expected | {"sparsegpt, weight"} <= names and "sparsegpt, unit" not in names
    for session in (settle(other.run()), open_app(mode="unit", sparsity="10", budget="global")):
        assert session.multiselect(key="extra_methods").value == [], "one session's choice is not another's view"
        shown = {t.get("name") for t in json.loads(session.get("plotly_chart")[0].proto.spec)["data"]}
        assert not any(n and n.startswith(("random", "obs")) for n in shown)


def test_a_reconstruction_point_is_computed_in_the_background_while_the_page_answers(tiny, mnist):
    at = open_app(settled=False, mode="unit", sparsity="73", method="obs", budget="global")  # on no curve
    assert not at.exception
    assert not any(m.label == "Test accuracy" for m in at.metric), "no numbers before they exist"
    assert any("in the background" in i.value for i in at.info) and at.get("progress")
    assert at.slider(key="sparsity").value == 73, "the controls are drawn at once"
    settle(at.slider(key="sparsity").set_value(74).run())  # a control moved while the job runs answers
    assert_metrics_match(at, tiny, mnist, "obs", "unit", 74, "global")


def test_with_others_connected_a_new_magnitude_state_is_a_background_job(tiny, mnist, monkeypatch):
    from ui.services import boards, results
    from ui.services.state import Choice, ModelKey

    at = open_app(mode="unit", sparsity="20")
    monkeypatch.setattr(boards, "alone", lambda: False)  # a class on the server
    at.slider(key="sparsity").set_value(53).run()
    assert not any(m.label == "Test accuracy" for m in at.metric), "the run did not evaluate the new state"
    assert any("in the background" in i.value for i in at.info) and at.get("progress")
    assert results.point_job(ModelKey("preset", "tiny"), Choice("magnitude", "unit", "layer", False), 53) is not None
    assert_metrics_match(settle(at), tiny, mnist, "magnitude", "unit", 53)


def test_the_address_carries_prune_output_and_presenter_mode():
    at = open_app(mode="weight", sparsity="40", prune_output="1", present="1")
    assert at.checkbox(key="prune_output").value and at.toggle(key="present").value
    assert at.query_params["prune_output"] == "1" and at.query_params["present"] == "1"
    assert not at.title, "presenter mode leaves out the title to fit one screen"
    assert any("Weight pruning zeroes single weights" in c.value for c in at.caption), "explanations as text"
    settle(at.checkbox(key="prune_output").uncheck().run())
    assert "prune_output" not in at.query_params and at.query_params["present"] == "1"


def test_a_tab_opens_from_the_address_and_only_it_is_built():
    at = open_app(mode="weight", sparsity="50", view="Weights")
    assert at.selectbox(key="layer").value == 0 and not at.exception
    labels = [b.label for b in at.button]
    assert "Compare all methods" not in labels, "the closed Curves tab is not built"
    settle(at.selectbox(key="layer").set_value(1).run())
    assert at.query_params["view"] == "Weights" and not at.exception


def test_a_sessions_first_run_pauses_after_the_metrics_before_the_tab_and_the_timing(tiny, monkeypatch):
    """The browser paints the metrics row while the first run pauses: no latency timing has started by then (it
    would compete with that paint); the same run then draws the open tab and starts it. Later runs never pause."""
    from app import FIRST_PAINT_S
    from ui.services import boards

    def latency_jobs() -> list:
        return [j for j in boards.board().jobs() if j.key[0] == "latency" and j.key[-1] == 37]

    pauses, real_sleep = [], time.sleep
    monkeypatch.setattr(
        time, "sleep", lambda s: (s == FIRST_PAINT_S and pauses.append(len(latency_jobs())), real_sleep(s))
    )
    at = AppTest.from_file(APP, default_timeout=TIMEOUT)
    at.query_params.update(preset="tiny", mode="weight", sparsity="37")
    at.run()
    assert pauses == [0], "one pause, before any timing of this state"
    assert [m.label for m in at.metric][:2] == ["Test accuracy", "Test loss"] and not at.exception
    assert at.get("plotly_chart") and latency_jobs()
    settle(at.run())
    assert pauses == [0]


def test_the_heatmap_shows_the_methods_saliency(tiny, mnist):
    from obd.methods.registry import calibration, saliency_map

    at = open_app(mode="weight", sparsity="50", method="obd", view="Weights")
    at.selectbox(key="layer").set_value(2).run()  # 64 x 10: drawn as a hoverable heatmap, every value exact
    at.radio(key="colour_by").set_value("saliency").run()
    assert not at.exception
    charts = [json.loads(c.proto.spec) for c in at.get("plotly_chart")]
    fig = next(f for f in charts if f["layout"].get("title", {}).get("text", "").startswith("obd saliency, layer 2"))
    want = saliency_map(tiny, "obd", calibration(mnist))[2]
    mask = plan(tiny, "obd", "weight").prune(0.5).masks[2]
    z = fig["data"][0]["z"]  # plotly sends arrays as base64 typed arrays
    z = np.frombuffer(base64.b64decode(z["bdata"]), dtype=z["dtype"]).reshape([int(n) for n in z["shape"].split(",")])
    np.testing.assert_allclose(z[mask], want[mask], rtol=1e-6)
    assert np.isnan(z[~mask]).all(), "pruned entries are left uncoloured (black)"


def test_the_lesson_sets_the_state_each_step_claims_and_quotes_the_shown_numbers():
    from obd.teach import lesson as steps

    at = open_app(lesson="3")
    s = steps.STEPS[2]
    assert (
        at.segmented_control(key="mode").value,
        at.selectbox(key="method").value,
        at.slider(key="sparsity").value,
    ) == (s.mode, s.method, s.sparsity)
    accuracy = metric(at, "Test accuracy").value
    box = " ".join(m.value for m in at.markdown)
    assert f"Lesson 3/{len(steps.STEPS)} · {s.title}" in box and accuracy in box, "the text quotes the metric"
    settle(next(b for b in at.button if b.label == "Next ▶").click().run())
    s = steps.STEPS[3]
    assert at.query_params["lesson"] == "4" and at.slider(key="sparsity").value == s.sparsity
    assert at.segmented_control(key="mode").value == s.mode
    assert metric(at, "Test accuracy").value in " ".join(m.value for m in at.markdown)
    settle(next(b for b in at.button if b.label == "End lesson").click().run())
    assert "lesson" not in at.query_params and not any(b.label == "Next ▶" for b in at.button)


def test_a_bad_lesson_step_in_the_address_is_named():
    at = open_app(lesson="42")
    assert any("lesson=`'42'` in the address is not a step number from 1 to" in w.value for w in at.warning)
    assert not at.exception and at.metric


@pytest.mark.slow
@pytest.mark.timeout(1000)  # trains mlpnet: it waits up to 900 s for the page to switch
def test_a_first_visit_runs_on_tiny_while_the_chosen_model_trains_then_switches():
    """mlpnet (the small benchmark net: about a minute of training) is not in the test cache: the page opens at once
    on tiny, says so, follows the training, and shows mlpnet by itself when it is done."""
    at = open_app(settled=False, preset="mlpnet", mode="weight", sparsity="50")  # (settled: after the training)
    assert not at.exception and metric(at, "Test accuracy").value, "usable at once"
    assert "preset tiny" in at.caption[0].value
    assert any("The **mlpnet** model is training in the background" in i.value for i in at.info)
    deadline = time.monotonic() + 900
    while "preset mlpnet" not in at.caption[0].value:
        assert time.monotonic() < deadline and not at.exception, "the page never switched to the trained model"
        time.sleep(1.0)
        at.run()
    settle(at)
    assert any("The mlpnet model finished training" in s.value for s in at.success)
    assert "784 → 40 → 20 → 10" in at.caption[0].value and metric(at, "Test accuracy").value


def test_a_cached_model_opens_without_tensorflow(tiny):
    """Later starts are quick because the page never imports TensorFlow for a cached model (4-5 s on 2 cores)."""
    import os
    import subprocess
    import sys

    code = (
        "import sys\nfrom streamlit.testing.v1 import AppTest\n"
        f"at = AppTest.from_file({APP!r}, default_timeout=120)\n"
        "at.query_params.update(preset='tiny', mode='unit', sparsity='50')\nat.run()\n"
        "assert not at.exception, at.exception\nassert [m for m in at.metric if m.label == 'Test accuracy']\n"
        "print('tensorflow' in sys.modules, 'keras' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], env=os.environ, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.split()[-2:] == ["False", "False"], out.stdout


def test_a_busy_server_polls_less_often(monkeypatch):
    from ui.services import boards

    monkeypatch.setattr(boards, "sessions", lambda: 1)
    assert boards.poll_s(0.5) == 0.5 and boards.alone()
    monkeypatch.setattr(boards, "sessions", lambda: boards.POLL_SESSIONS)
    assert boards.poll_s(0.5) == 0.5 and not boards.alone()
    monkeypatch.setattr(boards, "sessions", lambda: 30)
    assert boards.poll_s(0.5) == pytest.approx(0.5 * 30 / boards.POLL_SESSIONS)


def test_while_a_model_trains_a_page_looks_for_its_latency_seldom(monkeypatch):
    # the timing waits for the training (minutes); twice a second, every open page updated beside the training
    from ui.services import boards
    from ui.views import metrics

    monkeypatch.setattr(boards, "sessions", lambda: 1)
    monkeypatch.setattr(boards, "training", lambda: True)
    assert metrics.latency_poll_s() == metrics.HELD_POLL_S >= 10 * metrics.POLL_S
    monkeypatch.setattr(boards, "training", lambda: False)
    assert metrics.latency_poll_s() == metrics.POLL_S
    monkeypatch.setattr(boards, "sessions", lambda: 30)
    assert metrics.latency_poll_s() == boards.poll_s(metrics.POLL_S) > metrics.POLL_S, "and less often on a busy server"


def test_a_page_waiting_for_an_urgent_job_keeps_its_pace_on_a_busy_server(monkeypatch):
    # an URGENT job keeps its priority only while touched within WAITING_S; a look slowed by poll_s came later
    # than that above 32 sessions, and the point fell back behind every curve and timing
    from obd.work.jobs import WAITING_S
    from ui.services import boards

    for n in (1, 30, 100, 1000):
        monkeypatch.setattr(boards, "sessions", lambda n=n: n)
        assert boards.poll_s(0.5, urgent=True) == 0.5 and boards.poll_s(1.0, urgent=True) == 1.0 < WAITING_S
    assert boards.poll_s(1.0) > WAITING_S  # what the other polls do with 1,000 sessions


def test_a_job_whose_result_was_evicted_is_run_again_by_rebuild():
    from ui.services import boards

    runs = []
    key = ("test-rebuild", object())  # a key no other test shares
    first = boards.submit(None, key, [lambda: runs.append(1)])
    assert first.wait(60) and runs == [1]
    assert boards.submit(None, key, [lambda: runs.append(2)]) is first, "submit returns the finished job"
    again = boards.rebuild(None, key, [lambda: runs.append(3)])
    assert again is not first and again.wait(60) and runs == [1, 3]
