"""Inference engines that turn sparsity into speed: dense, shrunk (unit pruning) and sparse (weight pruning).

- **dense**: the pruned network run as dense matrices (`Network.logits`, one BLAS matmul per layer); the
  baseline every speed-up is measured against.
- **shrunk**: dead units physically removed (`shrink`): a smaller dense network with the same logits.
  Unit pruning kills whole units, so this is where unit pruning becomes speed (and a smaller .keras).
- **sparse**: the shrunk network's kernels as CSR, run by numba: a tile kernel for batches of 16 rows or
  more, a row kernel below that.

Why numba, and why these kernels. scipy's CSR product is far from the ideal at batch 10,000 (0.05x dense at
0 %, at most 2.8x even at 99 %): it streams the whole activation matrix through memory once per layer.
The tile kernel runs *all* layers on a tile of 64 input rows whose activations, held as (units, 64), stay
in cache; each kept weight then costs four 16-lane FMAs on contiguous data, and tiles run in parallel.
The row kernel (batch 1) pushes each nonzero input along its kept weights, so it also skips the zero
pixels and the ReLU zeros. numba is a well-kept compiler and already a pinned dependency (no C toolchain
at install time); `cache=True` keeps its ~5 s compile to the first run on a machine. What carries the speed:

- LLVM's SLP vectorizer, not its loop vectorizer: NUMBA_SLP_VECTORIZE=1 and NUMBA_LOOP_VECTORIZE=0 (set
  below, before numba is imported; a user's own setting wins). With numba's defaults it is 3-10x slower.
- One scalar accumulator per lane. LLVM cannot prove that an accumulator *array* does not alias the
  activations, so it would load and store it for every weight and vectorize nothing (0.6x dense at 90 %
  instead of 3-4x); 64 scalars live in four registers. The tile kernel's source is therefore generated
  from a template (one line per lane) and compiled under this file's name, so numba's cache works for it.
- A second core that is free: OpenBLAS's workers spin for ~80 ms after each dense matmul by default, so
  a sparse call right after a dense one ran on one core (4x instead of 7x dense at 95 %). obd/__init__.py
  sets OPENBLAS_THREAD_TIMEOUT before numpy loads; import obd before numpy to get it.
- Unsigned indices and slices counted from 0, so numba emits no negative-index checks in the inner loops,
  and branch-free lists of nonzero inputs in the row kernel (an `if x != 0` mispredicts half the time).

`build_engine(net, "auto", batch_size)` picks by density thresholds measured on the 2-core machine this is
built on (`SPARSE_MAX_DENSITY`), with a margin, so "auto" is never slower than dense. `bench` times each
engine against dense in one run; `python -m obd bench` and benchmarks/speed.py print and save the records.
"""

from __future__ import annotations

import functools
import io
import os
import statistics
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Protocol, Sequence

os.environ.setdefault("NUMBA_SLP_VECTORIZE", "1")
os.environ.setdefault("NUMBA_LOOP_VECTORIZE", "0")

import numpy as np  # noqa: E402

from .network import InputNorm, Network  # noqa: E402
from .pruning import check_mode, check_sparsity, prune, rank  # noqa: E402

KINDS = ("auto", "dense", "sparse", "shrunk")
LANES = 64  # batch rows per tile: (1000 units x 64) float32 activations = 256 KB, cache-resident
ROW_BY_ROW = 16  # smaller batches run row by row on one thread: a tile of 64 would be mostly padding
# "auto" runs the sparse engine when at most this fraction of the shrunk kernels' entries is kept, by the
# smallest batch size each threshold applies from. Measured by benchmarks/thresholds.py on the default 4x1000
# net, 2 cores, sparse vs dense, two runs (after OPENBLAS_THREAD_TIMEOUT stopped OpenBLAS's spinning threads
# from taking numba's core): batch 1 1.24/1.38x at 25 % kept; batch 4 1.27/1.35x at 25 %; batch 8 1.38/1.07x
# at 20 %, 2.33/1.69x at 10 %; batch 16 1.50/1.23x and batch 32 1.64/1.41x at 10 %; batch 64 1.78/1.23x at 20 %;
# batch 128 2.06/1.77x, 256 1.39/1.69x, 1,000 1.65/1.29x, 10,000 1.30/1.68x at 30 %. Each threshold is the
# largest kept fraction at which both runs were at least 1.2x faster, so "auto" is not slower than dense.
SPARSE_MAX_DENSITY = {1: 0.25, 8: 0.1, LANES: 0.2, 2 * LANES: 0.3}
# Below this many weights (after shrinking) the dense matmuls are so small that the tile kernel's fixed costs
# weigh more: on the tiny preset (784-128-64-10, 110k weights) sparse vs dense measured 0.67x at 20 % kept and
# 1.0x at 10 % (batch 100), 1.5x at 5 %. Batches of tiles there go sparse only at SMALL_NET_MAX_DENSITY.
SMALL_NET_WEIGHTS = 1_000_000
SMALL_NET_MAX_DENSITY = 0.05


