"""A Keras MLP's layers read into a `Network`, without TensorFlow: the one reader behind both
`obd.core.network.from_keras` (a built Keras model) and `obd.core.files.read_keras_file` (a `.keras` file's
config.json and weights, read with h5py).

A model is read as MLPs are ordinarily built:
- InputLayer, Flatten and a flattening Reshape: the input's shape, remembered so that exports take the same input;
- Dropout does nothing at inference and is skipped;
- one Rescaling or Normalization before the first Dense layer: the network's input transform; the pixel scale it
  was built for (raw 0-255 pixels when it divides by 255) is read from it (`pixels_for`);
- Dense layers, with their own activation or a separate ReLU/Activation layer after them (merged);
- BatchNormalization: at inference an affine map per unit, folded exactly into the Dense layer before it (when it
  comes before the activation) or into the next Dense layer's inputs (after an activation, or before any Dense);
- a softmax at the end (the last Dense layer's activation, an Activation or a Softmax layer): remembered as the
  model's output for export, while obd prunes and scores the logits before it.
Anything else is refused with a message that names the layer and what obd reads.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from obd.core.network import InputNorm, Layer, Network

RAW = 255.0  # the value of a white pixel in raw 8-bit images
# A transform that maps a raw white pixel (255) within this of 0 was built for raw pixels: Rescaling(1/255) gives
# 1, a Normalization adapted on raw pixels about 2; one built for [0, 1] pixels gives hundreds.
RAW_WHITE_MAX = 16.0
SCOPE = (
    "obd prunes multilayer perceptrons: Dense layers with ReLU hidden layers, optionally with Input/Flatten, one "
    "Rescaling or Normalization first, Dropout, BatchNormalization, ReLU/Activation layers and a softmax output; "
    "convolutional, recurrent and attention networks are out of scope"
)


@dataclass(frozen=True)
class KerasLayer:
    """One layer as Keras serializes it.

    kind: the class name ("Dense", "BatchNormalization", ...).
    config: the layer's config (`layer.get_config()`, or its "config" in config.json).
    weights: its variables in Keras' order (`layer.get_weights()`, or the .keras file's vars/0, vars/1, ...).
    """

    kind: str
    config: dict
    weights: tuple[np.ndarray, ...] = field(default=())

    @property
    def name(self) -> str:
        return str(self.config.get("name", "?"))


def chain(model_config: dict) -> list[dict]:
    """The layers of a Sequential or functional model's config, checked to run one after another.

    Args:
        model_config: a model's serialized form ({"class_name": ..., "config": {"layers": [...], ...}}), as
            config.json holds it or `keras.saving.serialize_keras_object(model)` gives it.

    Returns:
        The serialized layers, input first.

    Raises:
        ValueError: for another kind of model, or a functional model whose layers branch or merge.
    """
    kind, body = model_config.get("class_name"), model_config.get("config") or {}
    layers = body.get("layers")
    if kind not in ("Sequential", "Functional") or not isinstance(layers, list):
        raise ValueError(f"the model is a {str(kind)[:40]!r}, not a Sequential or functional model; {SCOPE}")
    if kind == "Functional":
        for before, layer in zip(layers, layers[1:]):
            sources = _sources(layer.get("inbound_nodes"))
            if sources != [before.get("config", {}).get("name")]:
                raise ValueError(
                    f"layer {layer.get('config', {}).get('name')!r} takes {sources or 'no input'}: the model's layers "
                    f"branch or merge; obd reads models whose layers run one after another. {SCOPE}"
                )
    return layers


def _sources(node: object) -> list:
    """The names of the layers whose outputs a serialized layer's inbound nodes take (its "keras_history")."""
    found: list = []
    stack = [node]
    while stack:
        item = stack.pop()
        if isinstance(item, dict):
            tensor = item.get("class_name") == "__keras_tensor__"
            history = item.get("config", {}).get("keras_history") if tensor else None
            if isinstance(history, (list, tuple)) and history:
                found.append(history[0])
            else:
                stack.extend(item.values())
        elif isinstance(item, (list, tuple)):  # a built model's config holds tuples, config.json lists
            stack.extend(item)
    return found


