"""Bad input gets one clear error and changes nothing (issue 6).

Model files through `load_model`, the CLI (`--model`) and the app's upload; sparsities, modes, methods,
budgets, epochs and hidden sizes through the API and the CLI; broken MNIST files. Every message must say
what was wrong and what is supported; no code from a file may run (marker files prove it); nothing is
written to the cache and a model loaded before stays as it was.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import subprocess
import sys
import tempfile
import zipfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import h5py
import keras
import numpy as np
import pytest
from apptest import settle
from streamlit.testing.v1 import AppTest

from obd import cli
from obd.core.config import ModelSpec, TrainConfig, preset_spec
from obd.core.data import DataError, load_mnist
from obd.core.modelcheck import MAX_MODEL_BYTES
from obd.core.network import from_keras
from obd.core.pruning import prune, prune_model, rank
from obd.methods.registry import METHODS, calibration, plan, prune_with
from obd.runtime.bench import bench
from obd.training.finetune import finetune, gradual
from obd.training.model import ModelFileError, build_model, cache_path, load_model, save_model
from obd.work.sweep import sweep

ROOT = Path(__file__).resolve().parents[2]
APP = str(ROOT / "app.py")


def weights_hash(model) -> str:
    return hashlib.sha256(b"".join(w.tobytes() for w in model.get_weights())).hexdigest()


# ---------------------------------------------------------------- model files


@keras.saving.register_keras_serializable(package="obd_test")
class MarkerDense(keras.layers.Dense):
    """A registered custom layer: building one touches `marker`, so a test sees whether its code ran."""

    marker: Path | None = None

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        if MarkerDense.marker is not None:
            MarkerDense.marker.touch()


@dataclass(frozen=True)
class BadFile:
    path: Path
    wrong: str  # what the message must say was wrong
    supported: str  # what it must say is supported
    uploadable: bool = True  # a real file the app's uploader could receive


def _rewrite_config(good: Path, out: Path, change: Callable[[dict], None]) -> Path:
    """A copy of a real .keras archive with its config.json edited (what a hostile file would do)."""
    with zipfile.ZipFile(good) as src, zipfile.ZipFile(out, "w") as dst:
        for info in src.infolist():
            data = src.read(info)
            if info.filename == "config.json":
                config = json.loads(data)
                change(config)
                data = json.dumps(config).encode()
            dst.writestr(info, data)
    return out


def _flip_weight_bytes(good: Path, out: Path) -> Path:
    """A copy whose stored weights file has 64 bytes zeroed in the middle: a valid zip with a bad CRC."""
    raw = bytearray(good.read_bytes())
    with zipfile.ZipFile(good) as z:
        info = z.getinfo("model.weights.h5")
    middle = info.header_offset + 30 + len(info.filename) + info.compress_size // 2  # 30: local header size
    raw[middle : middle + 64] = bytes(64) if raw[middle : middle + 64] != bytes(64) else b"\xff" * 64
    out.write_bytes(bytes(raw))
    return out


@pytest.fixture(scope="module")
def markers(tmp_path_factory):
    """Files that code from a hostile model would create: none may ever exist."""
    d = tmp_path_factory.mktemp("markers")
    MarkerDense.marker = d / "custom-layer-ran"
    yield {"lambda": d / "lambda-ran", "custom": MarkerDense.marker}
    MarkerDense.marker = None


@pytest.fixture(scope="module")
def bad_files(tmp_path_factory, markers) -> dict[str, BadFile]:
    d = tmp_path_factory.mktemp("bad-models")
    good = save_model(build_model(ModelSpec((8,), True), seed=2), d / "good.keras")
    raw = good.read_bytes()
    files: dict[str, BadFile] = {}

    def add(
        name: str,
        data: bytes | None,
        wrong: str,
        supported: str = "obd loads Keras 3 .keras files",
        uploadable: bool = True,
        path: Path | None = None,
    ) -> None:
        p = path or d / f"{name}.keras"
        if data is not None:
            p.write_bytes(data)
        files[name] = BadFile(p, wrong, supported, uploadable)

    add("truncated_half", raw[: len(raw) // 2], "the archive is truncated or damaged")
    add("truncated_tail", raw[:-200], "the archive is truncated or damaged")
    _flip_weight_bytes(good, d / "bad_crc.keras")
    add("bad_crc", None, "its weights file model.weights.h5 is damaged (Bad CRC-32")
    add("png", b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR" + bytes(200), "not a Keras 3 .keras file")
    add("text", b"weights = [0.1, 0.2]\n", "not a Keras 3 .keras file")
    with h5py.File(d / "legacy_h5.keras", "w") as f:
        f.create_dataset("kernel", data=np.zeros((784, 10), np.float32))
    add("legacy_h5", None, "this is an HDF5 file (the legacy .h5 format)")
    with zipfile.ZipFile(d / "plain_zip.keras", "w") as z:
        z.writestr("notes.txt", "not a model")
    add("plain_zip", None, "the zip archive holds no config.json")
    with zipfile.ZipFile(d / "bad_json.keras", "w") as z:
        z.writestr("config.json", "{not json")
    add("bad_json", None, "the archive is damaged (Expecting property name enclosed in double quotes")
    with zipfile.ZipFile(good) as src, zipfile.ZipFile(d / "bad_deflate.keras", "w", zipfile.ZIP_DEFLATED) as z:
        for info in src.infolist():
            z.writestr(info.filename, src.read(info))
    deflated = bytearray((d / "bad_deflate.keras").read_bytes())
    start = _member_data_offset(d / "bad_deflate.keras", "config.json")
    deflated[start : start + 8] = b"\xff" * 8
    add("bad_deflate", bytes(deflated), "the archive is damaged (Error -3 while decompressing data")
    add("empty", b"", "the file is empty")

    conv = keras.Sequential(
        [keras.Input((28, 28, 1)), keras.layers.Conv2D(2, 3), keras.layers.Flatten(), keras.layers.Dense(10)]
    )
    save_model(conv, d / "conv.keras")
    add("conv", None, "layer 'conv2d' is a Conv2D, which obd does not read", "convolutional, recurrent and attention")
    dropout = keras.Sequential(
        [
            keras.Input((784,)),
            keras.layers.Dense(8, activation="relu"),
            keras.layers.Dropout(0.5, name="drop"),
            keras.layers.Dense(10),
        ]
    )
    save_model(dropout, d / "dropout.keras")
    add("dropout", None, "layer 'drop' is a Dropout", "obd supports models made only of Dense layers")
    tanh = keras.Sequential(
        [keras.Input((784,)), keras.layers.Dense(8, activation="tanh", name="h"), keras.layers.Dense(10)]
    )
    save_model(tanh, d / "tanh.keras")
    add("tanh", None, "layer 'h' has activation 'tanh'", "obd supports ReLU hidden layers")
    save_model(keras.Sequential([keras.Input((100,)), keras.layers.Dense(10)]), d / "inputs_100.keras")
    add("inputs_100", None, "the model maps 100 inputs to 10 outputs", "784 inputs (28x28, flattened) and 10 outputs")
    save_model(keras.Sequential([keras.Input((784,)), keras.layers.Dense(5)]), d / "outputs_5.keras")
    add("outputs_5", None, "the model maps 784 inputs to 5 outputs", "784 inputs (28x28, flattened) and 10 outputs")

    # A Lambda whose code writes a marker when run (built from source so its bytecode holds the path).
    code = eval(f"lambda x: (__import__('pathlib').Path({str(markers['lambda'])!r}).touch(), x)[1]")
    lam = keras.Sequential([keras.Input((784,)), keras.layers.Lambda(code, name="sneaky"), keras.layers.Dense(10)])
    lam.save(d / "lambda.keras")
    add("lambda", None, "layer 'sneaky' is a Lambda layer (Python code, which obd never runs from a file)")
    custom = keras.Sequential([keras.Input((784,)), MarkerDense(10, name="mine")])
    custom.save(d / "custom_layer.keras")
    add("custom_layer", None, "layer 'mine' uses the custom object 'obd_test>MarkerDense'")

    def foreign_initializer(config: dict) -> None:  # an object the file asks Keras to import from `os`
        config["config"]["layers"][1]["config"]["kernel_initializer"] = {
            "module": "os",
            "class_name": "system",
            "config": {},
            "registered_name": None,
        }

    _rewrite_config(good, d / "foreign_module.keras", foreign_initializer)
    add("foreign_module", None, "layer 'dense_0' uses the custom object 'os.system'")
    for m in markers.values():  # building the models above ran their code once; loading must not
        m.unlink(missing_ok=True)

    for name, suffix in (("named_bin", ".bin"), ("named_h5", ".h5")):
        add(
            name,
            raw,
            f"a Keras archive whose name ends in {suffix!r}; Keras reads .keras archives only from "
            "files named *.keras, so rename it",
            path=d / f"good{suffix}",
            uploadable=False,
        )
    add("missing", None, "no such model file", path=d / "missing.keras", uploadable=False)
    add("directory", None, "is a directory, not a model file", path=d, uploadable=False)
    os.mkfifo(d / "fifo.keras")  # `--model /dev/stdin` and the like: opening it would block
    add("fifo", None, "fifo.keras: not a regular file", uploadable=False)
    big = d / "over_size_limit.keras"
    with big.open("wb") as f:
        f.truncate(MAX_MODEL_BYTES + 44 * 2**20)  # sparse: no disk used, and obd must not read it
    add("over_size_limit", None, "the file is 300.0 MB, over obd's limit of 256.0 MB", uploadable=False)
    with zipfile.ZipFile(d / "zip_bomb.keras", "w", zipfile.ZIP_DEFLATED, compresslevel=1) as z:
        with zipfile.ZipFile(good) as src:
            z.writestr("config.json", src.read("config.json"))
        with z.open("model.weights.h5", "w", force_zip64=True) as w:
            chunk = bytes(2**24)
            for _ in range(MAX_MODEL_BYTES // len(chunk) + 1):
                w.write(chunk)
    add("zip_bomb", None, "its contents unpack to 272.0 MB, over obd's limit of 256.0 MB")
    _rewrite_config(good, d / "config_bomb.keras", lambda c: c.update(padding=[0] * 2**20))
    add("config_bomb", None, "its config.json unpacks to 3.0 MB; a Dense model's takes a few KB")
    return files


@pytest.fixture(scope="module")
def loaded_before(tmp_path_factory):
    """A good model loaded before the bad ones, with its weights' hash."""
    path = save_model(build_model(ModelSpec((16,), True), seed=5), tmp_path_factory.mktemp("good") / "good.keras")
    model = load_model(path)
    return model, weights_hash(model)


