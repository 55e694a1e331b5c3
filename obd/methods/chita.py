"""CHITA++-style network-level pruning (Benbaki et al., ICML 2023): all pruned layers at once, one-shot.

Around the current weights w0 the loss is modelled by the empirical Fisher: with G (n, p) the gradients of the
cross-entropy on n mini-batches of BATCH training images each (scaled by 1/sqrt(n); computed here in numpy, never a
p x p matrix), the pruned weights minimise

    q(w) = 1/2 |G (w - w0)|^2 + lam |w - w0|^2    subject to a kept count (per layer, or one for all),

by iterative hard thresholding (IHT) on an active set with a doubling line search on the step, then an exact
backsolve on the final support S: w_S = (G_S^T G_S + 2 lam I)^-1 (G_S^T G w0 + 2 lam w0_S), by Woodbury when
n < |S|. CHITA++'s multi-stage schedule re-linearises: the kept share goes down in stages (`schedule`: through
fixed anchor densities, 0.5, 0.4, ..., 0.02, ..., each step keeping at least RATIO of the weights before it, so
the last steps are small), G is recomputed at each stage's pruned weights and the next stage starts from them.
Stages are cached in the plan by their path, so the sparsities of a sweep share one path and the result at one
sparsity does not depend on which were asked before.

Nothing is tuned by hand on a test set: at every stage the ridge lam (relative to the mean diagonal of G^T G)
is the candidate of LAMBDAS whose pruned network has the least cross-entropy on validation images, training
images outside the gradient sample (searched upward, stopping once the loss rises), and so is the split of the
kept count between the layers (`ChitaPlan.projections`: the plan's split, or the current one's proportions).
"""

from __future__ import annotations

import math
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np

from obd.core.network import Network
from obd.core.pruning import Pruned, check_sparsity
from obd.runtime.evaluate import log_softmax, score_logits

GRADIENTS = 1000  # rows of G (the CBS and CHITA MLPNet setting)
# examples per row of G, each row a mini-batch's mean gradient (as CHITA++'s scripts do), fewer where the sample is
# short: more data in the same rows. Rows are means, not sums: the ridge is relative to G's mean diagonal, so the
# scale does not matter. (docs/methods.md gives the validation losses behind BATCH, LAMBDAS and RATIO.)
BATCH = 4
MIN_GRADIENTS = 200  # fewer make the Fisher too coarse to be worth the cost: such a net is refused
MAX_ENTRIES = 2**25  # entries of G (float32, 128 MB): n shrinks below GRADIENTS for larger nets
# candidate ridges, times the mean diagonal of G^T G (tried upward); a finer grid ended worse on validation: each
# stage's greedy choice fits the validation images more closely
LAMBDAS = (1e-3, 1e-2, 1e-1)
# the schedule: each stage keeps at least RATIO of the weights before it, through ANCHORS, the densities of the usual
# sweeps (0.5 ... 0.98 sparsity), so that a sweep is one path. Large steps end worse on validation: the quadratic
# model fails for them where little is left; smaller ones cost more stages
RATIO = 0.85
ANCHORS = (0.5, 0.4, 0.3, 0.2, 0.1, 0.05, 0.02, 0.01, 0.005, 0.002, 0.001)
ACTIVE = 1.5  # the active set holds this many times the kept count (CHITA's default)
ITERATIONS = 20  # IHT iterations per active set: they choose the support; the backsolve then fits it exactly
TOLERANCE = 1e-5  # IHT stops when the objective's relative decrease is below this


