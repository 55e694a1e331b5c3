"""Fine-tuning pruned networks: retrain with the masks held fixed, one shot or on a gradual schedule.

One-shot: prune (any method), then train for E epochs (fractions allowed) with `obd.training.model.train(masks=...)`,
which re-applies the masks after every step, so pruned weights (and pruned units' biases) stay exactly 0.
Gradual: prune in `steps` stages towards the target along tfmot's PolynomialDecay schedule (power 3: big
steps first, small ones near the target), fine-tuning for epochs / steps between stages; weights pruned at
one stage stay pruned at the next.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace

import numpy as np

from obd.core.config import TrainConfig
from obd.core.data import Mnist
from obd.core.network import Network, as_network, to_keras
from obd.core.pruning import Pruned, apply_masks, check_budget, check_sparsity, prune, rank
from obd.methods.obs import ALGORITHMS
from obd.methods.registry import Calibration, check_method_mode, method_scores

# Adam's peak rate, cosine-decayed: of 3e-4, 1e-3, 3e-3 and 5e-3, 3e-3 recovered most in 2 epochs on the
# default net (OBS 99 % weights: 94.8 / 96.8 / 97.4 / 97.4 %; OBS 90 % units: 97.8 % at 3e-4, 98.1 % at 3e-3)
FINETUNE = TrainConfig(epochs=1, learning_rate=3e-3)


@dataclass(frozen=True)
class FinetuneProgress:
    """What a fine-tuning progress callback receives after each training batch."""

    stage: int  # 1-based pruning stage (always 1 for one-shot fine-tuning)
    stages: int
    sparsity: float  # the sparsity being trained at
    step: int  # training batches done in this stage
    steps: int  # training batches in this stage
    loss: float  # running training loss of the current epoch
    accuracy: float  # running training accuracy of the current epoch


ProgressFn = Callable[[FinetuneProgress], None]


def check_epochs(epochs: object) -> float:
    """Validate fine-tuning epochs: a number in (0, 100]; raises ValueError otherwise."""
    if isinstance(epochs, bool) or not isinstance(epochs, (int, float)) or not 0 < epochs <= 100:
        raise ValueError(f"fine-tuning epochs must be a number in (0, 100], got {epochs!r}")
    return float(epochs)


def as_pruned(model: Pruned | Network | object) -> Pruned:
    """A Pruned as it is; a Network or Keras model as weight-pruned where its weights are 0 (a masked export)."""
    if isinstance(model, Pruned):
        return model
    net = as_network(model)
    masks = tuple(k != 0 for k in net.kernels())
    return Pruned(net, masks, "weight", 1 - sum(int(m.sum()) for m in masks) / net.n_weights)


def user_data(data: Mnist | tuple[np.ndarray, np.ndarray], net: Network) -> tuple[np.ndarray, np.ndarray]:
    """Training images and labels as the user's model takes them: (x, y) as given, or MNIST's training set on the
    model's own pixel scale and input shape.

    Raises:
        ValueError: for an (x, y) of different lengths, empty, or not a pair.
    """
    if isinstance(data, Mnist):
        x = data.x_train if net.pixels == 1 else data.x_train * np.float32(net.pixels)  # (n, 784)
        return x.reshape((len(x), *(net.input_shape or (-1,)))), data.y_train
    if not (isinstance(data, (tuple, list)) and len(data) == 2):
        raise ValueError("data must be obd's Mnist or a pair (x, y) of the model's inputs and integer labels")
    x, y = np.asarray(data[0]), np.asarray(data[1]).reshape(-1)
    if len(x) != len(y) or len(x) == 0:
        raise ValueError(f"x holds {len(x)} inputs and y {len(y)} labels; they must be as many, and not 0")
    return x, y


def finetune(
    pruned: Pruned | Network | object,
    data: Mnist | tuple[np.ndarray, np.ndarray],
    epochs: float = 1.0,
    progress: ProgressFn | None = None,
    config: TrainConfig = FINETUNE,
    stage: tuple[int, int] = (1, 1),
) -> Pruned:
    """Retrain a pruned network with its masks held fixed.

    Args:
        pruned: from `pruning.prune` or `methods.plan(...).prune(k)`; or a Network or Keras model, whose zero
            weights stay 0 (not changed).
        data: MNIST (trains on the training set), or the user's own (x, y): inputs as the model takes them (its
            input shape and pixel scale) and integer labels.
        epochs: passes over the training set, fractions allowed.
        progress: called after every batch with a FinetuneProgress.
        config: learning rate, batch size, seed (its epochs are replaced by `epochs`).
        stage: (stage, stages) reported to `progress` (used by `gradual`).

    Returns:
        A new Pruned with the trained weights, the same masks, mode and sparsity; masked weights are exactly 0. Its
        network keeps the model's interface (input shape, pixels, output).

    Raises:
        ValueError: for epochs outside (0, 100], or bad data.
    """
    config = replace(config, epochs=check_epochs(epochs))
    start = as_pruned(pruned)
    xy = user_data(data, start.net)
    model = to_keras(start.net, output="logits")  # trained on the logits, whatever the model outputs

    def report(p) -> None:
        if progress is not None:  # always: report is passed only with a progress
            progress(FinetuneProgress(stage[0], stage[1], start.sparsity, p.step, p.steps, p.loss, p.accuracy))

    import keras  # TensorFlow: only when training

    from obd.training.model import train

    train(model, xy, config, report if progress is not None else None, list(start.masks), start.mode)
    weights = [l.get_weights() for l in model.layers if isinstance(l, keras.layers.Dense)]
    trained = start.net.with_weights([w[0] for w in weights], [w[1] if len(w) > 1 else None for w in weights])
    net = apply_masks(trained, list(start.masks), start.mode)  # exact zeros, whatever float32 did
    return Pruned(net, start.masks, start.mode, start.sparsity)


def check_gradual(method: object, mode: object) -> None:
    """Raise ValueError unless `method` can prune gradually in `mode` (not the reconstruction methods)."""
    check_method_mode(method, mode)
    if method in ALGORITHMS or method == "chita":
        raise ValueError(
            f"gradual pruning supports magnitude, random, obd and obd-fisher; for {method} prune "
            "one-shot, then fine-tune"
        )


def schedule(sparsity: float, steps: int) -> list[float]:
    """tfmot PolynomialDecay from 0 to `sparsity` (power 3) at `steps` evenly spaced stages; ends at the target."""
    k = check_sparsity(sparsity)
    if isinstance(steps, bool) or not isinstance(steps, int) or steps < 1:
        raise ValueError(f"steps must be a whole number of at least 1, got {steps!r}")
    return [k * (1 - (1 - t / steps) ** 3) for t in range(1, steps + 1)]


def gradual(
    model,
    sparsity: float,
    data: Mnist | tuple[np.ndarray, np.ndarray],
    epochs: float = 2.0,
    steps: int = 4,
    mode: str = "weight",
    method: str = "magnitude",
    budget: str = "layer",
    prune_output: bool = False,
    calib: Calibration | None = None,
    seed: int = 0,
    progress: ProgressFn | None = None,
    config: TrainConfig = FINETUNE,
) -> Pruned:
    """Gradual pruning: prune to each stage of `schedule(sparsity, steps)` and fine-tune epochs/steps in between.

    At each stage the method re-scores the current (fine-tuned) network; what earlier stages pruned scores
    -inf, so masks only grow and counts stay exact. obs and sparsegpt are not offered here: their
    reconstruction rewrites the kept weights, which fine-tuning does better; use them one-shot, then `finetune`.

    Args:
        model: a Network or Keras model (not changed).
        sparsity: the target, in [0, 1].
        data: MNIST, or the user's own (x, y) as `finetune` takes them.
        epochs: total fine-tuning epochs over all stages (fractions allowed).
        steps: number of pruning stages.
        mode, budget, prune_output, calib, seed: as in `methods.plan`.
        method: "magnitude", "random", "obd" or "obd-fisher".
        progress: called after every training batch.
        config: fine-tuning settings.

    Returns:
        Pruned at the target sparsity, fine-tuned.

    Raises:
        ValueError: for invalid arguments, or method "obs" or "sparsegpt".
    """
    stages = schedule(sparsity, steps)
    check_gradual(method, mode)
    check_budget(budget)
    check_epochs(epochs)
    net: Network = as_network(model)
    kept: list[np.ndarray] | None = None  # (units,) or kernel-shaped: what earlier stages kept
    pruned = None
    for i, k in enumerate(stages):
        scores = method_scores(net, method, mode, calib, seed + i, budget=budget)
        if kept is not None:
            scores = [np.where(keep, s, -np.inf) for s, keep in zip(scores, kept)]
        pruned = prune(net, k, ranking=rank(net, mode, prune_output, scores, budget))
        pruned = finetune(pruned, data, epochs / steps, progress, config, (i + 1, steps))
        net = pruned.net
        kept = [m if mode == "weight" else np.asarray(m.any(axis=0)) for m in pruned.masks]
    assert pruned is not None, "schedule gives at least one stage"
    return pruned
