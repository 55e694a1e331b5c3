"""The single entry point for pruning by any criterion: sweep, CLI and app all call `plan` / `prune_with`.

Methods:
- "magnitude": |w| (weight mode) or column L2 norm (unit mode), the original obd pruning.
- "random": seeded uniform scores, a control.
- "obd": Optimal Brain Damage saliency 1/2 h_kk w^2 from the loss Hessian's diagonal (obd.methods.saliency), the
  Gauss-Newton diagonal (exact for ReLU nets); "obd-fisher": the same with the empirical Fisher diagonal.
- "obs": one-shot Optimal Brain Surgeon reconstruction layer by layer (obd.methods.obs): mask by OBS score,
  then a least-squares refit of the kept weights; the pruned network holds refit weights.
- "sparsegpt": SparseGPT's sequential OBS (obd.methods.sparsegpt), weight mode only.
- "chita": CHITA++'s network-level empirical-Fisher pruning in stages (obd.methods.chita), weight mode only, for
  networks small enough to hold the per-example gradients.
A `Plan` holds everything that does not depend on the sparsity (Hessian diagonal, calibration activations,
greedy orders, rankings), so re-pruning at a new sparsity is fast: magnitude/random/obd cost one mask and
copy (well under a second); obs re-runs the least-squares refits (seconds).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, replace

import numpy as np

from obd.core.data import Mnist, load_mnist
from obd.core.network import Network, as_network
from obd.core.pruning import (
    Pruned,
    Ranking,
    apply_masks,
    check_budget,
    check_mode,
    check_sparsity,
    magnitude_scores,
    prune,
    rank,
)
from obd.methods.allocation import Profile, loss_profiles
from obd.methods.chita import ChitaPlan, plan_chita
from obd.methods.hessian import gram, inverse, obs_scores, row_damping
from obd.methods.obs import ALGORITHMS, ObsPlan, ReconstructConfig, count_masks, plan_obs, removed_counts
from obd.methods.saliency import hessian_diagonal, obd_saliency, random_scores
from obd.runtime.evaluate import score_logits

METHODS = ("magnitude", "random", "obd", "obd-fisher", "obs", "sparsegpt", "chita")
OBD_HESSIANS = {"obd": "gauss-newton", "obd-fisher": "fisher"}  # OBD's methods and their Hessian diagonals
WEIGHT_ONLY = ("sparsegpt", "chita")  # methods that prune single weights only
NEEDS_CALIBRATION = ("obd", "obd-fisher", "obs", "sparsegpt", "chita")  # methods that read training images
# the modules whose code makes a method's results: results cached on disk are named by a digest of their source
# (`method_modules`, `obd.core.cache.source_digest`), so that no file computed by other code is read as its own
COMMON_MODULES = (
    "obd.core.network",
    "obd.core.pruning",
    "obd.methods.registry",
    "obd.methods.allocation",
    "obd.runtime.evaluate",
)
RECONSTRUCTION_MODULES = ("obd.methods.obs", "obd.methods.hessian", "obd.methods.sparsegpt", "obd.methods.saliency")
METHOD_MODULES = {
    "magnitude": (),
    "random": ("obd.methods.saliency",),
    "obd": ("obd.methods.saliency",),
    "obd-fisher": ("obd.methods.saliency",),
    "obs": RECONSTRUCTION_MODULES,
    "sparsegpt": RECONSTRUCTION_MODULES,
    "chita": ("obd.methods.chita", "obd.methods.saliency", "obd.methods.obs"),
}


def method_modules(method: str) -> tuple[str, ...]:
    """The modules whose source makes `method`'s results (raises ValueError for an unknown method)."""
    return COMMON_MODULES + METHOD_MODULES[check_method(method)]


