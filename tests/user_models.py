"""Keras MLPs built the ordinary ways a user builds them, trained a little on real MNIST (one or two epochs on
6,000 training images), each with the inputs it was trained on: the models of issue 26's targets.

`user_model(kind)` builds and trains one the first time and keeps it for the test session.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

import keras
import numpy as np

from obd.core.data import load_mnist

TRAIN_IMAGES = 6000


@dataclass(frozen=True)
class UserModel:
    """A trained user model and its own test inputs (its input shape and pixel scale)."""

    model: object
    x_test: np.ndarray  # as the model takes them
    raw: bool  # trained on raw 0-255 pixels
    softmax: bool  # ends in a softmax


def _layers(kind: str) -> tuple[tuple[int, ...], list, bool]:
    """(input shape, layers after the input, raw pixels) of each kind."""
    L = keras.layers
    if kind == "dropout":
        return (784,), [L.Dense(64, activation="relu"), L.Dropout(0.3), L.Dense(10)], False
    if kind == "batchnorm":  # Dense -> BatchNormalization -> ReLU: folded into the Dense before it
        return (784,), [L.Dense(64, use_bias=False), L.BatchNormalization(), L.ReLU(), L.Dense(10)], False
    if kind == "activations":  # separate activation layers and a softmax layer
        return (
            (784,),
            [L.Dense(64), L.Activation("relu"), L.Dense(32), L.ReLU(), L.Dense(10), L.Activation("softmax")],
            False,
        )
    if kind == "softmax":
        return (784,), [L.Dense(64, activation="relu"), L.Dense(10, activation="softmax")], False
    if kind == "flatten":  # Input((28, 28)) and a BatchNormalization after the activation (into the next layer)
        return (28, 28), [L.Flatten(), L.Dense(64, activation="relu"), L.BatchNormalization(), L.Dense(10)], False
    if kind == "rescaling":  # raw 0-255 pixels, rescaled by the model itself
        return (28, 28), [L.Flatten(), L.Rescaling(1 / 255), L.Dense(64, activation="relu"), L.Dense(10)], True
    if kind == "raw":  # raw 0-255 pixels, no rescaling: deep enough that [0, 1] pixels get far worse answers
        return (
            (784,),
            [
                L.Dense(128, activation="relu"),
                L.Dense(64, activation="relu"),
                L.Dense(32, activation="relu"),
                L.Dense(10),
            ],
            True,
        )
    raise ValueError(kind)


KINDS = ("dropout", "batchnorm", "activations", "softmax", "flatten", "rescaling", "raw")


@functools.cache
def user_model(kind: str, functional: bool = False) -> UserModel:
    """A model of `kind` (one of KINDS), Sequential or functional, trained on 6,000 training images."""
    shape, layers, raw = _layers(kind)
    keras.utils.set_random_seed(0)
    if functional:
        inputs = h = keras.Input(shape, name="pixels")
        for layer in layers:
            h = layer(h)
        model = keras.Model(inputs, h, name=f"user_{kind}_functional")
    else:
        model = keras.Sequential([keras.Input(shape), *layers], name=f"user_{kind}")
    softmax = kind in ("activations", "softmax")
    model.compile("adam", keras.losses.SparseCategoricalCrossentropy(from_logits=not softmax), metrics=["accuracy"])
    data = load_mnist()
    scale = np.float32(255 if raw else 1)

    def own(x: np.ndarray) -> np.ndarray:  # (n, 784) in [0, 1] -> the model's own inputs
        return (x * scale).reshape((len(x), *shape))

    epochs = 3 if kind == "raw" else 1  # raw pixels train slowly: 2 epochs read 0.78-0.81 on two machines
    model.fit(own(data.x_train[:TRAIN_IMAGES]), data.y_train[:TRAIN_IMAGES], epochs=epochs, batch_size=64, verbose=0)
    return UserModel(model, own(data.x_test), raw, softmax)


def keras_accuracy(user: UserModel, y: np.ndarray) -> float:
    """The model's own test accuracy, as Keras computes it on its own inputs."""
    return float((np.asarray(user.model.predict(user.x_test, verbose=0, batch_size=2048)).argmax(axis=1) == y).mean())
