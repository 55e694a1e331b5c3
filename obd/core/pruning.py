"""Pruning masks and pruned networks: weight (unstructured) and unit (structured, whole columns) pruning.

Definitions (fixed; other code and tests rely on them):
- weight pruning at sparsity k zeroes, in each pruned kernel of n entries, the round(k*n) entries with the
  lowest score (|w| for magnitude pruning);
- unit pruning at k zeroes, in each pruned kernel of c columns (a Keras kernel is inputs x units, so a column
  is one output unit), the round(k*c) columns with the lowest score (their L2 norm for magnitude pruning)
  and their biases, so a pruned unit outputs exactly 0.
Ties are broken by position (a stable sort), which makes masks deterministic and nested: an entry kept at
a higher sparsity is kept at every lower one. Nothing here changes its inputs.
"""

from __future__ import annotations

import math
import numbers
import warnings
from dataclasses import dataclass

import numpy as np

from obd.core.network import Network, as_network

MODES = ("weight", "unit")
# sparsity per pruned layer; one threshold across all pruned layers; or the split across layers that minimises
# the predicted loss (obd.methods.allocation, computed by obd.methods.registry.plan)
BUDGETS = ("layer", "global", "loss-aware")


def check_sparsity(sparsity: object) -> float:
    """Validate a sparsity given as a fraction.

    Args:
        sparsity: the fraction of weights (or units) to remove.

    Returns:
        The sparsity as a Python float.

    Raises:
        ValueError: unless it is a real number in [0, 1] (1.5, -0.1, NaN, strings and bools are refused).
    """
    if isinstance(sparsity, bool) or not isinstance(sparsity, numbers.Real):
        raise ValueError(f"sparsity must be a number in [0, 1] (a fraction, e.g. 0.9 for 90 %), got {sparsity!r}")
    k = float(sparsity)
    if not math.isfinite(k) or not 0.0 <= k <= 1.0:
        raise ValueError(f"sparsity must be in [0, 1] (a fraction, e.g. 0.9 for 90 %), got {sparsity!r}")
    return k


def check_mode(mode: object) -> str:
    """Validate a pruning mode ("weight" or "unit"); raises ValueError naming the valid ones."""
    if not isinstance(mode, str) or mode not in MODES:
        raise ValueError(f"mode must be one of {', '.join(MODES)}; got {mode!r}")
    return mode  # type: ignore[return-value]


def check_budget(budget: object) -> str:
    """Validate a budget ("layer", "global" or "loss-aware"); raises ValueError naming the valid ones."""
    if not isinstance(budget, str) or budget not in BUDGETS:
        raise ValueError(f"budget must be one of {', '.join(BUDGETS)}; got {budget!r}")
    return budget  # type: ignore[return-value]


def prune_count(sparsity: float, n: int) -> int:
    """How many of n items sparsity k removes: round(k*n), rounding as Python's `round` does."""
    return round(check_sparsity(sparsity) * n)


def lowest_first(scores: np.ndarray) -> np.ndarray:
    """Flat indices of `scores`, least important first; ties keep their position order (stable)."""
    return np.argsort(np.asarray(scores).ravel(), kind="stable")


def mask_from_order(order: np.ndarray, count: int, shape: tuple[int, ...]) -> np.ndarray:
    """A bool mask of `shape`, True = kept, with the first `count` entries of `order` False."""
    mask = np.ones(int(np.prod(shape)), dtype=bool)
    mask[order[:count]] = False
    return mask.reshape(shape)


def mask_from_scores(scores: np.ndarray, sparsity: float) -> np.ndarray:
    """Mask dropping the round(k*size) lowest scores. scores: any shape -> bool of the same shape."""
    scores = np.asarray(scores)
    return mask_from_order(lowest_first(scores), prune_count(sparsity, scores.size), scores.shape)


def column_norms(w: np.ndarray) -> np.ndarray:
    """L2 norm of each column of a kernel. (inputs, units) -> (units,)"""
    w = np.asarray(w, dtype=np.float64)
    return np.sqrt(np.einsum("ij,ij->j", w, w))


def _check_kernel(w: np.ndarray) -> np.ndarray:
    w = np.asarray(w)
    if w.ndim != 2:
        raise ValueError(f"a kernel must be 2-D (inputs, units); got shape {w.shape}")
    return w


def weight_mask(w: np.ndarray, sparsity: float) -> np.ndarray:
    """Unstructured magnitude mask.

    Args:
        w: a weight array of any shape (a Keras kernel is (inputs, units)).
        sparsity: fraction in [0, 1] of entries to remove.

    Returns:
        bool array shaped like `w`, True = kept; exactly round(sparsity * w.size) entries with the smallest
        |w| are False.

    Raises:
        ValueError: for a sparsity outside [0, 1].
    """
    check_sparsity(sparsity)
    return mask_from_scores(np.abs(np.asarray(w)), sparsity)