@pytest.fixture
def empty_cache(tmp_path, monkeypatch):
    cache = tmp_path / "cache"
    monkeypatch.setenv("OBD_CACHE_DIR", str(cache))
    return cache


BAD_FILE_NAMES = [
    "truncated_half",
    "truncated_tail",
    "bad_crc",
    "png",
    "text",
    "legacy_h5",
    "plain_zip",
    "bad_json",
    "bad_deflate",
    "empty",
    "conv",
    "dropout",
    "tanh",
    "inputs_100",
    "outputs_5",
    "lambda",
    "custom_layer",
    "foreign_module",
    "named_bin",
    "named_h5",
    "missing",
    "directory",
    "fifo",
    "over_size_limit",
    "zip_bomb",
    "config_bomb",
]


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


def _cli(argv: list[str], capfd) -> tuple[int, str]:
    """Run `python -m obd` in this process (TensorFlow is already loaded); returns (exit code, stderr)."""
    try:
        code = cli.main([str(a) for a in argv])
    except SystemExit as e:  # argparse errors exit from inside parse_args
        code = e.code
    return code, capfd.readouterr().err


def assert_one_line_error(code: int, err: str, *fragments: str, exit: int = cli.USAGE_ERROR) -> str:
    """One `obd: error:` line holding every fragment, and the exit code: 2 for bad usage, 1 for a bad file."""
    assert code == exit, (code, err)
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("obd: error: "), err
    assert all(f in lines[0] for f in fragments), lines[0]
    return lines[0]


