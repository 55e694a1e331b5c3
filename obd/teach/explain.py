"""The numbers behind the teaching views: what the first layer sees, OBD against magnitude, the network as a
diagram, a confusion matrix and a paragraph that explains the current state from its own numbers.

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
from obd.runtime.evaluate import Evaluation, log_softmax
from obd.runtime.shrunk import ideal_speedup, shrink
from obd.runtime.speedups import Speedup, speedup_text

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


# ---------------------------------------------------------------- the explanation paragraph
@dataclass(frozen=True)
class Facts:
    """The numbers of one pruned state that its explanation (and the lesson's texts) quote."""

    mode: str
    method: str
    sparsity: float
    removed: int  # hidden units (unit mode) or weights (weight mode) removed, over the whole network
    of: int  # of how many hidden units or weights
    kept_weights: int
    total_weights: int
    effective_weights: int
    shapes: tuple[tuple[int, int], ...]  # kernel shapes once dead units are removed
    flops_ratio: float  # dense multiply-adds / the pruned network's (obd.runtime.engines.ideal_speedup)
    dense_accuracy: float
    accuracy: float
    dense_loss: float
    loss: float
    speed: Speedup | None  # measured against dense in the same run; None when not measured (yet)
    dead_units: int  # hidden units left with no input at all (weight pruning kills some too)
    baseline_accuracy: float | None  # magnitude pruning's at the same mode, budget and sparsity; None: not known
    blank_inputs: int  # inputs that a blank (0) pixel reaches the first layer as a nonzero value (input_norm)
    blank_range: tuple[float, float]  # the lowest and highest of those nonzero values ((0, 0) when there are none)

    def fields(self) -> dict[str, str]:
        """The numbers as the texts print them, for str.format placeholders: {accuracy}, {drop}, ..., and the
        sentences whose wording depends on them: {speed}, {versus_magnitude}, {blank_pixels}."""
        drop = 100 * (self.dense_accuracy - self.accuracy)
        return {
            "mode": self.mode,
            "method": self.method,
            "sparsity": f"{100 * self.sparsity:g} %",
            "removed": f"{self.removed:,}",
            "of": f"{self.of:,}",
            "kept_weights": f"{self.kept_weights:,}",
            "total_weights": f"{self.total_weights:,}",
            "effective": f"{100 * self.effective_weights / self.total_weights:.1f} %",
            "effective_weights": f"{self.effective_weights:,}",
            "flops": f"{self.flops_ratio:.1f}×",
            "dense_accuracy": f"{100 * self.dense_accuracy:.2f} %",
            "accuracy": f"{100 * self.accuracy:.2f} %",
            "drop": f"{drop:.1f}",
            "dense_loss": f"{self.dense_loss:.3f}",
            "loss": f"{self.loss:.3f}",
            "loss_ratio": f"{self.loss / self.dense_loss:.1f}×" if self.dense_loss > 0 else "∞",
            "speed": "not measured yet" if self.speed is None else speedup_text(self.speed),
            "baseline_accuracy": "not known yet"
            if self.baseline_accuracy is None
            else f"{100 * self.baseline_accuracy:.2f} %",
            "versus_magnitude": versus_magnitude(self),
            "blank_pixels": blank_pixels(self),
            "loss_first": loss_first(self),
            "cost": cost(self),
        }


def facts(
    dense: Network,
    pruned: Pruned,
    dense_eval: Evaluation,
    pruned_eval: Evaluation,
    method: str = "magnitude",
    speed: Speedup | None = None,
    baseline: Evaluation | None = None,
) -> Facts:
    """Collect the numbers of one pruned state.

    Args:
        dense: the unpruned network.
        pruned: its pruned version (`plan.prune(k)`).
        dense_eval, pruned_eval: their test evaluations (`obd.runtime.evaluate.evaluate`).
        method: the method that pruned it (for the text).
        speed: the pruned net's measured latency against dense (`Speedup.of_latency(obd.runtime.latency.latency(
            ...), batch)`), or None.
        baseline: magnitude pruning's evaluation at the same mode, budget and sparsity (what the texts compare
            another method with), or None.

    Returns:
        Facts.
    """
    rep = report(pruned)
    blank = dense.prepare(np.zeros((1, dense.layers[0].inputs), dtype=np.float32))[0]  # (inputs,)
    if pruned.mode == "unit":  # hidden units: a unit with no kept incoming weight is removed
        removed, of = rep.total_units - rep.kept_units, rep.total_units
    else:
        removed, of = rep.total_weights - rep.kept_weights, rep.total_weights
    return Facts(
        pruned.mode,
        method,
        pruned.sparsity,
        removed,
        of,
        rep.kept_weights,
        rep.total_weights,
        rep.effective_weights,
        tuple(l.kernel.shape for l in shrink(pruned.net).layers),
        ideal_speedup(dense, pruned.net),
        dense_eval.accuracy,
        pruned_eval.accuracy,
        dense_eval.loss,
        pruned_eval.loss,
        speed,
        rep.total_units - rep.kept_units,
        None if baseline is None else baseline.accuracy,
        int(np.count_nonzero(blank)),
        (float(blank.min()), float(blank.max())) if blank.any() else (0.0, 0.0),
    )


def _shapes_text(shapes: tuple[tuple[int, int], ...]) -> str:
    parts: list[list] = []
    for s in shapes:
        if parts and parts[-1][0] == s:
            parts[-1][1] += 1
        else:
            parts.append([s, 1])
    return ", ".join(f"{a}×{b}" + (f" (×{n})" if n > 1 else "") for (a, b), n in parts)


NOISE_POINTS = 0.2  # accuracy changes below this many points are within what a different seed would give
LOSS_FIRST = 1.5  # a loss this many times the dense one, ...
LOSS_FIRST_POINTS = 5.0  # ... with accuracy down by fewer points than this, is "the loss rises first"


def versus_magnitude(f: Facts) -> str:
    """How the state's accuracy compares with magnitude pruning's at the same sparsity, and why when it is worse
    (a sentence for the texts; it never sends the reader to a chart).
    """
    if f.method == "magnitude":
        return "this is magnitude pruning itself"
    if f.baseline_accuracy is None:
        return "magnitude pruning's accuracy at this sparsity is still being computed"
    diff = 100 * (f.accuracy - f.baseline_accuracy)
    base = f"magnitude pruning of the same {f.mode}s at {100 * f.sparsity:g} % keeps {100 * f.baseline_accuracy:.2f} %"
    if abs(diff) < NOISE_POINTS:
        return f"{base}: the same within noise"
    if diff > 0:
        return f"{base}, {diff:.1f} points less than {f.method}: ranking by the estimated loss pays off here"
    why = ""
    if f.method == "obd":
        why = (
            ". OBD's ½·h_kk·w² estimates the loss of deleting one weight while every other stays, from the "
            "Hessian's diagonal alone; with so many deleted together, the interactions it leaves out (the "
            "off-diagonal terms) decide the loss, and at this sparsity the plain |w| ranking keeps the better set"
        )
    return f"{base}, {-diff:.1f} points more than {f.method}" + why


def loss_first(f: Facts) -> str:
    """Whether the loss moved before the accuracy did at this state, in a sentence with both numbers."""
    drop = 100 * (f.dense_accuracy - f.accuracy)
    ratio = f"{f.loss / f.dense_loss:.1f}×" if f.dense_loss > 0 else "∞"
    if f.loss > LOSS_FIRST * f.dense_loss and drop < LOSS_FIRST_POINTS:
        return (
            f"the test loss went from {f.dense_loss:.3f} to {f.loss:.3f}, {ratio} the dense value, while the "
            f"accuracy fell only {drop:.1f} points: the loss sees the damage first"
        )
    return (
        f"the test loss went from {f.dense_loss:.3f} to {f.loss:.3f} ({ratio}) and the accuracy fell {drop:.1f} "
        "points: here the two moved together, and neither saw the damage first"
    )


def cost(f: Facts) -> str:
    """What the removal cost, in words that hold for its numbers: little (within noise, or under a point) or not."""
    drop = 100 * (f.dense_accuracy - f.accuracy)
    if drop < 1.0:
        return f"the {f.mode}s removed mattered little: {drop:.1f} points"
    return f"the {f.mode}s removed did matter: {drop:.1f} points"


def blank_pixels(f: Facts) -> str:
    """What OBD's curvature is for the weights of a blank pixel: 0 only when a blank pixel reaches the first layer
    as 0 (no input transform, or one that keeps 0 at 0)."""
    if f.blank_inputs == 0:
        return (
            "weights from pixels that are blank in every image see an input of 0, so their h_kk = 0 and they "
            "go first whatever their size"
        )
    low, high = f.blank_range
    inputs = f.shapes[0][0]
    value = f"{low:.3g}" if f"{low:.3g}" == f"{high:.3g}" else f"{low:.3g} to {high:.3g}"
    zero = inputs - f.blank_inputs
    return (
        f"this model transforms its input first (a Normalization or Rescaling layer), so a blank pixel reaches "
        f"the first layer as {value}, not 0, at {f.blank_inputs:,} of its {inputs:,} inputs: those pixels' "
        "weights get h_kk > 0 even from the images where they are blank, so OBD weighs them by ½·h_kk·w² like "
        "any other"
        + (
            f"; only weights from the {zero:,} pixels that stay 0 when blank have h_kk = 0 where the pixel is "
            "blank in every image, and go first"
            if zero
            else ""
        )
    )


def explanation(f: Facts) -> str:
    """A short paragraph explaining a pruned state from its own numbers (Markdown).

    Example (default net, magnitude unit pruning at 90 %): "3,600 of 4,000 hidden units removed: the matrices
    shrink to 784×100, 100×100 (×3), 100×10, 34.7× fewer multiply-adds, measured S× faster than dense (shrunk
    engine, batch 100; 34.7× fewer multiply-adds).
    Accuracy fell D points (A % → B %) because ..." (S, D, A, B: the state's own readings)
    """
    v = f.fields()
    thing = "hidden units" if f.mode == "unit" else "weights"
    head = f"**{v['removed']} of {v['of']} {thing} removed** ({f.method}, {v['sparsity']})"
    if f.mode == "unit":
        shape = f"the matrices shrink to {_shapes_text(f.shapes)}, {v['flops']} fewer multiply-adds"
    else:
        shape = (
            f"the matrices keep their shapes but hold {v['kept_weights']} of {v['total_weights']} weights, "
            f"{v['flops']} fewer multiply-adds for an engine that skips zeros"
        )
    speed = "speed not measured yet" if f.speed is None else f"measured {v['speed']}"
    drop = 100 * (f.dense_accuracy - f.accuracy)
    change = f"({v['dense_accuracy']} → {v['accuracy']})"
    if abs(drop) < NOISE_POINTS:
        acc = f"Accuracy held {change}"
    else:
        acc = f"Accuracy {'fell' if drop > 0 else 'rose'} {abs(drop):.1f} points {change}"
    if f.mode == "unit" and f.removed and drop >= NOISE_POINTS:
        acc += (
            f" because each removed unit takes its incoming column and its outgoing row with it: only "
            f"{v['effective']} of the weights still do work"
        )
    elif f.mode == "weight" and drop >= NOISE_POINTS:
        acc += (
            f" because only {100 * f.kept_weights / f.total_weights:.1f} % of the weights are left to carry each "
            "unit's input"
        )
        if f.dead_units:
            acc += f", and {f.dead_units:,} hidden units lost every incoming weight and went silent"
    elif abs(drop) < NOISE_POINTS and f.removed and f.method == "random":
        acc += f": even {thing} picked at random mattered little here, so the network has {thing} to spare"
    elif abs(drop) < NOISE_POINTS and f.removed:
        acc += f": the {thing} {f.method} ranked least important mattered little to these predictions"
    sentences = [f"{head}: {shape}, {speed}.", acc + "."]
    if f.loss > LOSS_FIRST * f.dense_loss and drop < LOSS_FIRST_POINTS:
        sentences.append(
            f"The loss rose {v['loss_ratio']} ({v['dense_loss']} → {v['loss']}), far more than the "
            "accuracy fell: the right digit still scores highest on most images, with much less "
            "confidence. The loss sees damage before the accuracy does."
        )
    return " ".join(sentences)
