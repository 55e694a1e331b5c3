"""`load_model`'s file checks: every kind of bad model file (tests/bad_inputs.py) is refused with one clear
line that names the file, says what was wrong and what is supported; no code from the file runs (marker files
prove it), nothing is written to the cache, and a model loaded before stays as it was (issue 6). The CLI's and
the app's handling of a bad file are tested with their entry points (tests/work/test_cli.py,
tests/ui/test_bad_inputs.py).
"""

from __future__ import annotations

import keras
import numpy as np
import pytest

from bad_inputs import BAD_FILE_NAMES, weights_hash
from obd.core.config import ModelSpec
from obd.core.network import from_keras
from obd.training.model import ModelFileError, build_model, load_model, save_model


@pytest.fixture(scope="module")
def loaded_before(tmp_path_factory):
    """A good model loaded before the bad ones, with its weights' hash."""
    path = save_model(build_model(ModelSpec((16,), True), seed=5), tmp_path_factory.mktemp("good") / "good.keras")
    model = load_model(path)
    return model, weights_hash(model)


def test_every_bad_file_kind_is_covered(bad_files):
    assert sorted(bad_files) == sorted(BAD_FILE_NAMES)


@pytest.mark.parametrize("name", BAD_FILE_NAMES)
def test_load_model_refuses_bad_files_with_one_clear_message(name, bad_files, loaded_before, empty_cache, markers):
    bad = bad_files[name]
    with pytest.raises(ModelFileError) as e:
        load_model(bad.path)
    message = str(e.value)
    assert bad.wrong in message and bad.supported in message, message
    assert "\n" not in message and "safe_mode=False" not in message, "one line, and never advice to run code"
    assert message.startswith(f"{bad.path.name}: ") or message.startswith(f"{bad.path}: "), "names the file"
    assert not any(m.exists() for m in markers.values()), "no code from the file ran"
    assert not empty_cache.exists(), "nothing written to the cache"
    model, digest = loaded_before
    assert weights_hash(model) == digest, "the model loaded before is unchanged"


def test_damage_anywhere_in_a_model_file_is_a_model_file_error(tmp_path, empty_cache):
    """A real .keras with 16 bytes inverted every 512 bytes, one file each: a clear ModelFileError, never
    another exception (a byte nothing reads may leave a loadable model, which must then be whole)."""
    model = build_model(ModelSpec((8,), True), seed=4)
    good = save_model(model, tmp_path / "good.keras").read_bytes()
    refused = 0
    for offset in range(0, len(good), 512):
        damaged = bytearray(good)
        damaged[offset : offset + 16] = bytes(b ^ 0xFF for b in damaged[offset : offset + 16])
        path = tmp_path / f"damaged-{offset}.keras"
        path.write_bytes(bytes(damaged))
        try:
            loaded = load_model(path)
        except ModelFileError as e:
            assert str(e).startswith(f"{path.name}: ") and "obd loads Keras 3 .keras files" in str(e), e
            refused += 1
        else:
            assert weights_hash(loaded) == weights_hash(model)
    assert refused > len(good) // 512 // 2, "most damage is caught (the rest hit fields nothing reads)"
    assert not empty_cache.exists()


def test_the_markers_would_catch_code_that_ran(bad_files, markers):
    """Controls: Keras run unsafely does run the Lambda, and Keras' safe_mode alone builds a registered
    custom class; only obd's own check keeps both out."""
    keras.saving.load_model(bad_files["lambda"].path, safe_mode=False)
    keras.saving.load_model(bad_files["custom_layer"].path, safe_mode=True)
    try:
        assert markers["lambda"].exists() and markers["custom"].exists()
    finally:
        for m in markers.values():
            m.unlink(missing_ok=True)


def test_good_models_of_every_supported_form_still_load(tmp_path):
    """The checks refuse no legitimate MLP: functional, Flatten first, softmax output, regularizer, saved
    compiled with optimizer state."""
    inputs = keras.Input((28, 28))
    h = keras.layers.Dense(16, activation="relu", kernel_regularizer="l2")(keras.layers.Flatten()(inputs))
    functional = keras.Model(inputs, keras.layers.Dense(10, activation="softmax")(h))
    functional.compile("adam", "sparse_categorical_crossentropy", metrics=["accuracy"])
    functional.fit(np.zeros((4, 28, 28)), np.zeros(4), verbose=0)
    functional.save(tmp_path / "functional.keras")  # keras' own save: optimizer state and compile config kept
    net = from_keras(load_model(tmp_path / "functional.keras"))
    assert net.sizes == (784, 16, 10)