@pytest.mark.parametrize("command", ["sweep", "bench"])
@pytest.mark.parametrize("name", BAD_FILE_NAMES)
def test_cli_refuses_bad_model_files_with_one_line_and_exit_1(command, name, bad_files, empty_cache, markers, capfd):
    bad = bad_files[name]
    code, err = _cli([command, "--model", bad.path, "--modes", "weight", "--sparsities", "50"], capfd)
    assert_one_line_error(code, err, bad.wrong, bad.supported, exit=cli.FILE_ERROR)
    assert not any(m.exists() for m in markers.values())
    assert not empty_cache.exists(), "nothing written to the cache (no default model trained instead)"


@pytest.mark.parametrize("command, name", [("sweep", "truncated_tail"), ("bench", "lambda")])
def test_cli_process_prints_only_the_one_line(command, name, bad_files, tmp_path, markers):
    """The real process: TensorFlow's start-up noise must not bury the message."""
    env = dict(os.environ, OBD_CACHE_DIR=str(tmp_path / "cache"))
    r = subprocess.run(
        [sys.executable, "-m", "obd", command, "--model", str(bad_files[name].path)],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert_one_line_error(r.returncode, r.stderr, bad_files[name].wrong, exit=cli.FILE_ERROR)
    assert r.stdout == "" and not (tmp_path / "cache").exists()
    assert not any(m.exists() for m in markers.values())


# ---------------------------------------------------------------- the app's upload


@pytest.fixture(scope="module")
def app_session(tmp_path_factory):
    """The app on the tiny preset, with an uploaded good model in use. The preset's cache file is an untrained
    net saved into a private cache (these tests need a model, not a good one); Streamlit's process-wide
    caches are cleared afterwards so that no other test sees it."""
    import streamlit as st

    cache = tmp_path_factory.mktemp("app-cache")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("OBD_CACHE_DIR", str(cache))
        save_model(build_model(preset_spec("tiny"), seed=0), cache_path(preset_spec("tiny"), TrainConfig()))
        st.cache_resource.clear()
        st.cache_data.clear()
        good = build_model(preset_spec("tiny"), seed=7)
        upload = save_model(good, tmp_path_factory.mktemp("upload") / "mine.keras")
        at = AppTest.from_file(APP, default_timeout=300)
        at.query_params.update({"preset": "tiny", "mode": "weight", "sparsity": "60"})
        settle(at.run())  # the preset's curves, computed in the background, are done before anything is compared
        at.sidebar.file_uploader[0].set_value(("mine.keras", upload.read_bytes(), "application/octet-stream"))
        settle(at.run())  # the upload's curves and timings are done: the cache changes no more by themselves
        assert not at.exception and "upload" in at.caption[0].value
        yield at, cache
    st.cache_resource.clear()
    st.cache_data.clear()


def _files(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


UPLOADS = [
    n for n in BAD_FILE_NAMES if n not in ("named_bin", "named_h5", "missing", "directory", "fifo", "over_size_limit")
]


def test_every_uploadable_kind_is_uploaded(bad_files):
    assert UPLOADS == [n for n in BAD_FILE_NAMES if bad_files[n].uploadable]


@pytest.mark.parametrize("name", UPLOADS)
def test_a_bad_upload_shows_the_message_and_keeps_the_uploaded_model(name, bad_files, app_session, markers):
    at, cache = app_session
    bad = bad_files[name]
    before = {
        "caption": at.caption[0].value,
        "accuracy": next(m.value for m in at.metric if m.label == "Test accuracy"),
    }
    cached = _files(cache)
    raw = bad.path.read_bytes()
    upload_name = f"student-{name}.keras"
    at.sidebar.file_uploader[0].set_value((upload_name, raw, "application/octet-stream"))
    at.run()
    assert not at.exception, at.exception
    errors = [e.value for e in at.sidebar.error]
    assert len(errors) == 1, errors
    assert errors[0].startswith(f"{upload_name}: ") and bad.wrong in errors[0] and bad.supported in errors[0], errors
    assert at.caption[0].value == before["caption"], "the uploaded model stays"
    assert next(m.value for m in at.metric if m.label == "Test accuracy") == before["accuracy"]
    assert _files(cache) == cached, "nothing written to the cache"
    digest = hashlib.sha256(raw).hexdigest()
    assert not (Path(tempfile.gettempdir()) / f"obd-upload-{digest}.keras").exists(), "the refused file is deleted"
    assert not any(m.exists() for m in markers.values())


# ---------------------------------------------------------------- arguments through the API

BAD_SPARSITIES = [1.5, -0.1, 90, math.nan, math.inf, -math.inf, "0.5", None, True, [0.5], np.array([0.5]), 0.5j]
BAD_NAMES = ["", "Weight", " unit", None, 0, ["weight"], np.array(["weight", "unit"]), b"weight"]


@pytest.mark.parametrize("bad", BAD_SPARSITIES, ids=repr)
@pytest.mark.parametrize(
    "entry", ["prune", "prune_model", "ranking", "plan", "prune_with", "sweep", "bench", "gradual"]
)
def test_bad_sparsities_are_refused_everywhere(entry, bad, small_net, small_model, mnist):
    calls = {
        "prune": lambda: prune(small_net, bad),
        "prune_model": lambda: prune_model(small_model, bad),
        "ranking": lambda: rank(small_net).masks(bad),
        "plan": lambda: plan(small_net).prune(bad),
        "prune_with": lambda: prune_with(small_net, bad),
        "sweep": lambda: sweep(small_net, [0.5, bad], x=mnist.x_test[:10], y=mnist.y_test[:10]),
        "bench": lambda: bench(small_net, mnist.x_test[:10], ["weight"], [bad], [1], 1),
        "gradual": lambda: gradual(small_net, bad, mnist),
    }
    with pytest.raises(ValueError, match=r"sparsity must be .*\[0, 1\]"):
        calls[entry]()


@pytest.mark.parametrize("bad", BAD_NAMES + ["filter"], ids=repr)
@pytest.mark.parametrize("entry", ["prune", "rank", "prune_model", "plan", "sweep", "bench"])
def test_bad_modes_are_refused_everywhere(entry, bad, small_net, small_model, mnist):
    calls = {
        "prune": lambda: prune(small_net, 0.5, bad),
        "rank": lambda: rank(small_net, bad),
        "prune_model": lambda: prune_model(small_model, 0.5, bad),
        "plan": lambda: plan(small_net, "magnitude", bad),
        "sweep": lambda: sweep(small_net, [0.5], ["weight", bad], x=mnist.x_test[:10], y=mnist.y_test[:10]),
        "bench": lambda: bench(small_net, mnist.x_test[:10], [bad], [0.5], [1], 1),
    }
    with pytest.raises(ValueError, match="mode must be one of weight, unit; got"):
        calls[entry]()


@pytest.mark.parametrize("bad", BAD_NAMES + ["magic", "OBD", "obs "], ids=repr)
@pytest.mark.parametrize("entry", ["plan", "prune_with", "sweep", "gradual"])
def test_bad_methods_are_refused_everywhere(entry, bad, small_net, mnist):
    calls = {
        "plan": lambda: plan(small_net, bad),
        "prune_with": lambda: prune_with(small_net, 0.5, "weight", bad),
        "sweep": lambda: sweep(small_net, [0.5], ["weight"], x=mnist.x_test[:10], y=mnist.y_test[:10], methods=[bad]),
        "gradual": lambda: gradual(small_net, 0.5, mnist, method=bad),
    }
    with pytest.raises(ValueError, match=f"method must be one of {', '.join(METHODS)}; got"):
        calls[entry]()


@pytest.mark.parametrize("bad", BAD_NAMES + ["world"], ids=repr)
@pytest.mark.parametrize("entry", ["rank", "plan", "sweep"])
def test_bad_budgets_are_refused_everywhere(entry, bad, small_net, mnist):
    calls = {
        "rank": lambda: rank(small_net, "weight", budget=bad),
        "plan": lambda: plan(small_net, "magnitude", "weight", bad),
        "sweep": lambda: sweep(small_net, [0.5], ["weight"], x=mnist.x_test[:10], y=mnist.y_test[:10], budget=bad),
    }
    with pytest.raises(ValueError, match="budget must be one of layer, global, loss-aware; got"):
        calls[entry]()


BAD_EPOCHS = [0, -1, 101, math.nan, math.inf, "1", None, True, [1]]


@pytest.mark.parametrize("bad", BAD_EPOCHS, ids=repr)
def test_bad_epochs_are_refused_for_training_and_fine_tuning(bad, small_net, mnist):
    with pytest.raises(ValueError, match=r"epochs must be a number in \(0, 100\]"):
        TrainConfig(epochs=bad)
    with pytest.raises(ValueError, match=r"fine-tuning epochs must be a number in \(0, 100\]"):
        finetune(prune(small_net, 0.5), mnist, bad)
    if bad != 0:  # a sweep's finetune_epochs=0 means one-shot
        with pytest.raises(ValueError, match=r"fine-tuning epochs must be a number in \(0, 100\]"):
            sweep(
                small_net,
                [0.5],
                ["weight"],
                x=mnist.x_test[:10],
                y=mnist.y_test[:10],
                finetune_epochs=bad,
                train_data=mnist,
            )
    with pytest.raises(ValueError, match=r"fine-tuning epochs must be a number in \(0, 100\]"):
        gradual(small_net, 0.5, mnist, epochs=bad)


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


@pytest.mark.parametrize("bad", [0, -1, 60_001, 1.5, True, None, "10"], ids=repr)
def test_bad_calibration_sizes(bad, mnist):
    with pytest.raises(ValueError, match=r"calibration size must be a whole number in \[1, 60000\]"):
        calibration(mnist, bad)


# ---------------------------------------------------------------- arguments through the CLI


@pytest.fixture(scope="module")
def cli_model(tmp_path_factory):
    """A tiny untrained model: should a bad argument slip through, the command still ends in seconds."""
    return save_model(build_model(ModelSpec((4,), True)), tmp_path_factory.mktemp("cli") / "m.keras")


@pytest.mark.parametrize(
    "args, message",
    [
        (["--sparsities=-5"], "'-5' is out of range; give sparsities in percent, 0-100"),
        (["--sparsities", "100.5"], "'100.5' is out of range"),
        (["--sparsities", "inf"], "'inf' is out of range"),
        (["--sparsities", "1e400"], "'1e400' is out of range"),
        (["--sparsities", ""], "'' is not a number; give sparsities in percent, 0-100"),
        (["--sparsities", "50%"], "'50%' is not a number"),
        (["--sparsities"], "--sparsities: expected at least one argument"),
        (["--modes", "Weight"], "invalid choice: 'Weight' (choose from 'weight', 'unit')"),
        (["--modes", ""], "invalid choice: ''"),
        (["--methods", "magic"], "invalid choice: 'magic' (choose from " + ", ".join(map(repr, METHODS)) + ")"),
        (["--budget", "world"], "invalid choice: 'world' (choose from 'layer', 'global', 'loss-aware')"),
        (["--finetune-epochs", "nan"], "'nan': expected a number from 0 to 100"),
        (["--finetune-epochs", "-1"], "'-1': expected a number from 0 to 100"),
        (["--finetune-epochs", "101"], "'101': expected a number from 0 to 100"),
        (["--finetune-epochs", "two"], "'two': expected a number from 0 to 100"),
        (["--calib", "0"], "'0': expected a whole number of at least 1"),
        (["--calib", "1.5"], "'1.5': expected a whole number of at least 1"),
        (["--calib", "70000"], "'70000': MNIST has 60000 training images; give at most 60000"),
        (["--preset", "huge"], "invalid choice: 'huge'"),
        (["--csv", "/nonexistent/out.csv"], "'/nonexistent/out.csv': the folder '/nonexistent' does not exist"),
    ],
)
def test_bad_sweep_arguments(args, message, cli_model, empty_cache, capfd):
    code, err = _cli(["sweep", "--model", cli_model, "--sparsities", "50", "--modes", "weight", *args], capfd)
    assert_one_line_error(code, err, message)
    assert not empty_cache.exists()


@pytest.mark.parametrize(
    "args, message",
    [
        (["--sparsities", "101"], "'101' is out of range; give sparsities in percent, 0-100"),
        (["--sparsities", "nan"], "'nan' is out of range"),
        (["--modes", "filter"], "invalid choice: 'filter'"),
        (["--batch", "0"], "'0': expected a whole number of at least 1"),
        (["--batch", "20000"], "'20000': batch sizes go up to 10000 (the MNIST test set)"),
        (["--batch", "1e3"], "'1e3': expected a whole number of at least 1"),
        (["--repeats", "0"], "'0': expected a whole number of at least 1"),
        (["--json", "/nonexistent/b.json"], "'/nonexistent/b.json': the folder '/nonexistent' does not exist"),
    ],
)
def test_bad_bench_arguments(args, message, cli_model, empty_cache, capfd):
    code, err = _cli(
        [
            "bench",
            "--model",
            cli_model,
            "--sparsities",
            "50",
            "--modes",
            "weight",
            "--batch",
            "1",
            "--repeats",
            "1",
            *args,
        ],
        capfd,
    )
    assert_one_line_error(code, err, message)
    assert not empty_cache.exists()


@pytest.mark.parametrize(
    "args, message",
    [
        (["--hidden", ""], "'': give hidden sizes as whole numbers, e.g. 1000,1000"),
        (["--hidden", "64,,32"], "give hidden sizes as whole numbers"),
        (["--hidden", "1e3"], "give hidden sizes as whole numbers"),
        (["--hidden=-5"], "each hidden size must be between 1 and 8192, got [-5]"),
        (["--hidden", "9000"], "each hidden size must be between 1 and 8192"),
        (["--epochs", "nan"], "'nan': expected a number greater than 0"),
        (["--epochs", "inf"], "'inf': expected a number greater than 0"),
        (["--epochs", "0"], "'0': expected a number greater than 0"),
        (["--epochs", "1e9"], "epochs must be a number in (0, 100], got 1000000000.0"),
        (["--batch-size", "0"], "'0': expected a whole number of at least 1"),
        (["--batch-size", "70000"], "batch_size must be a whole number in [1, 60000], got 70000"),
        (["--limit", "0"], "'0': expected a whole number of at least 1"),
        (["--seed", "abc"], "invalid int value: 'abc'"),
        (["--seed=-1"], "seed must be a whole number in [0, 2**32), got -1"),
        (["--out", "model.h5"], "argument --out: 'model.h5': model files must end in .keras"),
    ],
)
def test_bad_train_arguments(args, message, tmp_path, empty_cache, capfd):
    out = tmp_path / "out.keras"
    code, err = _cli(["train", "--hidden", "4", "--epochs", "0.01", "--limit", "10", "--out", out, *args], capfd)
    assert_one_line_error(code, err, message)
    assert not out.exists() and not empty_cache.exists()


# ---------------------------------------------------------------- MNIST files


@pytest.fixture(scope="module")
def real_mnist_bytes(mnist) -> bytes:
    return Path(mnist.source).read_bytes()


def _compressed_npz(path: Path) -> Path:
    """A small MNIST-shaped npz written by np.savez_compressed (deflate streams, unlike Keras' file)."""
    x = np.tile(np.arange(28, dtype=np.uint8), (50, 28, 1))
    np.savez_compressed(path, x_train=x, y_train=np.zeros(50, np.uint8), x_test=x[:5], y_test=np.zeros(5, np.uint8))
    return path


def _member_data_offset(path: Path, name: str) -> int:
    """Where a zip member's (compressed) data starts: after its local header, name and extra field."""
    with zipfile.ZipFile(path) as z:
        offset = z.getinfo(name).header_offset
    header = path.read_bytes()[offset : offset + 30]
    return offset + 30 + int.from_bytes(header[26:28], "little") + int.from_bytes(header[28:30], "little")


def _mnist_variants(d: Path, real: bytes) -> dict[str, tuple[Path, str]]:
    import gzip
    import pickle

    out = {}

    def add(name: str, data: bytes | None, message: str, path: Path | None = None) -> None:
        p = path or d / f"{name}.npz"
        if data is not None:
            p.write_bytes(data)
        out[name] = (p, message)

    add("truncated_tail", real[: len(real) - 1000], "not a readable npz file (an npz is a zip archive of .npy arrays")
    corrupt = bytearray(real)
    corrupt[len(real) // 3 : len(real) // 3 + 4096] = b"\xff" * 4096  # stored pixels: mostly 0
    add("bad_crc", bytes(corrupt), "not a readable npz file (BadZipFile: Bad CRC-32")
    deflated = bytearray(_compressed_npz(d / "compressed.npz").read_bytes())
    start = _member_data_offset(d / "compressed.npz", "x_train.npy")
    deflated[start : start + 8] = b"\xff" * 8
    add("bad_deflate", bytes(deflated), "not a readable npz file (error: Error -3 while decompressing data")
    add("gzip", gzip.compress(real[:10000]), "not a readable npz file (an npz is a zip archive")
    add("pickle", pickle.dumps({"x_train": [1, 2, 3]}), "not a readable npz file (an npz is a zip archive")
    np.save(d / "array.npy", np.zeros((3, 28, 28), np.uint8))
    add("npy", (d / "array.npy").read_bytes(), "not a readable npz file (an npz is a zip archive")
    add("empty", b"", "not a readable npz file (it is empty)")
    with zipfile.ZipFile(d / "other_zip.npz", "w") as z:
        z.writestr("readme.txt", "hello")
    add("other_zip", None, "missing keys ['x_train', 'y_train', 'x_test', 'y_test'] (found ['readme.txt'])")
    add("directory", None, "is a directory; expected the mnist.npz file", path=d)
    os.mkfifo(d / "fifo.npz")  # opening it would block until a writer comes
    add("fifo", None, "fifo.npz: is not a regular file; expected the mnist.npz file")
    return out


MNIST_BAD = [
    "truncated_tail",
    "bad_crc",
    "bad_deflate",
    "gzip",
    "pickle",
    "npy",
    "empty",
    "other_zip",
    "directory",
    "fifo",
]


@pytest.fixture(scope="module")
def bad_mnist(tmp_path_factory, real_mnist_bytes):
    return _mnist_variants(tmp_path_factory.mktemp("bad-mnist"), real_mnist_bytes)


@pytest.mark.parametrize("name", MNIST_BAD)
def test_broken_mnist_files_are_named_through_the_env_var(name, bad_mnist, monkeypatch):
    path, message = bad_mnist[name]
    monkeypatch.setenv("OBD_MNIST_PATH", str(path))
    with pytest.raises(DataError) as e:
        load_mnist()
    text = str(e.value)
    assert text.startswith(f"{path.resolve()}: ") and message in text, text
    assert "OBD_MNIST_PATH" in text and "allow_pickle" not in text, "says how to fix it, never to unpickle"


def test_damage_anywhere_in_a_compressed_npz_is_a_data_error(tmp_path):
    """Every 8th byte of a savez_compressed file overwritten, one file each: numpy's reader fails with zlib,
    CRC, tokenize or header errors depending on where; each must come out as the same DataError."""
    good = _compressed_npz(tmp_path / "good.npz").read_bytes()
    refused = 0
    for offset in range(0, len(good), 8):
        damaged = bytearray(good)
        damaged[offset : offset + 8] = bytes(b ^ 0xFF for b in damaged[offset : offset + 8])
        path = tmp_path / f"damaged-{offset}.npz"
        path.write_bytes(bytes(damaged))
        try:
            data = load_mnist(path)
        except DataError as e:
            assert str(e).startswith(f"{path.resolve()}: "), e
            refused += 1
        else:  # a byte nothing reads (a zip field numpy ignores): the data must still be intact
            assert data.x_train.shape == (50, 784) and data.y_test.shape == (5,)
    assert refused > len(good) // 8 // 2, "most damage is caught (the rest hit fields nothing reads)"


@pytest.mark.parametrize("name", ["truncated_tail", "pickle"])
def test_the_cli_names_a_broken_mnist_file(name, bad_mnist, cli_model, monkeypatch, empty_cache, capfd):
    path, message = bad_mnist[name]
    monkeypatch.setenv("OBD_MNIST_PATH", str(path))
    code, err = _cli(["sweep", "--model", cli_model, "--sparsities", "50"], capfd)
    assert_one_line_error(code, err, str(path.resolve()), message, exit=cli.FILE_ERROR)
    assert not empty_cache.exists()
