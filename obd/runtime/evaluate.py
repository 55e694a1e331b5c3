"""Accuracy and loss of a network on a labelled set, in one large numpy batch (no Keras overhead)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from obd.core.network import Network, as_network


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
