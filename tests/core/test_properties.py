"""Property tests (hypothesis) for the masks, and the base model unchanged after 1,000 random prunes.

What is exactly true of `weight_mask` / `unit_mask` at sparsity k (scores s = |w| or column L2 norms,
ordered by a stable sort):
- exactly round(k*n) entries (round(k*c) whole columns) are pruned, none scoring above a kept one;
- nested: anything kept at a higher k is kept at every lower k;
- idempotent: re-masking the masked matrix at the same k gives the same mask. Zeroing the pruned entries
  only lowers their scores to 0; if a kept entry already scored 0, every pruned one did too (none scores
  above a kept one), so the matrix did not change at all;
- consistent: pruning the masked matrix again at any k' >= k gives the mask of pruning the original at k';
- sign-blind, and the input is never written to.
"""

from __future__ import annotations

import hashlib

import hypothesis.extra.numpy as hnp
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from obd.core.network import Layer, Network, from_keras
from obd.core.pruning import MODES, column_norms, prune, prune_model, rank, unit_mask, weight_mask
from obd.methods.registry import plan

# too_slow: generation time on 2 busy shared cores says nothing about obd
SETTINGS = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])

# Many ties and zeros (including -0.0) next to ordinary values, subnormals and large ones: the cases where
# a sloppy tie-break or a count off by one would show.
values = st.one_of(
    st.sampled_from([0.0, -0.0, 1.0, -1.0, 0.5]),
    st.floats(-(2.0**100), 2.0**100, allow_nan=False, allow_infinity=False, width=32),  # subnormals too
)
sparsities = st.one_of(st.sampled_from([0.0, 0.25, 0.5, 0.75, 1.0, 0.001, 0.999]), st.floats(0.0, 1.0, allow_nan=False))
kernels = hnp.arrays(np.float32, hnp.array_shapes(min_dims=2, max_dims=2, min_side=1, max_side=12), elements=values)
any_shape = hnp.arrays(np.float32, hnp.array_shapes(min_dims=1, max_dims=3, min_side=1, max_side=8), elements=values)
MASKS = {"weight": weight_mask, "unit": unit_mask}


def scores(w: np.ndarray, mode: str) -> np.ndarray:
    """What each mask entry is ranked by, broadcast to the mask's shape."""
    return np.abs(w) if mode == "weight" else np.broadcast_to(column_norms(w), w.shape)


@SETTINGS
@given(w=any_shape, k=sparsities)
def test_weight_mask_prunes_exactly_round_k_n_of_the_smallest(w, k):
    m = weight_mask(w, k)
    assert m.shape == w.shape and m.dtype == bool
    assert (~m).sum() == round(k * w.size)
    if m.any() and (~m).any():
        assert np.abs(w[~m]).max() <= np.abs(w[m]).min()


@SETTINGS
@given(w=kernels, k=sparsities)
def test_unit_mask_prunes_exactly_round_k_c_whole_columns_of_the_smallest(w, k):
    m = unit_mask(w, k)
    kept_cols = m.any(axis=0)
    assert np.array_equal(m, np.broadcast_to(kept_cols, w.shape)), "whole columns"
    assert (~kept_cols).sum() == round(k * w.shape[1]), "the count comes from the columns, not the rows"
    norms = column_norms(w)
    if kept_cols.any() and (~kept_cols).any():
        assert norms[~kept_cols].max() <= norms[kept_cols].min()


@SETTINGS
@given(w=kernels, k=sparsities, mode=st.sampled_from(MODES))
def test_re_masking_the_masked_matrix_at_the_same_k_keeps_the_same_set(w, k, mode):
    m = MASKS[mode](w, k)
    masked = np.where(m, w, np.float32(0))
    assert np.array_equal(MASKS[mode](masked, k), m)
    if (scores(w, mode)[m] == 0).any():  # a kept entry scoring 0: the pruned ones were already 0
        assert np.array_equal(masked, w)


@SETTINGS
@given(w=kernels, ks=st.lists(sparsities, min_size=2, max_size=5), mode=st.sampled_from(MODES))
def test_masks_are_nested_in_sparsity(w, ks, mode):
    ks = sorted(ks)
    masks = [MASKS[mode](w, k) for k in ks]
    for lower, higher in zip(masks, masks[1:]):
        assert not (higher & ~lower).any(), "kept at a higher sparsity => kept at every lower one"


@SETTINGS
@given(w=kernels, k1=sparsities, k2=sparsities, mode=st.sampled_from(MODES))
def test_pruning_again_at_a_higher_k_equals_pruning_once(w, k1, k2, mode):
    k1, k2 = min(k1, k2), max(k1, k2)
    first = np.where(MASKS[mode](w, k1), w, np.float32(0))
    assert np.array_equal(MASKS[mode](first, k2), MASKS[mode](w, k2))


