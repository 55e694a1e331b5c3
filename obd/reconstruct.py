"""One-shot second-order pruning with reconstruction: OBS (Hassibi & Stork 1993) layer by layer, as in
Optimal Brain Compression and SparseGPT. No retraining: each layer is pruned and its weights refit by least
squares so that its pre-activations on a calibration sample change as little as possible.

Every layer sees the inputs of the already-pruned network ("sequential" calibration), and its target is the
dense network's pre-activation, so each layer also corrects the error of the layers before it.
With X (n, inputs) those inputs, H = X^T X + damping * mean(diag) * I (dead pixels and dead units make X^T X
singular; the damping also regularises the refit).

- Weight mode, per layer: W* = H^-1 X^T Y is the best dense refit to the target Y; entry (q, j) is scored by
  the OBS cost of dropping it alone, w*_qj^2 / [H^-1]_qq; the lowest are dropped and each column's kept
  weights are refit by least squares (identical to OBS's multi-weight update on W*).
- SparseGPT (Frantar & Alistarh 2023), weight mode: the layer's own dense kernel is kept as the target
  (min |X W - X W_dense|^2 on the pruned network's inputs X). Inputs are processed in order, in blocks of
  128: at a block's start the mask is chosen from w^2 / [U]_qq^2 (U the upper Cholesky factor of H^-1, so
  [U]_qq^2 is [H^-1]_qq of the inputs not yet processed); each input's removed weights are then dropped and
  the error spread over the inputs after it only (OBS restricted to them); kept weights are frozen once
  passed. It is cheaper than a full refit and, as the issue's study found, weaker at high sparsity.
- Unit mode: a hidden unit is a row of the next kernel; units are removed greedily, each step dropping the
  unit of least cost |W_q,:|^2 / [H^-1]_qq on the layer's activations and applying OBS's update to the next
  kernel (the order is k-independent, so it is computed once; under the loss-aware budget each output's error
  is weighted by the loss's curvature along it). At sparsity k the next kernel's live rows are
  refit by least squares to the dense pre-activations. The output layer's units (prune_output) are ordered
  by their output energy, w_j^T H w_j.
Biases are kept as they are (the default network has none).
"""

from __future__ import annotations

import ctypes
import glob
import os
from contextlib import contextmanager
from dataclasses import dataclass, replace
from typing import Callable, Iterator, Sequence

import numpy as np
import scipy

from .allocation import Profile, allocate, loss_profiles
from .network import Layer, Network
from .saliency import preactivation_curvature
from .pruning import (Pruned, Ranking, apply_masks, check_budget, check_mode, check_sparsity, lowest_first,
                      mask_from_order, prune_count, rank)


ALGORITHMS = ("obs", "sparsegpt")


@dataclass(frozen=True)
class ReconstructConfig:
    """Reconstruction settings: the damping lambda in H + lambda * mean(diag H) * I (obs: per mode; sparsegpt),
    and SparseGPT's block size."""

    # measured on the default net (layer budget, one-shot unless said):
    # weights 0.1 vs 0.01: 97 % 97.62 vs 97.26, 99 % (global, +2 epochs) 97.69 vs 97.36;
    # units 0.01 vs 0.1: 90 % 97.33 vs 96.85
    weight_damping: float = 0.1
    unit_damping: float = 0.01
    # the SparseGPT paper's defaults (percdamp 0.01, blocksize 128); on the default net damping 0.01 vs 0.1
    # gave 90 % 97.48 vs 97.79, 95 % 90.96 vs 92.56, 97 % 58.03 vs 62.55, 99 % 26.67 vs 25.26: no clear winner,
    # so the method stays as published
    sparsegpt_damping: float = 0.01
    sparsegpt_block: int = 128

    def damping(self, mode: str, algorithm: str = "obs") -> float:
        """The damping of `algorithm` ("obs" or "sparsegpt") in `mode`."""
        if algorithm == "sparsegpt":
            return self.sparsegpt_damping
        return self.weight_damping if mode == "weight" else self.unit_damping


