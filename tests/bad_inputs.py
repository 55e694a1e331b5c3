"""Hostile and broken inputs for the tests of obd's checks: the bad values each validator is tested with, and,
built from real files, every kind of bad model file (damaged, not a model, unsupported layers, code that must
never run, files too large to read) and of broken MNIST file. The fixtures that build the files once per session
are in conftest.py."""

from __future__ import annotations

import gzip
import hashlib
import json
import math
import os
import pickle
import zipfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import h5py
import keras
import numpy as np

from benchmarks.hostile_upload import NAMES, hostile_files
from obd.core.config import ModelSpec
from obd.core.modelcheck import MAX_MODEL_BYTES
from obd.methods.registry import METHODS
from obd.training.model import build_model, save_model

# Each validator is tested with every one of its bad values; each entry point with one, to prove it calls it.
BAD_SPARSITIES = [1.5, -0.1, 90, math.nan, math.inf, -math.inf, "0.5", None, True, [0.5], np.array([0.5]), 0.5j]
BAD_NAMES = ["", "Weight", " unit", None, 0, ["weight"], np.array(["weight", "unit"]), b"weight"]  # modes, methods…
BAD_EPOCHS = [0, -1, 101, math.nan, math.inf, "1", None, True, [1]]
# what each validator's message must say (pytest.raises' match)
SPARSITY_ERROR = r"sparsity must be .*\[0, 1\]"
MODE_ERROR = "mode must be one of weight, unit; got"
BUDGET_ERROR = "budget must be one of layer, global, loss-aware; got"
METHOD_ERROR = f"method must be one of {', '.join(METHODS)}; got"
FINETUNE_EPOCHS_ERROR = r"fine-tuning epochs must be a number in \(0, 100\]"


def weights_hash(model) -> str:
    """A digest of a Keras model's weights: equal digests, unchanged weights."""
    return hashlib.sha256(b"".join(w.tobytes() for w in model.get_weights())).hexdigest()


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
    """A bad model file and what obd's one-line refusal of it must say."""

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


def make_bad_files(d: Path, markers: dict[str, Path]) -> dict[str, BadFile]:
    """Every kind of bad model file in the folder `d`, by name; building the hostile ones runs their code once,
    so `markers` are removed afterwards (loading must never create them again)."""
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
    start = member_data_offset(d / "bad_deflate.keras", "config.json")
    deflated[start : start + 8] = b"\xff" * 8
    add("bad_deflate", bytes(deflated), "the archive is damaged (Error -3 while decompressing data")
    add("empty", b"", "the file is empty")

    conv = keras.Sequential(
        [keras.Input((28, 28, 1)), keras.layers.Conv2D(2, 3), keras.layers.Flatten(), keras.layers.Dense(10)]
    )
    save_model(conv, d / "conv.keras")
    add("conv", None, "layer 'conv2d' is a Conv2D, which obd does not read", "convolutional, recurrent and attention")
    tanh = keras.Sequential(
        [keras.Input((784,)), keras.layers.Dense(8, activation="tanh", name="h"), keras.layers.Dense(10)]
    )
    save_model(tanh, d / "tanh.keras")
    add("tanh", None, "layer 'h' has activation 'tanh'", "obd reads ReLU hidden layers")
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
    (d / "hostile").mkdir()
    for name, hostile in hostile_files(d / "hostile", good, bomb=False).items():  # Keras would build these
        add(f"hostile_{name}", None, hostile.refusal, path=hostile.path)
    return files


HOSTILE = [f"hostile_{name}" for name in NAMES if name != "zip_bomb"]  # benchmarks/hostile_upload's (a bomb is above)
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
    *HOSTILE,
]


def compressed_npz(path: Path) -> Path:
    """A small MNIST-shaped npz written by np.savez_compressed (deflate streams, unlike Keras' file)."""
    x = np.tile(np.arange(28, dtype=np.uint8), (50, 28, 1))
    np.savez_compressed(path, x_train=x, y_train=np.zeros(50, np.uint8), x_test=x[:5], y_test=np.zeros(5, np.uint8))
    return path


def member_data_offset(path: Path, name: str) -> int:
    """Where a zip member's (compressed) data starts: after its local header, name and extra field."""
    with zipfile.ZipFile(path) as z:
        offset = z.getinfo(name).header_offset
    header = path.read_bytes()[offset : offset + 30]
    return offset + 30 + int.from_bytes(header[26:28], "little") + int.from_bytes(header[28:30], "little")


def make_mnist_variants(d: Path, real: bytes) -> dict[str, tuple[Path, str]]:
    """Every kind of broken MNIST file in the folder `d`, by name: (path, what the error must say)."""
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
    deflated = bytearray(compressed_npz(d / "compressed.npz").read_bytes())
    start = member_data_offset(d / "compressed.npz", "x_train.npy")
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