@SETTINGS
@given(w=kernels, k=sparsities, mode=st.sampled_from(MODES))
def test_masks_ignore_signs_and_never_write_to_their_input(w, k, mode):
    before = w.copy()
    m = MASKS[mode](w, k)
    assert np.array_equal(w, before, equal_nan=False) and np.array_equal(np.signbit(w), np.signbit(before))
    assert np.array_equal(MASKS[mode](-w, k), m)
    frozen = w.copy()
    frozen.flags.writeable = False  # a Network's arrays are read-only: masks must work on them
    assert np.array_equal(MASKS[mode](frozen, k), m)


@st.composite
def networks(draw) -> Network:
    """A small random MLP: 2-4 layers of 1-9 units, with or without biases."""
    sizes = draw(st.lists(st.integers(1, 9), min_size=3, max_size=5))
    bias = draw(st.booleans())
    layers = []
    for i, (n_in, n_out) in enumerate(zip(sizes, sizes[1:])):
        kernel = draw(hnp.arrays(np.float32, (n_in, n_out), elements=values))
        b = draw(hnp.arrays(np.float32, (n_out,), elements=values)) if bias else None
        layers.append(Layer(kernel, b, "linear" if i == len(sizes) - 2 else "relu", f"d{i}"))
    return Network(tuple(layers))


@SETTINGS
@given(net=networks(), k=sparsities, mode=st.sampled_from(MODES), prune_output=st.booleans())
def test_a_ranking_gives_the_direct_masks_and_prune_zeroes_exactly_them(net, k, mode, prune_output):
    pruned = prune(net, k, mode, prune_output)
    masks = rank(net, mode, prune_output).masks(k)
    for i, (layer, m, got) in enumerate(zip(net.layers, masks, pruned.net.layers)):
        last = i == len(net.layers) - 1
        want = np.ones(layer.kernel.shape, bool) if last and not prune_output else MASKS[mode](layer.kernel, k)
        assert np.array_equal(m, want) and np.array_equal(pruned.masks[i], want)
        assert np.array_equal(got.kernel, np.where(want, layer.kernel, np.float32(0)))
        if layer.bias is not None:
            dead = ~want.any(axis=0)
            expected_bias = np.where(dead, np.float32(0), layer.bias) if mode == "unit" else layer.bias
            assert np.array_equal(got.bias, expected_bias), "unit pruning zeroes dead units' biases, only them"


# ---------------------------------------------------------------- nothing mutated after 1,000 prunes


def keras_hash(model) -> str:
    return hashlib.sha256(b"".join(w.tobytes() for w in model.get_weights())).hexdigest()


def network_hash(net: Network) -> str:
    h = hashlib.sha256()
    for layer in net.layers:
        h.update(layer.kernel.tobytes())
        if layer.bias is not None:
            h.update(layer.bias.tobytes())
    return h.hexdigest()


def test_the_base_model_is_unchanged_after_1000_random_prunes(small_model):
    rng = np.random.default_rng(6)
    model_before = keras_hash(small_model)
    net = from_keras(small_model)
    net_before, fingerprint = network_hash(net), net.fingerprint()
    rankings = {(mode, out): rank(net, mode, out) for mode in MODES for out in (False, True)}
    plans = {mode: plan(net, "random", mode) for mode in MODES}
    zeroed = 0
    for i in range(1000):
        k, mode, out = float(rng.uniform(0, 1)), str(rng.choice(MODES)), bool(rng.integers(2))
        if i % 40 == 0:  # 25 through Keras: a new model from the same (shared) one
            pruned_model = prune_model(small_model, k, mode, out)
            assert pruned_model is not small_model
            zeroed += sum(int((w == 0).sum()) for w in pruned_model.get_weights())
        elif i % 10 == 0:  # a fresh ranking each time
            zeroed += sum(int((~m).sum()) for m in prune(net, k, mode, out).masks)
        elif i % 10 == 1:
            zeroed += sum(int((~m).sum()) for m in plans[mode].prune(k).masks)
        else:  # the app's path: one ranking, masks for any k
            zeroed += sum(int((~m).sum()) for m in prune(net, k, ranking=rankings[mode, out]).masks)
    assert zeroed > 1_000_000, "the prunes did prune"
    assert keras_hash(small_model) == model_before, "the Keras model's weights are unchanged"
    assert network_hash(net) == net_before and net.fingerprint() == fingerprint, "the Network's arrays too"
    assert network_hash(from_keras(small_model)) == net_before
    assert all(not layer.kernel.flags.writeable for layer in net.layers)


def test_the_hashes_would_see_a_change(small_model):
    """Control: one weight changed in a copy changes both hashes."""
    net = from_keras(small_model)
    kernels = [layer.kernel.copy() for layer in net.layers]
    kernels[1][3, 5] += np.float32(1e-3)
    changed = net.with_weights(kernels, [layer.bias for layer in net.layers])
    assert network_hash(changed) != network_hash(net)
    with pytest.raises(ValueError):  # and the shared arrays cannot be written in place at all
        net.layers[0].kernel[0, 0] = 1.0
