"""A framework-free view of a Keras MLP: read-only numpy kernels and biases, and a fast forward pass.

Every part of obd that prunes, scores, evaluates or runs a network works on `Network`, not on a Keras
model: numpy arrays are cheap to copy, safe to share between threads (they are frozen read-only), and a
single large matmul per layer evaluates the whole MNIST test set in about half a second.
`from_keras` and `to_keras` convert at the edges (`obd.core.layers` reads the layers). A first Keras `Rescaling`
or `Normalization` layer is read as the network's fixed input transform (`InputNorm`): every forward pass applies
it, and since it is not a Dense layer nothing prunes it.

Input convention: a Network takes pixels in [0, 1], as `obd.core.data` loads MNIST. A model built for raw 0-255
pixels (its Rescaling divides by 255, or it was trained on them) keeps `pixels = 255`, folded into its input
transform; `to_keras` gives back a model that takes what the user's model took (its input shape, pixel scale,
Rescaling/Normalization layer and softmax output).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field, replace

import numpy as np

ACTIVATIONS = ("relu", "linear")  # hidden layers are ReLU; the output layer gives logits
OUTPUTS = ("logits", "softmax")  # what a model's output gives: obd prunes logits, a softmax is kept for export
PIXEL_CHECK_IMAGES = 5000  # the training images on which `obd.runtime.evaluate.fit_pixels` compares pixel scales


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

    scale, offset: float32 read-only, shape () or (inputs,); applied to pixels in [0, 1].
    layer: the Keras layer the model holds for it ("Rescaling" or "Normalization"), None for obd's own scaling of
        raw pixels in a model without such a layer (exported as nothing).
    name: that layer's name.
    """

    scale: np.ndarray
    offset: np.ndarray
    layer: str | None = "Normalization"
    name: str = ""

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
    """A stack of Dense layers; the last one gives logits.

    input_norm: the fixed transform applied to the input (pixels in [0, 1]) before the first layer (a Keras
        Rescaling/Normalization layer, with `pixels` folded in), or None.
    pixels: the value of a white pixel in the input of the user's own model: 1.0 ([0, 1]) or 255.0 (raw).
    input_shape: the user's model's input shape without the batch axis, e.g. (28, 28); None: flat (inputs,).
    output: "logits", or "softmax" when the user's model ends in one (used by exports only).
    """

    layers: tuple[Layer, ...]
    name: str = field(default="mlp")
    input_norm: InputNorm | None = None
    pixels: float = 1.0
    input_shape: tuple[int, ...] | None = None
    output: str = "logits"

    def __post_init__(self) -> None:
        object.__setattr__(self, "layers", tuple(self.layers))
        if self.output not in OUTPUTS:
            raise ValueError(f"a network's output must be one of {OUTPUTS}, got {self.output!r}")
        if not (isinstance(self.pixels, (int, float)) and np.isfinite(self.pixels) and self.pixels > 0):
            raise ValueError(f"pixels (a white pixel's value) must be a positive number, got {self.pixels!r}")
        if self.input_shape is not None:
            object.__setattr__(self, "input_shape", tuple(int(d) for d in self.input_shape))
        norm = self.input_norm
        if norm is not None and any(p.shape not in ((), (self.layers[0].inputs,)) for p in (norm.scale, norm.offset)):
            raise ValueError(f"the input transform must hold one value or {self.layers[0].inputs} values")
        if not self.layers:
            raise ValueError("a network needs at least one Dense layer")
        if self.input_shape is not None and int(np.prod(self.input_shape)) != self.layers[0].inputs:
            raise ValueError(f"an input of shape {self.input_shape} does not give {self.layers[0].inputs} inputs")
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
        return self.with_layers(tuple(l.replace(k, b) for l, k, b in zip(self.layers, kernels, biases)))

    def with_layers(self, layers: tuple[Layer, ...]) -> Network:
        """A new network of other Dense layers (e.g. shrunk ones) behind the same input transform and interface."""
        return replace(self, layers=tuple(layers))

    def with_pixels(self, pixels: float) -> Network:
        """The same network for a user's model that takes pixels whose white is `pixels` (1.0 or 255.0).

        The transform still takes pixels in [0, 1]: a model's own Rescaling/Normalization is rescaled, and a model
        without one gets obd's own scaling (`InputNorm.layer` None, which exports as nothing).
        """
        norm = self.input_norm
        if norm is None or norm.layer is None:
            new = None if pixels == 1 else InputNorm(np.asarray(pixels, dtype=np.float64), np.zeros(()), None)
        else:
            new = InputNorm(norm.scale.astype(np.float64) / self.pixels * pixels, norm.offset, norm.layer, norm.name)
        return replace(self, input_norm=new, pixels=float(pixels))

    def describe_input(self) -> str:
        """The pixels this network's model takes and why, in a few words for the CLI and the app."""
        scale = "raw 0-255 pixels" if self.pixels != 1 else "pixels in [0, 1]"
        norm = self.input_norm
        if norm is not None and norm.layer is not None:
            return f"{scale}, as its first layer ({norm.layer} {norm.name!r}) expects"
        return f"{scale} (its dense loss on {PIXEL_CHECK_IMAGES:,} training images is lower on them)"

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
    """Read a Keras MLP into a Network (`obd.core.layers` says which layers it reads and how).

    Args:
        model: a built `keras.Model` (Sequential or functional, one chain of layers): Dense layers with ReLU hidden
            layers and logits or a softmax out, optionally with Input/Flatten, one Rescaling or Normalization
            first, Dropout, BatchNormalization (folded into the Dense weights) and separate ReLU/Activation layers.

    Returns:
        A Network holding copies of the weights; the model is not changed. A model with a Rescaling/Normalization
        layer takes the pixels that layer was built for (`pixels`); one without takes pixels in [0, 1] until
        `obd.runtime.evaluate.fit_pixels` chooses.

    Raises:
        ValueError: naming the first layer obd does not read, and what it reads.
    """
    import keras

    from obd.core.layers import KerasLayer, assemble, chain

    specs = chain(keras.saving.serialize_keras_object(model))
    by_name = {layer.name: layer for layer in model.layers}
    layers = [
        KerasLayer(s["class_name"], s.get("config") or {}, _weights(by_name.get(s.get("config", {}).get("name"))))
        for s in specs
    ]
    shape = tuple(model.input_shape[1:]) if isinstance(model.input_shape, tuple) else None
    return assemble(layers, model.name, shape if shape and all(isinstance(d, int) for d in shape) else None)