CALIBRATION_SIZE = 4096  # training images; enough for a stable 1000x1000 X^T X, a few seconds per pass
VALIDATION_SIZE = 2048  # other training images, on which dampings, fallbacks and loss profiles are judged
METHOD_HELP = {  # one line per method, shown beside its name in the app and the CLI's help
    "magnitude": "smallest |w| (weights) or column L2 norm (units)",
    "random": "a seeded random choice: the control every method must beat",
    "obd": "Optimal Brain Damage: saliency ½·h_kk·w² from the Hessian's diagonal (Gauss-Newton, exact here)",
    "obd-fisher": "OBD with the empirical Fisher diagonal (mean squared gradient) in place of the Hessian's",
    "obs": "Optimal Brain Surgeon, layerwise: drop by w²/(2·[H⁻¹]_qq) and refit the remaining weights",
    "sparsegpt": "SparseGPT: OBS input by input, each error spread over the inputs not yet pruned (weights only)",
    "chita": "CHITA++: all layers at once on the empirical Fisher, pruned in stages (weights only, small nets)",
}
BUDGET_HELP = {
    "layer": "the same share of every pruned layer",
    "global": "one threshold across all pruned layers",
    "loss-aware": "the split between layers that least raises the calibration loss, from each layer's "
    "measured loss-vs-sparsity profile (exact dynamic program, as in OBC/SPDY)",
}
FALLBACK_METHODS = ALGORITHMS + ("chita",)  # methods that fall back to magnitude where magnitude scores higher


def check_method(method: object) -> str:
    """Validate a method name; raises ValueError naming the valid ones."""
    if not isinstance(method, str) or method not in METHODS:
        raise ValueError(f"method must be one of {', '.join(METHODS)}; got {method!r}")
    return method  # type: ignore[return-value]


def supports(method: str, mode: str, budget: str = "layer") -> bool:
    """Whether `method` can prune in `mode` under `budget`: sparsegpt removes single weights only, and random,
    the control, has no loss-aware split (that would make it a loss-driven method)."""
    check_budget(budget)
    if budget == "loss-aware" and check_method(method) == "random":
        return False
    return mode == "weight" or check_method(method) not in WEIGHT_ONLY


def check_method_mode(method: object, mode: object, budget: object = "layer") -> tuple[str, str]:
    """Validate a (method, mode, budget) combination; raises ValueError saying what to use instead."""
    check_method(method)
    check_mode(mode)
    check_budget(budget)
    if mode == "unit" and method in WEIGHT_ONLY:
        raise ValueError(f"{method} prunes single weights only (mode weight); for units use obs")
    if not supports(method, mode, budget):  # type: ignore[arg-type]
        raise ValueError(
            f"{method} is the random control and has no loss-aware budget; use budget layer or "
            "global, or another method"
        )
    return method, mode  # type: ignore[return-value]


@dataclass(frozen=True)
class Calibration:
    """A sample of training images (never test images) for Hessians and reconstruction, and a validation split:
    other training images, on which obd makes its choices (dampings, the magnitude fallback, loss profiles)."""

    x: np.ndarray  # (n, 784) float32
    y: np.ndarray  # (n,) int labels (the empirical Fisher needs them)
    x_val: np.ndarray | None = None  # (m, 784) float32, disjoint from x; None: no choices can be made
    y_val: np.ndarray | None = None  # (m,)

    def validation(self) -> tuple[np.ndarray, np.ndarray] | tuple[None, None]:
        """(x_val, y_val), or (None, None) when the sample has no validation images."""
        if self.x_val is None or self.y_val is None or not len(self.x_val):
            return None, None
        return self.x_val, self.y_val


def calibration(
    data: Mnist | None = None, size: int = CALIBRATION_SIZE, seed: int = 0, validation: int = VALIDATION_SIZE
) -> Calibration:
    """A seeded random sample of `size` training images, and up to `validation` other training images.

    Args:
        data: MNIST (loaded with `load_mnist()` when None).
        size: number of images, 1 to 60,000.
        seed: sampling seed.
        validation: validation images, drawn from the training images outside the sample (fewer when fewer
            are left).

    Raises:
        ValueError: for a size outside [1, number of training images] or a negative validation size.
    """
    data = data if data is not None else load_mnist()
    n = len(data.x_train)
    if isinstance(size, bool) or not isinstance(size, (int, np.integer)) or not 1 <= size <= n:
        raise ValueError(f"calibration size must be a whole number in [1, {n}], got {size!r}")
    if isinstance(validation, bool) or not isinstance(validation, (int, np.integer)) or validation < 0:
        raise ValueError(f"validation size must be a whole number >= 0, got {validation!r}")
    rng = np.random.default_rng(seed)
    idx = np.sort(rng.choice(n, int(size), replace=False))
    rest = np.setdiff1d(np.arange(n), idx)
    val = np.sort(rng.choice(rest, min(int(validation), len(rest)), replace=False))
    return Calibration(data.x_train[idx], data.y_train[idx], data.x_train[val], data.y_train[val])


