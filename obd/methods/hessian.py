"""The layer-wise least-squares algebra OBS and SparseGPT share: a layer's damped Gram matrix H = X^T X + damping *
mean(diag) * I (dead pixels and dead units make X^T X singular; the damping also regularises the refit), its
inverse, OBS's per-weight costs, and the refit of a column's kept weights; `LayerObs` holds one layer's problem;
`layer_by_layer` walks a network solving each layer on the outputs of the layers already pruned.

The damping is not a setting: `choose` solves a layer once per candidate of a small grid (X^T X is computed once,
only its diagonal shift changes) and keeps the solution that best predicts the layer's target on a validation
split of the training images, disjoint from the calibration sample the solutions are fit on."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

from obd.core.network import Layer, Network
from obd.core.pruning import lowest_first, mask_from_order
from obd.runtime.threads import on_every_core

# the candidates `choose` tries: a ridge too small to matter on well-conditioned inputs up to one that biases the
# refit visibly; validation picks among them per layer (and per sparsity where the layer is solved per sparsity)
DAMPINGS = (1e-4, 1e-3, 1e-2, 1e-1)


def gram(x: np.ndarray, damping: float) -> np.ndarray:
    """Damped Gram matrix X^T X + damping * mean(diag) * I. x: (n, d) -> (d, d) float64."""
    x = np.asarray(x, dtype=np.float64)
    return shifted(x.T @ x, damping)


def shifted(h: np.ndarray, damping: float) -> np.ndarray:
    """A copy of the Gram matrix h (d, d) with damping * mean(diag) added to its diagonal."""
    h = np.array(h, dtype=np.float64)
    h[np.diag_indices_from(h)] += damping * max(float(np.mean(np.diag(h))), 1e-12)
    return h


@dataclass(frozen=True)
class Validation:
    """A layer's validation problem: its inputs on validation images (through the network as pruned so far) and
    the pre-activations it should reproduce there."""

    x: np.ndarray  # (m, inputs)
    target: np.ndarray  # (m, units)

    def error(self, kernel: np.ndarray, weight: np.ndarray | None = None) -> float:
        """Squared error of x @ kernel against the target, each unit's weighted by weight (units,) if given."""
        r = self.x.astype(np.float64) @ np.asarray(kernel, dtype=np.float64) - self.target  # (m, units)
        e = np.einsum("ij,ij->j", r, r)  # (units,)
        return float(e.sum() if weight is None else e @ weight)


def choose(
    dampings: Sequence[float],
    solve: Callable[[float], tuple[np.ndarray, np.ndarray]],
    val: Validation | None,
    weight: np.ndarray | None = None,
) -> tuple[np.ndarray, np.ndarray, float]:
    """Solve a layer with each candidate damping and keep the solution of least validation error.

    Args:
        dampings: the candidates (one: it is used without validation).
        solve: damping -> (kernel, mask) of the layer, fit on the calibration sample.
        val: the layer's validation problem (needed with more than one candidate).
        weight: (units,) what an error in each unit's output costs; None: all alike.

    Returns:
        (kernel, mask, damping) of the chosen candidate.

    Raises:
        ValueError: with several candidates and no validation problem.
    """
    if len(dampings) == 1:
        return (*solve(dampings[0]), dampings[0])
    if val is None:
        raise ValueError(
            "choosing the damping needs validation images: build the sample with obd.methods.registry.calibration() "
            "or pass a damping explicitly"
        )
    best: tuple[float, np.ndarray, np.ndarray, float] | None = None
    for d in dampings:
        kernel, mask = solve(d)
        error = val.error(kernel, weight)
        if best is None or error < best[0]:
            best = (error, kernel, mask, d)
    assert best is not None, "at least one candidate"
    return best[1], best[2], best[3]


def cholesky() -> tuple[Callable, Callable]:
    """scipy's Cholesky factor and solve, imported on first use: obd.methods.registry imports this module, and
    scipy.linalg's imports would slow the dashboard's first run, which never reconstructs."""
    from scipy.linalg import cho_factor, cho_solve

    return cho_factor, cho_solve


