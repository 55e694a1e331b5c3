"""One-shot second-order pruning with reconstruction: OBS (Hassibi & Stork 1993) layer by layer, as in
Optimal Brain Compression and SparseGPT. No retraining: each layer is pruned and its weights refit by least
squares so that its pre-activations on a calibration sample change as little as possible.

Every layer sees the inputs of the already-pruned network ("sequential" calibration), and its target is the
dense network's pre-activation, so each layer also corrects the error of the layers before it.
With X (n, inputs) those inputs, H = X^T X + damping * mean(diag) * I (dead pixels and dead units make X^T X
singular; the damping also regularises the refit). The damping is chosen, not set: per layer (weight mode: per
layer and sparsity), the candidate whose refit best reproduces the dense pre-activations on validation images,
training images outside the calibration sample (`obd.methods.hessian.choose`, `row_damping`).

- Weight mode, per layer: W* = H^-1 X^T Y is the best dense refit to the target Y; entry (q, j) is scored by
  the OBS cost of dropping it alone, w*_qj^2 / [H^-1]_qq; the lowest are dropped and each column's kept
  weights are refit by least squares (identical to OBS's multi-weight update on W*).
- SparseGPT: see obd.methods.sparsegpt; `plan_obs` runs either.
- Unit mode: a hidden unit is a row of the next kernel; units are removed greedily, each step dropping the
  unit of least cost |W_q,:|^2 / [H^-1]_qq on the layer's activations and applying OBS's update to the next
  kernel (the order is k-independent, so it is computed once; under the loss-aware budget each output's error
  is weighted by the loss's curvature along it). At sparsity k the next kernel's live rows are
  refit by least squares to the dense pre-activations. The output layer's units (prune_output) are ordered
  by their output energy, w_j^T H w_j.
Biases are kept as they are (the default network has none).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace

import numpy as np

from obd.core.network import Layer, Network
from obd.core.pruning import (
    Pruned,
    Ranking,
    apply_masks,
    check_budget,
    check_mode,
    check_sparsity,
    lowest_first,
    mask_from_order,
    prune_count,
    rank,
)
from obd.methods.allocation import Profile, allocate, loss_profiles
from obd.methods.hessian import (
    DAMPINGS,
    LayerObs,
    Validation,
    cholesky,
    choose,
    forward,
    gram,
    inverse,
    layer_by_layer,
    layer_obs,
    row_damping,
    shifted,
)
from obd.methods.saliency import preactivation_curvature
from obd.methods.sparsegpt import sparsegpt, sparsegpt_weights

ALGORITHMS = ("obs", "sparsegpt")
PROFILE_CHOICE = 0.9  # the share of a layer's entries removed where its loss profile's damping is chosen


@dataclass(frozen=True)
class ReconstructConfig:
    """Reconstruction settings: the damping lambda in H + lambda * mean(diag H) * I (obs: per mode; sparsegpt)
    and SparseGPT's block size. A damping left None is chosen per layer on validation images among `dampings`;
    a number is used as it is, everywhere."""

    weight_damping: float | None = None
    unit_damping: float | None = None
    sparsegpt_damping: float | None = None
    sparsegpt_block: int = 128  # the SparseGPT paper's block size
    dampings: tuple[float, ...] = DAMPINGS

    def __post_init__(self) -> None:
        given = [self.weight_damping, self.unit_damping, self.sparsegpt_damping]
        for d in [d for d in given if d is not None] + list(self.dampings):
            if isinstance(d, bool) or not isinstance(d, (int, float)) or not 0 < d < np.inf:
                raise ValueError(f"a damping must be a positive number (or None to choose it), got {d!r}")
        if not self.dampings:
            raise ValueError("dampings must hold at least one candidate")

    def candidates(self, mode: str, algorithm: str = "obs") -> tuple[float, ...]:
        """The dampings `algorithm` ("obs" or "sparsegpt") tries in `mode`: the one given, or the grid."""
        given = (
            self.sparsegpt_damping
            if algorithm == "sparsegpt"
            else (self.weight_damping if mode == "weight" else self.unit_damping)
        )
        return self.dampings if given is None else (float(given),)


def greedy_unit_order(
    a: np.ndarray, w_next: np.ndarray, damping: float, weight: np.ndarray | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """Greedy OBS removal of a layer's units (rows of the next kernel), least costly first.

    Args:
        a: (n, units) the layer's activations on the calibration sample.
        w_next: (units, outputs) the next layer's kernel.
        damping: see ReconstructConfig (`row_damping` chooses it).
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

    acts: the dense network's calibration activations [x, h1, ..., logits]; val_acts: the same on the validation
    images (None with explicit dampings and no validation images).
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
    val_acts: tuple[np.ndarray, ...] | None = None
    unit_dampings: tuple[float, ...] | None = None  # unit mode: per layer, the damping of its rows' refits

    @property
    def dampings(self) -> tuple[float, ...]:
        """The candidate dampings of this plan's algorithm and mode."""
        return self.config.candidates(self.mode, self.algorithm)

    def prune(self, sparsity: float) -> Pruned:
        """Prune to `sparsity` and reconstruct; returns Pruned whose net holds the refit weights."""
        k = check_sparsity(sparsity)
        removed = self.removed(k)
        if self.mode == "unit":
            masks = count_masks(self.ranking, removed)
            assert self.unit_dampings is not None, "unit plans choose their dampings"
            kernels = _refit_units(self.net, self.acts, masks, self.unit_dampings)
            net = apply_masks(self.net.with_weights(kernels, [l.bias for l in self.net.layers]), masks, "unit")
            return Pruned(net, tuple(masks), "unit", k)
        counts = removed
        if self.algorithm == "sparsegpt":
            net, masks = sparsegpt_weights(
                self.net, self.acts, self.val_acts, counts, self.dampings, self.config.sparsegpt_block
            )
        else:
            net, masks = _reconstruct_weights(
                self.net, self.acts, self.val_acts, counts, self.dampings, self.unit_costs
            )
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
    by `obd.methods.allocation.allocate`; otherwise the ranking's own budget decides (per layer or one threshold).
    """
    k = check_sparsity(sparsity)
    sizes = [0 if o is None else o.size for o in ranking.orders]
    if profiles is None:
        return [
            int((~m[0] if ranking.mode == "unit" else ~m).sum()) if size else 0
            for m, size in zip(ranking.masks(k), sizes)
        ]
    # a layer keeps at least one item per unit it feeds (weights) or one unit, when the budget allows
    floors = [s[1] if ranking.mode == "weight" else 1 for s, size in zip(ranking.shapes, sizes) if size]
    kept = iter(allocate(profiles, sum(sizes) - prune_count(k, sum(sizes)), floors=floors))
    return [size - next(kept) if size else 0 for size in sizes]


def plan_obs(
    net: Network,
    x: np.ndarray,
    mode: str = "weight",
    budget: str = "layer",
    prune_output: bool = False,
    config: ReconstructConfig = ReconstructConfig(),
    algorithm: str = "obs",
    y: np.ndarray | None = None,
    x_val: np.ndarray | None = None,
    y_val: np.ndarray | None = None,
) -> ObsPlan:
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
        config: dampings (chosen on x_val when left None) and SparseGPT's block size.
        algorithm: "obs" (mask by OBS score, then least-squares refit) or "sparsegpt" (weight mode only).
        y: (n,) labels of x; the "loss-aware" budget needs them: it measures each layer's calibration loss
            when that layer alone is pruned (and reconstructed) to each of `allocation.PROFILE_KEPT`, then
            splits round(k*N) between the layers by `allocation.allocate`.
        x_val: (m, inputs) validation images: training images outside x, on which each damping is chosen;
            needed unless the config gives the damping. y_val: (m,) their labels; the loss-aware budget's
            profiles are measured on them (on x, y without them).

    Returns:
        An ObsPlan; `plan.prune(k)` reconstructs at any sparsity.

    Raises:
        ValueError: for an unknown mode, budget or algorithm, "sparsegpt" with mode "unit", the loss-aware
            budget without labels, or a damping to choose without validation images.
    """
    check_mode(mode)
    check_budget(budget)
    if algorithm not in ALGORITHMS:
        raise ValueError(f"algorithm must be one of {', '.join(ALGORITHMS)}; got {algorithm!r}")
    if algorithm == "sparsegpt" and mode != "weight":
        raise ValueError("sparsegpt prunes single weights only (mode weight); for units use obs")
    if budget == "loss-aware" and y is None:
        raise ValueError("the loss-aware budget needs the calibration labels y")
    dampings = config.candidates(mode, algorithm)
    if len(dampings) > 1 and x_val is None:
        raise ValueError(
            "obs chooses its damping on validation images: pass x_val (obd.methods.registry.calibration() makes "
            "them) or give the damping in ReconstructConfig"
        )
    acts = tuple(net.activations(x))
    val_acts = None if x_val is None else tuple(net.activations(x_val))
    # the loss-aware profiles are measured on images the refits never saw, when there are any
    px, py = (x, y) if x_val is None or y_val is None else (x_val, y_val)
    last = len(net.layers) - 1
    pruned = [i for i in range(len(net.layers)) if prune_output or i < last]
    if mode == "weight":  # only per-layer counts are needed; a global budget splits them by magnitude
        ranking = rank(net, mode, prune_output, budget="layer" if budget == "loss-aware" else budget)
        profiles = unit_costs = None
        if budget == "loss-aware":
            assert py is not None, "checked above"
            if algorithm == "obs":
                unit_costs = tuple(preactivation_curvature(net, x))
            current: dict[int, Callable[[int], np.ndarray]] = {}

            def setup(i: int) -> Callable[[int], np.ndarray]:
                """Layer i's pruned kernel as a function of the count removed, at the damping chosen on the
                validation images at PROFILE_CHOICE of its entries removed (one damping per profile: each point
                trying every candidate would multiply the profiles' cost); one layer at a time (the profiles go
                layer by layer) so that a wide net's problems are not all held at once."""
                if i not in current:
                    current.clear()
                    kernel = net.layers[i].kernel
                    a = acts[i].astype(np.float64)
                    xtx = a.T @ a  # (inputs, inputs)
                    weight = None if unit_costs is None else unit_costs[i]
                    problems: dict[float, LayerObs] = {}

                    def solve(d: float, count: int) -> tuple[np.ndarray, np.ndarray]:
                        if algorithm == "sparsegpt":
                            return sparsegpt(shifted(xtx, d), kernel, count, config.sparsegpt_block)
                        if d not in problems:
                            problems[d] = layer_obs(a, a @ kernel, d, weight, xtx)
                        # the profile takes the OBS order only: half the refits
                        return replace(problems[d], orders=problems[d].orders[:1]).solve(count)

                    val = None if val_acts is None else Validation(val_acts[i], val_acts[i] @ kernel)
                    trial = round(PROFILE_CHOICE * kernel.size)
                    d = choose(dampings, lambda d: solve(d, trial), val, weight)[2]
                    problems = {d: problems[d]} if d in problems else {}
                    current[i] = lambda count: solve(d, count)[0].astype(np.float32)
                return current[i]

            def variant(i: int, kept: int) -> dict[int, Layer]:
                layer = net.layers[i]
                return {i: layer.replace(setup(i)(layer.kernel.size - kept), layer.bias)}

            profiles = tuple(loss_profiles(net, px, py, pruned, [net.layers[i].kernel.size for i in pruned], variant))
        return ObsPlan(net, mode, acts, ranking, budget, config, algorithm, profiles, unit_costs, val_acts)
    orders, costs = [], []
    # loss-aware: each unit's removal is costed in loss units, by the curvature along the next layer's
    # pre-activations (weighted as weight mode's entries are; 90 % of the default net's units: 97.87 -> 98.02)
    curvature = preactivation_curvature(net, x) if budget == "loss-aware" else None
    # layer i's damping serves the refits of its kernel's rows, the units of the layer before it
    unit_dampings = (dampings[0],) + tuple(
        row_damping(
            acts[i],
            None if val_acts is None else val_acts[i],
            net.layers[i].kernel,
            dampings,
            None if curvature is None else curvature[i],
        )
        for i in range(1, len(net.layers))
    )
    for i, layer in enumerate(net.layers):
        if i == last:  # no next layer: order the output units by their output energy (no refit: no damping)
            h = gram(acts[i], 0.0)
            c = np.einsum("ij,ij->j", layer.kernel, h @ layer.kernel)
            orders.append(lowest_first(c))
            costs.append(c[orders[-1]] / c.sum())
        else:
            nxt = net.layers[i + 1].kernel
            order, c = greedy_unit_order(
                acts[i + 1], nxt, unit_dampings[i + 1], None if curvature is None else curvature[i + 1]
            )
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
    ranking = Ranking(
        "unit",
        tuple(o if i in pruned else None for i, o in enumerate(orders)),
        tuple(l.kernel.shape for l in net.layers),
        global_order,
    )
    profiles = None
    if budget == "loss-aware":
        assert py is not None, "checked above"

        def variant(i: int, kept: int) -> dict[int, Layer]:
            layer = net.layers[i]
            live = np.ones(layer.units, dtype=bool)
            live[orders[i][: layer.units - kept]] = False
            bias = None if layer.bias is None else np.where(live, layer.bias, np.float32(0))
            out = {i: layer.replace(np.where(live, layer.kernel, np.float32(0)), bias)}
            if i < last:  # the next layer's live rows absorb the loss of the removed units
                nxt = net.layers[i + 1]
                x_next = np.where(live, acts[i + 1], np.float32(0))  # (n, units)
                out[i + 1] = nxt.replace(
                    _refit_rows(x_next, live, acts[i + 1] @ nxt.kernel, nxt.kernel, unit_dampings[i + 1]), nxt.bias
                )
            return out

        profiles = tuple(loss_profiles(net, px, py, pruned, [net.layers[i].units for i in pruned], variant))
    return ObsPlan(net, mode, acts, ranking, budget, config, "obs", profiles, None, val_acts, unit_dampings)


