"""Masks, rankings and pruned models: exact counts, columns not rows, nothing mutated, bad sparsities refused."""

import math

import numpy as np
import pytest

from bad_inputs import BAD_NAMES, BAD_SPARSITIES, BUDGET_ERROR, MODE_ERROR, SPARSITY_ERROR
from obd.core.network import from_keras
from obd.core.pruning import (
    check_budget,
    check_mode,
    check_sparsity,
    prune,
    prune_model,
    rank,
    report,
    unit_mask,
    weight_mask,
)
from obd.runtime.evaluate import evaluate

SHAPES = [(1, 1), (3, 7), (7, 3), (784, 1000), (1000, 10), (10, 1000), (5, 200)]
SPARSITIES = [0.0, 0.001, 0.25, 0.5, 0.6, 0.7, 0.8, 0.9, 0.95, 0.97, 0.99, 1.0]


@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("k", SPARSITIES)
def test_weight_mask_prunes_exactly_round_k_n_smallest(shape, k, rng):
    w = rng.normal(size=shape).astype(np.float32)
    m = weight_mask(w, k)
    assert m.shape == w.shape and m.dtype == bool
    assert (~m).sum() == round(k * w.size)
    if 0 < (~m).sum() < w.size:  # every pruned |w| is <= every kept |w|
        assert np.abs(w[~m]).max() <= np.abs(w[m]).min()


@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("k", SPARSITIES)
def test_unit_mask_prunes_round_k_columns_by_l2_norm(shape, k, rng):
    w = rng.normal(size=shape).astype(np.float32)
    m = unit_mask(w, k)
    cols_pruned = ~m.any(axis=0)
    assert m.shape == w.shape
    assert np.array_equal(m, np.broadcast_to(m[:1], m.shape)), "whole columns are kept or pruned"
    assert cols_pruned.sum() == round(k * shape[1]), "the count comes from the columns"
    norms = np.linalg.norm(w, axis=0)
    if 0 < cols_pruned.sum() < shape[1]:
        assert norms[cols_pruned].max() <= norms[~cols_pruned].min()


def test_unit_mask_counts_columns_not_rows():
    w = np.random.default_rng(0).normal(size=(784, 1000))
    assert (~unit_mask(w, 0.5).any(axis=0)).sum() == 500
    w = np.random.default_rng(0).normal(size=(1000, 10))  # a row count of 1000 must not matter
    assert (~unit_mask(w, 0.5).any(axis=0)).sum() == 5


def test_rounding_is_pythons_round():
    w = np.arange(1, 11, dtype=np.float32)  # 10 entries
    assert (~weight_mask(w, 0.25)).sum() == round(2.5) == 2  # banker's rounding, as Python's round
    assert (~weight_mask(w, 0.35)).sum() == round(3.5) == 4


def test_ties_are_deterministic_and_nested():
    w = np.ones((4, 5), dtype=np.float32)  # every |w| ties
    masks = [weight_mask(w, k) for k in (0.2, 0.4, 0.6)]
    assert np.array_equal(masks[0], weight_mask(w.copy(), 0.2))
    assert all((hi <= lo).all() for lo, hi in zip(masks, masks[1:])), "kept at higher k => kept at lower k"


def test_masks_do_not_change_their_input(rng):
    w = rng.normal(size=(30, 20)).astype(np.float32)
    before = w.copy()
    weight_mask(w, 0.7)
    unit_mask(w, 0.7)
    assert np.array_equal(w, before)


@pytest.mark.parametrize("bad", [1.5, -0.1, math.nan, math.inf, "0.5", None, True, [0.5]])
def test_invalid_sparsity_raises_value_error_naming_the_range(bad):
    w = np.ones((3, 3))
    for fn in (weight_mask, unit_mask):
        with pytest.raises(ValueError, match=r"\[0, 1\]"):
            fn(w, bad)


def test_unit_mask_refuses_non_kernels():
    with pytest.raises(ValueError, match="2-D"):
        unit_mask(np.ones(5), 0.5)


def test_ranking_masks_equal_direct_masks(small_net):
    for mode, fn in (("weight", weight_mask), ("unit", unit_mask)):
        r = rank(small_net, mode, prune_output=True)
        for k in (0.0, 0.3, 0.9, 1.0):
            for m, layer in zip(r.masks(k), small_net.layers):
                assert np.array_equal(m, fn(layer.kernel, k))


def test_output_layer_is_kept_unless_asked(small_net):
    p = prune(small_net, 0.9, "weight")
    assert p.masks[-1].all()
    assert np.array_equal(p.net.layers[-1].kernel, small_net.layers[-1].kernel)
    p = prune(small_net, 0.9, "weight", prune_output=True)
    assert (~p.masks[-1]).sum() == round(0.9 * small_net.layers[-1].kernel.size)


def test_unit_pruning_zeroes_bias_and_pruned_units_output_exactly_zero(small_net, mnist):
    p = prune(small_net, 0.5, "unit")
    hs = p.net.activations(mnist.x_test[:500])  # real inputs
    for layer, m, h in zip(p.net.layers[:-1], p.masks[:-1], hs[1:-1]):
        dead = ~m.any(axis=0)
        assert dead.sum() == round(0.5 * layer.units)
        assert np.all(layer.bias[dead] == 0)
        assert np.all(h[:, dead] == 0.0), "a pruned unit outputs exactly 0"
        assert np.any(h[:, ~dead] != 0.0)


