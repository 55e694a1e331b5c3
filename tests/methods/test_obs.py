"""OBS reconstruction against closed forms and brute-force least squares; exact counts; k=0 is the identity."""

from dataclasses import replace

import numpy as np
import pytest

from obd.core.pruning import prune, prune_count
from obd.methods.hessian import DAMPINGS, Validation, choose, gram, inverse, layer_obs, obs_scores, refit
from obd.methods.obs import greedy_unit_order, plan_obs
from obd.methods.registry import calibration, plan
from obd.methods.sparsegpt import sparsegpt
from obd.runtime.evaluate import evaluate


@pytest.fixture
def problem(rng):
    """A small least-squares problem: correlated inputs x (200, 12) and a kernel w (12, 3)."""
    x = rng.normal(size=(200, 12)) @ rng.normal(size=(12, 12))
    return x, rng.normal(size=(12, 3))


def test_single_weight_removal_matches_the_obs_closed_form(problem):
    x, w = problem
    h = gram(x, 0.0)
    hinv = np.linalg.inv(h)
    mask = np.ones(w.shape, dtype=bool)
    qs = [2, 7, 11]
    for j, q in enumerate(qs):
        mask[q, j] = False
    out = refit(h, hinv, w, mask)
    for j, q in enumerate(qs):
        expected = w[:, j] - w[q, j] / hinv[q, q] * hinv[:, q]  # dw = -w_q / [H^-1]_qq * H^-1 e_q
        np.testing.assert_allclose(out[:, j], expected, rtol=1e-5, atol=1e-6)  # refit solves in float32
        assert out[q, j] == 0.0
        # the output error of the update is OBS's predicted cost w_q^2 / [H^-1]_qq
        err = np.sum((x @ (out[:, j] - w[:, j])) ** 2)
        assert err == pytest.approx(obs_scores(w, hinv)[q, j], rel=1e-4)


@pytest.mark.parametrize("drop", [3, 9])  # the kept-weights solve and the removed-weights (OBS) update
def test_refit_is_least_squares_on_the_kept_inputs(problem, rng, drop):
    x, w = problem
    h = gram(x, 0.0)
    mask = np.ones(w.shape, dtype=bool)
    for j in range(w.shape[1]):
        mask[rng.choice(12, drop, replace=False), j] = False
    out = refit(h, np.linalg.inv(h), w, mask)
    for j in range(w.shape[1]):
        keep = mask[:, j]
        best = np.linalg.lstsq(x[:, keep], x @ w[:, j], rcond=None)[0]
        np.testing.assert_allclose(out[keep, j], best, rtol=1e-4, atol=1e-5)
        assert (out[~keep, j] == 0).all()
        masked_err = np.sum((x @ (w[:, j] * keep) - x @ w[:, j]) ** 2)
        assert np.sum((x @ out[:, j] - x @ w[:, j]) ** 2) <= masked_err


def test_greedy_unit_removal_starts_with_the_cheapest_unit(rng):
    a = np.maximum(rng.normal(size=(100, 8)), 0)  # (n, units) ReLU activations
    w_next = rng.normal(size=(8, 5))
    order, costs = greedy_unit_order(a, w_next, 0.0)
    assert sorted(order) == list(range(8))
    brute = []
    for q in range(8):  # remove unit q, refit the next kernel's other rows by least squares
        rest = np.arange(8) != q
        fit = np.linalg.lstsq(a[:, rest], a @ w_next, rcond=None)[0]
        brute.append(np.sum((a[:, rest] @ fit - a @ w_next) ** 2))
    assert order[0] == int(np.argmin(brute))
    assert costs[0] == pytest.approx(min(brute), rel=1e-6)


def test_weighted_greedy_unit_removal_costs_each_output_by_its_weight(rng):
    """The loss-aware order: a step's cost is the next layer's output error weighted per output, checked by brute
    force; weights of one change nothing."""
    a = np.maximum(rng.normal(size=(100, 8)), 0)  # (n, units)
    w_next = rng.normal(size=(8, 5))
    weight = rng.uniform(0.1, 10.0, size=5)  # (outputs,)
    order, costs = greedy_unit_order(a, w_next, 0.0, weight)
    brute = []
    for q in range(8):
        rest = np.arange(8) != q
        fit = np.linalg.lstsq(a[:, rest], a @ w_next, rcond=None)[0]
        brute.append(np.sum(weight * (a[:, rest] @ fit - a @ w_next) ** 2))
    assert order[0] == int(np.argmin(brute))
    assert costs[0] == pytest.approx(min(brute), rel=1e-6)
    plain = greedy_unit_order(a, w_next, 0.0)
    ones = greedy_unit_order(a, w_next, 0.0, np.ones(5))
    assert np.array_equal(plain[0], ones[0]) and np.allclose(plain[1], ones[1])


