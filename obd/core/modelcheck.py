"""Checks on a `.keras` file from a user, made before any library builds anything from it; no TensorFlow.

Keras builds every layer its config.json describes before obd could look at the model: a small file asking for
a huge Dense layer would take the machine's memory (and a class server with it) before being refused. So the
config is read here with `json` alone and checked against what obd can prune:

- the archive: a regular file, small on disk and unpacked (no zip bombs), with a small config.json;
- the config: a Sequential or functional model whose layers are all in `LAYERS` (an allowlist), with no
  Lambda layer and no object from outside Keras anywhere (code, which obd never runs from a file);
- its sizes, read from the config alone: units per layer, the input's size, every shape the config declares,
  the number of layers and the parameters the layers would hold, each under a cap (`MAX_*`) set far above
  obd's largest preset and far below what 2 cores and a few GB can hold;
- its weights file (HDF5, read with h5py): no external or soft links, no virtual datasets and no external
  storage, which would make HDF5 open other files on the server, and arrays that read into at most
  MAX_MODEL_BYTES (a compressed dataset can declare far more than the file holds).

Every refusal is one `ModelFileError` naming the file, what was wrong and what obd supports.
"""

from __future__ import annotations

import json
import math
import os
import zipfile
from pathlib import Path
from typing import IO, Any

from obd.core.files import ModelFileError

SUPPORTED = (
    "obd loads Keras 3 .keras files (model.save('m.keras')) of MLPs: Dense layers (784 inputs, 10 outputs) "
    "with Flatten, Rescaling, Normalization, Dropout, BatchNormalization and ReLU or softmax activations; "
    "no convolutions, Lambda layers or custom objects"
)
LAYERS = (
    "InputLayer",
    "Flatten",
    "Reshape",
    "Dense",
    "Rescaling",
    "Normalization",
    "Dropout",
    "BatchNormalization",
    "ReLU",
    "Activation",
    "Softmax",
)  # the layer classes a model may hold: those of a multilayer perceptron
MODELS = ("Sequential", "Functional")
MAX_MODEL_BYTES = 256 * 2**20  # file and unpacked size: 67 M float32 weights, 4x the parameters' cap
MAX_CONFIG_BYTES = 2**20  # config.json, parsed in full before anything else: an MLP's is about 1 KB per layer
MAX_UNITS = 8192  # per layer, and the size of any shape the config declares: obd's widest preset has 1000
MAX_INPUTS = 4096  # values into the model: obd's models take 784 (28x28 pixels)
MAX_LAYERS = 64  # obd's deepest preset has 7
MAX_PARAMETERS = 16_000_000  # 64 MB of float32; obd's largest preset, 784-1000x4-10, has 3,794,000
MAX_H5_OBJECTS = 10_000  # groups and datasets in the weights file: an MLP's has a few per layer
WEIGHTS = "model.weights.h5"
_ZIP_MAGIC, _HDF5_MAGIC = b"PK\x03\x04", b"\x89HDF\r\n\x1a\n"
# Where a config declares a shape Keras builds from: an input's, a layer's build input, a functional graph's
# tensors, a Reshape's target and a Dropout's noise.
_SHAPE_KEYS = ("batch_shape", "batch_input_shape", "input_shape", "build_input_shape", "shape", "target_shape")
_SCOPE = (
    "convolutional, recurrent and attention networks are out of scope; obd prunes multilayer perceptrons, made of "
    f"{', '.join(LAYERS)} layers"
)


def refuse(path: Path, what: str) -> ModelFileError:
    """The error for a file obd will not load: its name, what was wrong, and what obd supports.

    Args:
        path: the file.
        what: what is wrong with it, one clause without a final full stop.

    Returns:
        The ModelFileError to raise.
    """
    return ModelFileError(f"{path.name}: {what}. {SUPPORTED}")


def reason(e: BaseException) -> str:
    """An exception's first line, short enough for a one-line message (its type when it has no text)."""
    text = str(e).strip()
    return text.splitlines()[0][:300] if text else type(e).__name__


def _megabytes(n: int) -> str:
    """Bytes as "12.3 MB" (MiB, as file managers show them)."""
    return f"{n / 2**20:.1f} MB"


