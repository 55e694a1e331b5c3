"""Loss-aware allocation of a global budget: how many weights (or units) each layer keeps.

Given, for every pruned layer, a profile of the predicted loss increase against the number it keeps, the
allocation minimises the summed loss increase subject to the kept counts adding up to the budget exactly.
This is the allocation step of Optimal Brain Compression (Frantar & Alistarh 2022, section 5: "the per-layer
error profiles ... are combined by dynamic programming") and of SPDY (Frantar & Alistarh 2022): the sum of
per-layer losses is a separable objective, so an exact solution is a dynamic program over layers and kept
totals (a min-plus convolution per layer), with no convexity assumed.

For large networks the counts live on a grid of `quantum` items (about total/resolution), the profiles are
interpolated linearly on it, and the remainder below one quantum goes to the layer whose interpolated loss
grows least from it: the budget is always met exactly, and the allocation is optimal over the grid (exactly
optimal when the quantum is 1, which `allocate` uses whenever the network has at most `resolution` items).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

from obd.core.network import Layer, Network
from obd.runtime.evaluate import score_logits


@dataclass(frozen=True)
class Profile:
    """A layer's predicted loss increase against how many of its items it keeps.

    kept: (points,) increasing whole numbers from 0 to `size` (both included).
    loss: (points,) the loss increase at each; between points it is interpolated linearly.
    """

    kept: np.ndarray
    loss: np.ndarray

    def __post_init__(self) -> None:
        kept = np.asarray(self.kept, dtype=np.int64)
        loss = np.asarray(self.loss, dtype=np.float64)
        if kept.ndim != 1 or kept.shape != loss.shape or len(kept) < 2:
            raise ValueError("a profile needs at least two (kept, loss) points of equal length")
        if kept[0] != 0 or np.any(np.diff(kept) <= 0):
            raise ValueError(f"a profile's kept counts must start at 0 and increase, got {kept.tolist()}")
        if not np.isfinite(loss).all():
            raise ValueError("a profile's losses must be finite")
        object.__setattr__(self, "kept", kept)
        object.__setattr__(self, "loss", loss)

    @property
    def size(self) -> int:
        """How many items the layer has (its largest kept count)."""
        return int(self.kept[-1])

    def at(self, kept: np.ndarray | Sequence[int]) -> np.ndarray:
        """The interpolated loss at whole kept counts in [0, size]. (m,) -> (m,) float64"""
        return np.interp(np.asarray(kept, dtype=np.float64), self.kept, self.loss)


def min_plus(costs: Sequence[np.ndarray], total: int) -> list[int]:
    """Exact minimum of sum_i costs[i][c_i] subject to sum_i c_i == total, 0 <= c_i < len(costs[i]).

    Args:
        costs: per layer, the cost of each whole count 0, 1, ..., (a 1-D float array each).
        total: the sum the counts must reach.

    Returns:
        The counts c_i; among equal optima the one found first (layers earlier in the list keep less).

    Raises:
        ValueError: when total is outside [0, sum of the largest counts].
    """
    costs = [np.asarray(c, dtype=np.float64) for c in costs]
    cap = sum(len(c) - 1 for c in costs)
    if not 0 <= total <= cap:
        raise ValueError(f"the budget {total} is outside [0, {cap}]")
    best = costs[0][: total + 1].copy()  # best[t]: least cost of the layers so far keeping t in all, (t,)
    choices: list[np.ndarray] = []  # per later layer: its count at each running total
    for c in costs[1:]:
        width = min(len(best) + len(c) - 1, total + 1)
        new = np.full(width, np.inf)
        pick = np.zeros(width, dtype=np.int64)
        for count in range(min(len(c), width)):  # one vectorised pass per count of this layer
            top = min(len(best), width - count)
            cand = best[:top] + c[count]
            better = cand < new[count : count + top]
            new[count : count + top][better] = cand[better]
            pick[count : count + top][better] = count
        best, choices = new, choices + [pick]
    counts, t = [], total
    for pick in reversed(choices):
        counts.append(int(pick[t]))
        t -= counts[-1]
    return [t] + counts[::-1]


def allocate(
    profiles: Sequence[Profile], total: int, resolution: int = 4000, floors: Sequence[int] | None = None
) -> list[int]:
    """Kept counts per layer that sum to `total` and minimise the summed profile loss.

    Args:
        profiles: one Profile per pruned layer.
        total: how many items all of them keep together, in [0, sum of sizes].
        resolution: the dynamic program's grid has about this many steps over all layers (its cost grows
            with its square); networks with at most this many items are allocated exactly, item by item.
        floors: the least each layer keeps whenever the budget allows all of them (then no layer goes below
            its floor). The profiles' sum is a model of the loss that fails where a layer is (nearly) emptied:
            its network's output no longer depends on the input, a loss of about log(classes) that can look
            cheaper than the overconfident errors of thinly kept layers, at chance accuracy.

    Returns:
        One whole kept count per profile, each in [0, size], summing to `total`.

    Raises:
        ValueError: for a total outside [0, sum of sizes] or a resolution below 1.
    """
    sizes = [p.size for p in profiles]
    if isinstance(total, bool) or not isinstance(total, (int, np.integer)) or not 0 <= total <= sum(sizes):
        raise ValueError(f"the budget must be a whole number in [0, {sum(sizes)}], got {total!r}")
    if not isinstance(resolution, (int, np.integer)) or resolution < 1:
        raise ValueError(f"resolution must be a positive whole number, got {resolution!r}")
    quantum = max(1, math.ceil(sum(sizes) / resolution))
    grids = [np.arange(s // quantum + 1) * quantum for s in sizes]  # kept counts on the grid, per layer
    units = min(int(total) // quantum, sum(len(g) - 1 for g in grids))
    costs = [p.at(g) for p, g in zip(profiles, grids)]
    if floors is not None:  # a floor rounds up to the grid; kept only where the budget holds every layer's
        low = [min(len(g) - 1, math.ceil(f / quantum)) for f, g in zip(floors, grids)]
        if sum(low) <= units:
            costs = [np.where(np.arange(len(c)) < lo, np.inf, c) for c, lo in zip(costs, low)]
    counts = [int(grids[i][j]) for i, j in enumerate(min_plus(costs, units))]
    rest = int(total) - sum(counts)  # below one quantum per layer: spill it where the loss grows least
    while rest:
        room = [min(rest, s - c) for s, c in zip(sizes, counts)]
        growth = [p.at([c + r])[0] - p.at([c])[0] if r else np.inf for p, c, r in zip(profiles, counts, room)]
        i = int(np.argmin(growth))
        counts[i] += room[i]
        rest -= room[i]
    return counts


# kept fractions at which each layer's profile is measured: dense near 0, where layers break and budgets
# at 95-99 % sparsity are decided, coarse where pruning costs little
PROFILE_KEPT = (0.0, 0.001, 0.002, 0.005, 0.01, 0.02, 0.03, 0.05, 0.1, 0.2, 0.3, 0.5, 0.75, 1.0)
PROFILE_ROWS = 1024  # calibration images the profile's losses are measured on: the forward passes dominate its cost

Variant = Callable[[int, int], dict[int, Layer]]  # (layer, kept) -> the layers that change, by index


def loss_profiles(
    net: Network,
    x: np.ndarray,
    y: np.ndarray,
    layers: Sequence[int],
    sizes: Sequence[int],
    variant: Variant,
    kept: Sequence[float] = PROFILE_KEPT,
    rows: int = PROFILE_ROWS,
) -> list[Profile]:
    """Each layer's calibration loss increase when it alone is pruned (the rest dense), against its kept count.

    Args:
        net: the dense network.
        x: (n, inputs) calibration images; y: (n,) their labels.
        layers: indices of the pruned layers.
        sizes: how many items (weights or units) each of them has.
        variant: variant(i, kept) gives the layers that change when layer i keeps `kept` items (a pruned
            and perhaps refit kernel, and for unit pruning the refit next kernel), by index.
        kept: fractions of each layer's items at which to measure (interpolated in between).
        rows: the losses are measured on the first `rows` images (the variants may use all of them).

    Returns:
        One Profile per pruned layer: mean cross-entropy on the sample minus the dense network's.
    """
    acts = [a[:rows] for a in net.activations(x[:rows])]  # [x, h1, ..., logits], (rows, width) each
    y = np.asarray(y)[:rows]
    dense = score_logits(acts[-1], y).loss
    out = []
    for i, size in zip(layers, sizes):
        counts = np.unique(np.round(np.asarray(kept) * size).astype(np.int64))
        loss = []
        for count in counts:
            changed = variant(i, int(count)) if count < size else {}
            start = min(changed, default=len(net.layers))
            h = acts[start]  # (n, inputs of layer `start`)
            for j in range(start, len(net.layers)):
                layer = changed.get(j, net.layers[j])
                h = h @ layer.kernel
                if layer.bias is not None:
                    h = h + layer.bias
                if layer.activation == "relu":
                    h = np.maximum(h, 0.0)
            loss.append(score_logits(h, y).loss - dense)
        out.append(Profile(counts, np.array(loss)))
    return out
