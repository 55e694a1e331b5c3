"""A budget that empties a layer (global pruning reaching every unit of a small layer) says so: the network then
predicts one class whatever the image."""

from __future__ import annotations

import warnings

import numpy as np
import pytest

from obd.core.network import Layer, Network
from obd.core.pruning import EmptiedLayerWarning, emptied_layers, prune, rank


def _net() -> Network:
    rng = np.random.default_rng(0)
    small = Layer(rng.normal(0, 1e-3, (784, 8)), None, "relu", "narrow")  # far smaller weights than the next
    wide = Layer(rng.normal(0, 1.0, (8, 64)), None, "relu", "wide")
    return Network((small, wide, Layer(rng.normal(0, 1.0, (64, 10)), None, "linear", "logits")))


def test_a_global_budget_that_empties_a_layer_warns_and_names_it(mnist):
    net = _net()
    with pytest.warns(EmptiedLayerWarning, match="'narrow'.*one class"):
        pruned = prune(net, 0.5, ranking=rank(net, "unit", budget="global"))
    assert emptied_layers(pruned) == ["narrow"]
    assert len(set(pruned.net.logits(mnist.x_test[:200]).argmax(axis=1))) == 1  # one class for every image


def test_a_pruning_that_keeps_every_layer_says_nothing():
    net = _net()
    with warnings.catch_warnings():
        warnings.simplefilter("error", EmptiedLayerWarning)
        pruned = prune(net, 0.5, "unit")  # the layer budget keeps half of every layer
    assert emptied_layers(pruned) == []
