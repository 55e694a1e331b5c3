"""obd.core.modelcheck: a model file from a user is checked from its config alone, before any library builds it.

Real .keras files: saved by Keras, then rewritten as an attacker would (benchmarks/hostile_upload.py builds them).
Each hostile file is refused with one line naming it, what was wrong and what obd supports, without TensorFlow
in the process and without changing the file; every MLP obd supports passes, and the parameters the check
counts from the config are the ones Keras builds.
"""

from __future__ import annotations

import json
import subprocess
import sys
import zipfile
from pathlib import Path

import keras
import numpy as np
import pytest

from benchmarks.hostile_upload import NAMES, Hostile, hostile_files
from obd.core.config import ModelSpec, preset_spec
from obd.core.files import ModelFileError, read_keras_file
from obd.core.modelcheck import MAX_PARAMETERS, check_config, check_keras_file
from obd.training.model import build_model, save_model

ROOT = Path(__file__).resolve().parents[2]
L = keras.layers


@pytest.fixture(scope="module")
def template(tmp_path_factory) -> Path:
    return save_model(build_model(ModelSpec((8,), True), seed=0), tmp_path_factory.mktemp("template") / "t.keras")


@pytest.fixture(scope="module")
def hostile(tmp_path_factory, template) -> dict[str, Hostile]:
    return hostile_files(tmp_path_factory.mktemp("hostile"), template)


HOSTILE = list(NAMES)


def test_every_hostile_kind_is_checked(hostile):
    assert list(hostile) == HOSTILE


@pytest.mark.parametrize("name", HOSTILE)
def test_a_hostile_file_is_refused_with_one_clear_line_and_left_unchanged(name, hostile):
    h = hostile[name]
    before = h.path.read_bytes()
    with pytest.raises(ModelFileError) as e:
        check_keras_file(h.path)
    message = str(e.value)
    assert message.startswith(f"{h.path.name}: ") and h.refusal in message, message
    assert "obd loads Keras 3 .keras files" in message and "\n" not in message
    assert h.path.read_bytes() == before


def test_hostile_files_are_refused_without_tensorflow(hostile):
    """In a fresh process: every refusal comes from the config and the weights' metadata, with neither TensorFlow
    nor Keras imported, so nothing the file describes was ever built."""
    script = (
        "import sys\n"
        "from obd.core.modelcheck import check_keras_file\n"
        "from obd.core.files import ModelFileError\n"
        "for path in sys.argv[1:]:\n"
        "    try:\n"
        "        check_keras_file(path)\n"
        "    except ModelFileError as e:\n"
        "        print(str(e).split(':')[0])\n"
        "print(sorted(m for m in ('tensorflow', 'keras') if m in sys.modules))\n"
    )
    paths = [str(hostile[n].path) for n in HOSTILE]
    r = subprocess.run([sys.executable, "-c", script, *paths], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    lines = r.stdout.splitlines()
    assert lines[:-1] == [Path(p).name for p in paths], "each file refused"
    assert lines[-1] == "[]", "no TensorFlow or Keras imported"


def test_the_conv_net_refusal_says_it_is_out_of_scope_and_names_what_obd_reads(hostile):
    with pytest.raises(ModelFileError) as e:
        check_keras_file(hostile["conv"].path)
    message = str(e.value)
    assert "layer 'conv' is a Conv2D, which obd does not read" in message
    assert "convolutional, recurrent and attention networks are out of scope" in message
    assert "Dense, Rescaling, Normalization, Dropout, BatchNormalization, ReLU, Activation, Softmax" in message


def _config(path: Path) -> dict:
    with zipfile.ZipFile(path) as z:
        return json.loads(z.read("config.json"))


def test_the_largest_preset_passes_with_its_exact_parameter_count(tmp_path):
    model = build_model(preset_spec("challenge"))  # 784-1000x4-10, no bias
    path = save_model(model, tmp_path / "challenge.keras")
    config = check_keras_file(path)
    assert check_config(path, config) == model.count_params() == 3_794_000 < MAX_PARAMETERS


def _every_layer_sequential():
    return keras.Sequential(
        [
            keras.Input((28, 28)),
            L.Rescaling(1 / 255),
            L.Reshape((784,)),
            L.Dense(32),
            L.BatchNormalization(),
            L.ReLU(),
            L.Dropout(0.2),
            L.Dense(16, activation="relu"),
            L.Activation("relu"),
            L.Dense(10),
            L.Softmax(),
        ]
    )


def _functional():
    inputs = keras.Input((28, 28))
    h = L.Dense(64, activation="relu")(L.Flatten()(inputs))
    return keras.Model(inputs, L.Dense(10)(L.Dropout(0.1)(L.BatchNormalization()(h))))


@pytest.mark.parametrize("make", [_every_layer_sequential, _functional], ids=["sequential", "functional"])
def test_every_allowed_layer_passes_and_parameters_are_counted_as_keras_builds_them(make, tmp_path):
    model = make()
    model.save(tmp_path / "m.keras")
    config = check_keras_file(tmp_path / "m.keras")
    assert check_config(tmp_path / "m.keras", config) == model.count_params()


def test_a_normalization_layer_is_counted_at_most_once_per_statistic(tmp_path):
    model = keras.Sequential([keras.Input((784,)), L.Normalization(mean=0.1, variance=0.09), L.Dense(10)])
    model.save(tmp_path / "n.keras")
    counted = check_config(tmp_path / "n.keras", _config(tmp_path / "n.keras"))
    assert model.count_params() <= counted <= model.count_params() + 2 * 784 + 1


def test_read_keras_file_refuses_links_to_other_files(hostile):
    """The TensorFlow-free reader of obd's cached models runs the same checks: HDF5 would open the other file."""
    for name, what in (("external_link", "an external link"), ("virtual_dataset", "a virtual dataset")):
        with pytest.raises(ModelFileError, match=what):
            read_keras_file(hostile[name].path)


def test_the_template_itself_loads_so_each_refusal_is_the_rewrite(template):
    """A control: the untouched file the hostile ones are made from passes and reads."""
    check_keras_file(template)
    assert read_keras_file(template).sizes == (784, 8, 10)
    assert np.isfinite(read_keras_file(template).layers[0].kernel).all()