def _alive_units(net: Network) -> list[np.ndarray]:
    """Per layer, a bool (units,) mask of units that can change the logits; the output layer keeps all."""
    layers = net.layers
    alive = [np.ones(layer.units, dtype=bool) for layer in layers]
    fed = np.ones(layers[0].inputs, dtype=bool)  # (inputs,)
    for i, layer in enumerate(layers[:-1]):  # dead: nothing live reaches it and no bias (ReLU(0) = 0)
        has_input = (layer.kernel[fed] != 0).any(axis=0)
        alive[i] = has_input if layer.bias is None else has_input | (layer.bias != 0)
        fed = alive[i]
    for i in range(len(layers) - 2, -1, -1):  # unused: no kept weight carries it to a live unit
        alive[i] &= (layers[i + 1].kernel[:, alive[i + 1]] != 0).any(axis=1)
        if not alive[i].any():
            alive[i][0] = True  # a layer needs one unit; this one outputs 0 or is ignored, so logits hold
    return alive


def shrink(net: Network) -> Network:
    """Remove units that cannot change the logits: a smaller dense network with the same logits.

    A hidden unit goes when its kernel column (over live inputs) is all zero and its bias is 0 or None (it
    outputs exactly 0, as unit-pruned units do), or when no kept weight connects it to a live unit of the
    next layer; its column and bias, and the next layer's matching row, are removed. Input features and
    output classes are never removed.

    Args:
        net: a (pruned) network; not changed.

    Returns:
        A Network with the same layer names and activations and fewer (or as many) units per hidden layer.
    """
    alive = _alive_units(net)
    layers, rows = [], np.ones(net.layers[0].inputs, dtype=bool)
    for layer, cols in zip(net.layers, alive):
        kernel = layer.kernel[np.ix_(rows, cols)]  # (live inputs, live units)
        layers.append(layer.replace(kernel, None if layer.bias is None else layer.bias[cols]))
        rows = cols
    return net.with_layers(tuple(layers))


def _count_nonzero(net: Network) -> int:
    return sum(int(np.count_nonzero(k)) for k in net.kernels())


def nonzero_weights(net: Network) -> int:
    """Multiply-adds per input row that a perfect engine needs: the nonzero weights of `shrink(net)`."""
    return _count_nonzero(shrink(net))


def ideal_speedup(net_dense: Network, net_pruned: Network) -> float:
    """FLOP-proportional speed-up: the dense net's weights / the pruned net's `nonzero_weights`."""
    return net_dense.n_weights / max(nonzero_weights(net_pruned), 1)


class Engine(Protocol):
    """Something that computes a network's logits."""

    name: str

    def logits(self, x: np.ndarray) -> np.ndarray:
        """x: (n, inputs) -> (n, classes) float32 logits."""
        ...


@dataclass(frozen=True)
class DenseEngine:
    """Dense matmuls (BLAS) on a network: "dense" on the pruned net, "shrunk" on `shrink(net)`."""

    net: Network
    name: str = "dense"

    def logits(self, x: np.ndarray) -> np.ndarray:
        return self.net.logits(x)


Csr = tuple[np.ndarray, np.ndarray, np.ndarray]  # indptr (rows + 1,) int64, indices (nnz,) uint32, data (nnz,)