def _reconstruct_weights(
    net: Network,
    acts: tuple[np.ndarray, ...],
    val_acts: tuple[np.ndarray, ...] | None,
    counts: list[int],
    dampings: Sequence[float],
    weights: Sequence[np.ndarray] | None = None,
) -> tuple[Network, list[np.ndarray]]:
    """Sequential OBS weight pruning with per-layer counts (and unit weights, see `layer_obs`); each layer's
    damping is chosen on the validation images (val_acts: the dense network's activations on them), run through
    the network as pruned so far."""

    def solve(i: int, x: np.ndarray, xtx: np.ndarray, val: Validation | None) -> tuple[np.ndarray, np.ndarray]:
        target = acts[i] @ net.layers[i].kernel  # the dense pre-activation (without bias), (n, units)
        return _solve_layer(x, target, dampings, None if weights is None else weights[i], val, counts[i], xtx)

    # once a layer before it changed, a layer with nothing to remove is still refit to absorb that change
    return layer_by_layer(net, acts, val_acts, solve, lambda i, changed: counts[i] == 0 and not changed)


def _solve_layer(
    x: np.ndarray,
    target: np.ndarray,
    dampings: Sequence[float],
    weight: np.ndarray | None,
    val: Validation | None,
    count: int,
    xtx: np.ndarray,
) -> tuple[np.ndarray, np.ndarray]:
    """One layer's OBS (see `layer_obs`) at the damping whose pruned and refit layer (every candidate order tried,
    as `LayerObs.solve` does) best reproduces the dense pre-activations on the validation problem. (Choosing it
    with the OBS order alone costs half the refits but gave a worse validation loss.) Returns (kernel, mask),
    float32 and bool, (inputs, units) each."""
    solve = lambda d: layer_obs(x, target, d, weight, xtx).solve(count)  # noqa: E731
    return choose(dampings, solve, val, weight)[:2]


