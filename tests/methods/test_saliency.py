"""OBD's Hessian diagonal against finite differences, saliencies, random seeding and global budgets."""

import numpy as np
import pytest

from obd.core.pruning import prune_count, rank
from obd.methods.registry import METHODS, calibration, method_scores, plan, prune_with, saliency_map
from obd.methods.saliency import hessian_diagonal, obd_saliency, random_scores


def losses64(net, kernels, x, y):
    """Per-example cross-entropy in float64 with the given kernels (the network's biases and activations)."""
    h = x.astype(np.float64)
    for layer, k in zip(net.layers, kernels):
        h = h @ k + (0 if layer.bias is None else layer.bias.astype(np.float64))
        if layer.activation == "relu":
            h = np.maximum(h, 0)
    h -= h.max(axis=1, keepdims=True)
    return np.log(np.exp(h).sum(axis=1)) - h[np.arange(len(y)), y]


def perturbed(kernels, i, flat, eps):
    out = list(kernels)
    out[i] = kernels[i].copy()
    out[i].flat[flat] += eps
    return out


@pytest.fixture(scope="module")
def sample(mnist):
    return mnist.x_train[:64], mnist.y_train[:64]


def test_gauss_newton_diagonal_is_the_exact_hessian_diagonal(small_net, sample):
    """For a ReLU net the logits are piecewise linear in any single weight, so the Gauss-Newton diagonal is
    the exact Hessian diagonal: compare with central second differences of the mean loss in float64."""
    x, y = sample
    h = hessian_diagonal(small_net, x)
    kernels = [l.kernel.astype(np.float64) for l in small_net.layers]
    rng = np.random.default_rng(0)
    eps = 1e-4
    for i, hi in enumerate(h):
        candidates = rng.choice(hi.size, 300, replace=False)
        for flat in candidates[np.argsort(hi.flat[candidates])[-4:]]:  # the 4 largest: well above round-off
            up, down = (losses64(small_net, perturbed(kernels, i, flat, s), x, y).mean() for s in (eps, -eps))
            fd = (up - 2 * losses64(small_net, kernels, x, y).mean() + down) / eps**2
            assert hi.flat[flat] == pytest.approx(fd, rel=2e-3, abs=1e-8), (i, flat)


def test_fisher_diagonal_is_the_mean_squared_per_example_gradient(small_net, sample):
    x, y = sample
    f = hessian_diagonal(small_net, x, y, kind="fisher")
    kernels = [l.kernel.astype(np.float64) for l in small_net.layers]
    eps = 1e-5
    for i, fi in enumerate(f):
        for flat in np.argsort(fi.ravel())[-3:]:
            up = losses64(small_net, perturbed(kernels, i, flat, eps), x, y)
            down = losses64(small_net, perturbed(kernels, i, flat, -eps), x, y)
            grads = (up - down) / (2 * eps)  # (n,) per-example gradients
            assert fi.flat[flat] == pytest.approx(np.mean(grads**2), rel=1e-3), (i, flat)


def test_hessian_validates_its_arguments(small_net, sample):
    with pytest.raises(ValueError, match="gauss-newton, fisher"):
        hessian_diagonal(small_net, sample[0], kind="exact")
    with pytest.raises(ValueError, match="needs labels"):
        hessian_diagonal(small_net, sample[0], kind="fisher")


def test_obd_saliency_is_half_h_w_squared_and_sums_per_unit(small_net, sample):
    h = hessian_diagonal(small_net, sample[0])
    weights, units = obd_saliency(small_net, h, "weight"), obd_saliency(small_net, h, "unit")
    for layer, hi, s, u in zip(small_net.layers, h, weights, units):
        np.testing.assert_allclose(s, 0.5 * hi * layer.kernel.astype(np.float64) ** 2, rtol=1e-12)
        np.testing.assert_allclose(u, s.sum(axis=0), rtol=1e-12)
        assert u.shape == (layer.units,)


def test_random_is_seeded(small_net):
    a, b, c = (prune_with(small_net, 0.5, "weight", "random", seed=s) for s in (0, 0, 1))
    assert all(np.array_equal(m, n) for m, n in zip(a.masks, b.masks))
    assert not np.array_equal(a.masks[0], c.masks[0])
    assert [s.shape for s in random_scores(small_net, "unit", 3)] == [(128,), (64,), (10,)]