@dataclass(frozen=True)
class Plan:
    """A method's sparsity-independent state for one network and mode; `prune(k)` is cheap to repeat.

    ranking: for magnitude, random, obd and obd-fisher; obs: for obs and sparsegpt. seconds: time taken to build
    the plan. profiles: the loss-aware budget's per-layer loss profiles (ranking methods; obs plans hold their
    own). baseline and calib: for the reconstruction methods, magnitude's ranking under the same budget
    (global for loss-aware) and the calibration sample on which a pruned net must not score below it.
    """

    net: Network
    method: str
    mode: str
    budget: str
    prune_output: bool
    ranking: Ranking | None
    obs: ObsPlan | None
    seconds: float
    profiles: tuple[Profile, ...] | None = None
    baseline: Ranking | None = None
    calib: Calibration | None = None
    chita: ChitaPlan | None = None

    def prune(self, sparsity: float) -> Pruned:
        """The pruned network at `sparsity` (obs: with reconstructed weights); the plan's net is unchanged.

        A reconstruction method's result is replaced by magnitude's (same budget; global for loss-aware) when
        magnitude has the lower loss on the validation images; the Pruned says so (fallback=True).
        """
        k = check_sparsity(sparsity)
        if self.obs is not None:
            pruned = self.obs.prune(k)
        elif self.chita is not None:
            pruned = self.chita.prune(k)
        else:
            assert self.ranking is not None, "a plan ranks when it does not reconstruct"
            if self.profiles is not None:
                masks = count_masks(self.ranking, removed_counts(self.ranking, k, self.profiles))
                pruned = Pruned(apply_masks(self.net, masks, self.mode), tuple(masks), self.mode, k)
            else:
                pruned = prune(self.net, k, ranking=self.ranking)
        if self.baseline is None or self.calib is None:  # `plan` keeps the calibration with the baseline
            return pruned
        return no_worse_than(pruned, prune(self.net, k, ranking=self.baseline), self.calib)


def no_worse_than(pruned: Pruned, baseline: Pruned, calib: Calibration) -> Pruned:
    """`pruned`, unless `baseline` has a lower cross-entropy on the validation images (the loss, not the accuracy:
    on a few thousand images the accuracies of two good networks differ by a handful of images); then the
    baseline, marked fallback=True.

    Args:
        pruned: a method's pruned network.
        baseline: magnitude's at the same sparsity and budget.
        calib: the calibration sample; its validation images judge (training images the refits never saw), or
            the calibration images themselves when it has none.

    Returns:
        One of the two.
    """
    x, y = calib.validation()
    x, y = (calib.x, calib.y) if x is None or y is None else (x, y)
    ours, theirs = (score_logits(p.net.logits(x), y) for p in (pruned, baseline))
    if theirs.loss < ours.loss:
        return replace(baseline, fallback=True)
    return pruned


def method_scores(
    net: Network, method: str, mode: str, calib: Calibration | None = None, seed: int = 0, budget: str = "layer"
) -> list[np.ndarray]:
    """Per-layer importance (higher = keep) of a criterion: kernel-shaped (weight) or (units,) (unit).

    For "obs" and "sparsegpt" these are the dense network's single-weight OBS costs w^2 / [H^-1]_qq per layer
    (what the heatmap shows; the reconstruction itself re-scores layer by layer). Unit-mode obs scores are the
    column sums.

    Raises:
        ValueError: for an unknown method, mode or budget, or a method the mode does not support.
    """
    check_method_mode(method, mode)
    if method == "magnitude":
        return magnitude_scores(net, mode, budget)
    if method == "random":
        return random_scores(net, mode, seed)
    calib = calib if calib is not None else calibration()
    if method in OBD_HESSIANS or method == "chita":  # chita's quadratic has the empirical Fisher's diagonal
        return obd_saliency(net, hessian_diagonal(net, calib.x, calib.y, OBD_HESSIANS.get(method, "fisher")), mode)
    acts = net.activations(calib.x)
    x_val = calib.validation()[0]
    val_acts = None if x_val is None else net.activations(x_val)
    out = []
    dampings = ReconstructConfig().candidates(mode, method)
    for i, (layer, a) in enumerate(zip(net.layers, acts)):
        damping = row_damping(a, None if val_acts is None else val_acts[i], layer.kernel, dampings)
        s = obs_scores(layer.kernel.astype(np.float64), inverse(gram(a, damping)))
        out.append(s if mode == "weight" else s.sum(axis=0))
    return out


