"""The single entry point for pruning by any criterion: sweep, CLI and app all call `plan` / `prune_with`.

Methods:
- "magnitude": |w| (weight mode) or column L2 norm (unit mode), the original obd pruning.
- "random": seeded uniform scores, a control.
- "obd": Optimal Brain Damage saliency 1/2 h_kk w^2 from the loss Hessian's diagonal (obd.saliency), the
  Gauss-Newton diagonal (exact for ReLU nets); "obd-fisher": the same with the empirical Fisher diagonal.
- "obs": one-shot Optimal Brain Surgeon reconstruction layer by layer (obd.reconstruct): mask by OBS score,
  then a least-squares refit of the kept weights; the pruned network holds refit weights.
- "sparsegpt": SparseGPT's sequential OBS (obd.reconstruct.sparsegpt), weight mode only.
A `Plan` holds everything that does not depend on the sparsity (Hessian diagonal, calibration activations,
greedy orders, rankings), so re-pruning at a new sparsity is fast: magnitude/random/obd cost one mask and
copy (well under a second); obs re-runs the least-squares refits (seconds).
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np

from .data import Mnist, load_mnist
from .network import Network, as_network
from .pruning import Pruned, Ranking, check_budget, check_mode, check_sparsity, magnitude_scores, prune, rank
from .reconstruct import ALGORITHMS, ObsPlan, ReconstructConfig, gram, inverse, obs_scores, plan_obs
from .saliency import hessian_diagonal, obd_saliency, random_scores

METHODS = ("magnitude", "random", "obd", "obd-fisher", "obs", "sparsegpt")
OBD_HESSIANS = {"obd": "gauss-newton", "obd-fisher": "fisher"}  # OBD's methods and their Hessian diagonals
WEIGHT_ONLY = ("sparsegpt",)  # methods that prune single weights only
NEEDS_CALIBRATION = ("obd", "obd-fisher", "obs", "sparsegpt")  # methods that read a sample of training images
CALIBRATION_SIZE = 4096  # training images; enough for a stable 1000x1000 X^T X, a few seconds per pass
METHOD_HELP = {  # one line per method, shown beside its name in the app and the CLI's help
    "magnitude": "smallest |w| (weights) or column L2 norm (units)",
    "random": "a seeded random choice: the control every method must beat",
    "obd": "Optimal Brain Damage: saliency ½·h_kk·w² from the Hessian's diagonal (Gauss-Newton, exact here)",
    "obd-fisher": "OBD with the empirical Fisher diagonal (mean squared gradient) in place of the Hessian's",
    "obs": "Optimal Brain Surgeon, layerwise: drop by w²/(2·[H⁻¹]_qq) and refit the remaining weights",
    "sparsegpt": "SparseGPT: OBS input by input, each error spread over the inputs not yet pruned (weights only)",
}
BUDGET_HELP = {"layer": "the same share of every pruned layer", "global": "one threshold across all pruned layers"}


def check_method(method: object) -> str:
    """Validate a method name; raises ValueError naming the valid ones."""
    if not isinstance(method, str) or method not in METHODS:
        raise ValueError(f"method must be one of {', '.join(METHODS)}; got {method!r}")
    return method  # type: ignore[return-value]


def supports(method: str, mode: str) -> bool:
    """Whether `method` can prune in `mode` (sparsegpt removes single weights only)."""
    return mode == "weight" or check_method(method) not in WEIGHT_ONLY


def check_method_mode(method: object, mode: object) -> tuple[str, str]:
    """Validate a (method, mode) pair; raises ValueError saying what to use instead."""
    check_method(method)
    check_mode(mode)
    if not supports(method, mode):  # type: ignore[arg-type]
        raise ValueError(f"{method} prunes single weights only (mode weight); for units use obs")
    return method, mode  # type: ignore[return-value]


@dataclass(frozen=True)
class Calibration:
    """A sample of training images (never test images) for Hessians and reconstruction."""

    x: np.ndarray  # (n, 784) float32
    y: np.ndarray  # (n,) int labels (the empirical Fisher needs them)


def calibration(data: Mnist | None = None, size: int = CALIBRATION_SIZE, seed: int = 0) -> Calibration:
    """A seeded random sample of `size` training images.

    Args:
        data: MNIST (loaded with `load_mnist()` when None).
        size: number of images, 1 to 60,000.
        seed: sampling seed.

    Raises:
        ValueError: for a size outside [1, number of training images].
    """
    data = data if data is not None else load_mnist()
    n = len(data.x_train)
    if isinstance(size, bool) or not isinstance(size, (int, np.integer)) or not 1 <= size <= n:
        raise ValueError(f"calibration size must be a whole number in [1, {n}], got {size!r}")
    idx = np.sort(np.random.default_rng(seed).choice(n, int(size), replace=False))
    return Calibration(data.x_train[idx], data.y_train[idx])


@dataclass(frozen=True)
class Plan:
    """A method's sparsity-independent state for one network and mode; `prune(k)` is cheap to repeat.

    ranking: for magnitude, random, obd and obd-fisher; obs: for obs and sparsegpt. seconds: time taken to build
    the plan.
    """

    net: Network
    method: str
    mode: str
    budget: str
    prune_output: bool
    ranking: Ranking | None
    obs: ObsPlan | None
    seconds: float

    def prune(self, sparsity: float) -> Pruned:
        """The pruned network at `sparsity` (obs: with reconstructed weights); the plan's net is unchanged."""
        k = check_sparsity(sparsity)
        return self.obs.prune(k) if self.obs is not None else prune(self.net, k, ranking=self.ranking)