def gradients(net: Network, layers: Sequence[int], x: np.ndarray, y: np.ndarray, batch: int = 1) -> np.ndarray:
    """Mini-batch gradients of the cross-entropy with respect to the kernels of `layers`, scaled by 1/sqrt(n).

    Args:
        net: the network at the weights to linearise around.
        layers: indices of the layers whose kernels are the variables, in order.
        x: (N, inputs) raw images; y: (N,) labels.
        batch: examples per row: row i is the mean gradient of examples i * batch .. (i + 1) * batch - 1 (n = N //
            batch rows; the last N % batch examples are left out).

    Returns:
        (n, p) float32, p the kernels' total size; each kernel flattened in row-major order, layer after layer.
    """
    n = len(x) // batch
    acts = net.activations(x[: n * batch])  # [x, h1, ..., logits], (n * batch, width) each
    delta = np.exp(log_softmax(acts[-1])).astype(np.float32)  # (n * batch, classes): d loss / d logits
    delta[np.arange(n * batch), np.asarray(y)[: n * batch]] -= 1.0
    blocks: dict[int, np.ndarray] = {}
    for i in range(len(net.layers) - 1, min(layers) - 1, -1):
        if i in layers:  # d loss / d kernel = a delta^T, summed over a row's examples: (n, inputs * units)
            a = acts[i].astype(np.float32).reshape(n, batch, -1)
            blocks[i] = np.matmul(a.transpose(0, 2, 1), delta.reshape(n, batch, -1)).reshape(n, -1)
        if i > 0:
            delta = (delta @ net.layers[i].kernel.T) * (acts[i] > 0)  # (n * batch, inputs of layer i)
    return np.concatenate([blocks[i] for i in layers], axis=1) / np.float32(batch * np.sqrt(n))


@dataclass(frozen=True)
class Projection:
    """Hard thresholding onto kept counts: `blocks` (p,) assigns each weight to a block (non-decreasing: the
    blocks are contiguous, as the layers are in w), `counts` (blocks,) how many of each block's weights are kept
    (the largest in magnitude)."""

    blocks: np.ndarray
    counts: np.ndarray

    def support(self, v: np.ndarray) -> np.ndarray:
        """(p,) bool: the kept entries of v (p,), exactly counts[b] in block b (ties by position)."""
        # a partition per block, O(p), not a sort: IHT projects every candidate step (most of chita's time)
        a = np.abs(v)
        keep = np.zeros(len(v), dtype=bool)
        bounds = np.searchsorted(self.blocks, np.arange(len(self.counts) + 1))
        for b, count in enumerate(self.counts):
            lo, hi = int(bounds[b]), int(bounds[b + 1])
            count = min(int(count), hi - lo)
            if count <= 0:
                continue
            if count == hi - lo:
                keep[lo:hi] = True
                continue
            block = a[lo:hi]
            threshold = np.partition(block, hi - lo - count)[hi - lo - count]  # the count-th largest
            above = block > threshold
            ties = np.flatnonzero(block == threshold)[: count - int(above.sum())]  # the first by position
            above[ties] = True
            keep[lo:hi] = above
        return keep

    def subset(self, index: np.ndarray) -> Projection:
        """The projection of the entries `index` (which must hold at least each block's count)."""
        return Projection(self.blocks[index], self.counts)

    def widened(self, factor: float) -> Projection:
        """The same blocks keeping `factor` times as many (at most all)."""
        sizes = np.bincount(self.blocks, minlength=len(self.counts))
        return Projection(self.blocks, np.minimum(sizes, np.ceil(factor * self.counts).astype(np.int64)))