def saliency_map(model, method: str = "magnitude", calib: Calibration | None = None, seed: int = 0) -> list[np.ndarray]:
    """Per-weight importance of a criterion for heatmaps (in place of |w|).

    Args:
        model: a Network or Keras model.
        method: one of METHODS.
        calib: calibration sample for obd/obs (default: `calibration()`).
        seed: random's seed.

    Returns:
        One float64 (inputs, units) array per layer (obd: loss units; obs: squared output units).
    """
    return [np.asarray(s, dtype=np.float64) for s in method_scores(as_network(model), method, "weight", calib, seed)]


def plan(
    model,
    method: str = "magnitude",
    mode: str = "weight",
    budget: str = "layer",
    prune_output: bool = False,
    calib: Calibration | None = None,
    seed: int = 0,
    config: ReconstructConfig = ReconstructConfig(),
) -> Plan:
    """Precompute a method's state once per (network, method, mode, budget).

    Args:
        model: a Network or Keras model (not changed).
        method: one of METHODS ("obd": Gauss-Newton Hessian diagonal, exact for ReLU nets; "obd-fisher": the
            empirical Fisher diagonal; "sparsegpt": weight mode only).
        mode: "weight" or "unit".
        budget: "layer" (round(k*n) per pruned layer), "global" (round(k*N) over all pruned layers by one
            threshold) or "loss-aware" (round(k*N) split between the layers by `obd.methods.allocation.allocate` from
            each layer's measured calibration-loss profile; each layer then prunes by its own order; not for
            random). Comparable scores: magnitude raw |w| / column RMS (see `pruning.rank`), random as is,
            obd saliencies in loss units, obs relative output error (see `reconstruct.plan_obs`).
        prune_output: prune the logits layer too.
        calib: calibration sample for the methods in NEEDS_CALIBRATION (default: `calibration()`, 4,096 training
            images).
        seed: random's seed.
        config: obs settings (damping).

    Returns:
        A Plan; `plan.prune(k)` gives the Pruned network at sparsity k.

    Raises:
        ValueError: for an unknown method, mode or budget, or a combination `supports` refuses (before any
            work).
    """
    check_method_mode(method, mode, budget)
    net = as_network(model)
    start = time.perf_counter()
    ranking = obs = profiles = baseline = chita = None
    if budget == "loss-aware" or method in NEEDS_CALIBRATION:
        calib = calib if calib is not None else calibration()
    # scores and ranking budgets: a loss-aware split starts from each layer's own order
    ranked = "layer" if budget == "loss-aware" else budget
    if method in ALGORITHMS:
        assert calib is not None, "ALGORITHMS need calibration"
        x_val, y_val = calib.validation()
        obs = plan_obs(
            net, calib.x, mode, budget, prune_output, config, algorithm=method, y=calib.y, x_val=x_val, y_val=y_val
        )
        baseline = rank(net, mode, prune_output, budget="global" if budget == "loss-aware" else budget)
    elif method == "chita":
        assert calib is not None, "chita needs calibration"
        x_val, y_val = calib.validation()
        layers = pruned_layers(net, prune_output)
        counts = chita_counts(net, budget, prune_output, calib)
        chita = plan_chita(net, calib.x, calib.y, x_val, y_val, layers, counts)
        baseline = rank(net, mode, prune_output, budget="global" if budget == "loss-aware" else budget)
    else:
        ranking = rank(net, mode, prune_output, method_scores(net, method, mode, calib, seed, ranked), ranked)
        if budget == "loss-aware":
            assert calib is not None, "the loss-aware budget needs calibration"
            profiles = tuple(ranking_profiles(net, ranking, calib))
    return Plan(
        net,
        method,
        mode,
        budget,
        prune_output,
        ranking,
        obs,
        time.perf_counter() - start,
        profiles,
        baseline,
        calib if baseline is not None else None,
        chita,
    )


def pruned_layers(net: Network, prune_output: bool) -> list[int]:
    """The indices of the layers a plan prunes: all but the logits layer unless prune_output."""
    return [i for i in range(len(net.layers)) if prune_output or i < len(net.layers) - 1]


