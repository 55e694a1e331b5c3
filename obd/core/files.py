"""Network files without TensorFlow: obd's `.npz` format for a `Network`, a reader of a `.keras` file's own
weights (h5py), the trained-model cache's paths, and `cached_network`, which opens a cached model from them.

Importing TensorFlow takes seconds and the dashboard's view path needs only numpy arrays, so a
trained model is cached twice: the `.keras` file (the source of truth, which Keras and other tools read) and,
beside it under the same name, a `.npz` of its Network that opens in milliseconds. TensorFlow loads only to
train, fine-tune or read an upload. Nothing here imports TensorFlow or Keras.

The `.npz` holds one array per ndarray in the Network and a JSON description of everything else, written
field by field from the dataclasses themselves, so a field added to `Network` or `Layer` is stored and read
back without a change here. Files are read with allow_pickle=False: a network file never runs code.
"""

from __future__ import annotations

import dataclasses
import hashlib
import io
import json
import os
import re
import zipfile
from pathlib import Path

import numpy as np

from obd.core import network as _network_module
from obd.core.cache import atomic_write, cache_dir
from obd.core.config import ModelSpec, TrainConfig
from obd.core.network import Network


class ModelFileError(ValueError):
    """A model file could not be used; the message says why and what is supported."""


FORMAT, VERSION = "obd-network", 1  # written into every .npz; a file of another format or version is refused
_META = "__meta__"  # the npz entry holding the JSON description (a 0-d unicode array: no pickle needed)
# The dataclasses a network file may hold: those of obd.core.network, looked up by name (never imported by name).
_CLASSES = {
    c.__name__: c
    for c in vars(_network_module).values()
    if isinstance(c, type) and dataclasses.is_dataclass(c) and c.__module__ == _network_module.__name__
}


def cache_path(spec: ModelSpec, config: TrainConfig) -> Path:
    """The cache file for a (spec, config): readable prefix plus a hash of every setting."""
    key = json.dumps({"spec": spec.cache_key(), "train": config.cache_key(), "v": 1}, sort_keys=True)
    digest = hashlib.sha256(key.encode()).hexdigest()[:12]
    return cache_dir() / f"mlp-{'x'.join(map(str, spec.hidden))}-{'bias' if spec.use_bias else 'nobias'}-{digest}.keras"


def network_path(keras_path: str | os.PathLike) -> Path:
    """The `.npz` network file kept beside a `.keras` model file (same name, other suffix)."""
    return Path(keras_path).with_suffix(".npz")


def _encode(value: object, key: str, arrays: dict[str, np.ndarray]) -> dict:
    """One value as JSON; its arrays go into `arrays` under names derived from `key` (the field's path)."""
    if isinstance(value, np.ndarray):
        arrays[key] = value
        return {"array": key}
    if isinstance(value, np.generic):  # a numpy scalar keeps its dtype as a 0-d array
        arrays[key] = np.asarray(value)
        return {"scalar": key}
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        name = type(value).__name__
        if _CLASSES.get(name) is not type(value):
            raise ValueError(
                f"{key}: a network file holds obd.core.network's classes only, not {type(value).__qualname__}"
            )
        fields = {
            f.name: _encode(getattr(value, f.name), f"{key}.{f.name}", arrays)
            for f in dataclasses.fields(value)
            if f.init
        }  # derived (init=False) fields are rebuilt
        return {"dataclass": {"class": name, "fields": fields}}
    if isinstance(value, (tuple, list)):
        return {type(value).__name__: [_encode(v, f"{key}.{i}", arrays) for i, v in enumerate(value)]}
    if isinstance(value, dict) and all(isinstance(k, str) for k in value):
        return {"dict": {k: _encode(v, f"{key}.{k}", arrays) for k, v in value.items()}}
    if value is None or isinstance(value, (bool, int, float, str)):
        return {"value": value}  # JSON writes floats by repr, which reads back to the same double
    raise ValueError(f"{key}: cannot store a {type(value).__name__} in a network file")


def _decode(node: object, arrays) -> object:
    """The value `_encode` described by `node`, its arrays read from the open npz `arrays`."""
    if not isinstance(node, dict) or len(node) != 1:
        raise ValueError(f"unexpected entry {str(node)[:80]!r}")
    ((kind, body),) = node.items()
    if kind == "array":
        return arrays[body]
    if kind == "scalar":
        return arrays[body][()]
    if kind == "dataclass":
        cls = _CLASSES.get(body["class"])
        if cls is None:
            raise ValueError(f"unknown class {body['class']!r}")
        return cls(**{name: _decode(v, arrays) for name, v in body["fields"].items()})
    if kind in ("tuple", "list"):
        items = [_decode(v, arrays) for v in body]
        return tuple(items) if kind == "tuple" else items
    if kind == "dict":
        return {k: _decode(v, arrays) for k, v in body.items()}
    if kind == "value":
        return body
    raise ValueError(f"unknown entry kind {kind!r}")


def save_network(net: Network, path: str | os.PathLike) -> Path:
    """Write a Network to an uncompressed `.npz` atomically (every field of Network and Layer).

    Args:
        net: the network.
        path: destination ending in `.npz`.

    Returns:
        The destination path.

    Raises:
        ValueError: when the path does not end in `.npz`, or a field holds a type the format cannot store.
        OSError: when the folder cannot be written.
    """
    p = Path(path).expanduser()
    if p.suffix != ".npz":
        raise ValueError(f"network files must end in .npz, got {p.name!r}")
    arrays: dict[str, np.ndarray] = {}
    meta = {"format": FORMAT, "version": VERSION, "network": _encode(net, "net", arrays)}
    arrays[_META] = np.array(json.dumps(meta))
    p.parent.mkdir(parents=True, exist_ok=True)

    # uncompressed: float32 weights barely compress, and it opens faster (the ignore: numpy's stub reads
    # **arrays as its allow_pickle argument)
    atomic_write(p, lambda tmp: np.savez(tmp, **arrays))  # type: ignore[arg-type]
    return p