@dataclass(frozen=True)
class Quadratic:
    """q(w) = 1/2 |g w - target|^2 + lam |w - w0|^2 + const, on some columns of G (an active set)."""

    g: np.ndarray  # (n, m) float32
    w0: np.ndarray  # (m,) float64
    target: np.ndarray  # (n,) float64: G w0 over all p columns
    lam: float

    def residual(self, w: np.ndarray) -> np.ndarray:
        """g w - target, (n,) float64; the product in float32, G's precision (and BLAS's fast path)."""
        return (self.g @ w.astype(np.float32)).astype(np.float64) - self.target

    def value(self, w: np.ndarray, r: np.ndarray | None = None) -> float:
        """q(w); r: w's residual when the caller has it (each product with G reads all of G)."""
        r = self.residual(w) if r is None else r  # (n,)
        d = w - self.w0
        return float(0.5 * r @ r + self.lam * d @ d)

    def grad(self, w: np.ndarray, r: np.ndarray | None = None) -> np.ndarray:
        """The gradient of q at w, (m,); r: w's residual when the caller has it."""
        r = (self.residual(w) if r is None else r).astype(np.float32)
        return (self.g.T @ r).astype(np.float64) + 2 * self.lam * (w - self.w0)

    def subset(self, index: np.ndarray) -> Quadratic:
        """The same quadratic in the variables `index` only (the others held at 0)."""
        return Quadratic(self.g[:, index], self.w0[index], self.target, self.lam)

    def backsolve(self, support: np.ndarray) -> np.ndarray:
        """The exact minimiser with w = 0 off `support` (m,) bool; Woodbury when n < |S|. Returns (m,)."""
        s = np.flatnonzero(support)
        gs = self.g[:, s].astype(np.float64)  # (n, |S|)
        r = gs.T @ self.target + 2 * self.lam * self.w0[s]  # (|S|,)
        out = np.zeros(len(self.w0))
        two = 2 * self.lam
        if len(gs) < len(s):  # (A + 2 lam I)^-1 r = (r - A^T (2 lam I + A A^T)^-1 A r) / (2 lam)
            small = gs @ gs.T
            small[np.diag_indices_from(small)] += two
            out[s] = (r - gs.T @ np.linalg.solve(small, gs @ r)) / two
        else:
            big = gs.T @ gs
            big[np.diag_indices_from(big)] += two
            out[s] = np.linalg.solve(big, r)
        return out


def top_eigenvalue(g: np.ndarray, iterations: int = 15) -> float:
    """The largest eigenvalue of g^T g (g: (n, m)), by power iteration (from below: IHT's step takes 5 % margin)."""
    v = np.random.default_rng(0).normal(size=(g.shape[1],)).astype(np.float32)  # (m,); a tuple: numpy's stub
    top = 0.0
    for _ in range(iterations):
        u = g.T @ (g @ v)
        top = float(np.linalg.norm(u))
        v = u / max(top, 1e-300)
    return top


STEPS = 6  # IHT's line search tries the steps step * 2^j, j = 0 .. STEPS - 1


def iht(q: Quadratic, project: Projection, w: np.ndarray, step: float) -> tuple[np.ndarray, list[float]]:
    """IHT from w with a line search over the steps step * 2^j (j < STEPS): from the last iteration's j upward while
    the objective falls, and downward, to the first that lowers it, when none upward did (step itself, 1 / the top
    eigenvalue, never raises it). Starting where the last iteration ended, not at j = 0, halves the products with G.
    Stops at a relative decrease below TOLERANCE, at a fixed point, or after ITERATIONS.

    Returns:
        (w, objective after each iteration); w has exactly the projection's counts of nonzero entries (at most).
    """
    w = np.where(project.support(w), w, 0.0)
    r = q.residual(w)  # (n,): kept with w, so that each iteration's gradient costs one product with G, not two
    f = q.value(w, r)
    history, start = [f], 0

    def trial(j: int, grad: np.ndarray) -> tuple[float, np.ndarray, np.ndarray, int]:
        v = w - step * 2**j * grad
        cand = np.where(project.support(v), v, 0.0)
        rc = q.residual(cand)
        return q.value(cand, rc), cand, rc, j

    for _ in range(ITERATIONS):
        grad = q.grad(w, r)
        best = trial(start, grad)
        for j in range(start + 1, STEPS):  # upward while it falls
            cand = trial(j, grad)
            if cand[0] >= best[0]:
                break
            best = cand
        for j in range(start - 1, -1, -1):  # downward until one lowers the objective
            if best[0] < f:
                break
            best = trial(j, grad)
        if best[0] >= f:  # no step improves: a fixed point of IHT
            break
        decrease = (f - best[0]) / max(abs(f), 1e-300)
        f, w, r, start = best
        history.append(f)
        if decrease <= TOLERANCE:
            break
    return w, history