@dataclass(frozen=True, eq=False)
class SparseEngine:
    """CSR kernels run by numba (see the module docstring). Build it with `sparse_engine`.

    inputs: (used inputs,) the input features some kept first-layer weight reads; sizes: (layers + 1,)
    units per layer, the first being len(inputs); by_unit: all layers' kernels.T as one CSR (a row lists a
    unit's kept weights, for the tile kernel); by_input: all layers' kernels as one CSR (a row lists what an
    input feeds, for the row kernel); bias: (sum of units,) float32, zeros where there is none;
    relu: (layers,) bool.
    """

    inputs: np.ndarray
    sizes: np.ndarray
    by_unit: Csr
    by_input: Csr
    bias: np.ndarray
    relu: np.ndarray
    n_inputs: int
    name: str = "sparse"
    input_norm: InputNorm | None = None  # the network's input transform, applied to x first

    def logits(self, x: np.ndarray) -> np.ndarray:
        x = np.ascontiguousarray(np.asarray(x, dtype=np.float32).reshape(len(x), -1)).view()  # (n, inputs)
        x.flags.writeable = False  # one numba signature, one compile, whether or not the caller's x is writable
        if x.shape[1] != self.n_inputs:
            raise ValueError(f"the network takes {self.n_inputs} inputs per row, got {x.shape[1]}")
        if self.input_norm is not None:
            x = self.input_norm.apply(x)  # (n, inputs), a new C-contiguous array
            x.flags.writeable = False
        out = np.empty((len(x), int(self.sizes[-1])), dtype=np.float32)  # (n, classes)
        tiles, rows = _kernels()
        if len(x) >= ROW_BY_ROW:
            width = int(self.sizes.max())
            buffers = np.empty((_threads(), 2, width, LANES), np.float32)  # (threads, a|b, units, lanes)
            tiles(x, self.inputs, self.sizes, *self.by_unit, self.bias, self.relu, out, buffers)
        elif len(x):
            rows(x, self.inputs, self.sizes, *self.by_input, self.bias, self.relu, out)
        return out


def _csr(matrices: Sequence[np.ndarray]) -> Csr:
    """One CSR of several matrices stacked row-wise (offsets in indptr are into the shared indices/data)."""
    indptr, indices, data, start = [np.zeros(1, np.int64)], [], [], 0
    for m in matrices:
        rows, cols = np.nonzero(m)
        indptr.append(start + np.cumsum(np.bincount(rows, minlength=m.shape[0])))
        indices.append(cols.astype(np.uint32))  # unsigned: numba then skips negative-index checks
        data.append(m[rows, cols].astype(np.float32))
        start += len(rows)
    return np.concatenate(indptr).astype(np.int64), np.concatenate(indices), np.concatenate(data)


def sparse_engine(net: Network) -> SparseEngine:
    """Pack `shrink(net)` into CSR arrays for the numba kernels (unused input features are skipped)."""
    net = shrink(net)
    first = net.layers[0].kernel
    inputs = np.flatnonzero((first != 0).any(axis=1))  # (used inputs,)
    kernels = [first[inputs]] + net.kernels()[1:]  # (inputs, units) each
    biases = [np.zeros(l.units, np.float32) if l.bias is None else l.bias for l in net.layers]
    return SparseEngine(
        inputs=inputs.astype(np.int64),
        sizes=np.array([len(inputs)] + [l.units for l in net.layers], dtype=np.int64),
        by_unit=_csr([k.T for k in kernels]),
        by_input=_csr(kernels),
        bias=np.concatenate(biases).astype(np.float32),
        relu=np.array([l.activation == "relu" for l in net.layers]),
        n_inputs=net.layers[0].inputs,
        input_norm=net.input_norm,
    )


_TILE_KERNEL = """
def sparse_tiles(x, inputs, sizes, indptr, indices, data, bias, relu, out, buffers):
    n = x.shape[0]
    for tile in prange((n + LANES - 1) // LANES):
        # per-thread buffers: a fresh 256 KB array per tile would be a fresh mmap, page faults and all
        a = buffers[get_thread_id(), 0]  # (units, lanes): this layer's input, lane = batch row
        b = buffers[get_thread_id(), 1]  # (units, lanes): its output
        start = tile * LANES
        rows = min(LANES, n - start)  # lanes past `rows` compute on zeros and are never written out
        for r in range(rows):  # row by row: x is read in order, which the prefetcher follows
            for q in range(sizes[0]):
                a[q, r] = x[start + r, inputs[q]]
        for q in range(sizes[0]):
            for r in range(rows, LANES):
                a[q, r] = 0.0
        unit0 = 0  # first unit (row of by_unit, entry of bias) of this layer
        for layer in range(sizes.shape[0] - 1):
            floor = np.float32(0.0) if relu[layer] else np.float32(-np.inf)
            for j in range(sizes[layer + 1]):
                bj = bias[unit0 + j]
{init}
                # slices, so the loop index counts from 0 and numba drops its negative-index checks
                cols = indices[indptr[unit0 + j]:indptr[unit0 + j + 1]]
                weights = data[indptr[unit0 + j]:indptr[unit0 + j + 1]]
                for p in range(cols.shape[0]):
                    i = cols[p]
                    w = weights[p]
{update}
{store}
            unit0 += sizes[layer + 1]
            a, b = b, a
        for r in range(rows):
            for k in range(sizes[-1]):
                out[start + r, k] = a[k, r]
"""


