"""A framework-free view of a Keras MLP: read-only numpy kernels and biases, and a fast forward pass.

Every part of obd that prunes, scores, evaluates or runs a network works on `Network`, not on a Keras
model: numpy arrays are cheap to copy, safe to share between threads (they are frozen read-only), and a
single large matmul per layer evaluates the whole MNIST test set in about half a second.
`from_keras` and `to_keras` convert at the edges. A first Keras `Rescaling` or `Normalization` layer is read
as the network's fixed input transform (`InputNorm`): every forward pass applies it, and since it is not a
Dense layer nothing prunes it.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field

import numpy as np

ACTIVATIONS = ("relu", "linear")  # hidden layers are ReLU; the output layer gives logits


def _frozen(a: np.ndarray | None) -> np.ndarray | None:
    if a is None:
        return None
    a = np.array(a, dtype=np.float32, copy=True)
    a.flags.writeable = False
    return a


@dataclass(frozen=True)
class Layer:
    """One Dense layer: y = activation(x @ kernel + bias).

    kernel: (inputs, units) float32, read-only. A column is one output unit.
    bias: (units,) float32 read-only, or None for a bias-free layer.
    activation: "relu" or "linear" (logits).
    """

    kernel: np.ndarray
    bias: np.ndarray | None
    activation: str
    name: str = ""

    def __post_init__(self) -> None:
        object.__setattr__(self, "kernel", _frozen(self.kernel))
        object.__setattr__(self, "bias", _frozen(self.bias))
        if self.kernel.ndim != 2:
            raise ValueError(f"layer {self.name!r}: kernel must be 2-D (inputs, units), got {self.kernel.shape}")
        if self.bias is not None and self.bias.shape != (self.kernel.shape[1],):
            raise ValueError(f"layer {self.name!r}: bias shape {self.bias.shape} != ({self.kernel.shape[1]},)")
        if self.activation not in ACTIVATIONS:
            raise ValueError(f"layer {self.name!r}: activation {self.activation!r} is not one of {ACTIVATIONS}")

    @property
    def inputs(self) -> int:
        return self.kernel.shape[0]

    @property
    def units(self) -> int:
        return self.kernel.shape[1]

    def replace(self, kernel: np.ndarray, bias: np.ndarray | None) -> Layer:
        """A new layer with other weights and the same activation and name."""
        return Layer(kernel, bias, self.activation, self.name)


@dataclass(frozen=True)
class InputNorm:
    """A fixed affine input transform x * scale + offset (Keras Rescaling; Normalization is
    scale = 1/std, offset = -mean/std).

    scale, offset: float32 read-only, shape () or (inputs,).
    """

    scale: np.ndarray
    offset: np.ndarray

    def __post_init__(self) -> None:
        object.__setattr__(self, "scale", _frozen(self.scale))
        object.__setattr__(self, "offset", _frozen(self.offset))
        for part in (self.scale, self.offset):
            if part.ndim > 1 or not np.isfinite(part).all():
                raise ValueError(f"an input transform must be finite scalars or one value per input, got {part!r}")
        if not np.all(self.scale != 0):
            raise ValueError("an input transform's scale must not be 0 (it would erase the input)")

    @classmethod
    def standardize(cls, mean, std) -> InputNorm:
        """(x - mean) / std, as Keras Normalization computes it."""
        std = np.asarray(std, dtype=np.float64)
        return cls(1.0 / std, -np.asarray(mean, dtype=np.float64) / std)

    @property
    def mean(self) -> np.ndarray:
        return -self.offset.astype(np.float64) / self.scale

    @property
    def std(self) -> np.ndarray:
        return 1.0 / self.scale.astype(np.float64)

    def apply(self, x: np.ndarray) -> np.ndarray:
        """x: (n, inputs) -> (n, inputs) float32, transformed (a new array)."""
        return x * self.scale + self.offset


@dataclass(frozen=True)
class Network:
    """A stack of Dense layers; the last one gives logits. input_norm: the fixed transform applied to the raw
    input before the first layer (a Keras Rescaling/Normalization layer), or None."""

    layers: tuple[Layer, ...]
    name: str = field(default="mlp")
    input_norm: InputNorm | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "layers", tuple(self.layers))
        norm = self.input_norm
        if norm is not None and any(p.shape not in ((), (self.layers[0].inputs,)) for p in (norm.scale, norm.offset)):
            raise ValueError(f"the input transform must hold one value or {self.layers[0].inputs} values")
        if not self.layers:
            raise ValueError("a network needs at least one Dense layer")
        for a, b in zip(self.layers, self.layers[1:]):
            if a.units != b.inputs:
                raise ValueError(f"layer {b.name!r} takes {b.inputs} inputs but {a.name!r} gives {a.units}")

    @property
    def sizes(self) -> tuple[int, ...]:
        """Units per layer, input first: (784, 1000, ..., 10)."""
        return (self.layers[0].inputs,) + tuple(layer.units for layer in self.layers)

    @property
    def n_weights(self) -> int:
        """Kernel entries (biases are not counted as prunable weights)."""
        return sum(layer.kernel.size for layer in self.layers)

    def fingerprint(self) -> str:
        """A short hash of the architecture and every weight: names cached results of this exact network."""
        h = hashlib.sha256(repr([(l.kernel.shape, l.bias is not None, l.activation) for l in self.layers]).encode())
        if self.input_norm is not None:  # nets without one keep the fingerprints they had
            h.update(self.input_norm.scale.tobytes() + b"|" + self.input_norm.offset.tobytes())
        for layer in self.layers:
            h.update(layer.kernel.tobytes())
            if layer.bias is not None:
                h.update(layer.bias.tobytes())
        return h.hexdigest()[:16]

    def kernels(self) -> list[np.ndarray]:
        return [layer.kernel for layer in self.layers]

    def with_weights(self, kernels: list[np.ndarray], biases: list[np.ndarray | None]) -> Network:
        """A new network of the same architecture with other kernels and biases."""
        return Network(
            tuple(l.replace(k, b) for l, k, b in zip(self.layers, kernels, biases)), self.name, self.input_norm
        )

    def with_layers(self, layers: tuple[Layer, ...]) -> Network:
        """A new network of other Dense layers (e.g. shrunk ones) behind the same input transform."""
        return Network(tuple(layers), self.name, self.input_norm)

    def prepare(self, x: np.ndarray) -> np.ndarray:
        """Raw images as the first Dense layer sees them: (n, ...) -> (n, inputs) float32, the input transform
        applied (a new array then; without one, x itself when it is already float32 and flat)."""
        x = np.asarray(x, dtype=np.float32).reshape(len(x), -1)
        return x if self.input_norm is None else self.input_norm.apply(x)

    def logits(self, x: np.ndarray, batch_size: int = 10_000) -> np.ndarray:
        """Forward pass. x: (n, inputs) float32 raw images -> (n, classes) float32 logits."""
        x = np.asarray(x, dtype=np.float32).reshape(len(x), -1)
        out = np.empty((len(x), self.layers[-1].units), dtype=np.float32)
        for start in range(0, len(x), batch_size):
            out[start : start + batch_size] = self._forward(self.prepare(x[start : start + batch_size]))
        return out

    def _forward(self, h: np.ndarray, start: int = 0) -> np.ndarray:
        """h: (n, inputs of layer `start`), the input transform applied -> (n, classes) float32 logits."""
        for layer in self.layers[start:]:
            h = h @ layer.kernel  # (batch, units)
            if layer.bias is not None:
                h += layer.bias
            if layer.activation == "relu":
                np.maximum(h, 0.0, out=h)
        return h

    def activations(self, x: np.ndarray) -> list[np.ndarray]:
        """Every layer's input and the final logits: [x, h1, ..., logits] (used by saliency and OBS); x is the
        first Dense layer's input, after the input transform."""
        hs = [self.prepare(x)]
        for layer in self.layers:
            h = hs[-1] @ layer.kernel
            if layer.bias is not None:
                h += layer.bias
            if layer.activation == "relu":
                np.maximum(h, 0.0, out=h)
            hs.append(h)
        return hs


