"""Pruning criteria that need no reconstruction: magnitude, random (a seeded control) and OBD.

OBD (LeCun, Denker & Solla 1990) scores weight k by the loss increase a second-order Taylor expansion
predicts for deleting it alone: s_k = 1/2 * h_kk * w_k^2, with h_kk the diagonal of the Hessian of the mean
cross-entropy over a calibration sample. We estimate h_kk in one of two ways:

- "gauss-newton" (default): the diagonal of J^T S J, J the Jacobian of the logits and S = diag(p) - p p^T the
  softmax-CE Hessian in logit space. For a ReLU network this *is* the exact Hessian diagonal (almost
  everywhere): with every other weight fixed, the logits are piecewise linear in a single weight, so the
  second-derivative term of the logits vanishes. We get it exactly by backpropagating the (n, classes, units)
  Jacobian of the logits with respect to each layer's pre-activations (LeCun's paper backpropagates only its
  diagonal, an approximation).
- "fisher": the empirical Fisher diagonal, the mean squared per-example gradient.

For a Dense layer both are one matmul: per example the kernel's curvature is the outer product of the
squared inputs with a per-unit term, so the sum over examples is (x*x)^T d, d of shape (n, units).
OBD saliencies are in loss units, so they are comparable across layers (a global budget needs no scaling).
"""

from __future__ import annotations

import numpy as np

from obd.core.network import Network
from obd.core.pruning import check_mode
from obd.runtime.evaluate import log_softmax

HESSIANS = ("gauss-newton", "fisher")


def _check_hessian(kind: object) -> str:
    if kind not in HESSIANS:
        raise ValueError(f"hessian must be one of {', '.join(HESSIANS)}; got {kind!r}")
    return kind  # type: ignore[return-value]


def hessian_diagonal(
    net: Network, x: np.ndarray, y: np.ndarray | None = None, kind: str = "gauss-newton", batch_size: int = 512
) -> list[np.ndarray]:
    """Diagonal of the Hessian of the mean cross-entropy with respect to every kernel entry.

    Args:
        net: the network.
        x: (n, inputs) calibration images.
        y: (n,) labels; needed for kind="fisher" only.
        kind: "gauss-newton" (exact for ReLU nets, see the module docstring) or "fisher" (empirical).
        batch_size: examples per pass; memory is about batch_size * classes * units * 4 bytes per layer.

    Returns:
        One float64 array per layer, kernel-shaped (inputs, units): h_kk.

    Raises:
        ValueError: for an unknown kind, or kind="fisher" without labels.
    """
    _check_hessian(kind)
    x = np.asarray(x, dtype=np.float32).reshape(len(x), -1)
    h = [np.zeros(layer.kernel.shape) for layer in net.layers]
    for acts, i, d in _curvature_passes(net, x, y, kind, batch_size):
        h[i] += np.square(acts[i], dtype=np.float64).T @ d  # (inputs, units)
    return [hi / len(x) for hi in h]


def preactivation_curvature(net: Network, x: np.ndarray, batch_size: int = 512) -> list[np.ndarray]:
    """Per layer, the Gauss-Newton curvature of the mean cross-entropy along each unit's pre-activation:
    how much an error in that unit's output costs in loss (0 where a ReLU is off).

    Args:
        net: the network.
        x: (n, inputs) calibration images.
        batch_size: examples per pass.

    Returns:
        One float64 (units,) array per layer.
    """
    x = np.asarray(x, dtype=np.float32).reshape(len(x), -1)
    out = [np.zeros(layer.units) for layer in net.layers]
    for _, i, d in _curvature_passes(net, x, None, "gauss-newton", batch_size):
        out[i] += d.sum(axis=0)
    return [o / len(x) for o in out]


def _curvature_passes(net: Network, x: np.ndarray, y: np.ndarray | None, kind: str, batch_size: int):
    """Yield (activations, layer index, d) per batch and layer, last layer first: d (batch, units) is each
    example's curvature (Gauss-Newton) or squared gradient (Fisher) along the layer's pre-activations."""
    _check_hessian(kind)
    if kind == "fisher" and y is None:
        raise ValueError("the empirical Fisher diagonal needs labels y")
    for start in range(0, len(x), batch_size):
        xb = x[start : start + batch_size]
        acts = net.activations(xb)  # [x, h1, ..., logits]
        p = np.exp(log_softmax(acts[-1])).astype(np.float32)  # (b, classes)
        if kind == "fisher":
            g = p.copy()  # d loss_n / d logits, then backpropagated: (b, units)
            g[np.arange(len(xb)), np.asarray(y)[start : start + batch_size]] -= 1
            g = g[:, None, :]  # (b, 1, classes)
        else:
            # S = diag(p) - p p^T = sum_r p_r (e_r - p)(e_r - p)^T, so the per-unit Gauss-Newton term is
            # J_j^T S J_j = sum_r (G J_j)_r^2 with G[r] = sqrt(p_r) (e_r - p): backpropagate G J, (b, classes, units).
            g = np.sqrt(p)[:, :, None] * (np.eye(p.shape[1], dtype=np.float32) - p[:, None, :])
        for i in range(len(net.layers) - 1, -1, -1):
            yield acts, i, np.square(g, dtype=np.float64).sum(axis=1)  # (b, units)
            if i > 0:
                b, rows, units = g.shape
                g = (g.reshape(b * rows, units) @ net.layers[i].kernel.T).reshape(b, rows, -1)
                g *= (acts[i] > 0)[:, None, :]  # ReLU derivative of the layer below


def obd_saliency(net: Network, hessian: list[np.ndarray], mode: str = "weight") -> list[np.ndarray]:
    """OBD saliency from a Hessian diagonal: 1/2 h_kk w_k^2 per weight, summed over a column per unit.

    Args:
        net: the network whose weights are scored.
        hessian: `hessian_diagonal(net, ...)`.
        mode: "weight" -> kernel-shaped scores; "unit" -> (units,) scores.

    Returns:
        Per-layer float64 saliencies in loss units (higher = keep).
    """
    check_mode(mode)
    out = []
    for layer, h in zip(net.layers, hessian):
        s = 0.5 * h * np.square(layer.kernel, dtype=np.float64)  # (inputs, units)
        out.append(s if mode == "weight" else s.sum(axis=0))
    return out


def random_scores(net: Network, mode: str = "weight", seed: int = 0) -> list[np.ndarray]:
    """Uniform random scores (a control): the same seed gives the same masks.

    Returns:
        Per-layer scores, kernel-shaped (weight mode) or (units,) (unit mode).
    """
    check_mode(mode)
    rng = np.random.default_rng(seed)
    return [rng.random(layer.kernel.shape if mode == "weight" else (layer.units,)) for layer in net.layers]
