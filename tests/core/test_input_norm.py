"""Models whose first layer is Keras Rescaling or Normalization: the pipeline applies it, pruning leaves it
alone, and Network / from_keras / to_keras / .keras files / engines agree on the logits; the mlpnet preset."""

import dataclasses

import keras
import numpy as np
import pytest

from obd.core.config import PRESETS, TrainConfig, preset_spec, preset_train_config
from obd.core.network import from_keras, to_keras
from obd.methods.registry import plan
from obd.runtime.engines import build_engine
from obd.runtime.evaluate import evaluate
from obd.training.model import build_model, cache_path, load_model, save_model, train


def _standardized(first_layer) -> keras.Model:
    model = keras.Sequential(
        [keras.Input((784,)), first_layer, keras.layers.Dense(32, activation="relu"), keras.layers.Dense(10)]
    )
    keras.utils.set_random_seed(0)
    return model


@pytest.fixture(scope="module")
def trained_mlpnet(mnist):
    """The mlpnet architecture (Normalization first, 40-20, no bias), trained briefly with its SGD recipe at a
    higher rate (100 steps at the recipe's 1e-3 barely move it)."""
    model = build_model(preset_spec("mlpnet"), seed=0)
    train(
        model, mnist, dataclasses.replace(preset_train_config("mlpnet"), epochs=1, train_limit=6400, learning_rate=0.05)
    )
    return model


@pytest.mark.parametrize(
    "first",
    [
        lambda: keras.layers.Rescaling(1 / 0.3081, offset=-0.1307 / 0.3081),
        lambda: keras.layers.Normalization(mean=0.1307, variance=0.3081**2),
        lambda: keras.layers.Normalization(mean=np.linspace(0, 0.5, 784), variance=np.linspace(0.1, 2, 784)),
    ],
    ids=["rescaling", "normalization", "per-pixel"],
)
def test_first_layer_transform_round_trips_with_equal_logits(mnist, tmp_path, first):
    model = _standardized(first())
    x = mnist.x_test[:256]
    net = from_keras(model)
    assert net.input_norm is not None and len(net.layers) == 2  # the transform is not a Dense layer to prune
    expected = model(x).numpy()
    np.testing.assert_allclose(net.logits(x), expected, rtol=1e-5, atol=1e-5)
    back = to_keras(net)
    np.testing.assert_allclose(back(x).numpy(), expected, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(from_keras(back).logits(x), expected, rtol=1e-5, atol=1e-5)
    loaded = load_model(save_model(back, tmp_path / "m.keras"))  # the upload path: checked, then read safely
    np.testing.assert_allclose(from_keras(loaded).logits(x), expected, rtol=1e-5, atol=1e-5)


def test_pruning_and_engines_keep_the_transform(trained_mlpnet, mnist):
    net = from_keras(trained_mlpnet)
    assert evaluate(net, mnist.x_test, mnist.y_test).accuracy > 0.8
    np.testing.assert_allclose(
        net.logits(mnist.x_test[:500]), trained_mlpnet(mnist.x_test[:500]).numpy(), rtol=1e-4, atol=1e-4
    )
    for mode, k in (("weight", 0.9), ("unit", 0.5)):
        pruned = plan(net, "magnitude", mode, "global").prune(k).net
        assert pruned.input_norm == net.input_norm
        dense = pruned.logits(mnist.x_test[:300])
        for kind in ("sparse", "shrunk") if mode == "unit" else ("sparse",):
            for batch in (1, 300):
                got = build_engine(pruned, kind, batch).logits(mnist.x_test[:batch])
                np.testing.assert_allclose(got, dense[:batch], rtol=1e-4, atol=1e-4)
        # the pruned network exports with its transform: Keras gives the same logits
        np.testing.assert_allclose(to_keras(pruned)(mnist.x_test[:300]).numpy(), dense, rtol=1e-4, atol=1e-4)


def test_fingerprint_tells_transforms_apart(trained_mlpnet):
    net = from_keras(trained_mlpnet)
    plain = dataclasses.replace(net, input_norm=None)
    assert net.fingerprint() != plain.fingerprint()


def test_mlpnet_preset_and_unchanged_cache_names():
    spec, config = preset_spec("mlpnet"), preset_train_config("mlpnet")
    assert spec.hidden == (40, 20) and not spec.use_bias and spec.input_norm == (0.1307, 0.3081)
    assert (config.optimizer, config.momentum, config.learning_rate, config.batch_size, config.epochs) == (
        "sgd",
        0.5,
        1e-3,
        64,
        25,
    )
    for preset in PRESETS:  # the older presets keep their settings, so their cached files keep their names
        if preset != "mlpnet":
            assert preset_train_config(preset) == TrainConfig()
            assert set(preset_spec(preset).cache_key()) == {"hidden", "use_bias"}
    assert set(TrainConfig().cache_key()) == {"epochs", "batch_size", "learning_rate", "seed", "train_limit"}
    assert cache_path(spec, config) != cache_path(dataclasses.replace(spec, input_norm=None), config)
    with pytest.raises(ValueError, match="optimizer"):
        TrainConfig(optimizer="rmsprop")
    with pytest.raises(ValueError, match="momentum"):
        TrainConfig(momentum=1.5)
