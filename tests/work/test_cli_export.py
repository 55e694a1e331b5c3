"""`python -m obd export` on a user's own model (raw 0-255 pixels, Input((28, 28)), Rescaling: tests/user_models.py):
it says which pixels the model takes, and writes a .tflite (weight pruning: sparse; unit pruning: shrunk) or a
.keras export that takes the user's own inputs, at obd's accuracy (TFLite within 0.1 points)."""

from __future__ import annotations

import keras
import numpy as np
import pytest
from cli_runner import run_cli
from user_models import user_model

from obd.core.network import from_keras
from obd.core.pruning import prune
from obd.runtime.evaluate import evaluate, fit_pixels
from obd.work.export import tflite_model, tflite_runner, user_inputs


@pytest.fixture(scope="module")
def raw_file(tmp_path_factory):
    path = tmp_path_factory.mktemp("export") / "raw.keras"
    user_model("raw").model.save(path)
    return path


@pytest.mark.parametrize("mode", ["weight", "unit"])
def test_export_writes_a_tflite_model_at_obds_accuracy(mode, raw_file, tmp_path, mnist):
    out = tmp_path / f"{mode}.tflite"
    r = run_cli("export", "--model", raw_file, "--mode", mode, "--sparsity", "90", "--out", out)
    assert r.returncode == 0, r.stderr
    assert "raw 0-255 pixels" in r.stderr and "training images" in r.stderr  # the pixel choice, said
    ours = float(r.stdout.split("pruned: test accuracy ")[1].split(" %")[0])
    theirs = float(r.stdout.split("TFLite: test accuracy ")[1].split(" %")[0])
    assert abs(ours - theirs) <= 0.1
    net = prune(fit_pixels(from_keras(user_model("raw").model), mnist), 0.9, mode).net
    assert abs(100 * evaluate(net, mnist.x_test, mnist.y_test).accuracy - ours) <= 0.01
    run = tflite_runner(out.read_bytes(), 500)
    out_rows = run(user_model("raw").x_test[:500])  # the user's own raw pixels
    np.testing.assert_allclose(out_rows, net.logits(mnist.x_test[:500]), rtol=1e-3, atol=1e-3)


def test_export_writes_a_shrunk_keras_model_that_takes_the_users_inputs(tmp_path, mnist):
    user = user_model("rescaling")  # (28, 28) raw pixels, rescaled by the model
    path = tmp_path / "rescaling.keras"
    user.model.save(path)
    out = tmp_path / "small.keras"
    r = run_cli("export", "--model", path, "--mode", "unit", "--sparsity", "50", "--shrink", "--out", out)
    assert r.returncode == 0, r.stderr
    assert "Rescaling" in r.stderr
    model = keras.saving.load_model(out, compile=False)
    assert model.input_shape == (None, 28, 28)
    assert model.layers[-1].units == 10 and model.count_params() < user.model.count_params()
    accuracy = float((model.predict(user.x_test, verbose=0).argmax(axis=1) == mnist.y_test).mean())
    assert abs(100 * accuracy - float(r.stdout.split("pruned: test accuracy ")[1].split(" %")[0])) <= 0.01


def test_tflite_keeps_the_users_interface(mnist):
    user = user_model("activations")  # a softmax output
    net = from_keras(user.model)
    run = tflite_runner(tflite_model(net), 200)
    out = run(user_inputs(net, mnist.x_test[:200]))
    np.testing.assert_allclose(out.sum(axis=1), 1.0, atol=1e-5)
    np.testing.assert_allclose(out, user.model.predict(user.x_test[:200], verbose=0), atol=1e-5)


def test_export_refuses_other_suffixes(tmp_path):
    r = run_cli("export", "--sparsity", "90", "--out", tmp_path / "m.onnx")
    assert r.returncode == 2 and ".tflite" in r.stderr
