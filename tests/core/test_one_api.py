"""Every public entry point takes a Keras model as well as a Network (issue 26): the same results either way."""

from __future__ import annotations

import numpy as np
from user_models import user_model

from obd.core.network import from_keras
from obd.core.pruning import prune, rank
from obd.runtime.bench import bench
from obd.runtime.engines import build_engine
from obd.runtime.evaluate import evaluate
from obd.runtime.latency import Readings, latency
from obd.runtime.shrunk import shrink


def test_a_keras_model_is_taken_wherever_a_network_is(mnist):
    model = user_model("flatten", True).model  # Input((28, 28)), functional
    net = from_keras(model)
    images = mnist.x_test[:100].reshape(-1, 28, 28)  # the model's own input shape
    assert (
        evaluate(model, images, mnist.y_test[:100]).accuracy
        == evaluate(net, mnist.x_test[:100], mnist.y_test[:100]).accuracy
    )
    assert all(np.array_equal(a, b) for a, b in zip(prune(model, 0.5, "unit").masks, prune(net, 0.5, "unit").masks))
    assert rank(model, "weight").mode == "weight"
    assert shrink(model).sizes == net.sizes
    np.testing.assert_array_equal(build_engine(model, "dense").logits(mnist.x_test[:10]), net.logits(mnist.x_test[:10]))
    assert latency(model, images[:10], readings=Readings()).dense_ms > 0
    records = bench(model, images, ["unit"], [0.5], [10], repeats=1, readings=Readings())
    assert {r["engine"] for r in records} == {"dense", "shrunk"}
