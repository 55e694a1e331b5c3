"""The paragraph that explains a pruned state, and the lesson's sentences, from the state's own numbers: `facts`
collects them (counts, shapes, accuracies, losses, the measured speed-up, magnitude's accuracy at the same
sparsity, what a blank pixel becomes), and each sentence is worded by what those numbers show, so a text on the
page never claims what its state does not have.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from obd.core.network import Network
from obd.core.pruning import Pruned, report
from obd.runtime.evaluate import Evaluation
from obd.runtime.shrunk import ideal_speedup, shrink
from obd.runtime.speedups import Speedup, speedup_text


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


BETTER_BECAUSE = {  # why a method keeps more than magnitude at the same sparsity, where one reason holds
    "obd": ": ranking by the estimated loss pays off here",
    "obd-fisher": ": ranking by the estimated loss pays off here",
    "obs": ": refitting the weights that stay, to make up for those removed, pays off here",
    "sparsegpt": ": refitting the weights that stay, to make up for those removed, pays off here",
    "random": ": chance, on this net and sparsity (random ranks nothing)",
}


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
        return f"{base}, {diff:.1f} points less than {f.method}" + BETTER_BECAUSE.get(f.method, "")
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