def chita_counts(
    net: Network, budget: str, prune_output: bool, calib: Calibration
) -> Callable[[Network, float], list[int] | None]:
    """How chita splits a sparsity between its layers: (current, sparsity) -> kept count per pruned layer (layer
    budget: the same share of each; loss-aware: `allocation.allocate` over magnitude's loss profiles of `current`,
    chita's network at the start of a stage, measured on the validation images), or None under the global budget
    (one count over all, by the solver's own magnitudes). Measuring the profiles again at each stage's weights, not
    only on the dense network, lowered MLPNet's validation loss at 98 % sparsity from 0.518 to 0.488 (mean of the
    preset's three seeds): the dense profiles cannot see how a thinned layer has been refit."""
    if budget == "global":
        return lambda current, sparsity: None
    layers = pruned_layers(net, prune_output)

    def counts(current: Network, sparsity: float) -> list[int] | None:
        ranking = rank(current, "weight", prune_output, budget="layer")
        profiles = tuple(ranking_profiles(current, ranking, calib)) if budget == "loss-aware" else None
        removed = removed_counts(ranking, sparsity, profiles)  # (layers,), 0 for the unpruned
        return [current.layers[i].kernel.size - removed[i] for i in layers]

    return counts


def ranking_profiles(net: Network, ranking: Ranking, calib: Calibration) -> list[Profile]:
    """Loss profiles of a ranking's layers: each pruned alone, by its own order, to each kept count.

    Returns:
        One Profile per pruned layer (see `obd.methods.allocation.loss_profiles`).
    """
    sizes = {i: o.size for i, o in enumerate(ranking.orders) if o is not None}  # {pruned layer: its items}

    def variant(i: int, kept: int) -> dict:
        removed = [sizes[i] - kept if j == i else 0 for j in range(len(ranking.orders))]
        mask = count_masks(ranking, removed)[i]
        return {
            i: apply_masks(
                net,
                [mask if j == i else np.ones(l.kernel.shape, dtype=bool) for j, l in enumerate(net.layers)],
                ranking.mode,
            ).layers[i]
        }

    x, y = calib.validation()  # measured on the validation images, like the reconstructions' profiles
    x, y = (calib.x, calib.y) if x is None or y is None else (x, y)
    return loss_profiles(net, x, y, list(sizes), list(sizes.values()), variant)


def prune_with(
    model,
    sparsity: float,
    mode: str = "weight",
    method: str = "magnitude",
    budget: str = "layer",
    prune_output: bool = False,
    calib: Calibration | None = None,
    seed: int = 0,
) -> Pruned:
    """Prune once by any method (see `plan` for the arguments); for many sparsities build a `plan` once.

    Returns:
        Pruned(net, masks, mode, sparsity); the given model is not changed.

    Raises:
        ValueError: for an invalid sparsity, method, mode or budget.
    """
    check_sparsity(sparsity)
    return plan(model, method, mode, budget, prune_output, calib, seed).prune(sparsity)


def cached_plan(
    net,
    method: str = "magnitude",
    mode: str = "weight",
    budget: str = "layer",
    prune_output: bool = False,
    calib: Calibration | None = None,
    seed: int = 0,
) -> Plan:
    """`plan(...)` from a process-wide cache, so that each process (a server, a Dask worker) builds a plan once.

    A bounded LRU (4 plans: an OBS plan of the default net holds about 100 MB) keyed by the network's
    fingerprint, method, mode, budget, prune_output, the calibration sample's content (for the methods and
    budgets that read one) and random's seed; two threads asking for one plan wait for a single build.

    Args:
        net: a Network or Keras model; the other arguments as for `plan`.

    Returns:
        The Plan (shared: its `net` may be an equal network given by an earlier caller).

    Raises:
        ValueError: as `plan`, before any work.
    """
    import hashlib

    from obd.core.cache import memo_digest, process_cache

    check_method_mode(method, mode, budget)
    net = as_network(net)

    def content(c: Calibration) -> str:
        arrays = [a for a in (c.x, c.y, *c.validation()) if a is not None]
        h = hashlib.blake2b(repr([(a.shape, a.dtype) for a in arrays]).encode(), digest_size=16)
        for a in arrays:
            h.update(np.ascontiguousarray(a).tobytes())
        return h.hexdigest()

    # the sample matters to the methods that read one and to every loss-aware split (its loss profiles)
    reads_sample = method in NEEDS_CALIBRATION or budget == "loss-aware"
    sample = memo_digest(calib, "calibration", content) if reads_sample and calib is not None else None
    key = (
        memo_digest(net, "fingerprint", Network.fingerprint),
        method,
        mode,
        budget,
        bool(prune_output),
        sample,
        seed if method == "random" else 0,
    )
    return process_cache("plans", 4).get(key, lambda: plan(net, method, mode, budget, prune_output, calib, seed))