def input_shape(layers: Sequence[KerasLayer]) -> tuple[int, ...] | None:
    """The model's input shape without the batch axis, e.g. (28, 28) or (784,), from its InputLayer (or the first
    layer's declared build shape); None when the config declares none."""
    for layer in layers[:1]:
        shape = layer.config.get("batch_shape") or layer.config.get("batch_input_shape")
        if shape is None and isinstance(layer.config.get("build_config"), dict):
            shape = layer.config["build_config"].get("input_shape")
        if isinstance(shape, (list, tuple)) and len(shape) >= 2 and all(isinstance(d, int) for d in shape[1:]):
            return tuple(int(d) for d in shape[1:])
    return None


def pixels_for(norm: InputNorm) -> float:
    """The white-pixel value a model's own input transform was built for: RAW (255) when it maps a raw white pixel
    near 0 (it divides by about 255), else 1.0 (pixels in [0, 1]); the median over inputs, as a per-pixel
    Normalization divides blank border pixels by its epsilon."""
    white = np.abs(RAW * np.asarray(norm.scale, np.float64) + np.asarray(norm.offset, np.float64))
    return RAW if float(np.median(white)) <= RAW_WHITE_MAX else 1.0


@dataclass
class _Dense:
    """A Dense layer being read: its weights as float64, its activation so far."""

    kernel: np.ndarray  # (inputs, units)
    bias: np.ndarray | None  # (units,)
    activation: str
    name: str


def assemble(layers: Sequence[KerasLayer], name: str, shape: tuple[int, ...] | None = None) -> Network:
    """Read a chain of serialized Keras layers into a Network (see the module's docstring for what is read).

    Args:
        layers: the model's layers, input first (`chain`), with their weights.
        name: the model's name.
        shape: the model's input shape without the batch axis (default: `input_shape(layers)`).

    Returns:
        The Network: its input_norm takes pixels in [0, 1] (the pixel scale its Rescaling/Normalization was built
        for folded in, `pixels` remembering it), `input_shape` and `output` ("logits" or "softmax") as the model
        has them.

    Raises:
        ValueError: naming the first layer obd does not read, and what it reads.
    """
    shape = input_shape(layers) if shape is None else tuple(shape)
    dense: list[_Dense] = []
    norm: InputNorm | None = None
    pending: tuple[np.ndarray, np.ndarray] | None = None  # a BatchNormalization's (scale, shift) for the next inputs
    flat, output = shape is None or len(shape) == 1, "logits"
    for layer in layers:
        kind, where = layer.kind, f"layer {layer.name!r}"
        if output == "softmax" and kind != "Dropout":
            raise ValueError(
                f"{where} ({kind}) comes after the softmax; obd reads a softmax only as the model's output"
            )
        if kind in ("InputLayer", "Dropout"):
            continue
        if kind in ("Flatten", "Reshape"):
            target = layer.config.get("target_shape")
            if kind == "Reshape" and (not isinstance(target, (list, tuple)) or len(target) != 1):
                raise ValueError(
                    f"{where} reshapes to {target}; obd reads MLPs on flat inputs (a Flatten or Reshape to one axis)"
                )
            flat = True
        elif kind in ("Rescaling", "Normalization"):
            if dense or norm is not None or pending is not None:
                raise ValueError(
                    f"{where} is a {kind} after other computing layers; obd reads one Rescaling or "
                    "Normalization, as the input's transform before the first Dense layer"
                )
            norm = _input_norm(layer)
        elif kind == "Dense":
            dense.append(_dense(layer, flat, shape, pending))
            pending = None
            if dense[-1].activation == "softmax":
                dense[-1].activation, output = "linear", "softmax"
        elif kind == "BatchNormalization":
            scale, shift = _batch_norm(layer)
            last = dense[-1] if dense else None
            if last is not None and last.activation == "linear" and pending is None:  # before the activation
                bias = np.zeros(last.kernel.shape[1]) if last.bias is None else last.bias
                last.kernel, last.bias = last.kernel * scale, bias * scale + shift  # (inputs, units), (units,)
            else:  # on the inputs of the next Dense layer
                pending = (scale, shift) if pending is None else (pending[0] * scale, pending[1] * scale + shift)
        elif kind in ("ReLU", "Activation", "Softmax"):
            act = _activation(layer)
            if act == "linear":
                continue
            if not dense or pending is not None or dense[-1].activation not in ("linear", act):
                raise ValueError(
                    f"{where} applies {act} where obd cannot merge it into the Dense layer before it; "
                    "obd reads an activation right after a Dense layer (or its BatchNormalization)"
                )
            if act == "softmax":
                output = "softmax"
            else:
                dense[-1].activation = act
        else:
            raise ValueError(f"{where} is a {kind}, which obd does not read; {SCOPE}")
    return _network(dense, norm, pending, name, shape, output)


