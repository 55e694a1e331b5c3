"""CHITA++ on small problems: the per-example gradients against finite differences, IHT's exact supports and
decreasing objective, the backsolve against a brute-force least squares, and the method end to end."""

import numpy as np
import pytest

from obd.core.network import Layer, Network
from obd.methods.chita import (
    MAX_ENTRIES,
    MIN_GRADIENTS,
    RATIO,
    Projection,
    Quadratic,
    gradients,
    iht,
    plan_chita,
    schedule,
    solve,
    top_eigenvalue,
)
from obd.methods.registry import calibration, plan
from obd.runtime.evaluate import score_logits


@pytest.fixture
def net(rng) -> Network:
    """784-12-10, ReLU, no bias: small enough for every weight to be a variable."""
    k1 = rng.normal(size=(784, 12)).astype(np.float32) * np.float32(0.05)
    k2 = rng.normal(size=(12, 10)).astype(np.float32) * np.float32(0.3)
    return Network((Layer(k1, None, "relu"), Layer(k2, None, "linear")))


@pytest.fixture
def quadratic(rng) -> Quadratic:
    """A CHITA problem with n = 40 gradients of p = 90 weights."""
    g = rng.normal(size=(40, 90)).astype(np.float32)
    w0 = rng.normal(size=90)
    return Quadratic(g, w0, (g.astype(np.float64) @ w0), 0.05)


def test_gradients_are_the_per_example_loss_gradients(net, mnist, rng):
    """G's rows, averaged and scaled back, are the mean loss's gradient: a central difference along a random
    direction of both kernels agrees."""
    x, y = mnist.x_train[:64], mnist.y_train[:64]
    g = gradients(net, [0, 1], x, y)
    assert g.shape == (64, 784 * 12 + 12 * 10)
    mean_grad = g.astype(np.float64).sum(axis=0) / np.sqrt(64)
    d = rng.normal(size=g.shape[1])
    d /= np.linalg.norm(d)
    eps = 1e-3

    def loss(t: float) -> float:
        k1 = net.layers[0].kernel + t * d[: 784 * 12].reshape(784, 12)
        k2 = net.layers[1].kernel + t * d[784 * 12 :].reshape(12, 10)
        moved = net.with_weights([k1.astype(np.float64), k2.astype(np.float64)], [None, None])
        return score_logits(moved.logits(x), y).loss

    assert (loss(eps) - loss(-eps)) / (2 * eps) == pytest.approx(mean_grad @ d, rel=2e-2)


def test_mini_batch_rows_are_the_means_of_their_examples_gradients(net, mnist):
    """With batch b, row i is the mean of examples i*b .. i*b+b-1's gradients (the remainder left out), each
    matrix scaled by 1/sqrt(its rows)."""
    x, y = mnist.x_train[:22], mnist.y_train[:22]
    single = gradients(net, [0, 1], x, y).astype(np.float64) * np.sqrt(22)
    batched = gradients(net, [0, 1], x, y, batch=4).astype(np.float64) * np.sqrt(5)
    assert batched.shape == (5, 784 * 12 + 12 * 10)
    np.testing.assert_allclose(batched, single[:20].reshape(5, 4, -1).mean(axis=1), atol=1e-5)


def test_iht_keeps_exact_counts_and_lowers_the_objective(quadratic):
    blocks = np.repeat([0, 1, 2], 30)
    project = Projection(blocks, np.array([5, 0, 12]))
    w, history = iht(quadratic, project, quadratic.w0, 1.0 / (1.05 * (top_eigenvalue(quadratic.g) + 0.1)))
    assert [(np.flatnonzero(w[blocks == b])).size for b in range(3)] == [5, 0, 12]
    assert len(history) > 2 and all(b <= a for a, b in zip(history, history[1:]))
    assert history[-1] < quadratic.value(np.where(project.support(quadratic.w0), quadratic.w0, 0.0))