def test_weight_pruning_keeps_biases(small_net):
    p = prune(small_net, 0.9, "weight")
    for a, b in zip(small_net.layers, p.net.layers):
        assert np.array_equal(a.bias, b.bias)


def test_prune_model_returns_new_model_and_leaves_the_given_one_untouched(small_model, mnist):
    before = [w.copy() for w in small_model.get_weights()]
    pruned = prune_model(small_model, 0.8, mode="unit")
    assert pruned is not small_model
    for a, b in zip(before, small_model.get_weights()):
        assert np.array_equal(a, b)
    # the Keras model and the numpy path agree
    expected = prune(from_keras(small_model), 0.8, "unit").net
    got = from_keras(pruned)
    for a, b in zip(expected.layers, got.layers):
        np.testing.assert_array_equal(a.kernel, b.kernel)
        np.testing.assert_array_equal(a.bias, b.bias)
    keras_logits = pruned.predict(mnist.x_test[:256], verbose=0)
    np.testing.assert_allclose(keras_logits, expected.logits(mnist.x_test[:256]), rtol=1e-4, atol=1e-4)


def test_pruning_hurts_more_as_sparsity_grows(small_net, mnist):
    acc = [evaluate(prune(small_net, k, "weight").net, mnist.x_test, mnist.y_test).accuracy for k in (0, 0.5, 0.99)]
    assert acc[0] > 0.85 and acc[0] >= acc[1] - 0.01 and acc[1] > acc[2]


def test_report_counts(small_net):
    p = prune(small_net, 0.5, "unit")
    r = report(p)
    sizes = small_net.sizes  # (784, 128, 64, 10)
    assert r.total_weights == small_net.n_weights
    assert r.total_units == sizes[1] + sizes[2]
    assert r.kept_units == round(sizes[1] / 2) + round(sizes[2] / 2)
    assert r.kept_weights == sum(int(m.sum()) for m in p.masks)
    assert r.compression == pytest.approx(r.total_weights / r.kept_weights)
    assert r.sparsity == pytest.approx(1 - r.kept_weights / r.total_weights)
    assert [l.kept_units for l in r.layers[:2]] == [64, 32]
    # dead units' outgoing rows do no work: 784*64 + 64*32 + 32*10 weights still matter
    assert [l.effective_weights for l in r.layers] == [784 * 64, 64 * 32, 32 * 10]
    assert (
        report(prune(small_net, 0.5, "weight")).effective_weights
        <= report(prune(small_net, 0.5, "weight")).kept_weights
    )


def test_network_arrays_are_read_only(small_net):
    with pytest.raises(ValueError):
        small_net.layers[0].kernel[0, 0] = 1.0


def test_fingerprint_names_the_exact_weights(small_net):
    assert small_net.fingerprint() == small_net.fingerprint()
    assert prune(small_net, 0.1, "weight").net.fingerprint() != small_net.fingerprint()


@pytest.mark.parametrize("bad", BAD_SPARSITIES, ids=repr)
def test_check_sparsity_refuses_every_bad_value(bad):
    with pytest.raises(ValueError, match=SPARSITY_ERROR):
        check_sparsity(bad)


@pytest.mark.parametrize("bad", BAD_NAMES + ["filter"], ids=repr)
def test_check_mode_refuses_every_bad_value(bad):
    with pytest.raises(ValueError, match=MODE_ERROR):
        check_mode(bad)


@pytest.mark.parametrize("bad", BAD_NAMES + ["world"], ids=repr)
def test_check_budget_refuses_every_bad_value(bad):
    with pytest.raises(ValueError, match=BUDGET_ERROR):
        check_budget(bad)


@pytest.mark.parametrize(
    "entry",
    [
        "prune sparsity",
        "prune mode",
        "prune_model sparsity",
        "prune_model mode",
        "rank mode",
        "rank budget",
        "ranking sparsity",
    ],
)
def test_each_pruning_entry_point_calls_the_validators(entry, small_net, small_model):
    """One bad value per entry point and validator (the validators' tests above try every bad value)."""
    calls = {
        "prune sparsity": (lambda: prune(small_net, 1.5), SPARSITY_ERROR),
        "prune mode": (lambda: prune(small_net, 0.5, "Weight"), MODE_ERROR),
        "prune_model sparsity": (lambda: prune_model(small_model, 1.5), SPARSITY_ERROR),
        "prune_model mode": (lambda: prune_model(small_model, 0.5, "Weight"), MODE_ERROR),
        "rank mode": (lambda: rank(small_net, "Weight"), MODE_ERROR),
        "rank budget": (lambda: rank(small_net, "weight", budget="world"), BUDGET_ERROR),
        "ranking sparsity": (lambda: rank(small_net).masks(1.5), SPARSITY_ERROR),
    }
    call, message = calls[entry]
    with pytest.raises(ValueError, match=message):
        call()