def _refit_rows(x: np.ndarray, live: np.ndarray, target: np.ndarray, kernel: np.ndarray, damping: float) -> np.ndarray:
    """A kernel whose live input rows are refit by least squares so that x @ kernel matches target.

    x: (n, inputs) the layer's inputs; live: (inputs,) bool; target: (n, units). Returns (inputs, units) float32.
    """
    if live.all() or not live.any():
        return kernel
    rows = np.flatnonzero(live)
    cho_factor, cho_solve = cholesky()
    xs = x[:, rows]  # (n, live inputs)
    out = kernel.copy()
    out[rows] = cho_solve(cho_factor(gram(xs, damping)), xs.T.astype(np.float64) @ target)
    return out


def _refit_units(
    net: Network, acts: tuple[np.ndarray, ...], masks: list[np.ndarray], dampings: Sequence[float]
) -> list[np.ndarray]:
    """Refit each kernel's live input rows to the dense pre-activations once any unit upstream is gone, layer i's
    with dampings[i]."""
    x = acts[0]
    kernels, live = [], np.ones(net.layers[0].inputs, dtype=bool)  # live: (inputs,) of the current layer
    for i, layer in enumerate(net.layers):
        kernel = _refit_rows(x, live, acts[i] @ layer.kernel, layer.kernel, dampings[i])
        kernel = np.where(masks[i], kernel, np.float32(0))
        kernels.append(kernel)
        live = np.asarray(masks[i].any(axis=0))
        bias = None if layer.bias is None else np.where(live, layer.bias, np.float32(0))
        x = forward(layer, x, kernel, bias)
    return kernels