def naive_sparsegpt(h, w, count, block):
    """SparseGPT spelled out with explicit inverses: input i's removed weights are dropped by OBS over the
    inputs i.. not yet processed (H^-1 of H[i:, i:]); masks are chosen per block by w^2 / [H[i:, i:]^-1]_00."""
    w, d = w.copy(), len(h)
    mask = np.ones(w.shape, dtype=bool)
    for s in range(0, d, block):
        e = min(s + block, d)
        diag = np.array([np.linalg.inv(h[i:, i:])[0, 0] for i in range(s, e)])
        scores = w[s:e] ** 2 / diag[:, None]
        drop = np.argsort(scores, axis=None, kind="stable")[: count * e // d - count * s // d]
        mask[s:e].flat[drop] = False
        for i in range(s, e):
            hinv = np.linalg.inv(h[i:, i:])
            for j in np.flatnonzero(~mask[i]):
                w[i:, j] -= w[i, j] / hinv[0, 0] * hinv[:, 0]
    return np.where(mask, w, 0.0), mask


@pytest.mark.parametrize("block", [4, 5, 12])  # several blocks (one ragged), and one block for all inputs
@pytest.mark.parametrize("count", [0, 7, 20])
def test_sparsegpt_matches_the_explicit_reference(problem, block, count):
    x, w = problem
    h = gram(x, 0.01)
    out, mask = sparsegpt(h, w, count, block)
    ref, ref_mask = naive_sparsegpt(h, w, count, block)
    np.testing.assert_array_equal(mask, ref_mask)
    np.testing.assert_allclose(out, ref, rtol=1e-8, atol=1e-10)
    assert int((~mask).sum()) == count and (out[~mask] == 0).all()
    if count == 0:
        np.testing.assert_array_equal(out, w)


def test_sparsegpt_first_removal_is_the_obs_update(problem):
    """Removing one weight of the first input is single-weight OBS: the output error is w^2 / [H^-1]_qq."""
    x, w = problem
    h = gram(x, 0.0)
    w = w.copy()
    w[0, 0] = 1e-6  # the cheapest entry by far, in the first block
    out, mask = sparsegpt(h, w, 1, 12)
    assert not mask[0, 0] and mask.sum() == w.size - 1
    err = np.sum((x @ (out[:, 0] - w[:, 0])) ** 2)
    assert err == pytest.approx(w[0, 0] ** 2 / np.linalg.inv(h)[0, 0], rel=1e-6)


@pytest.fixture(scope="module")
def calib(mnist):
    return calibration(mnist, 1024)


@pytest.mark.parametrize("mode", ["weight", "unit"])
def test_zero_sparsity_reproduces_the_logits(small_net, calib, mnist, mode):
    p = plan_obs(small_net, calib.x, mode, x_val=calib.x_val).prune(0.0)
    x = mnist.x_test[:500]
    np.testing.assert_array_equal(p.net.logits(x), small_net.logits(x))
    assert all(m.all() for m in p.masks)


@pytest.mark.parametrize("mode", ["weight", "unit"])
@pytest.mark.parametrize("budget", ["layer", "global"])
def test_obs_masks_have_exact_counts_and_zeros(small_net, calib, mode, budget):
    obs = plan(small_net, "obs", mode, budget, calib=calib)
    for k in (0.37, 0.9):
        p = obs.prune(k)
        removed = [int((~m).sum()) if mode == "weight" else int((~m.any(axis=0)).sum()) for m in p.masks]
        sizes = [l.kernel.size if mode == "weight" else l.units for l in small_net.layers[:-1]]
        if budget == "layer":
            assert removed[:-1] == [prune_count(k, n) for n in sizes]
        else:
            assert sum(removed) == prune_count(k, sum(sizes))
        assert removed[-1] == 0, "the output layer is not pruned by default"
        for layer, m in zip(p.net.layers, p.masks):
            assert (layer.kernel[~m] == 0).all()
        assert p.net.sizes == small_net.sizes


@pytest.mark.parametrize(
    "method, mode, k", [("obs", "weight", 0.9), ("obs", "unit", 0.6), ("sparsegpt", "weight", 0.9)]
)
def test_reconstruction_beats_magnitude_without_retraining(small_net, calib, mnist, method, mode, k):
    x, y = mnist.x_test[:2000], mnist.y_test[:2000]
    reconstructed = evaluate(plan(small_net, method, mode, calib=calib).prune(k).net, x, y).accuracy
    magnitude = evaluate(prune(small_net, k, mode).net, x, y).accuracy
    assert reconstructed >= magnitude + 0.01, (method, mode, reconstructed, magnitude)


@pytest.mark.parametrize("budget", ["layer", "global"])
def test_sparsegpt_counts_zeros_and_untouched_output_layer(small_net, calib, budget):
    p = plan(small_net, "sparsegpt", "weight", budget, calib=calib).prune(0.8)
    removed = [int((~m).sum()) for m in p.masks]
    sizes = [l.kernel.size for l in small_net.layers[:-1]]
    if budget == "layer":
        assert removed[:-1] == [prune_count(0.8, n) for n in sizes]
    else:
        assert sum(removed) == prune_count(0.8, sum(sizes))
    assert removed[-1] == 0
    np.testing.assert_array_equal(p.net.layers[-1].kernel, small_net.layers[-1].kernel)  # nothing to spread
    for layer, m in zip(p.net.layers, p.masks):
        assert (layer.kernel[~m] == 0).all()


def test_sparsegpt_refuses_units(small_net, calib):
    with pytest.raises(ValueError, match="single weights only.*for units use obs"):
        plan(small_net, "sparsegpt", "unit", calib=calib)


def test_layer_refit_lowers_the_output_error(small_net, calib):
    """Per layer, the refit kernel's output error on the calibration inputs is at most the masked kernel's."""
    x = calib.x.astype(np.float64)
    w = small_net.layers[0].kernel.astype(np.float64)
    h = gram(x, 0.01)
    hinv = inverse(h)
    mask = ~np.isin(np.arange(w.size), np.argsort(obs_scores(w, hinv).ravel())[: w.size * 3 // 4]).reshape(w.shape)

    def err(v: np.ndarray) -> float:
        return float(np.sum((x @ v - x @ w) ** 2))

    assert err(refit(h, hinv, w, mask)) <= err(w * mask)


def test_pruning_does_not_change_the_network(small_net, calib):
    before = [l.kernel.copy() for l in small_net.layers]
    plan(small_net, "obs", "weight", calib=calib).prune(0.8)
    assert all(np.array_equal(b, l.kernel) for b, l in zip(before, small_net.layers))


def _ridge_problem(rng, n: int, noise: float) -> tuple[np.ndarray, np.ndarray, Validation]:
    """A layer to refit: inputs x (n, 30), the target x @ w + noise, and a validation problem of 2,000 new
    rows from the same distribution (the noise-free target there)."""
    w = rng.normal(size=(30, 4))
    x, xv = rng.normal(size=(n, 30)), rng.normal(size=(2000, 30))
    return x, x @ w + noise * rng.normal(size=(n, 4)), Validation(xv, xv @ w)


def test_the_damping_is_chosen_on_validation_and_follows_the_problem(rng):
    """Few noisy samples overfit a ridge-free refit: validation picks a larger damping there than on many clean
    ones, and the chosen solution is the candidate of least validation error."""
    chosen = {}
    for name, n, noise in (("clean", 4000, 0.0), ("noisy", 40, 3.0)):
        x, target, val = _ridge_problem(rng, n, noise)
        solve = lambda d, x=x, t=target: layer_obs(x, t, d).solve(60)  # noqa: E731
        kernel, _, chosen[name] = choose(DAMPINGS, solve, val)
        errors = {d: val.error(solve(d)[0]) for d in DAMPINGS}
        assert chosen[name] == min(errors, key=errors.get)
        np.testing.assert_array_equal(kernel, solve(chosen[name])[0])
    assert chosen["clean"] < chosen["noisy"], chosen
    with pytest.raises(ValueError, match="needs validation images"):
        choose(DAMPINGS, solve, None)


def test_choices_never_read_the_test_set(small_net, mnist):
    """The validation split is training images outside the calibration sample, and a plan built from MNIST whose
    test images are all NaN prunes exactly as one from the real MNIST."""
    marked = np.array(mnist.x_train)
    marked[:, 0] = np.arange(len(marked))  # each training image carries its index in one pixel
    tagged = replace(mnist, x_train=marked)
    c = calibration(tagged, 1024, validation=512)
    assert len(c.x_val) == 512 and not set(c.x[:, 0]) & set(c.x_val[:, 0])
    poisoned = replace(mnist, x_test=np.full_like(mnist.x_test, np.nan), y_test=np.full_like(mnist.y_test, -1))
    plans = [plan(small_net, "obs", "weight", "loss-aware", calib=calibration(d, 512)) for d in (mnist, poisoned)]
    for a, b in zip(*(p.prune(0.9).net.layers for p in plans)):
        np.testing.assert_array_equal(a.kernel, b.kernel)