def _tile_kernel_source() -> str:
    def lines(template: str, indent: int) -> str:
        return "\n".join(" " * indent + template.format(c=c) for c in range(LANES))

    return _TILE_KERNEL.replace("LANES", str(LANES)).format(
        init=lines("s{c} = bj", 16),
        update=lines("s{c} += w * a[i, {c}]", 20),
        store=lines("b[j, {c}] = max(s{c}, floor)", 16),
    )


def _sparse_rows(x, inputs, sizes, indptr, indices, data, bias, relu, out):  # pragma: no cover (numba)
    """One row at a time (small batches), pushing each nonzero input along its kept weights: a ReLU net's
    activations and MNIST's pixels are mostly zero, so most rows of the kernels are skipped."""
    width = sizes.max()
    a = np.empty(width, np.float32)  # (units,) this layer's input
    b = np.empty(width, np.float32)  # (units,) its output
    active = np.empty(width, np.int64)  # (units,) indices of a's nonzero entries, first `count` valid
    for row in range(x.shape[0]):
        for q in range(sizes[0]):
            a[q] = x[row, inputs[q]]
        input0 = 0  # first row of by_input of this layer
        unit0 = 0  # first bias entry of this layer
        for layer in range(sizes.shape[0] - 1):
            units = sizes[layer + 1]
            for j in range(units):
                b[j] = bias[unit0 + j]
            count = 0
            for i in range(sizes[layer]):  # branch-free: "if a[i] != 0" mispredicts on every other input
                active[count] = i
                count += a[i] != 0
            for t in range(count):
                i = active[t]
                v = a[i]
                cols = indices[indptr[input0 + i]:indptr[input0 + i + 1]]  # slices count from 0, so numba
                weights = data[indptr[input0 + i]:indptr[input0 + i + 1]]  # skips negative-index checks
                for p in range(cols.shape[0]):
                    b[cols[p]] += v * weights[p]
            if relu[layer]:
                for j in range(units):
                    b[j] = max(b[j], np.float32(0.0))
            input0 += sizes[layer]
            unit0 += units
            a, b = b, a
        for k in range(sizes[-1]):
            out[row, k] = a[k]


@functools.cache
def _kernels() -> tuple[Callable, Callable]:
    """(tile kernel, row kernel), compiled (or loaded from numba's on-disk cache) on first use.

    Compiling lazily keeps `import obd.engines` cheap (numba itself is imported here).
    """
    import numba

    options = dict(cache=True, nogil=True, boundscheck=False, fastmath={"contract"})
    namespace = {"__name__": __name__, "np": np, "prange": numba.prange, "get_thread_id": numba.get_thread_id}
    exec(compile(_tile_kernel_source(), __file__, "exec"), namespace)  # this file's name: numba can cache it
    return numba.njit(parallel=True, **options)(namespace["sparse_tiles"]), numba.njit(**options)(_sparse_rows)


def _threads() -> int:
    import numba

    return numba.get_num_threads()


def choose_kind(net: Network, batch_size: int) -> str:
    """The engine "auto" picks: sparse when few enough weights are kept, else shrunk when units died, else dense.

    Args:
        net: the (pruned) network.
        batch_size: rows per `logits` call the engine will see.

    Returns:
        "sparse", "shrunk" or "dense".
    """
    threshold = SPARSE_MAX_DENSITY[max(b for b in SPARSE_MAX_DENSITY if b <= max(batch_size, 1))]
    small = shrink(net)
    if small.n_weights < SMALL_NET_WEIGHTS and batch_size >= ROW_BY_ROW:
        threshold = min(threshold, SMALL_NET_MAX_DENSITY)
    if _count_nonzero(small) <= threshold * small.n_weights:
        return "sparse"
    return "shrunk" if small.sizes != net.sizes else "dense"