def check_keras_file(path: str | os.PathLike) -> dict:
    """Check a `.keras` file as far as can be done without building it; the one check before Keras reads one.

    Args:
        path: the file, named *.keras (Keras picks its reader by the name).

    Returns:
        Its parsed config.json.

    Raises:
        ModelFileError: not a regular file, unreadable, too large, not a Keras 3 archive, damaged, a zip bomb,
            code or custom objects in the config, a layer outside `LAYERS`, sizes over the caps, or links to
            other files in the weights; the message says what was wrong and what obd supports.
    """
    p = Path(path).expanduser()
    if not p.is_file():  # never open a pipe or device: reading /dev/stdin or a FIFO would block
        what = (
            "is a directory, not a model file"
            if p.is_dir()
            else "no such model file"
            if not p.exists()
            else "not a regular file"
        )
        raise ModelFileError(f"{p}: {what}. {SUPPORTED}")
    try:
        config = _read_config(p)
        if p.suffix != ".keras":  # Keras would fail with an unrelated message
            raise refuse(
                p,
                f"a Keras archive whose name ends in {p.suffix or 'no suffix'!r}; Keras reads .keras "
                "archives only from files named *.keras, so rename it",
            )
        check_config(p, config)
        with zipfile.ZipFile(p) as z:
            if WEIGHTS in z.namelist():
                with z.open(WEIGHTS) as weights:  # seekable: h5py reads only the parts it needs
                    check_weights(p, weights)
    except OSError as e:  # unreadable (permissions), or removed while we looked
        raise refuse(p, f"the file cannot be read ({e.strerror or type(e).__name__})") from None
    return config


def _read_config(path: Path) -> dict:
    """config.json of a Keras zip, after checking the file's and the archive's sizes (zipfile never returns more
    than the declared sizes, so these bound what gets unpacked)."""
    size = path.stat().st_size
    if size == 0:
        raise refuse(path, "the file is empty")
    if size > MAX_MODEL_BYTES:
        raise refuse(path, f"the file is {_megabytes(size)}, over obd's limit of {_megabytes(MAX_MODEL_BYTES)}")
    if not zipfile.is_zipfile(path):
        with path.open("rb") as f:
            head = f.read(8)
        if head.startswith(_ZIP_MAGIC):
            raise refuse(path, "the archive is truncated or damaged (it starts like a .keras zip but cannot be read)")
        if head.startswith(_HDF5_MAGIC):
            raise refuse(
                path,
                "this is an HDF5 file (the legacy .h5 format), not a Keras 3 .keras file; load it "
                "in Keras and save it again with model.save('m.keras')",
            )
        raise refuse(path, "not a Keras 3 .keras file (a .keras file is a zip archive)")
    try:
        with zipfile.ZipFile(path) as z:
            unpacked = sum(info.file_size for info in z.infolist())
            config_size = z.getinfo("config.json").file_size
            small = unpacked <= MAX_MODEL_BYTES and config_size <= MAX_CONFIG_BYTES
            config = json.loads(z.read("config.json")) if small else None
    except KeyError:
        raise refuse(path, "not a Keras 3 .keras file (the zip archive holds no config.json)") from None
    except Exception as e:  # bad CRC, zlib errors, unknown compression, bad JSON, absurd nesting: all damage
        raise refuse(path, f"the archive is damaged ({reason(e)})") from None
    if unpacked > MAX_MODEL_BYTES:
        raise refuse(
            path, f"its contents unpack to {_megabytes(unpacked)}, over obd's limit of {_megabytes(MAX_MODEL_BYTES)}"
        )
    if config_size > MAX_CONFIG_BYTES:
        raise refuse(
            path,
            f"its config.json unpacks to {_megabytes(config_size)}; a Dense model's takes a few KB "
            f"(obd's limit is {_megabytes(MAX_CONFIG_BYTES)})",
        )
    if not isinstance(config, dict):
        raise refuse(path, "the archive is damaged (its config.json holds no model)")
    return config