def inverse(h: np.ndarray) -> np.ndarray:
    """Inverse of a symmetric positive-definite matrix via Cholesky. (d, d) -> (d, d)"""
    cho_factor, cho_solve = cholesky()
    return cho_solve(cho_factor(h), np.eye(len(h)))


def obs_scores(w: np.ndarray, hinv: np.ndarray) -> np.ndarray:
    """OBS cost of dropping each entry alone: w_qj^2 / [H^-1]_qq. (inputs, units) -> (inputs, units)"""
    return np.square(w) / np.diag(hinv)[:, None]


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
    cho_factor, cho_solve = cholesky()  # before the columns: it finds scipy's OpenBLAS among the loaded libraries

    def column(j: int) -> None:  # writes column j of out or z only: the columns run concurrently
        keep = np.flatnonzero(mask[:, j])
        drop = np.flatnonzero(~mask[:, j])
        if len(drop) == 0:
            return
        if len(keep) <= len(drop):
            out[:, j] = 0.0
            if len(keep):
                sub = cho_factor(h32.take(keep, 0).take(keep, 1), check_finite=False)
                out[keep, j] = cho_solve(sub, rhs[keep, j], check_finite=False)
        else:
            sub = cho_factor(hinv32.take(drop, 0).take(drop, 1), check_finite=False)
            z[drop, j] = cho_solve(sub, w_opt[drop, j], check_finite=False)

    # one small solve per column, on every core (LAPACK releases the GIL): most of an obs plan's time
    on_every_core(w_opt.shape[1], column)
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

        Raises:
            ValueError: when the problem has no order (`orders` is empty).
        """
        best: tuple[float, np.ndarray, np.ndarray] | None = None
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
        if best is None:
            raise ValueError("a layer's OBS needs at least one order to prune in")
        return best[1].astype(np.float32), best[2]


def layer_obs(
    x: np.ndarray, target: np.ndarray, damping: float, weight: np.ndarray | None = None, xtx: np.ndarray | None = None
) -> LayerObs:
    """Set up OBS for a layer whose inputs are x (n, inputs) and whose pre-activations should be target (n, units).

    weight: (units,) what an error in each unit's output costs (the loss-aware budget passes the loss's curvature
    along each pre-activation, `saliency.preactivation_curvature`). With it, entries compete across columns in
    loss units (OBS cost times the unit's weight), and a second candidate mask, the largest |w*|, is refit too:
    at high sparsity the single-removal OBS costs misjudge which entries can take over from each other, and
    on MLPNet this per-layer choice added 0.7 points at 90 % and 1.5 at 95 % (seed 0). None: OBS order only.
    xtx: X^T X (inputs, inputs) when the caller has it (one per layer for all candidate dampings).
    """
    h = gram(x, damping) if xtx is None else shifted(xtx, damping)
    hinv = inverse(h)
    w_opt = hinv @ (x.T.astype(np.float64) @ target)  # (inputs, units)
    scores = obs_scores(w_opt, hinv)  # (inputs, units)
    if weight is None:
        return LayerObs(h, hinv, w_opt, (lowest_first(scores),))
    return LayerObs(h, hinv, w_opt, (lowest_first(scores * weight[None, :]), lowest_first(np.abs(w_opt))), weight)


def row_damping(
    x: np.ndarray,
    x_val: np.ndarray | None,
    kernel: np.ndarray,
    dampings: Sequence[float],
    weight: np.ndarray | None = None,
    removed: Sequence[float] = (0.5, 0.9),
) -> float:
    """The damping for a kernel whose input rows are refit after some of its inputs (units) are removed.

    Unit pruning orders its units once, before any sparsity is known, so its damping is chosen once per layer:
    for each share in `removed`, the inputs of least |x_q| * |kernel_q| are dropped and the live rows refit to
    x @ kernel with each candidate; the candidate of least total relative validation error wins.

    Args:
        x: (n, inputs) the layer's inputs on the calibration sample; x_val: (m, inputs) on validation images.
        kernel: (inputs, units) the dense kernel.
        dampings: the candidates (one: returned as it is).
        weight: (units,) what an error in each unit's output costs; None: all alike.
        removed: shares of the inputs dropped for the trial refits.

    Returns:
        The chosen damping.

    Raises:
        ValueError: with several candidates and no validation inputs.
    """
    if len(dampings) == 1:
        return float(dampings[0])
    if x_val is None:
        raise ValueError("choosing the damping needs validation images; pass a damping explicitly or use calibration()")
    x64, k64 = np.asarray(x, dtype=np.float64), np.asarray(kernel, dtype=np.float64)
    val = Validation(x_val, x_val.astype(np.float64) @ k64)
    xtx, xty = x64.T @ x64, x64.T @ (x64 @ k64)  # (inputs, inputs), (inputs, units)
    order = lowest_first(np.linalg.norm(x64, axis=0) * np.linalg.norm(k64, axis=1))  # (inputs,)
    scale = val.error(np.zeros_like(k64), weight) or 1.0
    cho_factor, cho_solve = cholesky()
    errors = np.zeros(len(dampings))
    for share in removed:
        live = np.ones(len(k64), dtype=bool)
        live[order[: int(round(share * len(k64)))]] = False
        rows = np.flatnonzero(live)
        for j, d in enumerate(dampings):
            trial = np.zeros_like(k64)
            trial[rows] = cho_solve(cho_factor(shifted(xtx[np.ix_(rows, rows)], d)), xty[rows])
            errors[j] += val.error(trial, weight) / scale
    return float(dampings[int(np.argmin(errors))])


def forward(layer: Layer, x: np.ndarray, kernel: np.ndarray, bias: np.ndarray | None) -> np.ndarray:
    """A layer's output with other weights. (n, inputs) -> (n, units) float32"""
    z = x @ kernel.astype(np.float32)
    if bias is not None:
        z += bias
    return np.maximum(z, 0.0) if layer.activation == "relu" else z


# solve(i, x, xtx, val) -> (kernel, mask): layer i pruned on its inputs x (n, inputs) through the layers already
# pruned, xtx = x^T x in float64 (shared by the damping candidates), val its validation problem or None
LayerSolver = Callable[[int, np.ndarray, np.ndarray, Validation | None], tuple[np.ndarray, np.ndarray]]


def layer_by_layer(
    net: Network,
    acts: Sequence[np.ndarray],
    val_acts: Sequence[np.ndarray] | None,
    solve: LayerSolver,
    keep: Callable[[int, bool], bool],
) -> tuple[Network, list[np.ndarray]]:
    """Prune a network layer by layer, each layer fit to its dense pre-activations (without bias) on the inputs the
    layers before it give as pruned, so that each layer absorbs the error of those before it.

    Args:
        net: the dense network.
        acts, val_acts: its activations [x, h1, ..., logits] on the calibration and validation images (val_acts
            None: no validation problem, for a single damping candidate).
        solve: the per-layer solver (see LayerSolver).
        keep: keep(i, changed) -> whether layer i stays as it is, changed telling whether a layer before it was
            solved.

    Returns:
        (network with the new kernels and the biases as they were, one (inputs, units) bool mask per layer).
    """
    x = acts[0]  # the pruned network's input to the current layer, (n, inputs)
    x_val = None if val_acts is None else val_acts[0]  # the same on the validation images, (m, inputs)
    kernels, masks, changed = [], [], False
    for i, layer in enumerate(net.layers):
        if keep(i, changed):
            kernel, mask = layer.kernel, np.ones(layer.kernel.shape, dtype=bool)
        else:
            x64 = x.astype(np.float64)
            val = None if val_acts is None or x_val is None else Validation(x_val, val_acts[i] @ layer.kernel)
            kernel, mask = solve(i, x, x64.T @ x64, val)
            changed = True
        kernels.append(kernel)
        masks.append(mask)
        x = forward(layer, x, kernel, layer.bias)
        if x_val is not None:
            x_val = forward(layer, x_val, kernel, layer.bias)
    return net.with_weights(kernels, [l.bias for l in net.layers]), masks