def _network(
    dense: list[_Dense],
    norm: InputNorm | None,
    pending: tuple | None,
    name: str,
    shape: tuple[int, ...] | None,
    output: str,
) -> Network:
    """The Network of the Dense layers read, after checking their activations."""
    if not dense:
        raise ValueError(f"the model has no Dense layers; {SCOPE}")
    if pending is not None:
        raise ValueError(f"the model ends in a BatchNormalization after its last activation; {SCOPE}")
    for i, d in enumerate(dense):
        last = i == len(dense) - 1
        if not last and d.activation != "relu":
            raise ValueError(
                f"layer {d.name!r} has activation {d.activation!r} before the next Dense layer; obd reads "
                "ReLU hidden layers and an output layer of logits or a softmax"
            )
        if last and d.activation != "linear":
            raise ValueError(
                f"layer {d.name!r}, the output layer, has activation {d.activation!r}; obd reads an "
                "output layer of logits or a softmax (ReLU hidden layers)"
            )
    pixels = 1.0 if norm is None else pixels_for(norm)
    if norm is not None:  # obd feeds pixels in [0, 1]: the pixel scale folds into the transform
        # a Normalization's values are per input, as Keras broadcasts them
        inputs = (dense[0].kernel.shape[0],) if norm.layer == "Normalization" else ()
        scale = np.broadcast_to(norm.scale.astype(np.float64) * pixels, inputs or norm.scale.shape)
        norm = InputNorm(scale, np.broadcast_to(norm.offset, inputs or norm.offset.shape), norm.layer, norm.name)
    layers = tuple(Layer(d.kernel, d.bias, d.activation, d.name) for d in dense)
    return Network(layers, name, norm, pixels=pixels, input_shape=shape, output=output)


def _dense(layer: KerasLayer, flat: bool, shape: tuple | None, pending: tuple | None) -> _Dense:
    """A Dense layer, a BatchNormalization that came before it folded into its inputs."""
    config = layer.config
    if not flat:
        raise ValueError(
            f"layer {layer.name!r} is a Dense layer on the {shape} input without a Flatten before it; obd "
            "reads MLPs on flattened images (add keras.layers.Flatten() first)"
        )
    if config.get("lora_rank"):
        raise ValueError(f"layer {layer.name!r} is a LoRA Dense layer; merge it first; {SCOPE}")
    use_bias = config.get("use_bias", True)
    if len(layer.weights) != 1 + bool(use_bias):
        raise ValueError(f"layer {layer.name!r} holds {len(layer.weights)} weight arrays, not a Dense layer's")
    kernel = np.asarray(layer.weights[0], np.float64)  # (inputs, units)
    bias = np.asarray(layer.weights[1], np.float64) if use_bias else None  # (units,)
    if kernel.ndim != 2 or kernel.shape[1] != config.get("units", kernel.shape[1]):
        raise ValueError(f"layer {layer.name!r}: kernel {kernel.shape} for {config.get('units')} units")
    if pending is not None:  # y = (x * s + t) @ K + b = x @ (s[:, None] * K) + (t @ K + b)
        scale, shift = pending
        bias = (0.0 if bias is None else bias) + shift @ kernel
        kernel = scale[:, None] * kernel
    act = _name(config.get("activation", "linear"))
    if act not in ("relu", "linear", "softmax"):
        raise ValueError(
            f"layer {layer.name!r} has activation {act!r}; obd reads ReLU hidden layers and an output "
            "layer of logits or a softmax"
        )
    return _Dense(kernel, bias, act, layer.name)