def load_network(path: str | os.PathLike) -> Network:
    """Read a Network written by `save_network`.

    Args:
        path: a `.npz` network file.

    Returns:
        The Network (read-only arrays).

    Raises:
        ModelFileError: missing, damaged, or not an obd network file of this version.
    """
    p = Path(path).expanduser()
    try:
        with np.load(p, allow_pickle=False) as arrays:
            meta = json.loads(str(arrays[_META][()]))
            if not isinstance(meta, dict) or meta.get("format") != FORMAT or meta.get("version") != VERSION:
                raise ValueError(f"not an {FORMAT} file of version {VERSION}")
            net = _decode(meta["network"], arrays)
    except FileNotFoundError:
        raise ModelFileError(f"{p}: no such network file") from None
    except Exception as e:  # bad zip, missing entries, bad JSON, wrong shapes: all mean a damaged file
        raise ModelFileError(f"{p.name}: not a readable obd network file ({type(e).__name__}: {e})") from None
    if not isinstance(net, Network):
        raise ModelFileError(f"{p.name}: not a readable obd network file (it holds a {type(net).__name__})")
    return net


def read_keras_file(path: str | os.PathLike) -> Network:
    """Read a `.keras` file's Network from its config.json and model.weights.h5 with h5py, without TensorFlow.

    It reads every model `obd.core.network.from_keras` reads (`obd.core.layers`, one reader for both) and gives
    exactly what `from_keras(load_model(path))` gives. The file first passes `obd.core.modelcheck.check_keras_file`
    (the checks every upload passes), so HDF5 links to other files and virtual datasets are refused.

    Args:
        path: a Keras 3 `.keras` file.

    Returns:
        The Network (read-only arrays).

    Raises:
        ModelFileError: the file is missing, damaged or refused by the checks, or holds a model obd does not read
            (the message names the layer).
    """
    import h5py  # a Keras dependency, but light: imported here so the npz path never pays for it

    from obd.core.layers import KerasLayer, assemble, chain
    from obd.core.modelcheck import check_keras_file  # it names this module's ModelFileError: imported on use

    p = Path(path).expanduser()
    config = check_keras_file(p)  # sizes, allowed layers, and no links from the weights to other files
    try:
        specs = chain(config)
    except ValueError as e:
        raise ModelFileError(f"{p.name}: {e}") from None
    try:
        with zipfile.ZipFile(p) as z:
            weights = io.BytesIO(z.read("model.weights.h5"))  # h5py needs a seekable file
        with h5py.File(weights, "r") as h5:
            layers = [
                KerasLayer(spec["class_name"], spec.get("config") or {}, _variables(h5, group))
                for spec, group in zip(specs, _weight_groups(specs))
            ]
    except Exception as e:  # bad zip, missing entries or groups: a damaged file
        raise ModelFileError(f"{p.name}: could not read its weights ({type(e).__name__}: {e})") from None
    try:
        return assemble(layers, str(config["config"].get("name", "model")))
    except ValueError as e:  # a layer obd does not read, or weights whose shapes do not fit the config
        raise ModelFileError(f"{p.name}: {e}") from None


def _weight_groups(specs: list[dict]) -> list[str]:
    """The weight group of each layer in a .keras file: Keras names them by class in snake case, counted per class
    in the order of the model's layers (dense, dense_1, batch_normalization, re_lu, ...), whatever their names."""
    counts: dict[str, int] = {}
    groups = []
    for spec in specs:
        snake = re.sub(r"([a-z])([A-Z])", r"\1_\2", re.sub(r"(.)([A-Z][a-z]+)", r"\1_\2", spec["class_name"])).lower()
        groups.append(snake if snake not in counts else f"{snake}_{counts[snake]}")
        counts[snake] = counts.get(snake, 0) + 1
    return groups


def _variables(h5, group: str) -> tuple[np.ndarray, ...]:
    """A layer's variables from the weights file, in Keras' order (vars/0, vars/1, ...); none for a layer without."""
    found = h5["layers"].get(group)
    variables = found.get("vars") if found is not None else None
    return () if variables is None else tuple(variables[str(i)][()] for i in range(len(variables)))


def cached_network(spec: ModelSpec, config: TrainConfig) -> Network | None:
    """The cached, trained Network of (spec, config), read without TensorFlow; None if it is not cached.

    The `.keras` file is the cache entry (`obd.training.model.trained_model` writes it); its `.npz` beside it is used
    when it is at least as new. Otherwise (a cache made before `.npz` files existed, or retrained since) the
    `.keras` file's weights are read with h5py and the `.npz` is written for next time.

    Args:
        spec: architecture.
        config: training settings (part of the cache key).

    Returns:
        The Network, or None when no `.keras` is cached or it cannot be read without Keras (damaged, or
        layers this reader does not know): then `obd.training.model.trained_model` loads, or retrains, it.
    """
    keras_file = cache_path(spec, config)
    npz = network_path(keras_file)
    try:
        trained = keras_file.stat().st_mtime_ns
    except OSError:
        return None
    try:
        if npz.stat().st_mtime_ns >= trained:
            return load_network(npz)
    except (OSError, ModelFileError):
        pass  # missing or damaged: read the .keras again
    try:
        net = read_keras_file(keras_file)
    except ModelFileError:
        return None
    try:
        save_network(net, npz)
    except OSError:
        pass  # a read-only cache still works, at the cost of reading the .keras again next time
    return net
