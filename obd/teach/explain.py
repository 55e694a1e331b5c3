"""The numbers behind the teaching views: what the first layer sees, OBD against magnitude, the network as a
diagram and a confusion matrix (the paragraph that explains a state from its numbers is obd.teach.facts).

Everything here is computed from a network, its masks and its evaluations (no figures: obd.teach.plots draws
them, and the app only lays them out), so a sentence on the page can never carry a number the state does not
have. The first layer's units are 28x28 images because the input is a flattened 28x28 digit (row-major, as
`obd.core.data` stores MNIST).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from obd.core.network import Network
from obd.core.pruning import Pruned, Ranking, check_budget, check_mode, check_sparsity, magnitude_scores, rank, report
from obd.methods.saliency import obd_saliency
from obd.runtime.evaluate import log_softmax
from obd.runtime.shrunk import shrink

SIDE = 28  # the input digit's side: a first-layer column reshapes to SIDE x SIDE
CLASSES = 10
RANKED_BUDGETS = ("layer", "global")  # budgets that are one ranking of the scores (see obd.core.pruning.rank)
SAMPLE = 600  # weights drawn in the OBD-vs-magnitude scatter: readable, and quick for a browser to draw


def _check_image_input(net: Network) -> None:
    if net.layers[0].inputs != SIDE * SIDE:
        raise ValueError(
            f"the first layer takes {net.layers[0].inputs} inputs; its units can be drawn as "
            f"{SIDE}x{SIDE} images only for MNIST's {SIDE * SIDE}"
        )


# ---------------------------------------------------------------- what the first layer sees
@dataclass(frozen=True)
class ReceptiveFields:
    """The incoming weights of a network's strongest first-layer units, as images.

    units: (n,) column indices, strongest first (by the dense column's L2 norm, so the same units stay on
        show whatever the pruning).
    norms: (n,) those units' dense column L2 norms.
    weights: (n, 28, 28) float32 the units' kept incoming weights (pruned entries 0).
    dense_weights: (n, 28, 28) float32 their incoming weights before pruning (what a pruned unit looked for).
    kept: (n, 28, 28) bool the mask of those weights (True = kept).
    alive: (n,) bool whether the unit keeps any incoming weight (False: pruned, it outputs 0).
    """

    units: np.ndarray
    norms: np.ndarray
    weights: np.ndarray
    dense_weights: np.ndarray
    kept: np.ndarray
    alive: np.ndarray


PICKS = ("strongest", "spread")  # which first-layer units to draw


def receptive_fields(dense: Network, mask: np.ndarray, count: int = 16, pick: str = "strongest") -> ReceptiveFields:
    """The first layer's units as 28x28 images of their kept incoming weights.

    Args:
        dense: the unpruned network (its weights and its unit ranking).
        mask: the first layer's kernel mask (784, units) bool, True = kept (`Pruned.masks[0]`).
        count: how many units, at most the layer's width.
        pick: "strongest": the `count` units of largest column L2 norm; "spread": units at evenly spaced
            places of that ranking, strongest first, so the weak units magnitude pruning removes first show too.

    Returns:
        ReceptiveFields of min(count, units) units.

    Raises:
        ValueError: when the first layer is not 784 wide, the mask does not match it, count < 1 or pick is
            unknown.
    """
    _check_image_input(dense)
    if pick not in PICKS:
        raise ValueError(f"pick must be one of {', '.join(PICKS)}; got {pick!r}")
    kernel = dense.layers[0].kernel  # (784, units)
    mask = np.asarray(mask, dtype=bool)
    if mask.shape != kernel.shape:
        raise ValueError(f"the mask's shape {mask.shape} does not match the first kernel's {kernel.shape}")
    if isinstance(count, bool) or not isinstance(count, (int, np.integer)) or count < 1:
        raise ValueError(f"count must be a whole number of at least 1, got {count!r}")
    norms = np.sqrt(np.einsum("ij,ij->j", kernel, kernel, dtype=np.float64))  # (units,)
    ranked = np.argsort(-norms, kind="stable")  # strongest first
    n = min(int(count), ranked.size)
    units = ranked[:n] if pick == "strongest" else ranked[np.linspace(0, ranked.size - 1, n).round().astype(int)]
    kept = mask[:, units].T.reshape(-1, SIDE, SIDE)  # (n, 28, 28)
    dense_weights = kernel[:, units].T.reshape(-1, SIDE, SIDE)
    weights = np.where(kept, dense_weights, np.float32(0))
    return ReceptiveFields(units, norms[units], weights, dense_weights, kept, np.asarray(kept.any(axis=(1, 2))))


def pixel_survival(mask: np.ndarray) -> np.ndarray:
    """How many first-layer connections each input pixel keeps.

    Args:
        mask: the first layer's kernel mask (784, units) bool, True = kept.

    Returns:
        (28, 28) int64: kept outgoing weights per pixel (at most the layer's width).

    Raises:
        ValueError: for a mask that is not (784, units).
    """
    mask = np.asarray(mask, dtype=bool)
    if mask.ndim != 2 or mask.shape[0] != SIDE * SIDE:
        raise ValueError(f"a first-layer mask is ({SIDE * SIDE}, units); got shape {mask.shape}")
    return mask.sum(axis=1, dtype=np.int64).reshape(SIDE, SIDE)


# ---------------------------------------------------------------- OBD against magnitude
@dataclass(frozen=True)
class Criteria:
    """Magnitude and OBD scores of one network and mode, each ranked once: `compare(k)` is then cheap.

    magnitude, saliency, hessian: per layer, kernel-shaped (weight mode) or (units,) (unit mode; hessian
    stays kernel-shaped). by_magnitude / by_obd: the rankings `obd.methods.registry.plan` would build for the
    "magnitude" and "obd" methods with the same budget.
    """

    net: Network
    mode: str
    budget: str
    prune_output: bool
    magnitude: tuple[np.ndarray, ...]
    saliency: tuple[np.ndarray, ...]
    hessian: tuple[np.ndarray, ...]
    by_magnitude: Ranking
    by_obd: Ranking


def criteria(
    net: Network, hessian: list[np.ndarray], mode: str = "weight", budget: str = "layer", prune_output: bool = False
) -> Criteria:
    """Score and rank a network by magnitude and by OBD saliency (the sparsity-independent part).

    Args:
        net: the unpruned network.
        hessian: its Hessian diagonal, `obd.methods.saliency.hessian_diagonal(net, calib.x, calib.y)`.
        mode: "weight" or "unit".
        budget: "layer" or "global", as in `obd.methods.registry.plan` (a loss-aware split is not a single ranking:
            compare it per layer).
        prune_output: prune the logits layer too.

    Returns:
        Criteria for `compare`.

    Raises:
        ValueError: for an unknown mode or budget, a loss-aware budget, or a Hessian whose shapes do not match
            the kernels.
    """
    check_mode(mode)
    if check_budget(budget) not in RANKED_BUDGETS:
        raise ValueError(
            f"OBD and magnitude are compared by their rankings, budget {' or '.join(RANKED_BUDGETS)}; "
            f"got {budget!r} (compare a loss-aware split per layer)"
        )
    if [np.shape(h) for h in hessian] != [layer.kernel.shape for layer in net.layers]:
        raise ValueError("the Hessian diagonal must have one kernel-shaped array per layer of this network")
    magnitude = magnitude_scores(net, mode, budget)
    saliency = obd_saliency(net, hessian, mode)
    return Criteria(
        net,
        mode,
        budget,
        prune_output,
        tuple(magnitude),
        tuple(saliency),
        tuple(hessian),
        rank(net, mode, prune_output, magnitude, budget),
        rank(net, mode, prune_output, saliency, budget),
    )


@dataclass(frozen=True)
class Agreement:
    """How two criteria's masks agree, counted over weights (weight mode) or units (unit mode)."""

    both_kept: int
    both_pruned: int
    obd_only: int  # OBD keeps, magnitude deletes
    magnitude_only: int  # magnitude keeps, OBD deletes

    @property
    def total(self) -> int:
        return self.both_kept + self.both_pruned + self.obd_only + self.magnitude_only


@dataclass(frozen=True)
class Example:
    """One weight (or unit) worked through both criteria.

    For a unit, weight is its column's L2 norm (the magnitude score) and hessian is None: its saliency is the
    sum of its weights' saliencies. Ranks count from 1 = most important, among `of` candidates (the layer's,
    or every pruned layer's under a global budget).
    """

    layer: int
    index: int  # flat kernel index (weight mode) or unit index (unit mode)
    row: int | None  # the weight's input (None for a unit)
    column: int  # the weight's unit, or the unit
    weight: float
    hessian: float | None
    saliency: float
    magnitude_rank: int
    obd_rank: int
    of: int
    kept_by_magnitude: bool
    kept_by_obd: bool


@dataclass(frozen=True)
class Comparison:
    """OBD against magnitude at one sparsity, for the scatter of one layer and the counts of the network.

    index: (n,) the sampled flat kernel indices (weight mode) or units (unit mode) of `layer`.
    magnitude, saliency: (n,) their scores (|w| or column norm; OBD saliency in loss units).
    kept_by_magnitude, kept_by_obd: (n,) bool.
    cut_magnitude, cut_obd: the smallest score each criterion still keeps (in this layer, or over every
        pruned layer under a global budget); inf when it keeps nothing. Everything scored below it is pruned.
    layer_agreement, agreement: counts over the whole layer and over every pruned layer.
    example: of the sampled weights (or units) that OBD keeps and magnitude deletes, the one whose ranks
        differ most; else the same among those magnitude keeps and OBD deletes; else the one OBD ranks in the
        middle of the sample.
    """

    mode: str
    sparsity: float
    layer: int
    index: np.ndarray
    magnitude: np.ndarray
    saliency: np.ndarray
    kept_by_magnitude: np.ndarray
    kept_by_obd: np.ndarray
    cut_magnitude: float
    cut_obd: float
    layer_agreement: Agreement
    agreement: Agreement
    example: Example


def _agreement(by_magnitude: np.ndarray, by_obd: np.ndarray) -> Agreement:
    return Agreement(
        int((by_magnitude & by_obd).sum()),
        int((~by_magnitude & ~by_obd).sum()),
        int((by_obd & ~by_magnitude).sum()),
        int((by_magnitude & ~by_obd).sum()),
    )


def _keeps(masks: list[np.ndarray], mode: str) -> list[np.ndarray]:
    """Flat kept flags per layer: one per kernel entry (weight mode) or per unit (unit mode)."""
    return [m.ravel() if mode == "weight" else m[0] for m in masks]


def _cut(scores: tuple[np.ndarray, ...], keeps: list[np.ndarray], layers: list[int]) -> float:
    kept = [np.asarray(scores[i]).ravel()[keeps[i]] for i in layers]
    kept = [k for k in kept if k.size]
    return float(min(k.min() for k in kept)) if kept else math.inf


def compare(c: Criteria, sparsity: float, layer: int = 0, sample: int = SAMPLE, seed: int = 0) -> Comparison:
    """Compare what magnitude and OBD keep at a sparsity: a seeded sample of one layer, counts of all.

    Args:
        c: `criteria(...)` of the network.
        sparsity: fraction in [0, 1].
        layer: the layer whose weights (or units) are sampled; it must be a pruned one.
        sample: how many to sample (all of them when the layer has fewer).
        seed: the sample's seed.

    Returns:
        A Comparison.

    Raises:
        ValueError: for an invalid sparsity, a layer that does not exist or is not pruned, or sample < 1.
    """
    k = check_sparsity(sparsity)
    pruned = [i for i, order in enumerate(c.by_magnitude.orders) if order is not None]
    if isinstance(layer, bool) or not isinstance(layer, (int, np.integer)) or layer not in pruned:
        raise ValueError(f"layer must be one of the pruned layers {pruned}; got {layer!r}")
    if isinstance(sample, bool) or not isinstance(sample, (int, np.integer)) or sample < 1:
        raise ValueError(f"sample must be a whole number of at least 1, got {sample!r}")
    by_magnitude = _keeps(c.by_magnitude.masks(k), c.mode)
    by_obd = _keeps(c.by_obd.masks(k), c.mode)
    cut_layers = pruned if c.budget == "global" else [layer]
    magnitude = np.asarray(c.magnitude[layer], dtype=np.float64).ravel()
    saliency = np.asarray(c.saliency[layer], dtype=np.float64).ravel()
    n = magnitude.size
    index = np.sort(np.random.default_rng(seed).choice(n, min(int(sample), n), replace=False))
    example = _example(c, layer, index, by_magnitude[layer], by_obd[layer])
    return Comparison(
        c.mode,
        k,
        layer,
        index,
        magnitude[index],
        saliency[index],
        by_magnitude[layer][index],
        by_obd[layer][index],
        _cut(c.magnitude, by_magnitude, cut_layers),
        _cut(c.saliency, by_obd, cut_layers),
        _agreement(by_magnitude[layer], by_obd[layer]),
        _agreement(np.concatenate([by_magnitude[i] for i in pruned]), np.concatenate([by_obd[i] for i in pruned])),
        example,
    )


def _ranks(c: Criteria, layer: int) -> tuple[np.ndarray, np.ndarray, int]:
    """Importance ranks (1 = most important) of `layer`'s candidates by magnitude and by OBD, and among how
    many candidates they are ranked (the layer's, or every pruned layer's under a global budget)."""
    out = []
    for ranking in (c.by_magnitude, c.by_obd):
        own = ranking.orders[layer]
        assert own is not None, "`compare` ranks pruned layers only"
        if ranking.global_order is None:
            order, offset = own, 0
        else:  # the global order runs over the pruned layers' candidates, layer after layer
            order = ranking.global_order
            offset = sum(o.size for o in ranking.orders[:layer] if o is not None)
        position = np.empty(order.size, dtype=np.int64)
        position[order] = np.arange(order.size)  # 0 = least important
        out.append(order.size - position[offset : offset + own.size])
    return out[0], out[1], int(order.size)


def _example(c: Criteria, layer: int, index: np.ndarray, by_magnitude: np.ndarray, by_obd: np.ndarray) -> Example:
    magnitude_rank, obd_rank, of = _ranks(c, layer)
    gap = np.abs(magnitude_rank[index] - obd_rank[index])  # (n,)
    # The story the view tells first is "OBD keeps what magnitude deletes", then the reverse.
    for wanted in (by_obd[index] & ~by_magnitude[index], by_magnitude[index] & ~by_obd[index]):
        if wanted.any():
            pick = index[wanted][np.argmax(gap[wanted])]
            break
    else:
        pick = index[np.argsort(obd_rank[index], kind="stable")[len(index) // 2]]
    kernel = c.net.layers[layer].kernel
    if c.mode == "weight":
        row, column = divmod(int(pick), kernel.shape[1])
        weight, hessian = float(kernel[row, column]), float(c.hessian[layer][row, column])
    else:
        row, column = None, int(pick)
        weight, hessian = float(np.linalg.norm(kernel[:, column].astype(np.float64))), None
    return Example(
        layer,
        int(pick),
        row,
        column,
        weight,
        hessian,
        float(np.ravel(c.saliency[layer])[pick]),
        int(magnitude_rank[pick]),
        int(obd_rank[pick]),
        of,
        bool(by_magnitude[pick]),
        bool(by_obd[pick]),
    )


# ---------------------------------------------------------------- the network as a diagram
@dataclass(frozen=True)
class Diagram:
    """Layer widths and connections of a pruned network, for a node-link drawing.

    units: widths of the dense network, input first: (784, 1000, ..., 10).
    alive: widths after removing every unit that cannot change the output (`obd.runtime.engines.shrink`): what unit
        pruning makes narrower; the input and output layers keep their width.
    weights: per layer pair, the dense connections (inputs x units).
    kept: per layer pair, the connections the masks keep.
    effective: per layer pair, kept connections whose input unit is alive (`obd.core.pruning.report`).
    """

    units: tuple[int, ...]
    alive: tuple[int, ...]
    weights: tuple[int, ...]
    kept: tuple[int, ...]
    effective: tuple[int, ...]
    names: tuple[str, ...]


def diagram(pruned: Pruned) -> Diagram:
    """The widths and connections of a pruned network, layer by layer."""
    rep = report(pruned)
    return Diagram(
        pruned.net.sizes,
        shrink(pruned.net).sizes,
        tuple(l.total_weights for l in rep.layers),
        tuple(l.kept_weights for l in rep.layers),
        tuple(l.effective_weights for l in rep.layers),
        tuple(l.name for l in rep.layers),
    )


def confusion(labels: np.ndarray, predictions: np.ndarray, classes: int = CLASSES) -> np.ndarray:
    """Confusion matrix: (classes, classes) int64, rows = true label, columns = predicted class.

    Raises:
        ValueError: when labels and predictions differ in length or hold a class outside [0, classes).
    """
    labels, predictions = np.asarray(labels).ravel(), np.asarray(predictions).ravel()
    if labels.shape != predictions.shape:
        raise ValueError(f"{labels.size} labels but {predictions.size} predictions")
    if labels.size and (min(labels.min(), predictions.min()) < 0 or max(labels.max(), predictions.max()) >= classes):
        raise ValueError(f"labels and predictions must be classes in [0, {classes})")
    return np.bincount(labels * classes + predictions, minlength=classes * classes).reshape(classes, classes)


def probabilities(net: Network, x: np.ndarray) -> np.ndarray:
    """Softmax probabilities of one image. x: (784,) -> (classes,) float64 summing to 1."""
    return np.exp(log_softmax(net.logits(np.asarray(x, dtype=np.float32).reshape(1, -1))))[0]
