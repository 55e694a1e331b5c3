"""Presets, training on a slice of real MNIST, safe save/load and the model cache."""

import json
import os

import numpy as np
import pytest

from obd.core.config import PRESETS
from obd.core.network import from_keras
from obd.core.pruning import prune
from obd.runtime.evaluate import evaluate
from obd.training.model import (
    ModelFileError,
    ModelSpec,
    TrainConfig,
    TrainingStopped,
    build_model,
    cache_path,
    load_model,
    network_path,
    preset_spec,
    save_model,
    train,
    trained_model,
)


def test_presets_have_the_documented_architectures():
    challenge = from_keras(build_model(preset_spec("challenge")))
    assert challenge.sizes == (784, 1000, 1000, 1000, 1000, 10)
    assert all(l.bias is None for l in challenge.layers) and challenge.layers[-1].activation == "linear"
    notebook = from_keras(build_model(preset_spec("notebook")))
    assert notebook.sizes == (784, 1000, 1000, 500, 200, 10)
    assert all(l.bias is not None for l in notebook.layers)
    assert set(PRESETS) >= {"challenge", "notebook"}


@pytest.mark.parametrize("hidden", [(), (0,), (10, -1), (1.5,), ("a",), (10**6,)])
def test_bad_hidden_sizes(hidden):
    with pytest.raises(ValueError, match="hidden"):
        ModelSpec(hidden)


@pytest.mark.parametrize(
    "kwargs",
    [
        dict(epochs=0),
        dict(epochs=float("nan")),
        dict(epochs="2"),
        dict(batch_size=0),
        dict(learning_rate=2.0),
        dict(train_limit=0),
    ],
)
def test_bad_training_settings(kwargs):
    with pytest.raises(ValueError):
        TrainConfig(**kwargs)


def test_training_a_small_net_on_a_slice_reaches_a_sane_accuracy(small_net, mnist):
    acc = evaluate(small_net, mnist.x_test, mnist.y_test).accuracy
    assert acc > 0.90, acc  # 314 steps on 10,000 images (91-92 %)


def test_training_reports_progress_and_stops_on_fractional_epochs(mnist):
    seen = []
    model = build_model(ModelSpec((16,), True), seed=1)
    config = TrainConfig(epochs=0.5, batch_size=100, train_limit=1000)  # 10 steps per epoch -> 5 steps
    history = train(model, mnist, config, progress=seen.append, progress_seconds=0)  # every batch
    assert [p.step for p in seen] == [1, 2, 3, 4, 5]
    assert seen[-1].steps == 5 and seen[-1].epoch == 1 and 0 <= seen[-1].accuracy <= 1
    assert set(history) >= {"loss", "accuracy"}


def test_a_training_told_to_stop_ends_early_and_caches_nothing(mnist):
    spec, config = ModelSpec((16,), True), TrainConfig(epochs=1, batch_size=16, train_limit=3000)  # 188 batches
    asked: list[int] = []
    seen: list[int] = []

    def stop() -> bool:  # asked after each call into TensorFlow (64 batches); says stop at the second
        asked.append(1)
        return len(asked) >= 2

    with pytest.raises(TrainingStopped, match="after 128 of 188 batches"):
        trained_model(spec, config, mnist, progress=lambda p: seen.append(p.step), stop=stop)
    assert seen and seen[-1] <= 128
    assert not cache_path(spec, config).exists() and not network_path(cache_path(spec, config)).exists()
    _, path, trained_now = trained_model(spec, config, mnist, stop=lambda: False)  # never says stop: trains it all
    assert trained_now and path.is_file()


def test_fine_tuning_with_masks_keeps_pruned_weights_at_zero(small_model, mnist):
    model = build_model(ModelSpec((128, 64), True))
    model.set_weights(small_model.get_weights())
    pruned = prune(from_keras(model), 0.8, "weight")
    train(model, mnist, TrainConfig(epochs=0.2, train_limit=2000), masks=list(pruned.masks))
    for layer, m in zip(from_keras(model).layers, pruned.masks):
        assert np.all(layer.kernel[~m] == 0)


def test_fine_tuning_unit_pruned_keeps_pruned_units_dead(small_model, mnist):
    model = build_model(ModelSpec((128, 64), True))
    model.set_weights(small_model.get_weights())
    pruned = prune(from_keras(model), 0.5, "unit")
    train(model, mnist, TrainConfig(epochs=0.2, train_limit=2000), masks=list(pruned.masks), mode="unit")
    tuned = from_keras(model)
    for layer, m in zip(tuned.layers[:-1], pruned.masks[:-1]):
        dead = ~m.any(axis=0)
        assert np.all(layer.kernel[:, dead] == 0) and np.all(layer.bias[dead] == 0)
    h = tuned.activations(mnist.x_test[:200])[1]
    assert np.all(h[:, ~pruned.masks[0].any(axis=0)] == 0)