def unit_mask(w: np.ndarray, sparsity: float) -> np.ndarray:
    """Structured magnitude mask over output units (columns).

    Args:
        w: a Keras kernel, shape (inputs, units).
        sparsity: fraction in [0, 1] of units (columns) to remove.

    Returns:
        bool array shaped like `w`, True = kept; exactly round(sparsity * w.shape[1]) whole columns with the
        smallest L2 norm are False. The count comes from the columns, never the rows.

    Raises:
        ValueError: for a sparsity outside [0, 1] or a kernel that is not 2-D.
    """
    check_sparsity(sparsity)
    w = _check_kernel(w)
    keep_units = mask_from_scores(column_norms(w), sparsity)  # (units,)
    return np.broadcast_to(keep_units, w.shape).copy()


def magnitude_scores(net: Network, mode: str, budget: str = "layer") -> list[np.ndarray]:
    """Default importance: |w| per entry (weight mode) or column L2 norm per unit (unit mode).

    Under a global budget unit scores are column RMS (L2 norm / sqrt(inputs)), so that a unit is not kept
    merely for having more inputs; weight scores stay raw |w|, as in global magnitude pruning.
    """
    check_mode(mode)
    if mode == "weight":
        return [np.abs(layer.kernel) for layer in net.layers]
    scale = [np.sqrt(layer.inputs) if check_budget(budget) == "global" else 1.0 for layer in net.layers]
    return [column_norms(layer.kernel) / c for layer, c in zip(net.layers, scale)]


@dataclass(frozen=True)
class Ranking:
    """A network's pruning order, computed once so that masks for any sparsity cost O(weights).

    orders[i] lists layer i's entries (weight mode, flat kernel indices) or units (unit mode), least
    important first; None for a layer that is not pruned (the output layer, unless asked).
    global_order (global budget only) orders the concatenation of the pruned layers' entries (or units),
    layer by layer, least important first: sparsity k then removes round(k*N) of all N of them.
    """

    mode: str
    orders: tuple[np.ndarray | None, ...]
    shapes: tuple[tuple[int, int], ...]
    global_order: np.ndarray | None = None

    def masks(self, sparsity: float) -> list[np.ndarray]:
        """Kernel-shaped bool masks (True = kept) for `sparsity`; see the module docstring for counts."""
        k = check_sparsity(sparsity)
        keeps = self._global_keeps(self.global_order, k) if self.global_order is not None else None
        out = []
        for i, (order, shape) in enumerate(zip(self.orders, self.shapes)):
            size = shape[0] * shape[1] if self.mode == "weight" else shape[1]
            if order is None:
                keep = np.ones(size, dtype=bool)
            elif keeps is not None:
                keep = keeps[i]
            else:
                keep = mask_from_order(order, prune_count(k, order.size), (size,))
            out.append(keep.reshape(shape) if self.mode == "weight" else np.broadcast_to(keep, shape))
        return out

    def _global_keeps(self, global_order: np.ndarray, k: float) -> dict[int, np.ndarray]:
        """Flat keep vectors of the pruned layers, cut from one mask (`global_order`) over all their entries."""
        sizes = {i: order.size for i, order in enumerate(self.orders) if order is not None}
        total = sum(sizes.values())
        keep = mask_from_order(global_order, prune_count(k, total), (total,))
        return dict(zip(sizes, np.split(keep, np.cumsum(list(sizes.values()))[:-1])))


def rank(
    net: Network | object,
    mode: str = "weight",
    prune_output: bool = False,
    scores: list[np.ndarray] | None = None,
    budget: str = "layer",
) -> Ranking:
    """Order every pruned layer's entries (or units) from least to most important.

    Args:
        net: the network, or a Keras model (`as_network`).
        mode: "weight" (entries) or "unit" (columns).
        prune_output: also prune the last (logits) layer.
        scores: per-layer importance, kernel-shaped (weight mode) or (units,) (unit mode); higher = keep.
            Defaults to magnitude (|w| or column L2 norm). With a global budget the scores are compared
            across layers as given, so they must be on one scale (OBD saliency is, being in loss units).
        budget: "layer" (each pruned layer loses round(k*n)) or "global" (round(k*N) over all pruned
            layers, lowest scores first). Default scores: `magnitude_scores(net, mode, budget)`.

    Returns:
        A Ranking whose `masks(k)` gives the masks for any sparsity k.

    Raises:
        ValueError: for an unknown mode or budget, or scores of the wrong shape.
    """
    net = as_network(net)
    check_mode(mode)
    if check_budget(budget) == "loss-aware":
        raise ValueError(
            "a ranking takes budget layer or global; the loss-aware split is made by obd.methods.registry.plan"
        )
    scores = magnitude_scores(net, mode, budget) if scores is None else scores
    orders: list[np.ndarray | None] = []
    for i, (layer, s) in enumerate(zip(net.layers, scores)):
        want = layer.kernel.shape if mode == "weight" else (layer.units,)
        if np.shape(s) != want:
            raise ValueError(f"scores for layer {layer.name!r} have shape {np.shape(s)}, expected {want}")
        pruned = prune_output or i < len(net.layers) - 1
        orders.append(lowest_first(s) if pruned else None)
    global_order = None
    if budget == "global":
        flat = [np.asarray(s, dtype=np.float64).ravel() for s, o in zip(scores, orders) if o is not None]
        global_order = lowest_first(np.concatenate(flat)) if flat else np.zeros(0, dtype=np.int64)
    return Ranking(mode, tuple(orders), tuple(layer.kernel.shape for layer in net.layers), global_order)