def from_keras(model) -> Network:
    """Read a Keras model made of Dense layers (optionally after Input/Flatten/InputLayer) into a Network.

    Args:
        model: a built `keras.Model` whose compute layers are all `Dense`, hidden ones ReLU and the
            last one linear or softmax (softmax is dropped: obd works on logits), optionally after one
            `Rescaling` or `Normalization` layer (the network's input_norm).

    Returns:
        A Network holding copies of the weights; the model is not changed.

    Raises:
        ValueError: when the model has other layer types or activations, naming what is supported.
    """
    import keras

    layers = []
    dense = [l for l in model.layers if not isinstance(l, (keras.layers.InputLayer, keras.layers.Flatten))]
    norm = _input_norm(dense[0]) if dense else None
    dense = dense[1:] if norm is not None else dense
    if not dense:
        raise ValueError("the model has no Dense layers; obd supports MLPs made of Dense layers only")
    for i, l in enumerate(dense):
        if not isinstance(l, keras.layers.Dense):
            raise ValueError(
                f"layer {l.name!r} is a {type(l).__name__}; obd supports models made only of Dense layers "
                "(with an optional Flatten/Input and one Rescaling or Normalization first)"
            )
        act = keras.activations.serialize(l.activation)
        act = act if isinstance(act, str) else act.get("config", {}).get("name", str(act))
        last = i == len(dense) - 1
        if last and act in ("linear", "softmax"):
            act = "linear"
        elif act != "relu":
            raise ValueError(
                f"layer {l.name!r} has activation {act!r}; obd supports ReLU hidden layers and a linear or "
                "softmax output layer"
            )
        kernel = np.asarray(l.kernel.numpy())
        bias = np.asarray(l.bias.numpy()) if l.use_bias else None
        layers.append(Layer(kernel, bias, act, l.name))
    return Network(tuple(layers), model.name, norm)


