"""The loss-aware budget: the allocation is exact and optimal (brute force), its plans keep the budget, the
reconstruction methods never score below magnitude on the calibration set, and random refuses it."""

import itertools

import numpy as np
import pytest

from obd.core.pruning import prune, prune_count, rank
from obd.methods.allocation import Profile, allocate, min_plus
from obd.methods.registry import calibration, plan, supports
from obd.runtime.evaluate import score_logits


@pytest.fixture(scope="module")
def calib(mnist):
    return calibration(mnist, 1024)


@pytest.fixture(scope="module")
def profiles(small_net, calib):
    """The real loss profiles of the small net's three layers (magnitude order, output layer pruned too)."""
    return plan(small_net, "magnitude", "weight", "loss-aware", prune_output=True, calib=calib).profiles


def test_profiles_are_measured_losses_from_dense_to_empty(profiles, small_net):
    assert [p.size for p in profiles] == [l.kernel.size for l in small_net.layers]
    for p in profiles:
        assert p.loss[-1] == 0.0  # nothing removed: the dense network's loss
        assert p.loss[0] > 1.0  # an empty layer: the network is lost


def test_min_plus_is_optimal_by_brute_force(profiles):
    # small grids of the real profiles (8-12 counts per layer), every split of every reachable total
    costs = [p.at(np.linspace(0, p.size, n).round()) for p, n in zip(profiles, (12, 9, 8))]
    for total in range(sum(len(c) - 1 for c in costs) + 1):
        counts = min_plus(costs, total)
        assert sum(counts) == total
        best = min(
            sum(c[i] for c, i in zip(costs, combo))
            for combo in itertools.product(*(range(len(c)) for c in costs))
            if sum(combo) == total
        )
        assert sum(c[i] for c, i in zip(costs, counts)) == pytest.approx(best, abs=1e-12)


def test_allocate_is_exact_item_by_item_on_a_small_case():
    # quantum 1 (resolution above the 30 items): allocate must match brute force over every integer split
    profiles = [
        Profile([0, 3, 10], [5.0, 1.0, 0.0]),
        Profile([0, 8, 12], [9.0, 0.5, 0.0]),
        Profile([0, 1, 8], [2.0, 1.5, 0.0]),
    ]
    for total in range(31):
        counts = allocate(profiles, total, resolution=100)
        best = min(
            sum(p.at([c])[0] for p, c in zip(profiles, combo))
            for combo in itertools.product(range(11), range(13), range(9))
            if sum(combo) == total
        )
        assert sum(counts) == total
        assert sum(p.at([c])[0] for p, c in zip(profiles, counts)) == pytest.approx(best)


def test_allocate_meets_the_budget_exactly_on_a_grid(profiles):
    sizes = [p.size for p in profiles]
    for total in (0, 1, 777, 12345, sum(sizes) - 1, sum(sizes)):
        counts = allocate(profiles, total, resolution=50)  # a quantum of about 2,000 weights
        assert sum(counts) == total
        assert all(0 <= c <= s for c, s in zip(counts, sizes))
    with pytest.raises(ValueError, match="budget"):
        allocate(profiles, sum(sizes) + 1)


@pytest.mark.parametrize("method,mode", [("magnitude", "weight"), ("obs", "weight"), ("obs", "unit"), ("obd", "unit")])
def test_loss_aware_plans_remove_exactly_round_k_n(small_net, calib, method, mode):
    p = plan(small_net, method, mode, "loss-aware", calib=calib)
    sizes = [l.kernel.size if mode == "weight" else l.units for l in small_net.layers[:-1]]
    for k in (0.3, 0.9):
        pruned = p.prune(k)
        removed = [int((~m).sum()) if mode == "weight" else int((~m.any(axis=0)).sum()) for m in pruned.masks]
        assert sum(removed) == prune_count(k, sum(sizes)) and removed[-1] == 0
        for layer, m in zip(pruned.net.layers, pruned.masks):
            assert (layer.kernel[~m] == 0).all()


def test_loss_aware_keeps_more_where_the_loss_needs_it(small_net, calib, mnist):
    # at 95 % one magnitude threshold starves a layer; the allocation should not do worse on the calibration loss
    glob = plan(small_net, "magnitude", "weight", "global", calib=calib).prune(0.95)
    aware = plan(small_net, "magnitude", "weight", "loss-aware", calib=calib).prune(0.95)
    loss = [score_logits(p.net.logits(calib.x), calib.y).loss for p in (glob, aware)]
    assert loss[1] < loss[0]


@pytest.mark.parametrize("budget", ["layer", "global", "loss-aware"])
def test_reconstruction_never_has_a_higher_validation_loss_than_magnitude(small_net, calib, budget):
    p = plan(small_net, "obs", "weight", budget, calib=calib)
    mag_budget = "global" if budget == "loss-aware" else budget
    ranking = rank(small_net, "weight", budget=mag_budget)
    for k in (0.5, 0.9, 0.99):
        ours = p.prune(k)
        theirs = prune(small_net, k, ranking=ranking)
        a, b = (score_logits(x.net.logits(calib.x_val), calib.y_val).loss for x in (ours, theirs))
        assert a <= b
        if ours.fallback:  # the record says so, and it is magnitude's network
            np.testing.assert_array_equal(ours.net.logits(calib.x[:50]), theirs.net.logits(calib.x[:50]))


def test_random_refuses_the_loss_aware_budget(small_net, calib):
    assert not supports("random", "weight", "loss-aware")
    assert supports("obs", "unit", "loss-aware") and not supports("sparsegpt", "unit", "loss-aware")
    with pytest.raises(ValueError, match="random"):
        plan(small_net, "random", "weight", "loss-aware", calib=calib)
    with pytest.raises(ValueError, match="budget"):
        plan(small_net, "obs", "weight", "smart", calib=calib)


def test_floors_keep_every_layer_alive_when_the_budget_allows():
    """Emptying the small layer looks cheapest to the profiles' sum (a constant output's loss is bounded); with
    floors every layer keeps at least its floor, and a budget too small for them all ignores them."""
    big = Profile(np.array([0, 50, 100]), np.array([20.0, 1.0, 0.0]))
    small = Profile(np.array([0, 5, 10]), np.array([2.3, 4.0, 0.0]))
    assert allocate([big, small], 50) == [50, 0]
    assert allocate([big, small], 50, floors=[10, 10]) == [40, 10]
    assert allocate([big, small], 15, floors=[10, 10]) == allocate([big, small], 15)