@pytest.mark.parametrize("kept", [20, 70])  # |S| < n: the direct solve; |S| > n: Woodbury
def test_the_backsolve_is_the_least_squares_solution_on_the_support(quadratic, kept):
    w, support = solve(quadratic, Projection(np.zeros(90, dtype=np.int64), np.array([kept])))
    assert support.sum() == kept and (w[~support] == 0).all()
    s = np.flatnonzero(support)
    g = quadratic.g.astype(np.float64)
    # brute force: stack the quadratic's two terms as one least-squares problem in w_S
    a = np.vstack([g[:, s], np.sqrt(2 * quadratic.lam) * np.eye(len(s))])
    b = np.concatenate([quadratic.target, np.sqrt(2 * quadratic.lam) * quadratic.w0[s]])
    np.testing.assert_allclose(w[s], np.linalg.lstsq(a, b, rcond=None)[0], rtol=1e-6, atol=1e-8)
    # and the solver's support is at least as good as magnitude's, refit the same way
    by_magnitude = Projection(np.zeros(90, dtype=np.int64), np.array([kept])).support(quadratic.w0)
    assert quadratic.value(w) <= quadratic.value(quadratic.backsolve(by_magnitude)) + 1e-9


def test_chita_prunes_exact_counts_per_layer_and_refuses_what_it_cannot_hold(net, mnist):
    calib = calibration(mnist, 256, validation=256)
    p = plan(net, "chita", "weight", "layer", prune_output=True, calib=calib)
    for k in (0.5, 0.9):
        pruned = p.prune(k)
        assert [int((~m).sum()) for m in pruned.masks] == [round(k * 784 * 12), round(k * 120)]
        for layer, m in zip(pruned.net.layers, pruned.masks):
            assert (layer.kernel[~m] == 0).all()
    with pytest.raises(ValueError, match="single weights only"):
        plan(net, "chita", "unit", calib=calib)
    with pytest.raises(ValueError, match="validation images"):
        plan_chita(net, calib.x, calib.y, None, None, [0, 1], lambda n, k: None)
    wide = MAX_ENTRIES // MIN_GRADIENTS // 784 + 1  # a first layer too wide for MIN_GRADIENTS rows of G
    big = Network(
        (
            Layer(np.zeros((784, wide), np.float32), None, "relu"),
            net.layers[1].replace(np.zeros((wide, 10), np.float32), None),
        )
    )
    with pytest.raises(ValueError, match="use obs for this network"):
        plan_chita(big, calib.x, calib.y, calib.x_val, calib.y_val, [0, 1], lambda n, k: None)


def test_the_schedule_passes_through_the_sweeps_sparsities_in_small_steps():
    """Every deeper path passes through the usual sweep's densities, and no step keeps less than RATIO."""
    path = schedule(0.02)
    assert path[-1] == pytest.approx(0.02) and all(b < a for a, b in zip(path, path[1:]))
    for d in (0.5, 0.4, 0.3, 0.2, 0.1, 0.05):
        assert any(abs(p - d) < 1e-12 for p in path)
    assert min(b / a for a, b in zip([1.0] + path, path)) >= RATIO - 1e-12
    for d in (0.5, 0.3, 0.05):  # a shallower target's path is the start of the deeper one
        assert path[: len(schedule(d))] == pytest.approx(schedule(d))
    assert schedule(0.0)[-1] == 0.0 and schedule(1.0) == [1.0]


def test_a_sweep_shares_one_path_and_chooses_on_validation_images_only(net, mnist, monkeypatch):
    """Pruning at 0.9 reuses the stages of the path to 0.98; every choice is scored on the validation images
    (the plan holds no test image), and the counts stay exact with no layer emptied."""
    calib = calibration(mnist, 256, validation=256)
    p = plan(net, "chita", "weight", "loss-aware", prune_output=True, calib=calib)
    assert p.chita is not None
    seen = []
    scored = p.chita.validation_loss
    monkeypatch.setattr(type(p.chita), "validation_loss", lambda self, n: seen.append(1) or scored.__func__(self, n))
    deep = p.chita.prune(0.98)
    stages = len(p.chita.stages)
    assert stages == len(schedule(0.02))
    shallow = p.chita.prune(0.9)
    assert len(p.chita.stages) == stages  # 0.9 is on the path to 0.98: nothing new computed
    key = tuple(round(d, 12) for d in schedule(0.1))
    assert all(np.array_equal(a, b) for a, b in zip(shallow.masks, p.chita.stages[key][1]))
    for pruned, k in ((deep, 0.98), (shallow, 0.9)):
        kept = [int(m.sum()) for m in pruned.masks]
        assert sum(kept) == round((1 - k) * (784 * 12 + 120)) and min(kept) > 0
    assert seen and len(p.chita.x_val) == 256
    for held in (p.chita.x, p.chita.x_val):  # the gradient sample and the validation images are training images
        assert not any(np.array_equal(held[0], t) for t in mnist.x_test[:2000])