def _name(activation: object) -> str:
    """An activation's name from its serialized form (a string, or a dict naming it)."""
    if isinstance(activation, dict):
        inner = activation.get("config")
        activation = inner.get("name") if isinstance(inner, dict) and "name" in inner else activation.get("class_name")
    return str(activation)


def _activation(layer: KerasLayer) -> str:
    """The activation a ReLU, Activation or Softmax layer applies: "relu", "linear" or "softmax".

    Raises:
        ValueError: for any other (a clipped or leaky ReLU, tanh, a softmax over another axis, ...).
    """
    config = layer.config
    if layer.kind == "ReLU":
        plain = not config.get("max_value") and not config.get("negative_slope") and not config.get("threshold")
        act = "relu" if plain else "a clipped, leaky or thresholded ReLU"
    elif layer.kind == "Softmax":
        axis = config.get("axis", -1)
        act = "softmax" if axis in (-1, [-1], 1, [1]) else f"a softmax over axis {axis}"
    else:
        act = _name(config.get("activation"))
    if act not in ("relu", "linear", "softmax"):
        raise ValueError(f"layer {layer.name!r} applies {act}; obd reads ReLU hidden layers and a softmax output")
    return act


def _batch_norm(layer: KerasLayer) -> tuple[np.ndarray, np.ndarray]:
    """A BatchNormalization at inference as y = x * scale + shift, per unit: (units,), (units,) float64."""
    config = layer.config
    axis = config.get("axis", -1)
    if axis not in (-1, 1, [-1], [1]):
        raise ValueError(f"layer {layer.name!r} normalizes over axis {axis}; obd reads a BatchNormalization of units")
    weights = [np.asarray(w, np.float64).reshape(-1) for w in layer.weights]
    gamma = weights.pop(0) if config.get("scale", True) else 1.0
    beta = weights.pop(0) if config.get("center", True) else 0.0
    if len(weights) != 2:
        raise ValueError(f"layer {layer.name!r} holds {len(layer.weights)} weight arrays, not a BatchNormalization's")
    mean, variance = weights
    scale = gamma / np.sqrt(variance + float(config.get("epsilon", 1e-3)))
    return np.broadcast_to(scale, mean.shape).copy(), np.broadcast_to(beta - mean * scale, mean.shape).copy()


def _input_norm(layer: KerasLayer) -> InputNorm:
    """The InputNorm of a Rescaling or Normalization layer, as Keras computes it (float32 values; the std floored at
    Keras' epsilon), on the values the model itself takes."""
    config = layer.config
    if layer.kind == "Rescaling":
        scale, offset = (
            np.asarray(config.get(k, d), np.float32).astype(np.float64) for k, d in (("scale", 1.0), ("offset", 0.0))
        )
        return InputNorm(scale, offset, "Rescaling", layer.name)
    axis = config.get("axis", -1)
    if axis not in (-1, 1, [-1], [1], (-1,), (1,)) or config.get("invert"):
        raise ValueError(
            f"layer {layer.name!r} normalizes over axis {axis} (or inverts); obd reads a Normalization "
            "over the last axis of flat inputs"
        )
    if config.get("mean") is not None:
        mean, variance = config["mean"], config["variance"]
    elif len(layer.weights) >= 2:  # adapted: Keras keeps its mean and variance as weights
        mean, variance = layer.weights[0], layer.weights[1]
    else:
        raise ValueError(f"layer {layer.name!r} is a Normalization that was never adapted (no mean or variance)")
    mean = np.asarray(mean, np.float32).astype(np.float64).reshape(-1)
    std = np.maximum(np.sqrt(np.asarray(variance, np.float32).astype(np.float64).reshape(-1)), 1e-7)  # Keras' epsilon
    norm = InputNorm.standardize(mean if mean.size > 1 else mean[0], std if std.size > 1 else std[0])
    return InputNorm(norm.scale, norm.offset, "Normalization", layer.name)
