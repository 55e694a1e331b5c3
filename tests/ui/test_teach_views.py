"""The teaching views through Streamlit's AppTest (tiny preset, real MNIST): Draw, Inside, Compare and Downloads
run without exceptions and show obd's own numbers for the state in the address."""

import base64
import json
import time

import numpy as np
from apptest import open_app, settle

from obd.core.pruning import report
from obd.methods.registry import calibration, plan
from obd.methods.saliency import hessian_diagonal
from obd.runtime.evaluate import evaluate
from obd.teach import drawing, explain
from ui.services.state import INSIDE_PARTS as PARTS


def figures(at) -> list[dict]:
    return [json.loads(c.proto.spec) for c in at.get("plotly_chart")]


def array(value) -> np.ndarray:
    """A plotly array from a chart's JSON: a list, or a base64 typed array."""
    if isinstance(value, dict):
        return np.frombuffer(base64.b64decode(value["bdata"]), dtype=value["dtype"]).reshape(
            [int(n) for n in value["shape"].split(",")] if "shape" in value else -1
        )
    return np.asarray(value, dtype=np.float64)


def test_draw_shows_a_hint_on_an_empty_canvas_and_both_networks_on_a_digit(tiny, mnist):
    at = open_app(view="Draw", mode="unit", sparsity="75")
    assert not at.exception, at.exception
    assert drawing.EMPTY_HINT in [i.value for i in at.info]  # AppTest's canvas is empty: a hint, no error
    at.segmented_control(key="draw_source").set_value("Test digit").run()
    at.number_input(key="draw_index").set_value(3).run()
    assert not at.exception, at.exception
    x = drawing.to_mnist(drawing.render(mnist.x_test[3])).x
    dense = explain.probabilities(tiny, x)
    pruned = explain.probabilities(plan(tiny, "magnitude", "unit").prune(0.75).net, x)
    text = " ".join(m.value for m in at.markdown)
    assert (
        f"Dense network: **{dense.argmax()}** ({100 * dense.max():.1f} %) · pruned at 75 %: "
        f"**{pruned.argmax()}** ({100 * pruned.max():.1f} %)"
    ) in text
    bars = next(f for f in figures(at) if f["data"][0].get("type") == "bar")
    np.testing.assert_allclose(array(bars["data"][1]["y"]), 100 * pruned, rtol=1e-6)
    at.slider(key="sparsity").set_value(25).run()  # the slider moves, the digit stays
    pruned = explain.probabilities(plan(tiny, "magnitude", "unit").prune(0.25).net, x)
    text = " ".join(m.value for m in at.markdown)
    assert f"pruned at 25 %: **{pruned.argmax()}** ({100 * pruned.max():.1f} %)" in text


def test_inside_explains_the_state_and_counts_obd_against_magnitude(tiny, mnist):
    pruned = plan(tiny, "magnitude", "unit").prune(0.75)
    rep = report(pruned)
    ev = evaluate(pruned.net, mnist.x_test, mnist.y_test)
    shown = {}  # each part of the view is built only when it is open (?inside=...): open each in turn
    for part in PARTS:
        at = settle(open_app(view="Inside", mode="unit", sparsity="75", inside=part))  # the rankings: a job
        assert not at.exception, at.exception
        text = " ".join(m.value for m in at.markdown)
        assert f"**{rep.total_units - rep.kept_units:,} of {rep.total_units:,} hidden units removed**" in text
        assert f"→ {100 * ev.accuracy:.2f} %" in text
        shown[part] = (text, figures(at))
    calib = calibration(mnist)
    comp = explain.compare(explain.criteria(tiny, hessian_diagonal(tiny, calib.x, calib.y), "unit"), 0.75, 0)
    assert f"OBD keeps {comp.agreement.obd_only:,} units that magnitude deletes" in shown["OBD vs magnitude"][0]
    assert shown["Diagram"][1][0]["layout"]["title"]["text"].startswith("The network")
    survival = next(
        f for f in shown["First layer"][1] if f["layout"]["title"]["text"].startswith("Connections kept per pixel")
    )
    assert np.array_equal(array(survival["data"][0]["z"]).ravel(), pruned.masks[0].sum(axis=1))
    confusion = shown["Confusion matrix"][1][0]
    assert confusion["layout"]["title"]["text"].startswith("Confusion matrix")
    right = array(confusion["data"][0]["z"])
    assert np.nansum(np.diag(right.reshape(10, 10))) == round(ev.accuracy * len(mnist.y_test))


def test_a_lesson_step_opens_the_part_of_inside_its_text_talks_about():
    from obd.teach import lesson

    n = next(i for i, s in enumerate(lesson.STEPS, 1) if s.part)
    assert lesson.STEPS[n - 1].part in PARTS
    at = settle(open_app(lesson=str(n)))
    assert not at.exception, at.exception
    seen = (dict(at.query_params), [m.value[:60] for m in at.markdown], [i.value for i in at.info])
    assert at.query_params.get("inside") == lesson.STEPS[n - 1].part, seen
    assert any("that magnitude deletes" in m.value for m in at.markdown)  # the scatter's part is the one built


def test_compare_sets_b_against_a_and_counts_their_disagreements(tiny, mnist):
    at = open_app(view="Compare", mode="weight", sparsity="90")
    at = settle(at)
    assert not at.exception, at.exception
    assert at.segmented_control(key="compare_mode").value == "unit"  # B starts as the other mode
    a = evaluate(plan(tiny, "magnitude", "weight").prune(0.9).net, mnist.x_test, mnist.y_test)
    b = evaluate(plan(tiny, "magnitude", "unit").prune(0.9).net, mnist.x_test, mnist.y_test)
    values = {m.label: m.value for m in at.metric}
    assert values["A: test accuracy"] == f"{100 * a.accuracy:.2f} %"
    assert values["B: test accuracy"] == f"{100 * b.accuracy:.2f} %"
    differ = int((a.predictions != b.predictions).sum())
    assert f"A and B disagree on **{differ:,}** of 10,000 test digits" in " ".join(m.value for m in at.markdown)
    at.slider(key="compare_sparsity").set_value(50).run()
    at = settle(at)
    b = evaluate(plan(tiny, "magnitude", "unit").prune(0.5).net, mnist.x_test, mnist.y_test)
    assert {m.label: m.value for m in at.metric}["B: test accuracy"] == f"{100 * b.accuracy:.2f} %"
    stars = [t for t in figures(at)[0]["data"] if t.get("text") in (["A"], ["B"])]
    assert [s["customdata"][0][1:] for s in stars] == [["weight", 90], ["unit", 50]]


def test_downloads_offers_both_models_and_the_curves(tiny):
    at = open_app(view="Downloads", mode="unit", sparsity="50")
    at = settle(at)
    assert not at.exception, at.exception
    deadline = time.monotonic() + 300
    while len(labels := [b.proto.label for b in at.get("download_button")]) < 4:  # until both curves exist
        assert time.monotonic() < deadline and not at.exception, "the curves did not finish"
        time.sleep(0.5)
        at.run()
    assert labels == ["Pruned model (.keras)", "Shrunk model (.keras)", "TensorFlow Lite (.tflite)", "Curves (.csv)"]
