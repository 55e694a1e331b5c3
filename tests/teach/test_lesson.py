"""The guided lesson: every step sets a valid state (mode, method, budget, sparsity, view), the state its title
and text claim, and its text is filled from the live numbers of that state, with nothing left unfilled."""

import dataclasses
import re

import pytest

import obd  # noqa: F401  first: it sets the thread runtimes' environment
from obd.figures import plots
from obd.methods.registry import calibration, check_method_mode, plan
from obd.runtime.evaluate import evaluate
from obd.runtime.speedups import Speedup
from obd.teach import facts, lesson
from obd.work.sweep import SweepRecord


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
    assert loss.mode == "weight" and "{loss_first}" in loss.text
    assert "Fine-tune" in lesson.STEPS[-1].text


@pytest.fixture(scope="module")
def rendered(small_net, mnist):
    """Each step's text as the app renders it on the small net: (step, facts, text), with a speed reading and
    magnitude's evaluation at the step's state."""
    calib = calibration(mnist, 256)
    dense_eval = evaluate(small_net, mnist.x_test, mnist.y_test)
    out = []
    for step in lesson.STEPS:
        pruned = plan(small_net, step.method, step.mode, step.budget, calib=calib).prune(step.sparsity / 100)
        ev = evaluate(pruned.net, mnist.x_test, mnist.y_test)
        magnitude = plan(small_net, "magnitude", step.mode, step.budget).prune(step.sparsity / 100)
        baseline = evaluate(magnitude.net, mnist.x_test, mnist.y_test)
        speed = Speedup(2.5, 2.4, 2.6, 3.0, "shrunk", 100)
        f = facts.facts(small_net, pruned, dense_eval, ev, step.method, speed, baseline)
        out.append((step, f, step.render(f.fields())))
    return out


def test_every_placeholder_is_filled_from_the_states_numbers(rendered):
    for step, f, text in rendered:
        assert step.placeholders() <= set(f.fields())
        assert "{" not in text and "}" not in text
        if "{accuracy}" in step.text:
            assert f"{100 * f.accuracy:.2f} %" in text


def test_the_obd_step_says_what_magnitude_keeps_and_why_obd_loses(rendered):
    step, f, text = next(r for r in rendered if r[0].method == "obd")
    assert step.view == "inside" and "see the curves" not in text and "curve" not in text  # no curve on that view
    magnitude = f"{100 * f.baseline_accuracy:.2f} %"
    assert f"magnitude pruning of the same weights at 90 % keeps {magnitude}" in text
    # on this net OBD loses at 90 % (as on the default net): the step says so, by how much, and why
    assert f.baseline_accuracy - f.accuracy > facts.NOISE_POINTS / 100
    assert f"{100 * (f.baseline_accuracy - f.accuracy):.1f} points more than obd" in text
    assert "off-diagonal" in text
    better = dataclasses.replace(f, baseline_accuracy=f.accuracy - 0.05)
    assert "5.0 points less than obd: ranking by the estimated loss pays off" in step.render(better.fields())


def test_the_loss_and_cost_sentences_hold_for_the_states_numbers(rendered):
    for step, f, text in rendered:
        drop = 100 * (f.dense_accuracy - f.accuracy)
        if "{loss_first}" in step.text:
            assert f"from {f.dense_loss:.3f} to {f.loss:.3f}" in text
            first = f.loss > facts.LOSS_FIRST * f.dense_loss and drop < facts.LOSS_FIRST_POINTS
            assert ("the loss sees the damage first" in text) == first
            assert ("neither saw the damage first" in text) != first
        if "{cost}" in step.text:
            assert ("mattered little" in text) == (drop < 1.0) and f"{drop:.1f} points" in text


def test_the_fine_tuning_step_names_the_marker_the_chart_draws(rendered):
    records = [
        SweepRecord("unit", k, 0.9 - k / 2, 0.3, 100, finetune_epochs=epochs) for k in (0.5, 0.9) for epochs in (0, 1)
    ]
    tuned = next(t for t in plots.methods_figure(records).data if t.name and "fine-tuned" in t.name)
    step, _, text = rendered[-1]
    assert f" {tuned.marker.symbol} " in text and "dotted" not in text


def test_the_steps_count_the_same_weights_alike(rendered):
    """Steps 3 and 8 set the same state (unit pruning at 90 %) and name the weights that still work by one count,
    out of the total that step 1 gives."""
    (_, first, one), (s3, f3, three), (s8, _, eight) = rendered[0], rendered[2], rendered[-1]
    assert (s3.mode, s3.method, s3.sparsity) == (s8.mode, s8.method, s8.sparsity)
    working, total = f3.fields()["effective_weights"], first.fields()["total_weights"]
    assert f"{working} of the {total} weights" in three and f"{working} weights that still do work" in eight
    assert f"has {total} weights" in one


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
