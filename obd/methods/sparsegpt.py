"""SparseGPT (Frantar & Alistarh 2023), weight mode: each layer's own dense kernel is kept as the target
(min |X W - X W_dense|^2 on the pruned network's inputs X). Inputs are processed in order, in blocks: at a block's
start the mask is chosen from w^2 / [U]_qq^2 (U the upper Cholesky factor of H^-1, so [U]_qq^2 is [H^-1]_qq of
the inputs not yet processed); each input's removed weights are then dropped and the error spread over the
inputs after it only (OBS restricted to them); kept weights are frozen once passed. Cheaper than OBS's full
refit, and weaker at high sparsity.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from obd.core.network import Network
from obd.core.pruning import lowest_first, mask_from_order
from obd.methods.hessian import Validation, choose, inverse, layer_by_layer, shifted


def sparsegpt(h: np.ndarray, w: np.ndarray, count: int, block: int = 128) -> tuple[np.ndarray, np.ndarray]:
    """SparseGPT on one kernel: drop `count` weights and update the later inputs' weights to compensate.

    Args:
        h: (inputs, inputs) damped Gram matrix of the layer's inputs.
        w: (inputs, units) the kernel (not changed).
        count: entries to zero in the whole kernel; block b of inputs [s, e) drops
            count*e//inputs - count*s//inputs of them, so the total is exact.
        block: inputs per mask-selection block (the paper's 128).

    Returns:
        (kernel, mask): (inputs, units) float64 weights, exactly 0 where the bool mask is False.
    """
    d = len(h)
    u = np.linalg.cholesky(inverse(h)).T  # (d, d) upper: H^-1 = U^T U
    w = np.array(w, dtype=np.float64)  # (d, units), updated in place
    mask = np.ones(w.shape, dtype=bool)
    for s in range(0, d, block):
        e = min(s + block, d)
        ub = u[s:e, s:e]
        wb = w[s:e]  # (b, units), a view: row updates land in w
        scores = np.square(wb) / np.square(np.diag(ub))[:, None]
        mb = mask_from_order(lowest_first(scores), count * e // d - count * s // d, scores.shape)
        err = np.zeros_like(wb)  # (b, units) the OBS multipliers of this block's removals
        for i in range(e - s):
            if mb[i].all():
                continue  # nothing removed from this input: nothing to spread
            err[i] = np.where(mb[i], 0.0, wb[i]) / ub[i, i]
            wb[i:] -= np.outer(ub[i, i:], err[i])  # row i's removed entries become 0 (up to rounding)
        wb[~mb] = 0.0
        mask[s:e] = mb
        w[e:] -= u[s:e, e:].T @ err  # the block's updates of the inputs after it, at once
    return w, mask


def sparsegpt_weights(
    net: Network,
    acts: Sequence[np.ndarray],
    val_acts: Sequence[np.ndarray] | None,
    counts: list[int],
    dampings: Sequence[float],
    block: int,
) -> tuple[Network, list[np.ndarray]]:
    """SparseGPT layer by layer, each layer on the inputs of the already-pruned layers before it.

    acts, val_acts: the dense network's activations [x, h1, ..., logits] on the calibration and validation images;
    each layer's damping is the candidate whose kernel best reproduces its dense pre-activations on the validation
    images (run through the network as pruned so far); val_acts may be None with a single candidate.
    """

    def solve(i: int, x: np.ndarray, xtx: np.ndarray, val: Validation | None) -> tuple[np.ndarray, np.ndarray]:
        at_damping = lambda d: sparsegpt(shifted(xtx, d), net.layers[i].kernel, counts[i], block)  # noqa: E731
        kernel, mask, _ = choose(dampings, at_damping, val)
        return kernel.astype(np.float32), mask

    # a layer with nothing removed has no error to spread: it stays as it is, whatever came before
    return layer_by_layer(net, acts, val_acts, solve, lambda i, changed: counts[i] == 0)