def method_scores(net: Network, method: str, mode: str, calib: Calibration | None = None, seed: int = 0,
                  budget: str = "layer") -> list[np.ndarray]:
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
    if method in OBD_HESSIANS:
        return obd_saliency(net, hessian_diagonal(net, calib.x, calib.y, OBD_HESSIANS[method]), mode)
    acts = net.activations(calib.x)
    out = []
    damping = ReconstructConfig().damping(mode, method)
    for layer, a in zip(net.layers, acts):
        s = obs_scores(layer.kernel.astype(np.float64), inverse(gram(a, damping)))
        out.append(s if mode == "weight" else s.sum(axis=0))
    return out


def saliency_map(model, method: str = "magnitude", calib: Calibration | None = None,
                 seed: int = 0) -> list[np.ndarray]:
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


def plan(model, method: str = "magnitude", mode: str = "weight", budget: str = "layer", prune_output: bool = False,
         calib: Calibration | None = None, seed: int = 0, config: ReconstructConfig = ReconstructConfig()) -> Plan:
    """Precompute a method's state once per (network, method, mode, budget).

    Args:
        model: a Network or Keras model (not changed).
        method: one of METHODS ("obd": Gauss-Newton Hessian diagonal, exact for ReLU nets; "obd-fisher": the
            empirical Fisher diagonal; "sparsegpt": weight mode only).
        mode: "weight" or "unit".
        budget: "layer" (round(k*n) per pruned layer) or "global" (round(k*N) over all pruned layers by one
            threshold). Comparable scores: magnitude raw |w| / column RMS (see `pruning.rank`), random as is,
            obd saliencies in loss units, obs relative output error (see `reconstruct.plan_obs`).
        prune_output: prune the logits layer too.
        calib: calibration sample for the methods in NEEDS_CALIBRATION (default: `calibration()`, 4,096 training
            images).
        seed: random's seed.
        config: obs settings (damping).

    Returns:
        A Plan; `plan.prune(k)` gives the Pruned network at sparsity k.

    Raises:
        ValueError: for an unknown method, mode or budget, or a method the mode does not support (before any
            work).
    """
    check_method_mode(method, mode)
    check_budget(budget)
    net = as_network(model)
    start = time.perf_counter()
    ranking = obs = None
    if method in ALGORITHMS:
        calib = calib if calib is not None else calibration()
        obs = plan_obs(net, calib.x, mode, budget, prune_output, config, algorithm=method)
    else:
        ranking = rank(net, mode, prune_output, method_scores(net, method, mode, calib, seed, budget), budget)
    return Plan(net, method, mode, budget, prune_output, ranking, obs, time.perf_counter() - start)


def prune_with(model, sparsity: float, mode: str = "weight", method: str = "magnitude", budget: str = "layer",
               prune_output: bool = False, calib: Calibration | None = None, seed: int = 0) -> Pruned:
    """Prune once by any method (see `plan` for the arguments); for many sparsities build a `plan` once.

    Returns:
        Pruned(net, masks, mode, sparsity); the given model is not changed.

    Raises:
        ValueError: for an invalid sparsity, method, mode or budget.
    """
    check_sparsity(sparsity)
    return plan(model, method, mode, budget, prune_output, calib, seed).prune(sparsity)


def cached_plan(net, method: str = "magnitude", mode: str = "weight", budget: str = "layer",
                prune_output: bool = False, calib: Calibration | None = None, seed: int = 0) -> Plan:
    """`plan(...)` from a process-wide cache, so that each process (a server, a Dask worker) builds a plan once.

    A bounded LRU (4 plans: an OBS plan of the default net holds about 100 MB) keyed by the network's
    fingerprint, method, mode, budget, prune_output, the calibration sample's content (for the methods that
    read one) and random's seed; two threads asking for one plan wait for a single build.

    Args:
        net: a Network or Keras model; the other arguments as for `plan`.

    Returns:
        The Plan (shared: its `net` may be an equal network given by an earlier caller).

    Raises:
        ValueError: as `plan`, before any work.
    """
    import hashlib

    from .jobs import memo_digest, process_cache

    check_method_mode(method, mode)
    check_budget(budget)
    net = as_network(net)

    def content(c: Calibration) -> str:
        h = hashlib.blake2b(repr((c.x.shape, c.x.dtype, c.y.shape, c.y.dtype)).encode(), digest_size=16)
        h.update(np.ascontiguousarray(c.x).tobytes())
        h.update(np.ascontiguousarray(c.y).tobytes())
        return h.hexdigest()

    sample = None
    if method in NEEDS_CALIBRATION and calib is not None:
        sample = memo_digest(calib, "calibration", content)
    key = (memo_digest(net, "fingerprint", Network.fingerprint), method, mode, budget, bool(prune_output), sample,
           seed if method == "random" else 0)
    return process_cache("plans", 4).get(key, lambda: plan(net, method, mode, budget, prune_output, calib, seed))