def gram(x: np.ndarray, damping: float) -> np.ndarray:
    """Damped Gram matrix X^T X + damping * mean(diag) * I. x: (n, d) -> (d, d) float64."""
    x = np.asarray(x, dtype=np.float64)
    h = x.T @ x
    h[np.diag_indices_from(h)] += damping * max(float(np.mean(np.diag(h))), 1e-12)
    return h


def _cholesky() -> tuple[Callable, Callable]:
    """scipy's Cholesky factor and solve, imported on first use: obd.methods imports this module, and scipy.linalg's
    0.2 s of imports were a fifth of the dashboard's first run, which never reconstructs."""
    from scipy.linalg import cho_factor, cho_solve

    return cho_factor, cho_solve


def inverse(h: np.ndarray) -> np.ndarray:
    """Inverse of a symmetric positive-definite matrix via Cholesky. (d, d) -> (d, d)"""
    cho_factor, cho_solve = _cholesky()
    return cho_solve(cho_factor(h), np.eye(len(h)))


def obs_scores(w: np.ndarray, hinv: np.ndarray) -> np.ndarray:
    """OBS cost of dropping each entry alone: w_qj^2 / [H^-1]_qq. (inputs, units) -> (inputs, units)"""
    return np.square(w) / np.diag(hinv)[:, None]


def _scipy_openblas():
    """scipy's bundled OpenBLAS (wheels ship it in scipy.libs), or None when scipy links another LAPACK."""
    libs = glob.glob(os.path.join(os.path.dirname(os.path.dirname(scipy.__file__)), "scipy.libs", "libscipy_openblas*"))
    try:
        lib = ctypes.CDLL(libs[0]) if libs else None
        return lib if lib is not None and hasattr(lib, "scipy_openblas_set_num_threads") else None
    except OSError:
        return None


@contextmanager
def _single_threaded_lapack() -> Iterator[None]:
    """Run scipy's LAPACK on one thread inside the block.

    The refit solves a thousand small (hundreds x hundreds) systems; OpenBLAS threads them, and on a busy
    2-core machine its threads spin and wait: a 1000-column refit at 70 % sparsity took 9.5 s threaded and
    0.65 s on one thread. Large products elsewhere keep all threads.
    """
    lib = _scipy_openblas()
    if lib is None:
        yield
        return
    threads = lib.scipy_openblas_get_num_threads()
    lib.scipy_openblas_set_num_threads(1)
    try:
        yield
    finally:
        lib.scipy_openblas_set_num_threads(threads)