def build_engine(net: Network, kind: str = "auto", batch_size: int = 10_000) -> Engine:
    """An engine computing `net`'s logits.

    Args:
        net: the (pruned) network.
        kind: "dense", "shrunk", "sparse", or "auto" (`choose_kind`).
        batch_size: the batch size it will run at (only "auto" uses it).

    Returns:
        An Engine; its `name` is the kind it runs ("auto" resolves to one of the others).

    Raises:
        ValueError: for an unknown kind.
    """
    if kind not in KINDS:
        raise ValueError(f"engine kind must be one of {', '.join(KINDS)}; got {kind!r}")
    if kind == "auto":
        kind = choose_kind(net, batch_size)
    if kind == "sparse":
        return sparse_engine(net)
    if kind == "shrunk":
        return DenseEngine(shrink(net), "shrunk")
    return DenseEngine(net)


def time_engines(engines: Sequence[Engine], x: np.ndarray, repeats: int = 5) -> list[float]:
    """Median wall time of each engine's `logits(x)` in milliseconds, calls interleaved round-robin.

    Interleaving makes every engine see the same machine load (other processes share the 2 cores), so
    ratios between them stay honest when absolute times drift. One untimed warm-up call each comes first.

    Args:
        engines: the engines to compare.
        x: (n, inputs) input rows.
        repeats: timed calls per engine.

    Returns:
        Median milliseconds per engine, in the order given.
    """
    for engine in engines:
        engine.logits(x)  # first calls pay for compiling, allocation and thread start-up
    times: list[list[float]] = [[] for _ in engines]
    for _ in range(repeats):
        for engine, t in zip(engines, times):
            start = time.perf_counter()
            engine.logits(x)
            t.append(time.perf_counter() - start)
    return [1000 * statistics.median(t) for t in times]


def time_engine(engine: Engine, x: np.ndarray, repeats: int = 5) -> float:
    """Median wall time of `engine.logits(x)` in milliseconds, after one untimed warm-up call."""
    return time_engines([engine], x, repeats)[0]


@dataclass(frozen=True)
class Latency:
    """One measured latency of a network: dense against the engine "auto" runs, in the same run."""

    dense_ms: float
    engine: str  # the kind that ran: "dense", "shrunk" or "sparse"
    engine_ms: float

    @property
    def speedup(self) -> float:
        return self.dense_ms / self.engine_ms


def latency(net: Network, x: np.ndarray, repeats: int = 3) -> Latency:
    """Time `net` on the batch `x` with the dense engine and the one "auto" picks for that batch size.

    The thresholds behind "auto" were measured on one machine; another machine, or one busy with other work,
    can move the break-even. So the pick is checked here: if it measures slower than dense, dense is what
    auto runs and what is reported, and the number shown is never a slow-down that auto chose.

    Args:
        net: the (pruned) network.
        x: (n, inputs) the batch to time.
        repeats: timed calls per engine (medians).

    Returns:
        A Latency; `engine` is "dense" when nothing faster applies or the pick measured slower.
    """
    engine = build_engine(net, "auto", len(x))
    if engine.name == "dense":  # nothing faster applies: one timing serves both
        ms = time_engine(engine, x, repeats)
        return Latency(ms, "dense", ms)
    dense_ms, engine_ms = time_engines([build_engine(net, "dense"), engine], x, repeats)
    if engine_ms > dense_ms:
        return Latency(dense_ms, "dense", dense_ms)
    return Latency(dense_ms, engine.name, engine_ms)


MODE_ENGINES = {"weight": ("dense", "sparse"), "unit": ("dense", "shrunk")}  # what each pruning can use


