"""The guided lesson: every step sets a valid state (mode, method, budget, sparsity, view), the state its title
and text claim, and its text is filled from the live numbers of that state, with nothing left unfilled."""

import re

import pytest

import obd  # noqa: F401  first: it sets the thread runtimes' environment
from obd.methods.registry import calibration, check_method_mode, plan
from obd.runtime.evaluate import evaluate
from obd.teach import explain, lesson


def test_the_lesson_has_six_to_eight_steps_each_a_valid_state():
    assert 6 <= len(lesson.STEPS) <= 8
    for step in lesson.STEPS:
        check_method_mode(step.method, step.mode, step.budget)
        assert isinstance(step.sparsity, int) and 0 <= step.sparsity <= 99 and step.view in lesson.VIEWS


def test_each_step_sets_the_state_its_title_names():
    titles = {s.title: s for s in lesson.STEPS}
    assert [s.sparsity for s in lesson.STEPS][0] == 0  # "what pruning is" starts from the dense network
    for step in lesson.STEPS:
        named = re.search(r"(Weight|Unit) pruning to (\d+) %", step.title)
        if named:
            assert step.mode == named[1].lower() and step.sparsity == int(named[2])
    assert titles["OBD's saliency"].method == "obd" and titles["OBD's saliency"].view == "inside"
    assert titles["OBS rescues unit pruning"].method == "obs" and titles["OBS rescues unit pruning"].mode == "unit"
    speed = next(s for s in lesson.STEPS if "speed" in s.title)
    assert speed.view == "speed" and speed.mode == "unit"  # unit pruning is the one that runs faster
    loss = next(s for s in lesson.STEPS if "loss" in s.title)
    assert loss.mode == "weight" and "{loss}" in loss.text and "{dense_loss}" in loss.text
    assert "Fine-tune" in lesson.STEPS[-1].text


def test_every_placeholder_is_filled_from_the_states_numbers(small_net, mnist):
    calib = calibration(mnist, 256)
    dense_eval = evaluate(small_net, mnist.x_test, mnist.y_test)
    for step in lesson.STEPS:
        pruned = plan(small_net, step.method, step.mode, step.budget, calib=calib).prune(step.sparsity / 100)
        ev = evaluate(pruned.net, mnist.x_test, mnist.y_test)
        fields = explain.facts(small_net, pruned, dense_eval, ev, step.method, 2.5, "shrunk").fields()
        assert step.placeholders() <= set(fields)
        text = step.render(fields)
        assert "{" not in text and "}" not in text
        if "{accuracy}" in step.text:
            assert f"{100 * ev.accuracy:.2f} %" in text


def test_a_step_number_is_read_from_the_url_or_refused_clearly():
    assert lesson.step_number("1") == 1 and lesson.step_number(len(lesson.STEPS)) == len(lesson.STEPS)
    for bad in ("0", str(len(lesson.STEPS) + 1), "two", None, True):
        with pytest.raises(ValueError, match=f"from 1 to {len(lesson.STEPS)}"):
            lesson.step_number(bad)
    with pytest.raises(ValueError, match="sparsegpt prunes single weights only"):
        lesson.Step("bad", "", mode="unit", method="sparsegpt")
    with pytest.raises(ValueError, match="view must be one of"):
        lesson.Step("bad", "", view="nowhere")
    with pytest.raises(ValueError, match="whole percent"):
        lesson.Step("bad", "", sparsity=100)