def check_config(path: Path, config: dict) -> int:
    """Check a model's config.json: no code, allowed model and layer classes only, and sizes under the caps.

    Args:
        path: the file it came from (named in messages).
        config: the parsed config.json.

    Returns:
        The parameters Keras would build for it: exact for Dense and BatchNormalization layers, an upper bound
        for a Normalization layer (whose statistics may be constants).

    Raises:
        ModelFileError: for the first problem found.
    """
    _check_code(path, config)
    model = config.get("class_name")
    if model not in MODELS:
        raise refuse(path, f"the model is a {str(model)[:40]!r}, not a Sequential or functional model; {_SCOPE}")
    body = config.get("config")
    layers = body.get("layers") if isinstance(body, dict) else None
    if not isinstance(layers, list) or not all(isinstance(layer, dict) for layer in layers):
        raise refuse(path, "the archive is damaged (its config.json lists no layers)")
    if len(layers) > MAX_LAYERS:
        raise refuse(path, f"the model has {len(layers)} layers, over obd's limit of {MAX_LAYERS}")
    for layer in layers:
        kind = layer.get("class_name")
        if kind not in LAYERS:
            raise refuse(path, f"layer {_layer_name(layer)!r} is a {str(kind)[:40]}, which obd does not read; {_SCOPE}")
    return _check_sizes(path, config, layers)


def _check_sizes(path: Path, config: dict, layers: list[dict]) -> int:
    """Every declared shape, each layer's output and units, and the model's parameters, against the caps.

    Shapes are followed through the layers as Keras would build them (a Sequential's layers in order, a
    functional model's along its graph); a Dense layer's inputs are the widest Keras could build it with: the
    shape it receives or any input shape its config declares.
    """
    _check_declared_shapes(path, config)
    functional = config.get("class_name") == "Functional"
    body = config["config"]  # a dict: check_config looked
    start = body.get("build_input_shape")
    shape: list | None = start[1:] if isinstance(start, list) and not functional else None  # without the batch
    outputs: dict[str, list | None] = {}  # a functional model's layers' output shapes, by name
    total = 0
    for layer in layers:
        kind, name = layer["class_name"], _layer_name(layer)
        cfg = layer["config"] if isinstance(layer.get("config"), dict) else {}
        key = str(cfg.get("name"))  # what a functional graph's tensors name it by
        declared = _declared_inputs(layer)
        if functional and kind != "InputLayer":
            sources = _sources(layer)
            if len(sources) != 1:
                raise refuse(
                    path, f"layer {name!r} is called on {len(sources)} inputs; obd reads layers used once, on one input"
                )
            if sources[0] not in outputs:
                raise refuse(path, f"the archive is damaged (layer {name!r} takes its input from an unknown layer)")
            shape = outputs[sources[0]]
        if shape is None and declared:
            shape = declared[0][1:]
        shape, params = _layer_output(path, kind, cfg, name, shape, declared)
        outputs[key] = shape
        total += params
        if total > MAX_PARAMETERS:
            raise refuse(
                path,
                f"its layers would hold {total:,} parameters (counted up to layer {name!r}), over obd's limit "
                f"of {MAX_PARAMETERS:,}; obd's largest preset, 784-1000x4-10, has 3,794,000",
            )
    return total


def _layer_output(
    path: Path, kind: str, cfg: dict, name: str, shape: list | None, declared: list[list]
) -> tuple[list | None, int]:
    """One layer's output shape (without the batch; None when unknown) and the parameters it would hold, given
    the shape it receives and the input shapes its config declares."""
    params = 0
    if kind == "InputLayer":
        batch_shape = cfg.get("batch_shape") or cfg.get("batch_input_shape") or [None]
        shape = list(batch_shape[1:])
        if (size := _product(shape)) > MAX_INPUTS:
            raise refuse(
                path,
                f"its input takes {size:,} values, over obd's limit of {MAX_INPUTS:,}; obd's models take 784 "
                "(28x28 pixels)",
            )
        return shape, 0
    inputs = max([_last(shape or []), *(_last(s) for s in declared)])
    if kind == "Dense":
        units = cfg.get("units")
        if not isinstance(units, int) or isinstance(units, bool) or not 1 <= units <= MAX_UNITS:
            raise refuse(
                path,
                f"layer {name!r} asks for {str(units)[:20]} units; obd reads Dense layers of 1 to {MAX_UNITS:,} units",
            )
        if cfg.get("lora_rank") is not None:
            raise refuse(path, f"layer {name!r} is a LoRA Dense layer, which obd does not read")
        params = inputs * units + (units if cfg.get("use_bias", True) else 0)
        shape = [*(shape or [None])[:-1], units]
    elif kind == "Flatten" and shape is not None:
        shape = [_product(shape)]
    elif kind == "Reshape":
        target = cfg.get("target_shape") or []
        shape = [_product(shape or [])] if -1 in target else list(target)  # -1: all the values in one axis
    elif kind in ("BatchNormalization", "Normalization"):  # per-feature statistics: at most one per value
        features = max([_product(shape or []), *(_product(s[1:]) for s in declared)])
        params = 4 * features if kind == "BatchNormalization" else 2 * features + 1
    if shape is not None and (size := _product(shape)) > MAX_UNITS:
        raise refuse(
            path,
            f"layer {name!r} would output {size:,} values per example, over obd's limit of {MAX_UNITS:,}; obd's "
            "layers have at most 1,000 units",
        )
    return shape, params