def bench(
    net: Network,
    x: np.ndarray,
    modes: Sequence[str] = ("weight", "unit"),
    sparsities: Sequence[float] = (0.0, 0.5, 0.8, 0.9, 0.95, 0.99),
    batches: Sequence[int] = (1, 10_000),
    repeats: int = 5,
    prune_output: bool = False,
    progress: Callable[[str], None] | None = None,
) -> list[dict]:
    """Time every engine of each mode against dense on the same pruned network, in one run.

    Args:
        net: the unpruned network.
        x: input rows (at least max(batches) of them; MNIST test images for honest first-layer sparsity).
        modes: pruning modes; weight pruning runs dense and sparse, unit pruning dense and shrunk.
        sparsities: fractions in [0, 1].
        batches: rows per call.
        repeats: timed calls per engine (the median is kept); ten times as many below LANES rows.
        prune_output: prune the logits layer too.
        progress: called with a one-line description before each (mode, sparsity).

    Returns:
        Records {"engine", "mode", "sparsity", "batch", "ms", "speedup", "ideal_speedup"}; speedup is
        dense ms / engine ms (1.0 for dense), ideal_speedup is `ideal_speedup(net, pruned)`.

    Raises:
        ValueError: for an unknown mode, a sparsity outside [0, 1], a batch < 1 or too few rows in x.
    """
    modes = [check_mode(m) for m in modes]
    sparsities = [check_sparsity(k) for k in sparsities]
    if any(int(b) < 1 or int(b) > len(x) for b in batches):
        raise ValueError(f"batch sizes must be between 1 and the {len(x)} rows given; got {list(batches)}")
    records = []
    for mode in modes:
        ranking = rank(net, mode, prune_output)
        for k in sparsities:
            if progress:
                progress(f"{mode} pruning at {100 * k:g} %")
            pruned = prune(net, k, ranking=ranking).net
            ideal = ideal_speedup(net, pruned)
            engines = [build_engine(pruned, kind) for kind in MODE_ENGINES[mode]]
            for batch in batches:
                calls = repeats if batch >= LANES else 10 * repeats  # small batches: cheap, and noisier
                ms = time_engines(engines, x[: int(batch)], calls)
                records += [{"engine": e.name, "mode": mode, "sparsity": k, "batch": int(batch), "ms": t,
                             "speedup": ms[0] / t, "ideal_speedup": ideal} for e, t in zip(engines, ms)]
    return records


def save_shrunk(net: Network, path: str | os.PathLike) -> Path:
    """Save `shrink(net)` as a (smaller) .keras model, atomically.

    Args:
        net: the (pruned) network.
        path: destination ending in .keras.

    Returns:
        The destination path.

    Raises:
        ValueError: when the path does not end in .keras.
    """
    from .model import save_model  # temp file + os.replace, no optimizer state
    from .network import to_keras

    return save_model(to_keras(shrink(net)), path)


def save_sparse(net: Network, path: str | os.PathLike) -> Path:
    """Save `shrink(net)` as compressed CSR arrays (np.savez_compressed), atomically; for size reports.

    Per layer i: the CSR of its kernel.T (a row per unit) as i_indptr, i_indices (uint32), i_data (float32);
    i_shape (the kernel's), and i_bias when it has one.

    Args:
        net: the (pruned) network.
        path: destination (written as given, conventionally ending in .npz).

    Returns:
        The destination path.
    """
    arrays = {}
    for i, layer in enumerate(shrink(net).layers):
        arrays[f"{i}_indptr"], arrays[f"{i}_indices"], arrays[f"{i}_data"] = _csr([layer.kernel.T])
        arrays[f"{i}_shape"] = np.array(layer.kernel.shape)
        if layer.bias is not None:
            arrays[f"{i}_bias"] = layer.bias
    buffer = io.BytesIO()
    np.savez_compressed(buffer, **arrays)
    p = Path(path).expanduser()
    p.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=p.parent, prefix=f".{p.stem}.", suffix=".tmp.npz")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(buffer.getvalue())
        os.replace(tmp, p)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    return p


def table(records: Sequence[dict]) -> str:
    """`bench` records as a text table, one row per engine: ms, speed-up vs dense, ideal, fraction of ideal."""
    head = f"{'mode':<7}{'sparsity':>9}{'batch':>7}  {'engine':<7}{'ms':>10}{'speedup':>9}{'ideal':>8}{'of ideal':>9}"
    lines = [head]
    for r in records:
        reached = 100 * r["speedup"] / r["ideal_speedup"]
        lines.append(f"{r['mode']:<7}{100 * r['sparsity']:>8g}%{r['batch']:>7}  {r['engine']:<7}{r['ms']:>10.3f}"
                     f"{r['speedup']:>8.2f}x{r['ideal_speedup']:>7.1f}x{reached:>8.0f}%")
    return "\n".join(lines)
