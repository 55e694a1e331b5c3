"""The explanation paragraph and its sentences, checked against the state they describe: its own counts,
accuracies, losses and speed-up, random pruning never said to remove what mattered least, and what the text says
of blank pixels' curvature, with and without an input normalization. A small real network on real MNIST."""

import numpy as np
import pytest

import obd  # noqa: F401  first: it sets the thread runtimes' environment
from obd.core.network import InputNorm, Network
from obd.core.pruning import report
from obd.methods.registry import calibration, plan
from obd.methods.saliency import hessian_diagonal
from obd.runtime.evaluate import evaluate
from obd.runtime.speedups import Speedup, speedup_text
from obd.teach import facts


@pytest.fixture(scope="module")
def calib(mnist):
    return calibration(mnist, 512)


@pytest.fixture(scope="module")
def dense_eval(small_net, mnist):
    return evaluate(small_net, mnist.x_test, mnist.y_test)


@pytest.mark.parametrize("mode, k", [("unit", 0.75), ("weight", 0.95), ("weight", 0.1)])
def test_the_explanation_quotes_the_states_own_numbers(small_net, mnist, dense_eval, mode, k):
    pruned = plan(small_net, "magnitude", mode).prune(k)
    ev = evaluate(pruned.net, mnist.x_test, mnist.y_test)
    speed = Speedup(3.0, 2.9, 3.1, 4.0, "shrunk", 100)
    f = facts.facts(small_net, pruned, dense_eval, ev, "magnitude", speed=speed)
    text = facts.explanation(f)
    rep = report(pruned)
    if mode == "unit":
        assert f"**{rep.total_units - rep.kept_units:,} of {rep.total_units:,} hidden units removed**" in text
        assert "784×32, 32×16, 16×10" in text  # the shrunk matrices
    else:
        assert f"**{rep.total_weights - rep.kept_weights:,} of {rep.total_weights:,} weights removed**" in text
    assert f"{100 * dense_eval.accuracy:.2f} % → {100 * ev.accuracy:.2f} %" in text
    assert f"measured {speedup_text(speed)}" in text and "3.0× faster than dense (shrunk engine, batch 100" in text
    drop = 100 * (dense_eval.accuracy - ev.accuracy)
    assert ("fell" in text) == (drop >= facts.NOISE_POINTS)
    loss_first = ev.loss > facts.LOSS_FIRST * dense_eval.loss and drop < facts.LOSS_FIRST_POINTS
    assert ("The loss rose" in text) == loss_first
    no_speed = facts.explanation(facts.facts(small_net, pruned, dense_eval, ev))
    assert "speed not measured" in no_speed
    if abs(drop) < facts.NOISE_POINTS and mode == "weight":
        assert "the weights magnitude ranked least important mattered little" in text


@pytest.mark.parametrize("k", [0.05, 0.3, 0.9])
def test_random_pruning_is_never_said_to_remove_what_mattered_least(small_net, mnist, dense_eval, k):
    pruned = plan(small_net, "random", "weight").prune(k)
    ev = evaluate(pruned.net, mnist.x_test, mnist.y_test)
    text = facts.explanation(facts.facts(small_net, pruned, dense_eval, ev, "random"))
    assert "least" not in text and "ranked" not in text
    held = abs(dense_eval.accuracy - ev.accuracy) < facts.NOISE_POINTS / 100
    assert ("picked at random mattered little" in text) == held


def _keras_standardized(net: Network, x: np.ndarray) -> Network:
    """`net` behind the standardization a Keras Normalization layer adapted on `x` computes: (x - mean) /
    max(std, epsilon), with mean and variance of each pixel over `x`."""
    mean, var = x.mean(axis=0, dtype=np.float64), x.var(axis=0, dtype=np.float64)
    return Network(net.layers, net.name, InputNorm.standardize(mean, np.maximum(np.sqrt(var), 1e-7)))


def test_what_the_obd_text_says_of_blank_pixels_holds_with_and_without_an_input_normalization(small_net, mnist, calib):
    for net in (small_net, _keras_standardized(small_net, mnist.x_train[:20_000])):
        pruned = plan(net, "magnitude", "weight").prune(0.9)
        ev = evaluate(pruned.net, mnist.x_test, mnist.y_test)
        f = facts.facts(net, pruned, ev, ev, "obd")
        text = facts.blank_pixels(f)
        h = hessian_diagonal(net, calib.x, calib.y)[0]  # (784, units)
        as_zero = net.prepare(np.zeros((1, 784)))[0] == 0  # (784,) pixels a blank reaches the first layer as 0
        blank_here = (calib.x.reshape(len(calib.x), -1) == 0).all(axis=0)  # (784,) blank in every calibration image
        # what the text claims: h_kk = 0 exactly for weights of pixels blank in every image that stay 0 ...
        assert (h[blank_here & as_zero] == 0).all() and (h[~blank_here] > 0).any()
        if net.input_norm is None:
            assert f.blank_inputs == 0 and "their h_kk = 0 and they go first" in text
            continue
        # ... and h_kk > 0 for those of pixels blank in every calibration image that the normalization moves off 0
        moved = blank_here & ~as_zero
        assert moved.any() and (h[moved].max(axis=1) > 0).all()
        assert f.blank_inputs == int((~as_zero).sum()) and f"at {f.blank_inputs:,} of its 784 inputs" in text
        assert "h_kk > 0" in text and f"only weights from the {784 - f.blank_inputs:,} pixels" in text