def _weights(layer) -> tuple[np.ndarray, ...]:
    """A Keras layer's variables as numpy arrays, in Keras' order (none for an InputLayer a Sequential omits)."""
    return () if layer is None else tuple(np.asarray(w) for w in layer.get_weights())


def as_network(model) -> Network:
    """A Network as is, or a Keras model read with `from_keras`."""
    return model if isinstance(model, Network) else from_keras(model)


def to_keras(net: Network, output: str | None = None):
    """Build a fresh Keras model holding `net`'s weights that takes and gives what the user's model did.

    Args:
        net: the network to export.
        output: "logits" or "softmax" (default: the network's own `output`).

    Returns:
        A new `keras.Sequential` (not compiled) named as the network: Input of `net.input_shape` (and a Flatten
        when it has several axes), the model's own Rescaling/Normalization layer on its own pixel scale, then the
        Dense layers under their names, the last one ending in `output`.

    Raises:
        ValueError: for an unknown output.
    """
    import keras

    output = net.output if output is None else output
    if output not in OUTPUTS:
        raise ValueError(f"output must be one of {OUTPUTS}, got {output!r}")
    shape = net.input_shape or (net.layers[0].inputs,)
    model = keras.Sequential(name=net.name)
    model.add(keras.Input(shape))
    if len(shape) > 1:
        model.add(keras.layers.Flatten())
    norm = net.input_norm
    if norm is not None and norm.layer is not None:
        scale = norm.scale.astype(np.float64) / net.pixels  # on the model's own pixels
        if norm.layer == "Rescaling" and scale.ndim == 0:
            model.add(keras.layers.Rescaling(float(scale), float(norm.offset), name=norm.name or None))
        else:  # a Normalization stores per-input values as weights, Rescaling cannot
            mean, std = -norm.offset.astype(np.float64) / scale, 1.0 / scale
            model.add(keras.layers.Normalization(mean=mean, variance=np.square(std), name=norm.name or "standardize"))
    for i, layer in enumerate(net.layers):
        act = "softmax" if output == "softmax" and i == len(net.layers) - 1 else layer.activation
        use_bias = layer.bias is not None
        dense = keras.layers.Dense(layer.units, activation=act, use_bias=use_bias, name=layer.name or None)
        model.add(dense)
        dense.set_weights([layer.kernel] + ([layer.bias] if layer.bias is not None else []))
    return model