def _input_norm(layer) -> InputNorm | None:
    """The InputNorm of a Keras Rescaling or Normalization layer, None for any other layer.

    Raises:
        ValueError: for a Normalization over another axis than the last (obd's inputs are flat vectors).
    """
    import keras

    if isinstance(layer, keras.layers.Rescaling):
        return InputNorm(np.asarray(layer.scale, dtype=np.float64), np.asarray(layer.offset, dtype=np.float64))
    if isinstance(layer, keras.layers.Normalization):
        if tuple(layer.axis) not in ((-1,), (1,)) or layer.invert:
            raise ValueError(
                f"layer {layer.name!r} normalizes over axis {layer.axis} (or inverts); obd supports "
                "a Normalization over the last axis of flat inputs"
            )
        mean = np.asarray(keras.ops.convert_to_numpy(layer.mean), dtype=np.float64).reshape(-1)
        var = np.asarray(keras.ops.convert_to_numpy(layer.variance), dtype=np.float64).reshape(-1)
        std = np.maximum(np.sqrt(var), keras.backend.epsilon())  # as Keras divides
        return InputNorm.standardize(mean if mean.size > 1 else mean[0], std if std.size > 1 else std[0])
    return None


def as_network(model) -> Network:
    """A Network as is, or a Keras model read with `from_keras`."""
    return model if isinstance(model, Network) else from_keras(model)


def to_keras(net: Network, softmax_output: bool = False):
    """Build a fresh Keras Sequential model holding `net`'s weights (no optimizer, not compiled).

    Args:
        net: the network to export.
        softmax_output: end in softmax instead of logits.

    Returns:
        A new `keras.Sequential` with input shape (inputs,); a network with an input_norm starts with a
        Normalization layer.
    """
    import keras

    model = keras.Sequential(name=net.name)
    model.add(keras.Input((net.layers[0].inputs,)))
    if net.input_norm is not None:  # a Normalization layer stores per-input arrays as weights, Rescaling cannot
        norm = net.input_norm
        model.add(keras.layers.Normalization(mean=norm.mean, variance=np.square(norm.std), name="standardize"))
    for i, layer in enumerate(net.layers):
        act = layer.activation
        if softmax_output and i == len(net.layers) - 1:
            act = "softmax"
        dense = keras.layers.Dense(
            layer.units, activation=act, use_bias=layer.bias is not None, name=layer.name or None
        )
        model.add(dense)
        dense.set_weights([layer.kernel] + ([layer.bias] if layer.bias is not None else []))
    return model