@pytest.mark.parametrize("mode", ["weight", "unit"])
@pytest.mark.parametrize("prune_output", [False, True])
@pytest.mark.parametrize("k", [0.0, 0.333, 0.5, 0.97, 1.0])
def test_global_budget_counts_are_exact(small_net, mode, prune_output, k):
    layers = small_net.layers if prune_output else small_net.layers[:-1]
    total = sum(l.kernel.size if mode == "weight" else l.units for l in layers)
    masks = rank(small_net, mode, prune_output, budget="global").masks(k)
    removed = [int((~m).sum()) if mode == "weight" else int((~m.any(axis=0)).sum()) for m in masks]
    assert sum(removed) == prune_count(k, total)
    if not prune_output:
        assert masks[-1].all()


def test_global_magnitude_uses_one_threshold_across_layers(small_net):
    masks = rank(small_net, "weight", budget="global").masks(0.8)
    pruned = np.concatenate([np.abs(l.kernel[~m]) for l, m in zip(small_net.layers[:-1], masks)])
    kept = np.concatenate([np.abs(l.kernel[m]) for l, m in zip(small_net.layers[:-1], masks)])
    assert pruned.max() <= kept.min()
    per_layer = [float((~m).mean()) for m in masks[:-1]]
    assert max(per_layer) - min(per_layer) > 0.01, "the layers get different sparsities"


def test_global_obd_budget_follows_saliency(small_net, mnist):
    calib = calibration(mnist, 256)
    scores = method_scores(small_net, "obd", "weight", calib)
    p = plan(small_net, "obd", "weight", "global", calib=calib).prune(0.9)
    pruned = np.concatenate([s[~m] for s, m in zip(scores[:-1], p.masks)])
    kept = np.concatenate([s[m] for s, m in zip(scores[:-1], p.masks)])
    assert pruned.max() <= kept.min()


def test_bad_names_list_the_valid_ones(small_net):
    with pytest.raises(ValueError, match=", ".join(METHODS)):
        plan(small_net, "hessian")
    with pytest.raises(ValueError, match="layer, global"):
        plan(small_net, "magnitude", budget="net")
    with pytest.raises(ValueError, match="calibration size"):
        calibration(size=0)


@pytest.mark.parametrize("method", METHODS)
def test_saliency_map_is_kernel_shaped(small_net, mnist, method):
    maps = saliency_map(small_net, method, calibration(mnist, 256))
    assert [m.shape for m in maps] == [l.kernel.shape for l in small_net.layers]
    assert all(np.isfinite(m).all() and (m >= 0).all() for m in maps)


def test_methods_figure_has_a_curve_per_method_and_mode_and_marks_the_current_point(small_net, mnist):
    from obd.figures.plots import methods_figure
    from obd.work.sweep import sweep

    x, y = mnist.x_test[:500], mnist.y_test[:500]
    records = sweep(small_net, [0.0, 0.5, 0.9], ["weight", "unit"], x=x, y=y, methods=["magnitude", "random"])
    fig = methods_figure(records, current=("random", "unit", 0.7), x_axis="sparsity")  # linear: a plain midpoint
    curves = {t.name for t in fig.data if t.customdata is not None and t.name != "current point"}
    assert curves == {"magnitude, weight", "magnitude, unit", "random, weight", "random, unit"}
    star = next(t for t in fig.data if t.name == "current point")
    by_k = {r.sparsity: r.accuracy for r in records if (r.method, r.mode) == ("random", "unit")}
    assert star.x == (70.0,) and star.y[0] == pytest.approx(100 * (by_k[0.5] + by_k[0.9]) / 2)
    assert list(star.customdata[0]) == ["random", "unit", pytest.approx(70.0)]


@pytest.mark.parametrize("mode", ["weight", "unit"])
def test_obd_fisher_ranks_by_the_empirical_fisher_saliency(small_net, mnist, mode):
    calib = calibration(mnist, 256)
    fisher = obd_saliency(small_net, hessian_diagonal(small_net, calib.x, calib.y, kind="fisher"), mode)
    scores = method_scores(small_net, "obd-fisher", mode, calib)
    for got, want in zip(scores, fisher):
        np.testing.assert_allclose(got, want, rtol=1e-12)
    gauss_newton = method_scores(small_net, "obd", mode, calib)
    assert not all(np.allclose(a, b) for a, b in zip(scores, gauss_newton)), "a different Hessian diagonal"
    p = plan(small_net, "obd-fisher", mode, calib=calib).prune(0.5)
    assert p.masks[0].shape == small_net.layers[0].kernel.shape
