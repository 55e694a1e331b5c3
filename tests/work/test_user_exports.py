"""Pruned, shrunk and fine-tuned exports of users' own models (tests/user_models.py) take the user's own inputs
(shape and pixel scale) and give the user's output (a softmax sums to 1), at obd's accuracy; fine-tuning takes
the user's (x, y) and a Keras model as well as obd's objects."""

from __future__ import annotations

import tempfile
from pathlib import Path

import keras
import numpy as np
import pytest
from user_models import user_model

from obd.core.network import from_keras
from obd.core.pruning import prune
from obd.runtime.evaluate import evaluate, fit_pixels
from obd.training.finetune import finetune
from obd.work.export import masked_model, shrunk_model


def _load(data: bytes):
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "m.keras"
        path.write_bytes(data)
        return keras.saving.load_model(path, compile=False)


def _check(model, user, net, mnist, n=2000):
    """The exported model on the user's own inputs: the user's input shape, obd's accuracy, the user's output."""
    assert model.input_shape == user.model.input_shape
    out = model.predict(user.x_test[:n], verbose=0)
    ours = evaluate(net, mnist.x_test[:n], mnist.y_test[:n]).accuracy
    assert abs(float((out.argmax(axis=1) == mnist.y_test[:n]).mean()) - ours) <= 0.001
    if user.softmax:
        np.testing.assert_allclose(out.sum(axis=1), 1.0, atol=1e-5)
    else:
        assert np.abs(out.sum(axis=1) - 1).max() > 0.1  # logits, not probabilities


@pytest.mark.parametrize("kind,functional", [("flatten", True), ("rescaling", False), ("softmax", False)])
@pytest.mark.parametrize("mode", ["weight", "unit"])
def test_masked_and_shrunk_exports_take_the_users_inputs(kind, functional, mode, mnist):
    user = user_model(kind, functional)
    pruned = prune(fit_pixels(from_keras(user.model), mnist), 0.5, mode)
    masked = _load(masked_model(pruned))
    _check(masked, user, pruned.net, mnist)
    shrunk = _load(shrunk_model(pruned))
    _check(shrunk, user, pruned.net, mnist)
    if mode == "unit":
        assert shrunk.count_params() < masked.count_params()


def test_finetuning_takes_the_users_own_data_and_keeps_their_interface(mnist):
    user = user_model("rescaling")  # raw 0-255 pixels, (28, 28) inputs
    pruned = prune(fit_pixels(from_keras(user.model), mnist), 0.9, "weight")
    x = (mnist.x_train[:3000] * 255).reshape(-1, 28, 28)  # the user's own training data
    tuned = finetune(pruned, (x, mnist.y_train[:3000]), epochs=1)
    assert all(np.array_equal(a, b) for a, b in zip(tuned.masks, pruned.masks))
    assert all(not np.any(k[~m]) for k, m in zip(tuned.net.kernels(), tuned.masks))
    before = evaluate(pruned.net, mnist.x_test, mnist.y_test).accuracy
    after = evaluate(tuned.net, mnist.x_test, mnist.y_test).accuracy
    assert after > before
    _check(_load(masked_model(tuned)), user, tuned.net, mnist)


def test_finetuning_a_keras_model_keeps_its_zero_weights(mnist):
    user = user_model("softmax")
    exported = _load(masked_model(prune(from_keras(user.model), 0.8, "weight")))
    tuned = finetune(exported, (user.x_test[:2000], mnist.y_test[:2000]), epochs=0.5)  # a Keras model in
    zeros = [k == 0 for k in from_keras(exported).kernels()]
    assert tuned.mode == "weight" and tuned.sparsity == sum(z.sum() for z in zeros) / sum(z.size for z in zeros)
    assert all(not np.any(k[z]) for k, z in zip(tuned.net.kernels(), zeros))
    assert tuned.net.output == "softmax"
    with pytest.raises(ValueError, match="as many"):
        finetune(exported, (user.x_test[:10], mnist.y_test[:9]))


def test_an_export_keeps_the_users_layer_names(mnist):
    user = user_model("flatten", True)
    names = [l.name for l in user.model.layers if isinstance(l, keras.layers.Dense)]
    model = _load(masked_model(from_keras(user.model)))
    assert [l.name for l in model.layers if isinstance(l, keras.layers.Dense)] == names
