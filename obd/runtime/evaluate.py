"""Accuracy and loss of a network on a labelled set, in one large numpy batch (no Keras overhead)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from obd.core.data import Mnist
from obd.core.network import PIXEL_CHECK_IMAGES, Network, as_network


@dataclass(frozen=True)
class Evaluation:
    accuracy: float  # fraction correct in [0, 1]
    loss: float  # mean sparse categorical cross-entropy (natural log), as Keras reports it
    predictions: np.ndarray  # (n,) int predicted classes


def log_softmax(logits: np.ndarray) -> np.ndarray:
    """Numerically stable log-softmax over the last axis. (n, classes) -> (n, classes) float64"""
    z = logits.astype(np.float64)
    z -= z.max(axis=1, keepdims=True)
    return z - np.log(np.exp(z).sum(axis=1, keepdims=True))


def score_logits(logits: np.ndarray, y: np.ndarray) -> Evaluation:
    """Accuracy, loss and predictions from logits (n, classes) and integer labels (n,)."""
    y = np.asarray(y)
    logp = log_softmax(logits)
    loss = float(-logp[np.arange(len(y)), y].mean())
    pred = logits.argmax(axis=1)
    return Evaluation(float((pred == y).mean()), loss, pred)


def evaluate(
    net: Network | object, x: np.ndarray, y: np.ndarray, batch_size: int = 10_000, engine: str = "dense"
) -> Evaluation:
    """Evaluate a network.

    Args:
        net: the (pruned or dense) network, or a Keras model (`as_network`).
        x: (n, 784) or (n, 28, 28) images with pixels in [0, 1], as `load_mnist` gives them (a model built for raw
            pixels is scaled for them: `Network.pixels`).
        y: (n,) integer labels.
        batch_size: rows per matmul; the default runs MNIST's test set in one batch.
        engine: "dense" (plain numpy), or an `obd.runtime.engines` kind ("auto" runs the shrunk or sparse network when
            that is faster; logits agree with dense to float32 round-off).

    Returns:
        Evaluation(accuracy, loss, predictions).

    Raises:
        ValueError: for an unknown engine.
    """
    net, x = as_network(net), np.asarray(x, dtype=np.float32).reshape(len(x), -1)  # (n, inputs)
    if engine == "dense":
        return score_logits(net.logits(x, batch_size), y)
    from obd.runtime.engines import build_engine  # numba: loaded only when asked

    return score_logits(build_engine(net, engine, min(batch_size, len(x))).logits(x), y)


def fit_pixels(net: Network, data: Mnist) -> Network:
    """Choose the pixel scale of a model without its own Rescaling/Normalization: [0, 1] or raw 0-255, whichever
    gives the lower dense loss on the last PIXEL_CHECK_IMAGES training images (the test set only reports).

    The loss decides, not the accuracy: a ReLU network is nearly scale-invariant, so both scales can give about
    the same accuracy, while the wrong one gives either near-uniform (too small) or wildly overconfident (too large)
    logits.

    Args:
        net: a network from `from_keras` or `read_keras_file`.
        data: MNIST.

    Returns:
        `net` as it is when its own layer says its pixels; else `net.with_pixels(...)` of the better scale.
    """
    if net.input_norm is not None and net.input_norm.layer is not None:
        return net
    x, y = data.x_train[-PIXEL_CHECK_IMAGES:], data.y_train[-PIXEL_CHECK_IMAGES:]  # (n, 784), (n,)
    nets = [net.with_pixels(p) for p in (1.0, 255.0)]
    losses = [score_logits(n.logits(x), y).loss for n in nets]
    return nets[int(losses[1] < losses[0])]