def _check_declared_shapes(path: Path, config: dict) -> None:
    """Every shape anywhere in the config, each at most MAX_UNITS values: Keras builds from any of them."""
    stack: list[tuple[object, str]] = [(config, "")]
    while stack:
        node, key = stack.pop()
        if key in _SHAPE_KEYS and node is not None:
            _check_shape(path, node, key)
        elif isinstance(node, dict):
            stack.extend((v, k) for k, v in node.items() if k != "compile_config")
        elif isinstance(node, list):
            stack.extend((v, key) for v in node)


def _check_shape(path: Path, shape: object, key: str) -> None:
    """A declared shape (or a list of them): whole dimensions, None or -1 (Reshape's "the rest"), at most MAX_UNITS
    values in all."""
    if isinstance(shape, list) and shape and all(isinstance(s, list) or s is None for s in shape):
        for s in shape:  # a layer with several inputs
            if s is not None:
                _check_shape(path, s, key)
        return
    if not isinstance(shape, list) or not all(d is None or (_whole(d) and d >= -1) for d in shape):
        raise refuse(path, f"the archive is damaged (a {key} of {str(shape)[:40]} is not a shape)")
    if (size := _product(shape)) > MAX_UNITS:
        raise refuse(
            path,
            f"its config declares a {key} of {size:,} values, over obd's limit of {MAX_UNITS:,} per layer; obd's "
            "models take 784 inputs",
        )


def _declared_inputs(layer: dict) -> list[list]:
    """The input shapes (with the batch) a layer's config declares: its build_config's and its graph tensors'."""
    shapes: list[object] = []
    build = layer.get("build_config")
    if isinstance(build, dict):
        shapes.append(build.get("input_shape"))
    shapes += [t["config"].get("shape") for t in _tensors(layer)]
    return [s for s in shapes if isinstance(s, list) and s and not isinstance(s[0], list)]


def _sources(layer: dict) -> list[str]:
    """The layers a functional model's layer is called on, one per input tensor of each of its calls."""
    history = [t["config"].get("keras_history") for t in _tensors(layer)]
    return [str(h[0]) if isinstance(h, list) and h else "?" for h in history]


def _tensors(layer: dict) -> list[dict]:
    """The serialized tensors in a layer's inbound nodes (a functional model's graph)."""
    found, stack = [], [layer.get("inbound_nodes")]
    while stack:
        node = stack.pop()
        if isinstance(node, dict):
            if node.get("class_name") == "__keras_tensor__" and isinstance(node.get("config"), dict):
                found.append(node)
            else:
                stack.extend(node.values())
        elif isinstance(node, list):
            stack.extend(node)
    return found


def _last(shape: list) -> int:
    """A shape's last dimension (0 when unknown): the inputs of a Dense layer built on it."""
    return shape[-1] if shape and _whole(shape[-1]) and shape[-1] > 0 else 0


def _product(shape: list) -> int:
    """Values in a shape, unknown (None or -1) dimensions counted as 1."""
    return math.prod(d for d in shape if _whole(d) and d >= 0)