def solve(q: Quadratic, project: Projection, top: float | None = None) -> tuple[np.ndarray, np.ndarray]:
    """CHITA's solver: IHT on an active set (grown while hard thresholding over all weights finds better ones),
    then the backsolve on the support. top: the largest eigenvalue of g^T g when the caller has it.

    Returns:
        (w, support): (p,) weights, exactly 0 off the (p,) bool support, which holds the projection's counts.
    """
    step = 1.0 / (1.05 * ((top_eigenvalue(q.g) if top is None else top) + 2 * q.lam))
    start = q.w0 - step * q.grad(q.w0)
    active = project.widened(ACTIVE).support(start)
    w = np.where(active, q.w0, 0.0)
    for _ in range(3):
        index = np.flatnonzero(active)
        sub = q.subset(index)
        w_sub, _ = iht(sub, project.subset(index), w[index], step)
        w = np.zeros(len(q.w0))
        w[index] = w_sub
        v = w - step * q.grad(w)
        outside = project.support(v)
        better = np.where(outside, v, 0.0)
        if not (outside & ~active).any() or q.value(better) >= q.value(w):
            break
        active |= outside
    # the nonzero weights first, then active zeros: exactly the counts even where IHT left an exact zero
    support = project.support(np.where(w != 0, 1.0 + np.abs(w), np.where(active, 0.5, 0.0)))
    return q.backsolve(support), support


def schedule(density: float) -> list[float]:
    """The densities of the stages down to `density`: through every anchor above it, then to it, each step
    keeping at least RATIO of the weights before it (geometric steps between anchors)."""
    out, prev = [], 1.0
    for a in [a for a in ANCHORS if a > density + 1e-12] + [density]:
        steps = 1 if a <= 0 else max(1, math.ceil(math.log(a / prev) / math.log(RATIO) - 1e-9))  # 0: one step
        out += [prev * (a / prev) ** (j / steps) for j in range(1, steps + 1)]
        prev = a
    return out


@dataclass(frozen=True)
class ChitaPlan:
    """A network's multi-stage CHITA state; `prune(k)` runs (or reuses) the stages down to sparsity k.

    layers: the pruned layers' indices. counts(net, sparsity) -> kept count per pruned layer, the split measured
    on `net` (each stage's starting network), or None for one count over all of them (the global budget).
    x, y: the gradient sample (training images); x_val, y_val: the validation images every choice is judged on.
    """

    net: Network
    layers: tuple[int, ...]
    counts: Callable[[Network, float], list[int] | None]
    x: np.ndarray
    y: np.ndarray
    x_val: np.ndarray
    y_val: np.ndarray
    batch: int = 1  # examples per row of G: x holds its rows * batch images
    stages: dict = field(default_factory=dict, compare=False, repr=False)  # path of densities -> (net, masks)
    lock: threading.Lock = field(default_factory=threading.Lock, compare=False, repr=False)

    def prune(self, sparsity: float) -> Pruned:
        """The pruned network at `sparsity` (weight mode), the last of its stages."""
        density = 1.0 - check_sparsity(sparsity)
        net, masks = self.net, [np.ones(l.kernel.shape, dtype=bool) for l in self.net.layers]
        path = schedule(density)
        for j in range(len(path)):
            net, masks = self._stage(tuple(round(d, 12) for d in path[: j + 1]), net, masks)
        return Pruned(net, tuple(masks), "weight", 1.0 - density)

    def validation_loss(self, net: Network) -> float:
        return score_logits(net.logits(self.x_val), self.y_val).loss

    def projections(self, net: Network, masks: list[np.ndarray], path: tuple[float, ...]) -> list[Projection]:
        """The candidate kept counts at density path[-1]: the plan's split per layer measured on `net` (or one
        count over all of them), and after the first stage the kept count spread in proportion to what each layer
        keeps now. (A loss-aware split can starve a layer where little is left; the proportional candidate
        lowered MLPNet's validation loss at 98 % sparsity on two of three seeds, 0.55 -> 0.52 on average.)"""
        sizes = [net.layers[i].kernel.size for i in self.layers]
        per_layer = self.counts(net, 1.0 - path[-1])
        if per_layer is None:
            return [Projection(np.zeros(sum(sizes), dtype=np.int64), np.array([round(path[-1] * sum(sizes))]))]
        blocks = np.repeat(np.arange(len(sizes)), sizes)
        out = [Projection(blocks, np.asarray(per_layer, dtype=np.int64))]
        if len(path) > 1:
            kept = np.array([int(masks[i].sum()) for i in self.layers])  # (layers,)
            exact = kept * sum(per_layer) / kept.sum()
            share = np.floor(exact).astype(np.int64)  # largest remainders get the rest: the total is exact
            share[np.argsort(-(exact - share), kind="stable")[: sum(per_layer) - int(share.sum())]] += 1
            if not np.array_equal(share, out[0].counts):
                out.append(Projection(blocks, share))
        return out

    def _stage(
        self, path: tuple[float, ...], net: Network, masks: list[np.ndarray]
    ) -> tuple[Network, list[np.ndarray]]:
        """The stage at density path[-1] from `net`, the stage before it on `path` (the key: computed once)."""
        with self.lock:
            if path in self.stages:
                return self.stages[path]
        g = gradients(net, self.layers, self.x, self.y, self.batch)  # (n, p), at this stage's starting weights
        w0 = np.concatenate([net.layers[i].kernel.ravel() for i in self.layers]).astype(np.float64)
        target = (g @ w0.astype(np.float32)).astype(np.float64)  # (n,)
        scale = float(np.mean(np.einsum("ij,ij->j", g, g)))
        top = top_eigenvalue(g)
        best: tuple[float, Network, list[np.ndarray]] | None = None
        for project in self.projections(net, masks, path):
            last = np.inf
            for c in LAMBDAS:  # increasing: the validation loss has one minimum over them, so stop once it rises
                w, support = solve(Quadratic(g, w0, target, c * scale), project, top)
                cand_net, cand_masks = self._weights(net, masks, w, support)
                loss = self.validation_loss(cand_net)
                if loss >= last:
                    break
                last = loss
                if best is None or loss < best[0]:
                    best = (loss, cand_net, cand_masks)
        assert best is not None, "LAMBDAS is not empty"
        with self.lock:
            self.stages[path] = (best[1], best[2])
        return best[1], best[2]

    def _weights(
        self, net: Network, masks: list[np.ndarray], w: np.ndarray, support: np.ndarray
    ) -> tuple[Network, list[np.ndarray]]:
        """The network and masks with the pruned layers' kernels from w (p,) and support (p,)."""
        kernels, out, start = [l.kernel for l in net.layers], list(masks), 0
        for i in self.layers:
            shape, size = net.layers[i].kernel.shape, net.layers[i].kernel.size
            kernels[i] = w[start : start + size].reshape(shape).astype(np.float32)
            out[i] = support[start : start + size].reshape(shape)
            start += size
        return net.with_weights(kernels, [l.bias for l in net.layers]), out