def test_masks_hold_beside_a_models_own_constraint_which_comes_back(mnist):
    import keras

    own = keras.constraints.NonNeg()  # a user's model with a constraint of its own on the first kernel
    model = keras.Sequential(
        [keras.Input((784,)), keras.layers.Dense(32, activation="relu", kernel_constraint=own), keras.layers.Dense(10)]
    )
    masks = [k != 0 for k in prune(from_keras(model), 0.7, "weight").net.kernels()]
    train(model, mnist, TrainConfig(epochs=0.2, train_limit=2000), masks=masks)
    kernels = [layer.kernel for layer in model.layers]
    assert kernels[0].constraint is own and kernels[1].constraint is None, "the model's own constraints are back"
    first = np.asarray(kernels[0])
    assert np.all(first[~masks[0]] == 0) and np.all(first >= 0), "the mask and the model's constraint both held"
    assert np.all(np.asarray(kernels[1])[~masks[1]] == 0)


def test_save_and_load_round_trip_without_optimizer(small_model, tmp_path, mnist):
    path = save_model(small_model, tmp_path / "m.keras")
    loaded = load_model(path)
    np.testing.assert_array_equal(
        from_keras(loaded).logits(mnist.x_test[:100]), from_keras(small_model).logits(mnist.x_test[:100])
    )
    weight_bytes = sum(w.nbytes for w in small_model.get_weights())
    assert path.stat().st_size < 1.3 * weight_bytes, "no optimizer state (Adam would triple the size)"
    assert [p.name for p in tmp_path.iterdir()] == ["m.keras"], "no temp files left behind"


def test_save_refuses_other_suffixes(small_model, tmp_path):
    with pytest.raises(ValueError, match=r"\.keras"):
        save_model(small_model, tmp_path / "m.h5")


def test_load_errors_say_what_is_wrong(tmp_path):
    empty = tmp_path / "empty.keras"
    empty.write_bytes(b"")
    junk = tmp_path / "junk.keras"
    junk.write_bytes(b"not a model at all")
    with pytest.raises(ModelFileError, match="no such model file"):
        load_model(tmp_path / "missing.keras")
    with pytest.raises(ModelFileError, match="empty"):
        load_model(empty)
    with pytest.raises(ModelFileError, match="not a Keras 3 .keras file"):
        load_model(junk)


def test_load_refuses_models_that_are_not_mnist_classifiers(tmp_path):
    model = build_model(ModelSpec((8,), True))
    import keras

    wrong = keras.Sequential([keras.Input((100,)), keras.layers.Dense(10)])
    path = save_model(wrong, tmp_path / "wrong.keras")
    with pytest.raises(ModelFileError, match="784 inputs"):
        load_model(path)
    assert model is not None


def test_trained_model_is_cached_and_a_corrupt_cache_is_retrained(mnist, tmp_path, monkeypatch):
    monkeypatch.setenv("OBD_CACHE_DIR", str(tmp_path))
    spec, config = ModelSpec((16,), True), TrainConfig(epochs=0.2, train_limit=2000)
    m1, path, trained = trained_model(spec, config, mnist)
    assert trained and path == cache_path(spec, config) and path.parent == tmp_path
    assert json.loads(path.with_suffix(".json").read_text())["spec"]["hidden"] == [16]
    m2, _, trained = trained_model(spec, config, mnist)
    assert not trained
    np.testing.assert_array_equal(m1.get_weights()[0], m2.get_weights()[0])
    path.write_bytes(b"garbage")  # a corrupt cache file is retrained, not a crash
    _, _, trained = trained_model(spec, config, mnist)
    assert trained and load_model(path) is not None


def test_cache_key_depends_on_every_setting(tmp_path, monkeypatch):
    monkeypatch.setenv("OBD_CACHE_DIR", str(tmp_path))
    base = cache_path(ModelSpec(), TrainConfig())
    assert cache_path(ModelSpec(), TrainConfig(epochs=4)) != base
    assert cache_path(ModelSpec((1000,) * 4, True), TrainConfig()) != base
    assert cache_path(ModelSpec(), TrainConfig()) == base and os.fspath(base).endswith(".keras")


def test_the_cli_and_the_app_name_one_cache_file_for_whole_epochs():
    """`python -m obd train` passes epochs as a float (5.0); the app uses the default (5): one trained model."""
    from obd.core.files import cache_path

    spec = preset_spec("challenge")
    assert cache_path(spec, TrainConfig(epochs=5.0)) == cache_path(spec, TrainConfig())
    assert cache_path(spec, TrainConfig(epochs=0.5)) != cache_path(spec, TrainConfig(epochs=1))