def _whole(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _check_code(path: Path, config: object) -> None:
    """Refuse Lambda layers and objects from outside Keras anywhere in a model's config.json.

    Every serialized object is a dict with a "class_name"; Keras' own carry a "module" under keras and no
    registered (custom) name; Keras-internal values (tensors, tuples) have dunder names, and "__lambda__"
    is Python bytecode. compile_config is skipped: obd loads with compile=False, so Keras never reads it.
    """
    stack: list[tuple[object, str]] = [(config, "")]  # (node, the layer it belongs to; "" for the model)
    while stack:  # iterative: a hostile file can nest deeper than Python's recursion limit
        node, layer = stack.pop()
        if isinstance(node, list):
            stack.extend((item, layer) for item in node)
        elif isinstance(node, dict):
            _check_object(path, node, layer)
            for key, value in node.items():
                if key == "layers" and isinstance(value, list):  # a model's layers: blame each by its name
                    stack.extend((item, _layer_name(item)) for item in value)
                elif key != "compile_config":
                    stack.append((value, layer))


def _layer_name(node: object) -> str:
    """A serialized layer's name ("?" when the config has none), for messages."""
    config = node.get("config") if isinstance(node, dict) else None
    return str(config.get("name", "?"))[:60] if isinstance(config, dict) else "?"


def _check_object(path: Path, node: dict, layer: str) -> None:
    """Raise ModelFileError if one serialized object is a Lambda or a class from outside Keras."""
    name = node.get("class_name")
    if not isinstance(name, str):
        return
    where = f"layer {layer!r}" if layer else "the model"
    if name in ("Lambda", "__lambda__"):
        raise refuse(path, f"{where} is a Lambda layer (Python code, which obd never runs from a file)")
    if name.startswith("__") and name.endswith("__"):
        return  # Keras-internal values: tensors, tuples, arrays
    module, registered = node.get("module"), node.get("registered_name")
    if not (isinstance(module, str) and module.split(".")[0] == "keras") or registered not in (None, name):
        custom = registered if isinstance(registered, str) else f"{module}.{name}"
        raise refuse(
            path, f"{where} uses the custom object {custom[:80]!r} (code from outside Keras, which obd never runs)"
        )


def check_weights(path: Path, weights: IO[bytes] | Path) -> None:
    """Refuse an HDF5 weights file that would make HDF5 read other files: external or soft links, virtual
    datasets (mapped from other files) and datasets with external storage. Keras writes none of them.

    Args:
        path: the model file (named in messages).
        weights: the HDF5 file, a path or a seekable binary file.

    Raises:
        ModelFileError: for a link, a virtual or externally stored dataset, arrays over MAX_MODEL_BYTES once read,
            too many objects, or a file h5py cannot read.
    """
    import h5py  # light (no TensorFlow), but only needed here

    try:
        with h5py.File(weights, "r") as h5:
            _walk(path, h5, h5py)
    except ModelFileError:
        raise
    except Exception as e:  # not HDF5, truncated, damaged
        raise refuse(path, f"its weights file {WEIGHTS} is damaged ({reason(e)})") from None


def _walk(path: Path, root: Any, h5py: Any) -> None:
    """Every link below `root`, looked at before it is followed; each object visited once."""
    stack, seen, values = [root], set(), 0  # values: bytes the datasets hold once read
    while stack:
        group = stack.pop()
        for name in group:
            link = group.get(name, getlink=True)
            where = f"{group.name.rstrip('/')}/{name}"[:120]
            if isinstance(link, (h5py.ExternalLink, h5py.SoftLink)):
                kind = "an external link to another file" if isinstance(link, h5py.ExternalLink) else "a soft link"
                raise refuse(path, f"its weights file holds {kind} ({where}); Keras writes plain datasets only")
            obj = group[name]
            if obj.id in seen:
                continue
            seen.add(obj.id)
            if len(seen) > MAX_H5_OBJECTS:
                raise refuse(
                    path, f"its weights file holds over {MAX_H5_OBJECTS:,} objects; an MLP's holds a few dozen"
                )
            if isinstance(obj, h5py.Group):
                stack.append(obj)
            elif isinstance(obj, h5py.Dataset):
                if obj.is_virtual or obj.external:
                    kind = "a virtual dataset" if obj.is_virtual else "a dataset stored in another file"
                    raise refuse(path, f"its weights file holds {kind} ({where}); Keras writes plain datasets only")
                values += obj.size * obj.dtype.itemsize  # what reading it takes, however well it compresses
                if values > MAX_MODEL_BYTES:
                    raise refuse(
                        path,
                        f"its weights file's arrays hold over {_megabytes(MAX_MODEL_BYTES)} once read (at {where}); "
                        f"obd's limit is {_megabytes(MAX_MODEL_BYTES)}",
                    )
