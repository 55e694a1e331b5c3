"""The configuration's checks (`ModelSpec`, `TrainConfig`, presets), each tried with every bad value: a clear
ValueError before anything trains."""

import math

import numpy as np
import pytest

from bad_inputs import BAD_EPOCHS
from obd.core.config import ModelSpec, TrainConfig, preset_spec
from obd.core.files import cache_path


@pytest.mark.parametrize("bad", BAD_EPOCHS, ids=repr)
def test_bad_epochs_are_refused_for_training(bad):
    with pytest.raises(ValueError, match=r"epochs must be a number in \(0, 100\]"):
        TrainConfig(epochs=bad)


@pytest.mark.parametrize("bad", [None, 128, "128,64", [128, None], [[128]], (True,), (np.float32(8),)], ids=repr)
def test_bad_hidden_sizes_beyond_test_model(bad):
    with pytest.raises(ValueError, match="hidden sizes must be a non-empty list of whole numbers"):
        ModelSpec(bad)


@pytest.mark.parametrize(
    "kwargs, message",
    [
        (dict(use_bias="yes"), "use_bias must be True or False"),
        (dict(use_bias=None), "use_bias must be True or False"),
    ],
)
def test_bad_model_spec_settings(kwargs, message):
    with pytest.raises(ValueError, match=message):
        ModelSpec((8,), **kwargs)


@pytest.mark.parametrize(
    "kwargs, message",
    [
        (dict(batch_size=True), "batch_size must be a whole number"),
        (dict(batch_size=2.0), "batch_size must be a whole number"),
        (dict(batch_size=60_001), "batch_size must be a whole number"),
        (dict(learning_rate=True), "learning_rate must be in"),
        (dict(learning_rate=math.nan), "learning_rate must be in"),
        (dict(seed=-1), r"seed must be a whole number in \[0, 2\*\*32\)"),
        (dict(seed=2**32), "seed must be a whole number"),
        (dict(seed="x"), "seed must be a whole number"),
        (dict(seed=None), "seed must be a whole number"),
        (dict(seed=1.5), "seed must be a whole number"),
        (dict(train_limit=True), "train_limit must be a positive whole number"),
        (dict(train_limit=-5), "train_limit must be a positive whole number"),
    ],
)
def test_bad_training_settings_beyond_test_model(kwargs, message):
    with pytest.raises(ValueError, match=message):
        TrainConfig(**kwargs)


def test_numpy_integers_are_whole_numbers_and_keep_the_cache_key():
    config = TrainConfig(batch_size=np.int64(128), seed=np.int32(0))
    assert config == TrainConfig() and cache_path(ModelSpec(), config) == cache_path(ModelSpec(), TrainConfig())
    assert ModelSpec([np.int64(8)], np.bool_(True)) == ModelSpec((8,), True)


@pytest.mark.parametrize("bad", [None, "Tiny", ["tiny"], "../tiny", 1], ids=repr)
def test_bad_presets(bad):
    with pytest.raises(ValueError, match="unknown preset .*; choose one of challenge, notebook, tiny"):
        preset_spec(bad)