@dataclass(frozen=True)
class Pruned:
    """A pruned network with its masks (True = kept), the mode and the sparsity asked for."""

    net: Network
    masks: tuple[np.ndarray, ...]
    mode: str
    sparsity: float
    fallback: bool = False  # True: the method scored below magnitude on the calibration set; magnitude's masks


def apply_masks(net: Network, masks: list[np.ndarray], mode: str) -> Network:
    """Zero the masked kernel entries; in unit mode also the pruned units' biases. Returns a new Network."""
    kernels, biases = [], []
    for layer, m in zip(net.layers, masks):
        kernels.append(np.where(m, layer.kernel, np.float32(0)))
        b = layer.bias
        if b is not None and mode == "unit":
            b = np.where(m.any(axis=0), b, np.float32(0))
        biases.append(b)
    return net.with_weights(kernels, biases)


def prune(
    net: Network | object,
    sparsity: float,
    mode: str = "weight",
    prune_output: bool = False,
    ranking: Ranking | None = None,
) -> Pruned:
    """Prune a Network.

    Args:
        net: the network, or a Keras model (`as_network`); not changed.
        sparsity: fraction in [0, 1] of each pruned layer's weights (weight mode) or units (unit mode).
        mode: "weight" or "unit".
        prune_output: prune the logits layer too (off by default).
        ranking: a precomputed `rank(net, mode, prune_output)`, to make repeated calls fast; its mode wins.

    Returns:
        Pruned(net, masks, mode, sparsity). An EmptiedLayerWarning says when a layer kept nothing.

    Raises:
        ValueError: for an invalid sparsity or mode.
    """
    k, net = check_sparsity(sparsity), as_network(net)
    ranking = ranking or rank(net, check_mode(mode), prune_output)
    masks = ranking.masks(k)
    pruned = Pruned(apply_masks(net, masks, ranking.mode), tuple(masks), ranking.mode, k)
    if emptied := emptied_layers(pruned):
        warnings.warn(
            f"{ranking.mode} pruning at {100 * k:g} % left layer{'s' * (len(emptied) > 1)} "
            f"{', '.join(map(repr, emptied))} without a single weight: the network predicts one class whatever the "
            "image (a small layer empties first; under a global budget, long before the others)",
            EmptiedLayerWarning,
            stacklevel=2,
        )
    return pruned


class EmptiedLayerWarning(UserWarning):
    """A pruning left a layer without a single weight, so the network's output no longer depends on its input."""


def emptied_layers(pruned: Pruned) -> list[str]:
    """The names (or 1-based positions) of the layers a pruning left without a single kept weight."""
    return [l.name or str(i + 1) for i, (l, m) in enumerate(zip(pruned.net.layers, pruned.masks)) if not m.any()]


def prune_model(model, sparsity: float, mode: str = "weight", prune_output: bool = False):
    """Prune a Keras model of Dense layers by magnitude.

    Args:
        model: a Keras model (see `network.from_keras` for what is supported); it is not changed.
        sparsity: fraction in [0, 1].
        mode: "weight" or "unit".
        prune_output: prune the final (logits) layer too.

    Returns:
        A new Keras model, same architecture, with the pruned weights (unit mode: pruned units' biases are 0).

    Raises:
        ValueError: for an invalid sparsity, mode or unsupported model.
    """
    import keras

    from obd.core.network import from_keras

    pruned = prune(from_keras(model), sparsity, mode, prune_output)
    clone = keras.models.clone_model(model)
    dense = [l for l in clone.layers if isinstance(l, keras.layers.Dense)]
    for keras_layer, layer in zip(dense, pruned.net.layers):
        keras_layer.set_weights([layer.kernel] + ([layer.bias] if layer.bias is not None else []))
    return clone