def refit(h: np.ndarray, hinv: np.ndarray, w_opt: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """Least-squares refit of each column's kept weights: min (w - w*)^T H (w - w*) subject to w = 0 off mask.

    With H = X^T X this minimises |X w - X w*|^2, the change of the column's output. The solution is computed
    from whichever set is smaller: the kept weights (solve H_SS w_S = (H w*)_S) or the removed ones (OBS's
    multi-weight update w* - H^-1_:R (H^-1_RR)^-1 w*_R).

    Args:
        h: (inputs, inputs) damped Gram matrix; hinv: its inverse.
        w_opt: (inputs, units) unconstrained optimum w*.
        mask: (inputs, units) bool, True = kept.

    Returns:
        (inputs, units) float64 weights, exactly 0 where the mask is False.
    """
    out = np.array(w_opt, dtype=np.float64)  # columns without removals keep w*
    rhs = h @ w_opt  # (inputs, units)
    z = np.zeros_like(out)  # OBS multipliers, nonzero on removed entries: the update is -H^-1 z, one matmul
    h32, hinv32 = h.astype(np.float32), hinv.astype(np.float32)  # halves the per-column gathers and solves
    cho_factor, cho_solve = _cholesky()  # before the block: it finds scipy's OpenBLAS among the loaded libraries
    with _single_threaded_lapack():
        for j in range(w_opt.shape[1]):
            keep = np.flatnonzero(mask[:, j])
            drop = np.flatnonzero(~mask[:, j])
            if len(drop) == 0:
                continue
            if len(keep) <= len(drop):
                out[:, j] = 0.0
                if len(keep):
                    sub = cho_factor(h32.take(keep, 0).take(keep, 1), check_finite=False)
                    out[keep, j] = cho_solve(sub, rhs[keep, j], check_finite=False)
            else:
                sub = cho_factor(hinv32.take(drop, 0).take(drop, 1), check_finite=False)
                z[drop, j] = cho_solve(sub, w_opt[drop, j], check_finite=False)
    out -= hinv @ z
    out[~mask] = 0.0
    return out


@dataclass(frozen=True)
class LayerObs:
    """One layer's OBS problem on given inputs: H, H^-1, the best dense refit w* = H^-1 X^T Y to the target Y,
    and one or more candidate orders of its entries (cheapest to drop first); `solve(count)` prunes by each,
    refits, and keeps the refit of least (weighted) output error."""

    h: np.ndarray  # (inputs, inputs) damped Gram matrix
    hinv: np.ndarray  # (inputs, inputs)
    w_opt: np.ndarray  # (inputs, units)
    orders: tuple[np.ndarray, ...]  # (inputs * units,) flat indices each, cheapest first
    weight: np.ndarray | None = None  # (units,) the cost of each unit's output error; None: all alike

    def solve(self, count: int) -> tuple[np.ndarray, np.ndarray]:
        """(kernel, mask) with `count` entries dropped and the rest refit: float32 and bool, (inputs, units) each.

        Each column's output error after a refit is (w - w*)^T H (w - w*) (plus what w* itself misses, the same
        for every mask), so the candidates are compared without the inputs.
        """
        best = None
        for order in self.orders:
            mask = mask_from_order(order, count, self.w_opt.shape)
            kernel = refit(self.h, self.hinv, self.w_opt, mask)
            if len(self.orders) > 1:
                diff = kernel - self.w_opt  # (inputs, units)
                error = np.einsum("ij,ij->j", diff, self.h @ diff)  # (units,)
                error = float(error.sum() if self.weight is None else error @ self.weight)
            else:
                error = 0.0
            if best is None or error < best[0]:
                best = (error, kernel, mask)
        return best[1].astype(np.float32), best[2]


def layer_obs(x: np.ndarray, target: np.ndarray, damping: float, weight: np.ndarray | None = None) -> LayerObs:
    """Set up OBS for a layer whose inputs are x (n, inputs) and whose pre-activations should be target (n, units).

    weight: (units,) what an error in each unit's output costs (the loss-aware budget passes the loss's curvature
    along each pre-activation, `saliency.preactivation_curvature`). With it, entries compete across columns in
    loss units (OBS cost times the unit's weight), and a second candidate mask, the largest |w*|, is refit too:
    at high sparsity the single-removal OBS costs misjudge which entries can take over from each other, and
    on MLPNet this per-layer choice added 0.7 points at 90 % and 1.5 at 95 % (seed 0). None: OBS order only.
    """
    h = gram(x, damping)
    hinv = inverse(h)
    w_opt = hinv @ (x.T.astype(np.float64) @ target)  # (inputs, units)
    scores = obs_scores(w_opt, hinv)  # (inputs, units)
    if weight is None:
        return LayerObs(h, hinv, w_opt, (lowest_first(scores),))
    return LayerObs(h, hinv, w_opt, (lowest_first(scores * weight[None, :]), lowest_first(np.abs(w_opt))), weight)


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


def greedy_unit_order(a: np.ndarray, w_next: np.ndarray, damping: float,
                      weight: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Greedy OBS removal of a layer's units (rows of the next kernel), least costly first.

    Args:
        a: (n, units) the layer's activations on the calibration sample.
        w_next: (units, outputs) the next layer's kernel.
        damping: see ReconstructConfig.
        weight: (outputs,) what an error in each of the next layer's pre-activations costs (the loss-aware
            budget passes the loss's curvature along them, `saliency.preactivation_curvature`), so that a
            unit feeding units the loss is sensitive to is removed later; None weighs them all alike. The OBS
            update is the same either way (each output's least-squares refit is independent of its weight).

    Returns:
        (order, costs): every unit in removal order, and the cost (increase of the next layer's squared
        output error on the sample, weighted) of each step.
    """
    hinv = inverse(gram(a, damping))
    w = np.asarray(w_next, dtype=np.float64).copy()
    c = np.ones(w.shape[1]) if weight is None else np.asarray(weight, dtype=np.float64)  # (outputs,)
    alive = np.arange(len(w))  # original index of each row still in hinv and w
    order, costs = [], []
    while len(alive):
        cost = np.einsum("ij,ij,j->i", w, w, c) / np.diag(hinv)  # (alive,)
        q = int(np.argmin(cost))
        order.append(alive[q])
        costs.append(cost[q])
        col = hinv[:, q] / hinv[q, q]  # (alive,)
        w -= np.outer(col, w[q])  # OBS update of the other rows; row q becomes 0
        hinv -= np.outer(col, hinv[q])
        # drop row/column q; numpy copies, so compacting costs as much as the updates above
        rest = np.arange(len(alive)) != q
        alive, w, hinv = alive[rest], w[rest], hinv[np.ix_(rest, rest)]
    return np.array(order, dtype=np.int64), np.array(costs)


@dataclass(frozen=True)
class ObsPlan:
    """Everything OBS needs that does not depend on the sparsity, computed once per (network, mode, budget).

    acts: the dense network's calibration activations [x, h1, ..., logits].
    ranking: unit mode: the greedy removal orders (masks(k) gives the pruned units); weight mode: used for
    the per-layer counts only (global budget), the entries themselves are chosen during reconstruction.
    """

    net: Network
    mode: str
    acts: tuple[np.ndarray, ...]
    ranking: Ranking
    budget: str
    config: ReconstructConfig
    algorithm: str = "obs"  # "obs" (mask by OBS score, least-squares refit) or "sparsegpt" (weight mode)
    profiles: tuple[Profile, ...] | None = None  # loss-aware budget: each pruned layer's loss profile
    unit_costs: tuple[np.ndarray, ...] | None = None  # loss-aware obs, weight mode: see `layer_obs`'s weight

    @property
    def damping(self) -> float:
        return self.config.damping(self.mode, self.algorithm)

    def prune(self, sparsity: float) -> Pruned:
        """Prune to `sparsity` and reconstruct; returns Pruned whose net holds the refit weights."""
        k = check_sparsity(sparsity)
        removed = self.removed(k)
        if self.mode == "unit":
            masks = count_masks(self.ranking, removed)
            kernels = _refit_units(self.net, self.acts, masks, self.damping)
            net = apply_masks(self.net.with_weights(kernels, [l.bias for l in self.net.layers]), masks, "unit")
            return Pruned(net, tuple(masks), "unit", k)
        counts = removed
        if self.algorithm == "sparsegpt":
            net, masks = _sparsegpt_weights(self.net, self.acts[0], counts, self.damping, self.config.sparsegpt_block)
        else:
            net, masks = _reconstruct_weights(self.net, self.acts, counts, self.damping, self.unit_costs)
        return Pruned(net, tuple(masks), "weight", k)

    def removed(self, sparsity: float) -> list[int]:
        """How many entries (weight mode) or units (unit mode) each layer loses at `sparsity` under the budget."""
        return removed_counts(self.ranking, sparsity, self.profiles)


def count_masks(ranking: Ranking, removed: Sequence[int]) -> list[np.ndarray]:
    """Kernel-shaped bool masks (True = kept) dropping the first removed[i] entries (or units) of each layer's
    order."""
    out = []
    for order, count, shape in zip(ranking.orders, removed, ranking.shapes):
        if order is None:
            out.append(np.ones(shape, dtype=bool))
        elif ranking.mode == "weight":
            out.append(mask_from_order(order, count, shape))
        else:
            out.append(np.broadcast_to(mask_from_order(order, count, (shape[1],)), shape))
    return out


def removed_counts(ranking: Ranking, sparsity: float, profiles: Sequence[Profile] | None = None) -> list[int]:
    """Per layer, how many entries (weight mode) or units (unit mode) go at `sparsity`.

    With loss profiles (loss-aware budget) the pruned layers together lose round(k*N) of their N items, split
    by `obd.allocation.allocate`; otherwise the ranking's own budget decides (per layer or one threshold).
    """
    k = check_sparsity(sparsity)
    sizes = [0 if o is None else o.size for o in ranking.orders]
    if profiles is None:
        return [int((~m[0] if ranking.mode == "unit" else ~m).sum()) if size else 0
                for m, size in zip(ranking.masks(k), sizes)]
    kept = iter(allocate(profiles, sum(sizes) - prune_count(k, sum(sizes))))
    return [size - next(kept) if size else 0 for size in sizes]


def plan_obs(net: Network, x: np.ndarray, mode: str = "weight", budget: str = "layer",
             prune_output: bool = False, config: ReconstructConfig = ReconstructConfig(),
             algorithm: str = "obs", y: np.ndarray | None = None) -> ObsPlan:
    """Precompute OBS state for a network: calibration activations and, per mode, orders or global scores.

    Args:
        net: the dense network.
        x: (n, inputs) calibration images (a few thousand training images).
        mode: "weight" or "unit".
        budget: "layer" or "global". OBS costs are squared output errors of different layers, not
            comparable as they are. Weight mode splits a global budget across layers as global magnitude
            pruning does (one |w| threshold; dividing OBS costs by each layer's output energy instead
            emptied the deepest layers at 99 %), then OBS chooses and refits within each layer. Unit mode
            merges the layers' greedy sequences by cost relative to the next layer's output energy
            |A W_next|^2, made non-decreasing (running maximum) along each sequence.
        prune_output: prune the logits layer too.
        config: damping (and SparseGPT's block size).
        algorithm: "obs" (mask by OBS score, then least-squares refit) or "sparsegpt" (weight mode only).
        y: (n,) labels of x; the "loss-aware" budget needs them: it measures each layer's calibration loss
            when that layer alone is pruned (and reconstructed) to each of `allocation.PROFILE_KEPT`, then
            splits round(k*N) between the layers by `allocation.allocate`.

    Returns:
        An ObsPlan; `plan.prune(k)` reconstructs at any sparsity.

    Raises:
        ValueError: for an unknown mode, budget or algorithm, "sparsegpt" with mode "unit", or the loss-aware
            budget without labels.
    """
    check_mode(mode)
    check_budget(budget)
    if algorithm not in ALGORITHMS:
        raise ValueError(f"algorithm must be one of {', '.join(ALGORITHMS)}; got {algorithm!r}")
    if algorithm == "sparsegpt" and mode != "weight":
        raise ValueError("sparsegpt prunes single weights only (mode weight); for units use obs")
    if budget == "loss-aware" and y is None:
        raise ValueError("the loss-aware budget needs the calibration labels y")
    acts = tuple(net.activations(x))
    last = len(net.layers) - 1
    pruned = [i for i in range(len(net.layers)) if prune_output or i < last]
    if mode == "weight":  # only per-layer counts are needed; a global budget splits them by magnitude
        ranking = rank(net, mode, prune_output, budget="layer" if budget == "loss-aware" else budget)
        profiles = unit_costs = None
        if budget == "loss-aware":
            damping = config.damping(mode, algorithm)
            unit_costs = tuple(preactivation_curvature(net, x)) if algorithm == "obs" else None
            solvers = {i: layer_obs(acts[i], acts[i] @ net.layers[i].kernel, damping, unit_costs[i])
                       for i in pruned if algorithm == "obs"}

            def variant(i: int, kept: int) -> dict[int, Layer]:
                layer = net.layers[i]
                if algorithm == "obs":  # the profile takes the OBS order only: half the refits
                    kernel = replace(solvers[i], orders=solvers[i].orders[:1]).solve(layer.kernel.size - kept)[0]
                else:
                    kernel = sparsegpt(gram(acts[i], damping), layer.kernel, layer.kernel.size - kept,
                                       config.sparsegpt_block)[0].astype(np.float32)
                return {i: layer.replace(kernel, layer.bias)}

            profiles = tuple(loss_profiles(net, x, y, pruned, [net.layers[i].kernel.size for i in pruned], variant))
        return ObsPlan(net, mode, acts, ranking, budget, config, algorithm, profiles, unit_costs)
    orders, costs = [], []
    # loss-aware: each unit's removal is costed in loss units, by the curvature along the next layer's
    # pre-activations (weighted as weight mode's entries are; 90 % of the default net's units: 97.87 -> 98.02)
    curvature = preactivation_curvature(net, x) if budget == "loss-aware" else None
    for i, layer in enumerate(net.layers):
        if i == last:  # no next layer: order the output units by their output energy
            h = gram(acts[i], config.unit_damping)
            c = np.einsum("ij,ij->j", layer.kernel, h @ layer.kernel)
            orders.append(lowest_first(c))
            costs.append(c[orders[-1]] / c.sum())
        else:
            nxt = net.layers[i + 1].kernel
            order, c = greedy_unit_order(acts[i + 1], nxt, config.unit_damping,
                                         None if curvature is None else curvature[i + 1])
            orders.append(order)
            costs.append(np.maximum.accumulate(c) / np.square(acts[i + 1] @ nxt, dtype=np.float64).sum())
    global_order = None
    if budget == "global":
        # merge the layers' removal sequences by cost; ties keep each layer's greedy order
        offsets = np.cumsum([0] + [net.layers[i].units for i in pruned])
        position = np.concatenate([orders[i] + off for i, off in zip(pruned, offsets)])
        cost = np.concatenate([costs[i] for i in pruned])
        step = np.concatenate([np.arange(len(orders[i])) for i in pruned])
        global_order = position[np.lexsort((step, cost))]
    ranking = Ranking("unit", tuple(o if i in pruned else None for i, o in enumerate(orders)),
                      tuple(l.kernel.shape for l in net.layers), global_order)
    profiles = None
    if budget == "loss-aware":
        def variant(i: int, kept: int) -> dict[int, Layer]:
            layer = net.layers[i]
            live = np.ones(layer.units, dtype=bool)
            live[orders[i][: layer.units - kept]] = False
            bias = None if layer.bias is None else np.where(live, layer.bias, np.float32(0))
            out = {i: layer.replace(np.where(live, layer.kernel, np.float32(0)), bias)}
            if i < last:  # the next layer's live rows absorb the loss of the removed units
                nxt = net.layers[i + 1]
                x_next = np.where(live, acts[i + 1], np.float32(0))  # (n, units)
                out[i + 1] = nxt.replace(_refit_rows(x_next, live, acts[i + 1] @ nxt.kernel, nxt.kernel,
                                                     config.unit_damping), nxt.bias)
            return out

        profiles = tuple(loss_profiles(net, x, y, pruned, [net.layers[i].units for i in pruned], variant))
    return ObsPlan(net, mode, acts, ranking, budget, config, "obs", profiles)


def _forward(layer: Layer, x: np.ndarray, kernel: np.ndarray, bias: np.ndarray | None) -> np.ndarray:
    """A layer's output with other weights. (n, inputs) -> (n, units) float32"""
    z = x @ kernel.astype(np.float32)
    if bias is not None:
        z += bias
    return np.maximum(z, 0.0) if layer.activation == "relu" else z


def _reconstruct_weights(net: Network, acts: tuple[np.ndarray, ...], counts: list[int], damping: float,
                         weights: Sequence[np.ndarray] | None = None) -> tuple[Network, list[np.ndarray]]:
    """Sequential OBS weight pruning with per-layer counts (and unit weights, see `layer_obs`); see the module
    docstring."""
    x = acts[0]  # the pruned network's input to the current layer, (n, inputs)
    kernels, masks, changed = [], [], False
    for i, layer in enumerate(net.layers):
        if counts[i] == 0 and not changed:
            kernel, mask = layer.kernel, np.ones(layer.kernel.shape, dtype=bool)
        else:  # the target: the dense pre-activation (without bias), (n, units)
            kernel, mask = layer_obs(x, acts[i] @ layer.kernel, damping,
                                     None if weights is None else weights[i]).solve(counts[i])
            changed = True
        kernels.append(kernel)
        masks.append(mask)
        x = _forward(layer, x, kernel, layer.bias)
    return net.with_weights(kernels, [l.bias for l in net.layers]), masks


def _sparsegpt_weights(net: Network, x: np.ndarray, counts: list[int], damping: float,
                       block: int) -> tuple[Network, list[np.ndarray]]:
    """SparseGPT layer by layer, each layer on the inputs of the already-pruned layers before it."""
    kernels, masks = [], []  # x: the pruned network's input to the current layer, (n, inputs)
    for i, layer in enumerate(net.layers):
        if counts[i] == 0:  # nothing removed: no error to spread, the kernel stays as it is
            kernel, mask = layer.kernel, np.ones(layer.kernel.shape, dtype=bool)
        else:
            kernel, mask = sparsegpt(gram(x, damping), layer.kernel, counts[i], block)
            kernel = kernel.astype(np.float32)
        kernels.append(kernel)
        masks.append(mask)
        x = _forward(layer, x, kernel, layer.bias)
    return net.with_weights(kernels, [l.bias for l in net.layers]), masks


def _refit_rows(x: np.ndarray, live: np.ndarray, target: np.ndarray, kernel: np.ndarray,
                damping: float) -> np.ndarray:
    """A kernel whose live input rows are refit by least squares so that x @ kernel matches target.

    x: (n, inputs) the layer's inputs; live: (inputs,) bool; target: (n, units). Returns (inputs, units) float32.
    """
    if live.all() or not live.any():
        return kernel
    rows = np.flatnonzero(live)
    cho_factor, cho_solve = _cholesky()
    xs = x[:, rows]  # (n, live inputs)
    out = kernel.copy()
    out[rows] = cho_solve(cho_factor(gram(xs, damping)), xs.T.astype(np.float64) @ target)
    return out


def _refit_units(net: Network, acts: tuple[np.ndarray, ...], masks: list[np.ndarray],
                 damping: float) -> list[np.ndarray]:
    """Refit each kernel's live input rows to the dense pre-activations once any unit upstream is gone."""
    x = acts[0]
    kernels, live = [], np.ones(net.layers[0].inputs, dtype=bool)  # live: (inputs,) of the current layer
    for i, layer in enumerate(net.layers):
        kernel = _refit_rows(x, live, acts[i] @ layer.kernel, layer.kernel, damping)
        kernel = np.where(masks[i], kernel, np.float32(0))
        kernels.append(kernel)
        live = masks[i].any(axis=0)
        bias = None if layer.bias is None else np.where(live, layer.bias, np.float32(0))
        x = _forward(layer, x, kernel, bias)
    return kernels