def plan_chita(
    net: Network,
    x: np.ndarray,
    y: np.ndarray,
    x_val: np.ndarray | None,
    y_val: np.ndarray | None,
    layers: Sequence[int],
    counts: Callable[[Network, float], list[int] | None],
) -> ChitaPlan:
    """Set up CHITA++ for a network.

    Args:
        net: the dense network.
        x: (N, inputs) calibration images (training images); y: (N,) labels. The first n * BATCH of them give G.
        x_val, y_val: validation images and labels (training images outside x) on which lam and the stage
            ratio are chosen.
        layers: the pruned layers' indices.
        counts: (net, sparsity) -> kept count per pruned layer, measured on `net`, or None for one count over all
            of them.

    Returns:
        A ChitaPlan.

    Raises:
        ValueError: without validation images, or for a network too large for G to hold MIN_GRADIENTS rows.
    """
    if x_val is None or y_val is None or not len(x_val):
        raise ValueError("chita chooses its ridge and stages on validation images: use calibration()'s sample")
    p = sum(net.layers[i].kernel.size for i in layers)
    n = min(GRADIENTS, MAX_ENTRIES // p, len(x))
    if n < MIN_GRADIENTS:
        raise ValueError(
            f"chita holds {MIN_GRADIENTS}+ per-example gradients of all {p:,} pruned weights, too many for memory "
            f"(at most {MAX_ENTRIES // MIN_GRADIENTS:,} weights); use obs for this network"
        )
    batch = max(1, min(BATCH, len(x) // n))
    return ChitaPlan(
        net, tuple(layers), counts, x[: n * batch], np.asarray(y)[: n * batch], x_val, np.asarray(y_val), batch
    )