def live_units(net: Network, keep_one: bool = False) -> list[np.ndarray]:
    """Which units can still change the logits, per layer.

    A hidden unit is dead when no nonzero weight from a live input reaches it and it has no bias (or a zero one):
    it outputs exactly 0 (ReLU(0) = 0), so its outgoing row does nothing either. It is unused when no nonzero
    weight carries it to a live unit of the next layer. Input features and output classes always count as live.

    Args:
        net: a (pruned) network; pruned weights are exact zeros.
        keep_one: keep unit 0 of a hidden layer that lost every unit, as the engines do (a layer needs a unit;
            this one outputs 0 or is ignored, so the logits hold).

    Returns:
        One bool (units,) mask per layer, True = live; the output layer's is all True.
    """
    layers = net.layers
    alive = [np.ones(layer.units, dtype=bool) for layer in layers]
    fed = np.ones(layers[0].inputs, dtype=bool)  # (inputs,)
    for i, layer in enumerate(layers[:-1]):
        has_input = (layer.kernel[fed] != 0).any(axis=0)  # (units,)
        alive[i] = has_input if layer.bias is None else has_input | (layer.bias != 0)
        fed = alive[i]
    for i in range(len(layers) - 2, -1, -1):  # one pass back suffices: forward liveness cannot change after it
        alive[i] &= (layers[i + 1].kernel[:, alive[i + 1]] != 0).any(axis=1)
        if keep_one and not alive[i].any():
            alive[i][0] = True
    return alive


@dataclass(frozen=True)
class LayerReport:
    name: str
    kept_weights: int
    total_weights: int
    kept_units: int  # columns with at least one kept weight: a unit with none left is dead
    total_units: int
    effective_weights: int  # nonzero weights from a live unit (or input) to a live unit: the ones still doing work
    flops: int  # multiply-adds per image as the engines run this layer: live inputs x live units (unit pruning,
    # the shrunk net) or its effective weights (weight pruning, the sparse engine)


@dataclass(frozen=True)
class PruneReport:
    """Per-layer and overall counts. Sparsity and compression count kernel entries, not biases.

    kept_weights counts mask entries, the same for both modes at one sparsity; effective_weights and flops say
    what the pruned network still computes (after unit pruning far less than it keeps: a dead unit's outgoing
    row does nothing, and a unit whose inputs all died does nothing).
    """

    layers: tuple[LayerReport, ...]

    @property
    def kept_weights(self) -> int:
        return sum(l.kept_weights for l in self.layers)

    @property
    def total_weights(self) -> int:
        return sum(l.total_weights for l in self.layers)

    @property
    def effective_weights(self) -> int:
        """Weights that still do work: nonzero, from a live unit to a live unit."""
        return sum(l.effective_weights for l in self.layers)

    @property
    def flops(self) -> int:
        """Multiply-adds per image of the pruned network as the engines run it (shrunk or sparse)."""
        return sum(l.flops for l in self.layers)

    @property
    def flop_ratio(self) -> float:
        """The dense network's multiply-adds per image (total_weights) / `flops`: the ideal speed-up."""
        return self.total_weights / max(self.flops, 1)

    @property
    def kept_units(self) -> int:
        return sum(l.kept_units for l in self.layers[:-1])

    @property
    def total_units(self) -> int:
        """Hidden units (the output layer's classes are not counted)."""
        return sum(l.total_units for l in self.layers[:-1])

    @property
    def sparsity(self) -> float:
        return 1.0 - self.kept_weights / self.total_weights

    @property
    def compression(self) -> float:
        """total / kept weights (inf when nothing is kept)."""
        return self.total_weights / self.kept_weights if self.kept_weights else math.inf


def report(pruned: Pruned) -> PruneReport:
    """Count what a pruning kept and what still computes, per layer and overall.

    Args:
        pruned: a pruning's result (its mode decides how `flops` counts: shrunk dense layers for unit pruning,
            nonzero weights for weight pruning).

    Returns:
        A PruneReport.
    """
    live = live_units(pruned.net)
    shrunk = live_units(pruned.net, keep_one=True)  # the layer sizes the shrunk engine runs
    rows = []
    live_in = shrunk_in = np.ones(pruned.net.layers[0].inputs, dtype=bool)  # (inputs,)
    for layer, m, live_out, shrunk_out in zip(pruned.net.layers, pruned.masks, live, shrunk):
        effective = int(np.count_nonzero(layer.kernel[np.ix_(live_in, live_out)]))
        flops = int(shrunk_in.sum() * shrunk_out.sum()) if pruned.mode == "unit" else effective
        rows.append(
            LayerReport(layer.name, int(m.sum()), m.size, int(m.any(axis=0).sum()), m.shape[1], effective, flops)
        )
        live_in, shrunk_in = live_out, shrunk_out
    return PruneReport(tuple(rows))
