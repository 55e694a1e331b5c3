"""Inference engines that turn sparsity into speed: dense, shrunk (unit pruning) and sparse (weight pruning).

- **dense**: the pruned network run as dense matrices (`Network.logits`, one BLAS matmul per layer); the
  baseline every speed-up is measured against.
- **shrunk**: dead units physically removed (`shrink`): a smaller dense network with the same logits (run
  with layers narrower than 16 units padded to 16, which OpenBLAS multiplies faster). Batches of 2,048 rows
  or more run in row tiles, each through every layer, on every core at once with OpenBLAS single-threaded
  (`ShrunkEngine`): 90 % of units 22-24x -> 25-26x dense, 99 % 68-70x -> 86-101x (batch 10,000, loaded).
  A net of at most 16 units a layer (99 % of units: 784-10-10-10-10-10) runs batches of 1,000 rows or more in
  one numba kernel that reads each row of x once and takes it through every layer (`NarrowNet`): 99 % 107-115x
  dense in four quiet runs of benchmarks/speed.py (83-91x in row tiles before, loaded).
  In the row tiles, a batch of mostly zero inputs (MNIST: 81 % of pixels) runs its first layer in a numba
  kernel that skips the zeros (`SparseInput`): 90 % of units 22-29x -> 28-35x dense on an AVX2 machine.
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
- x's rows go into a tile's lanes 16 inputs at a time, so the 16 lines of the tile written to stay in L1 (at
  99 % of weights this transpose and reading x were a third of the time). Each against dense by `measure`,
  3 rounds, load 2.5-3.4: 99 % 13.7-14.2x -> 17.1-17.8x, 95 % 4.9-5.2x -> 5.4-5.5x.

`build_engine(net, "auto", batch_size)` picks by density thresholds measured on the 2-core machine this is
built on (`SPARSE_MAX_DENSITY`), with a margin, so "auto" is never slower than dense. `bench` times each
engine against dense in one run; `python -m obd bench` and benchmarks/speed.py print and save the records.
"""

from __future__ import annotations

import contextlib
import ctypes
import dataclasses
import functools
import io
import itertools
import math
import os
import platform
import statistics
import tempfile
import textwrap
import threading
import time
from dataclasses import dataclass
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Callable, Protocol, Sequence

os.environ.setdefault("NUMBA_SLP_VECTORIZE", "1")
os.environ.setdefault("NUMBA_LOOP_VECTORIZE", "0")

import numpy as np  # noqa: E402

from .network import InputNorm, Network  # noqa: E402
from .pruning import check_mode, check_sparsity, live_units, prune, rank  # noqa: E402

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
# Re-measured 2026-11-27 (issue 14), a quiet run and one at load 4: at 30 % kept sparse had fallen behind dense
# at batch 256 (0.83/0.83x), 1,000 (0.74/0.75x) and 10,000 (0.80/0.80x), and at batch 64 20 % kept read 0.80x
# (quiet). The same rule over two quiet runs gives: batch 1 1.79/1.85x and 4 1.37/1.26x at 25 %; 8 1.20/1.40x at
# 10 %; 16 2.01/1.37x and 32 2.23/2.04x at 5 % (at 10 %: 1.12/1.06x and 1.66/1.01x); 64 1.82/1.40x at 15 %; 128
# 1.43/1.41x and 256 1.64/1.25x at 20 %; 1,000 2.10/1.53x and 10,000 1.62/2.02x at 15 %.
SPARSE_MAX_DENSITY = {1: 0.25, 8: 0.1, ROW_BY_ROW: 0.05, LANES: 0.15, 2 * LANES: 0.2, 1000: 0.15}
# Below this many weights (after shrinking) the dense matmuls are so small that the tile kernel's fixed costs
# weigh more: on the tiny preset (784-128-64-10, 110k weights) sparse vs dense measured 0.67x at 20 % kept and
# 1.0x at 10 % (batch 100), 1.5x at 5 %. Batches of tiles there go sparse only at SMALL_NET_MAX_DENSITY.
SMALL_NET_WEIGHTS = 1_000_000
SMALL_NET_MAX_DENSITY = 0.05
# The shrunk engine pads hidden layers narrower than this with zero units: OpenBLAS's AVX-512 sgemm works on 16
# columns at a time, and a narrow product pays for packing its whole input anyway. x @ W1 at 99 % of units
# (10,000 x 784 @ 784 x 10), min of 25-40 calls, on a loaded 2-core machine: 4.10 -> 3.27 ms and 5.97 -> 4.92 ms
# on one thread, 8.9 -> 7.5 ms of CPU on two. Padded units have zero weights and no bias: they output 0 and
# feed nothing, so the logits are unchanged.
PAD_UNITS = 16
# The shrunk engine runs batches of at least TILE_MIN_BATCH rows in row tiles of at most TILE_ROWS (equal tiles,
# a multiple of the cores in number), each through every layer, on every core at once with OpenBLAS held
# single-threaded (ShrunkEngine). Against plain matmuls on the same padded net, default net, batch 10,000, each
# timed by `measure` against dense (so x comes from memory after dense's matmuls, as in every reading), 2 cores
# under load 4.4-5.4 (dense 0.43-0.53 s): 99 % of units 68-70x -> 86-101x dense (tiles of 1,024, 2,500 and
# 5,000 alike within noise); 90 % 22.3-23.6x -> 24.7-26.5x. Reading x alone once there took 3.2 ms (172x), the
# floor at 99 %. A loop that times candidates one after another flatters all but the first (x stays in cache):
# it showed 130x. Smaller batches (load 4.4): batch 1,000 at 99 % 0.62 ms plain vs 0.91 ms in tiles; 2,000:
# 1.58 vs 1.24 ms (90 %: 2.83 vs 2.57 ms). Wider nets gain too (50 % 3.1 -> 3.5x, the unpruned net 1.1x).
TILE_MIN_BATCH = 2048
TILE_ROWS = 2500
# A batch of at least NARROW_MIN_BATCH rows on a shrunk net whose layers all have at most NARROW_UNITS units runs
# in one numba kernel instead (`NarrowNet`, which gives the figures). Against the plain matmuls and row tiles
# above, each call right after a dense one (as `measure` times them), quiet machine, medians of 15: at 99 % of
# units (10 each) 0.57x at batch 100, 0.66x at 256 (waking numba's threads after the dense call costs more than the
# kernel saves), 1.10x at 1,000, 1.48x at 2,048, 1.36x at 10,000; at 97 % (30 each, two chunks of 16) 0.62x, 0.77x,
# 1.09x, 1.25x, 1.10x, but 0.93x at 10,000 with x in cache (called twice in a row), so only one chunk is allowed.
# The row tiles run a shrunk net's first layer in a numba kernel that skips zero inputs (`SparseInput`) when at
# most SPARSE_INPUT_MAX_DENSITY of a batch's inputs are nonzero (MNIST's test images: 19 %). 2,500 rows on one
# thread, quiet 2-core AMD EPYC (AVX2), the kernel against x @ W1 (OpenBLAS), medians of 15: 100 units 3.6 vs 5.5 ms
# at 18 % nonzero, 5.3 vs 5.1 ms at 28 %; 50 units 2.5 vs 3.2 and 3.0 vs 3.3 ms; 200 units 7.7 vs 10.3 and 10.9 vs
# 9.6 ms. Smaller batches keep OpenBLAS: the app's headline latency (batch 100) is unchanged.
SPARSE_INPUT_MAX_DENSITY = 0.22
SPARSE_INPUT_CHUNK = 64  # units per pass over a row's nonzero inputs: 64 scalar accumulators, 8 AVX2 registers
DENSITY_SAMPLE_ROWS = 64  # rows of a batch read to estimate its density of nonzero inputs
NARROW_UNITS = 16
NARROW_MIN_BATCH = 1000
NARROW_CHUNK = 16  # units computed at once: a row's 16 accumulators are two AVX2 registers
# Rows per group (`_narrow_rows`): a row's NARROW_CHUNK accumulators take one AVX-512 register or two AVX2 ones,
# and 8 registers of accumulators hide the FMA latency. On an AVX-512 CPU (32 registers) 8 rows beat 4 by 1.2x; on
# AVX2 (16 registers) 8 rows spill accumulators to the stack (90 stack moves in the kernel against 24): 99 % of
# units, batch 10,000, `python -m obd bench`, three A/B pairs on a 2-core AMD EPYC (Zen 3): 4 rows 151.5, 153.1 and
# 153.3x dense, 8 rows 137.4, 124.5 and 127.0x.
NARROW_ROWS = {"avx512f": 8, "avx2": 4}
NARROW_BLOCK = 256  # rows per parallel task (each allocates its two small buffers once)


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
    alive = live_units(net, keep_one=True)
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


@dataclass(frozen=True, eq=False)
class NarrowNet:
    """A shrunk network whose layers all have at most `NARROW_UNITS` units, packed for the narrow kernel.

    Why: at 99 % of units the shrunk net is 784-10-10-10-10-10, and in `ShrunkEngine`'s row tiles x @ W1 took
    about twice as long as reading x once (31 MB at batch 10,000, from memory after a dense call): OpenBLAS
    packs the whole input for a 10-wide product, in every tiling tried. The kernel (`_narrow_kernel_source`)
    reads each group of `_narrow_rows()` rows of x once and takes them through every layer while they are in L1, a
    chunk of `NARROW_CHUNK` units at a time: each input of each row is one broadcast and two 8-lane FMAs
    against the chunk's weights (W1's 784 x 16 chunk, 50 KB, stays in L2), on every core (prange over blocks
    of `NARROW_BLOCK` rows). At 99 % of units, batch 10,000, quiet machine, medians of 15 calls: right after a
    dense call 3.1 ms against 4.2 ms in row tiles (reading x alone: 2.9 ms, measured before); with x in cache
    2.9 against 3.2 ms: the FMAs (6/16 of them on padding) are most of the time, hidden behind the reads only in
    part. Dot products with lanes over the inputs would need no padding, but LLVM's SLP vectorizer packed them
    across units, with gathers (20 ms). numba compiles the kernel in ~20 s, once per machine (`cache=True`).
    `python -m benchmarks.speed`, batch 10,000, quiet 2-core machine, four runs: 99 % of units 106.8x, 115.0x,
    111.6x and 110.2x dense (3.1-4.3 ms against dense's 354-457 ms); the row tiles read 83-91x (loaded).

    sizes: (layers + 1,) units per layer, inputs first; widths: (layers,) units padded to a multiple of
    NARROW_CHUNK; starts: (layers,) where each layer begins in `weights`; weights: per layer, per chunk,
    (1 + inputs, NARROW_CHUNK) float32: the chunk's bias (zeros where there is none), then a row per input
    (zeros for padded units, which so output 0 and feed nothing); relu: (layers,) bool.
    """

    sizes: np.ndarray
    widths: np.ndarray
    starts: np.ndarray
    weights: np.ndarray
    relu: np.ndarray

    def logits(self, x: np.ndarray) -> np.ndarray:
        """x: (n, inputs) float32, the input transform applied -> (n, classes) float32 logits."""
        x = np.ascontiguousarray(x).view()  # (n, inputs)
        x.flags.writeable = False  # one numba signature, one compile, whether or not the caller's x is writable
        out = np.empty((len(x), int(self.sizes[-1])), dtype=np.float32)  # (n, classes)
        _narrow_kernel()(x, self.sizes, self.widths, self.starts, self.weights, self.relu, out)
        return out


def _is_narrow(net: Network) -> bool:
    """Whether every layer of `net` (a shrunk one) has at most `NARROW_UNITS` units: the narrow kernel takes it."""
    return max(net.sizes[1:]) <= NARROW_UNITS


def narrow_net(net: Network) -> NarrowNet | None:
    """`net` (a shrunk one) packed for the narrow kernel, or None when a layer has more than `NARROW_UNITS`."""
    if not _is_narrow(net):
        return None
    widths = [-(-layer.units // NARROW_CHUNK) * NARROW_CHUNK for layer in net.layers]
    chunks = []
    for layer, width in zip(net.layers, widths):
        packed = np.zeros((1 + layer.inputs, width), np.float32)  # (bias + inputs, padded units)
        packed[1:, : layer.units] = layer.kernel
        if layer.bias is not None:
            packed[0, : layer.units] = layer.bias
        by_chunk = packed.reshape(1 + layer.inputs, width // NARROW_CHUNK, NARROW_CHUNK).transpose(1, 0, 2)
        chunks.append(by_chunk.ravel())  # (chunks, 1 + inputs, NARROW_CHUNK), flat
    return NarrowNet(
        sizes=np.array(net.sizes, dtype=np.int64),
        widths=np.array(widths, dtype=np.int64),
        starts=np.cumsum([0] + [len(c) for c in chunks[:-1]]).astype(np.int64),
        weights=np.concatenate(chunks),
        relu=np.array([layer.activation == "relu" for layer in net.layers]),
    )


@dataclass(frozen=True, eq=False)
class SparseInput:
    """A network's first layer packed for the sparse-input kernel, its input transform folded in.

    Why: at 90 % of units the shrunk default net is 784-100-100-100-100-10, and x @ W1 is three quarters of its
    multiply-adds, while 81 % of MNIST's pixels are zero. The kernel (`_sparse_input_source`) lists a row's
    nonzero inputs (branch-free), then adds each one's weights into `SPARSE_INPUT_CHUNK` scalar accumulators a
    chunk of units at a time (LLVM's SLP vectorizer packs them into AVX2 registers; W1's 784 x 64 chunk, 200 KB,
    stays in L2), so a row costs its nonzero inputs, not all of them. Exact for any input; faster only for sparse
    ones (`SPARSE_INPUT_MAX_DENSITY`). The transform x * scale + offset is folded into the weights and bias
    (x @ (scale W) + offset @ W), so zeros stay zeros.

    weights: (chunks, inputs, SPARSE_INPUT_CHUNK) float32, zeros for padded units; bias: (chunks *
    SPARSE_INPUT_CHUNK,) float32, zeros where there is none; units: the layer's units; relu: its activation.
    """

    weights: np.ndarray
    bias: np.ndarray
    units: int
    relu: bool

    def __call__(self, x: np.ndarray) -> np.ndarray:
        """x: (n, inputs) float32 raw rows (no transform applied) -> (n, units) float32, the layer's output."""
        x = np.ascontiguousarray(x, dtype=np.float32).view()  # (n, inputs)
        x.flags.writeable = False  # one numba signature, as in NarrowNet
        out = np.empty((len(x), self.units), dtype=np.float32)  # (n, units)
        _sparse_input_kernel()(x, self.weights, self.bias, self.relu, self.units, out)
        return out


def sparse_input(net: Network) -> SparseInput:
    """`net`'s first layer, with its input transform, packed for the sparse-input kernel."""
    layer = net.layers[0]
    kernel = layer.kernel.astype(np.float64)  # (inputs, units)
    bias = np.zeros(layer.units) if layer.bias is None else layer.bias.astype(np.float64)  # (units,)
    if net.input_norm is not None:
        norm = net.input_norm
        bias = bias + np.broadcast_to(norm.offset, (layer.inputs,)).astype(np.float64) @ kernel
        kernel = kernel * np.broadcast_to(norm.scale, (layer.inputs,)).astype(np.float64)[:, None]
    width = -(-layer.units // SPARSE_INPUT_CHUNK) * SPARSE_INPUT_CHUNK
    packed = np.zeros((layer.inputs, width), np.float32)  # (inputs, padded units)
    packed[:, : layer.units] = kernel
    padded_bias = np.zeros(width, np.float32)
    padded_bias[: layer.units] = bias
    by_chunk = packed.reshape(layer.inputs, width // SPARSE_INPUT_CHUNK, SPARSE_INPUT_CHUNK).transpose(1, 0, 2)
    return SparseInput(np.ascontiguousarray(by_chunk), padded_bias, layer.units, layer.activation == "relu")


def input_density(x: np.ndarray) -> float:
    """The fraction of nonzero entries in up to `DENSITY_SAMPLE_ROWS` rows spread over the batch x (n, inputs)."""
    sample = x[:: max(1, len(x) // DENSITY_SAMPLE_ROWS)][:DENSITY_SAMPLE_ROWS]  # (rows, inputs)
    return np.count_nonzero(sample) / max(sample.size, 1)


def _skips_zero_inputs(narrow: bool, x: np.ndarray) -> bool:
    """Whether `ShrunkEngine` runs the first layer of the batch x (n, inputs) in the sparse-input kernel: in row
    tiles (a net too wide for the narrow kernel, a batch of `TILE_MIN_BATCH` rows or more, a settable OpenBLAS)
    and for mostly zero inputs."""
    return (not narrow and len(x) >= TILE_MIN_BATCH and _tile_pool() is not None
            and input_density(x) <= SPARSE_INPUT_MAX_DENSITY)


@dataclass(frozen=True)
class ShrunkEngine(DenseEngine):
    """The shrunk network (`shrink`, narrow layers padded): dense matmuls on smaller matrices.

    A batch of at least `NARROW_MIN_BATCH` rows on a net whose layers all have at most `NARROW_UNITS` units runs
    in the narrow kernel instead (`NarrowNet`). Otherwise a batch of at least `TILE_MIN_BATCH` rows runs in row
    tiles of at most `TILE_ROWS`, each through every layer while its activations stay in cache, on all cores at
    once (the calling thread and `_tile_pool`'s), each thread calling OpenBLAS single-threaded
    (`_single_threaded_blas`). Smaller batches, and any process where numpy's OpenBLAS thread count cannot be set
    (another BLAS, an OpenMP build, one core), run as `DenseEngine` does. In the row tiles, a batch whose inputs
    are mostly zeros (`input_density` at most `SPARSE_INPUT_MAX_DENSITY`) runs its first layer in the
    sparse-input kernel (`SparseInput`), the other layers in OpenBLAS. The logits agree within float32 rounding
    (BLAS blocks a tile's product as it likes; the kernels sum each unit's inputs in order).
    """

    name: str = "shrunk"
    narrow: NarrowNet | None = None  # `narrow_net` of the shrunk net (before padding), when it is narrow enough
    first: SparseInput | None = None  # `sparse_input` of the (padded) shrunk net: its first layer for sparse batches

    def logits(self, x: np.ndarray) -> np.ndarray:
        x = np.asarray(x, dtype=np.float32).reshape(len(x), -1)  # (n, inputs)
        if self.narrow is not None and len(x) >= NARROW_MIN_BATCH:
            return self.narrow.logits(self.net.prepare(x))
        pool = _tile_pool() if len(x) >= TILE_MIN_BATCH else None
        if pool is None:
            return self.net.logits(x)
        sparse = _skips_zero_inputs(self.narrow is not None, x)
        workers, helpers = pool
        out = np.empty((len(x), self.net.layers[-1].units), dtype=np.float32)  # (n, classes)
        threads = helpers + 1
        n_tiles = threads * -(-len(x) // (threads * TILE_ROWS))  # a multiple of the threads: equal shares
        size = -(-len(x) // n_tiles)  # rows per tile, at most TILE_ROWS
        tiles = itertools.count()  # shared by the threads: the next tile to take (next() is atomic in CPython)


        def run() -> None:
            while (tile := next(tiles)) < n_tiles:
                rows = slice(tile * size, (tile + 1) * size)
                if sparse:
                    out[rows] = self.net._forward(self.first(x[rows]), start=1)  # (tile rows, classes)
                else:
                    out[rows] = self.net._forward(self.net.prepare(x[rows]))

        with _single_threaded_blas():
            futures = [workers.submit(run) for _ in range(min(helpers, n_tiles - 1))]
            try:
                run()
            finally:
                for f in futures:
                    f.result()  # waits for every helper (and re-raises its error) before BLAS gets its threads back
        return out


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
        # x's rows into a's lanes, 16 inputs at a time: the 16 rows of `a` written (4 KB) stay in L1 while x is
        # read row by row in order (all inputs at once wrote 633 lines per row: 1.2x slower at 99 %)
        for q0 in range(0, sizes[0], 16):
            for r in range(rows):
                for q in range(q0, min(q0 + 16, sizes[0])):
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


_NUMBA_OPTIONS = dict(cache=True, nogil=True, boundscheck=False, fastmath={"contract"})

_NARROW_KERNEL = """
def narrow_rows(x, sizes, widths, starts, weights, relu, out):
    n = x.shape[0]
    for block in prange((n + BLOCK - 1) // BLOCK):
        a = np.empty((ROWS, widths.max()), np.float32)  # (rows, units): a layer's input
        b = np.empty((ROWS, widths.max()), np.float32)  # (rows, units): its output
        for start in range(block * BLOCK, min(n, (block + 1) * BLOCK), ROWS):
            last = min(ROWS, n - start) - 1  # a short last group repeats its last row, which is not written out
{x_rows}
            layer = 0
{first}
            for layer in range(1, sizes.shape[0] - 1):
                a, b = b, a
{a_rows}
{rest}
            for r in range(last + 1):
                for k in range(out.shape[1]):
                    out[start + r, k] = b[r, k]
"""

# One layer on a group of rows, from the row views {src}0.. into b (its two copies differ only in {src}: x's rows
# are read-only arrays, b's are not, and numba cannot hold both in one variable)
_NARROW_LAYER = """
floor = np.float32(0.0) if relu[layer] else np.float32(-np.inf)
inputs = sizes[layer]
size = (1 + inputs) * CHUNK  # entries per chunk of CHUNK units
for c in range(widths[layer] // CHUNK):
    # slices, so the loop index counts from 0 and numba drops its negative-index checks
    w = weights[starts[layer] + c * size:starts[layer] + (c + 1) * size]  # (1 + inputs, CHUNK): bias, then inputs
{init}
    for i in range(inputs):
        wi = w[(i + 1) * CHUNK:(i + 2) * CHUNK]  # (CHUNK,) input i's weights into the chunk's units
{load}
{update}
{store}
"""


def _narrow_kernel_source() -> str:
    """`_NARROW_KERNEL` with one line per accumulator: the scalar s{r}_{k} is row r's unit k of a chunk (one
    scalar per lane, for the reason the tile kernel's lanes are scalars; LLVM's SLP vectorizer packs them)."""
    rows, units = range(_narrow_rows()), range(NARROW_CHUNK)

    def layer(src: str, indent: int) -> str:
        update = [f"v{r} = {src}{r}[i]\n" + "\n".join(f"s{r}_{k} += v{r} * w{k}" for k in units) for r in rows]
        body = _NARROW_LAYER.format(
            init=textwrap.indent("\n".join(f"s{r}_{k} = w[{k}]" for r in rows for k in units), " " * 4),
            load=textwrap.indent("\n".join(f"w{k} = wi[{k}]" for k in units), " " * 8),
            update=textwrap.indent("\n".join(update), " " * 8),
            store=textwrap.indent("\n".join(f"b[{r}, c * CHUNK + {k}] = max(s{r}_{k}, floor)" for r in rows
                                            for k in units), " " * 4))
        return textwrap.indent(body.strip("\n").replace("CHUNK", str(NARROW_CHUNK)), " " * indent)

    source = _NARROW_KERNEL.replace("BLOCK", str(NARROW_BLOCK)).replace("ROWS", str(_narrow_rows()))
    return source.format(x_rows="\n".join(f"            x{r} = x[start + min({r}, last)]" for r in rows),
                         a_rows="\n".join(f"                a{r} = a[{r}]" for r in rows),
                         first=layer("x", 12), rest=layer("a", 16))


_SPARSE_INPUT_KERNEL = """
def sparse_input_rows(x, weights, bias, relu, units, out):
    active = np.empty(x.shape[1], np.uint32)  # (inputs,) a row's nonzero inputs, the first `count` valid
    floor = np.float32(0.0) if relu else np.float32(-np.inf)
    for row in range(x.shape[0]):
        xr = x[row]
        count = 0
        for i in range(x.shape[1]):  # branch-free: "if xr[i] != 0" would mispredict at every stroke's edge
            active[count] = i
            count += xr[i] != 0
        for c in range(weights.shape[0]):
            w = weights[c]  # (inputs, CHUNK): the chunk's weights, a row per input
            unit0 = c * CHUNK
{init}
            for t in range(count):
                i = active[t]
                v = xr[i]
                wi = w[i]  # (CHUNK,) input i's weights into the chunk's units
{update}
{store}
"""


def _sparse_input_source() -> str:
    """`_SPARSE_INPUT_KERNEL` with one scalar accumulator s{k} per unit of a chunk (see the tile kernel's lanes)."""
    units = range(SPARSE_INPUT_CHUNK)
    return _SPARSE_INPUT_KERNEL.replace("CHUNK", str(SPARSE_INPUT_CHUNK)).format(
        init="\n".join(f"            s{k} = bias[unit0 + {k}]" for k in units),
        update="\n".join(f"                s{k} += v * wi[{k}]" for k in units),
        store="\n".join(f"            if unit0 + {k} < units:\n                out[row, unit0 + {k}] = max(s{k}, floor)"
                        for k in units))


@functools.cache
def _sparse_input_kernel() -> Callable:
    """The sparse-input kernel, compiled (or loaded from numba's on-disk cache) on first use; serial and without
    the GIL: the row tiles run it on every core."""
    import numba

    namespace = {"__name__": __name__, "np": np}
    exec(compile(_sparse_input_source(), __file__, "exec"), namespace)  # this file's name: numba can cache it
    return numba.njit(**_NUMBA_OPTIONS)(namespace["sparse_input_rows"])


@functools.cache
def _kernels() -> tuple[Callable, Callable]:
    """(tile kernel, row kernel), compiled (or loaded from numba's on-disk cache) on first use.

    Compiling lazily keeps `import obd.engines` cheap (numba itself is imported here).
    """
    import numba

    namespace = {"__name__": __name__, "np": np, "prange": numba.prange, "get_thread_id": numba.get_thread_id}
    exec(compile(_tile_kernel_source(), __file__, "exec"), namespace)  # this file's name: numba can cache it
    return (numba.njit(parallel=True, **_NUMBA_OPTIONS)(namespace["sparse_tiles"]),
            numba.njit(**_NUMBA_OPTIONS)(_sparse_rows))


def _narrow_rows() -> int:
    """`NARROW_ROWS` for the vectors of the CPU numba compiles for (this machine's)."""
    from llvmlite import binding

    return NARROW_ROWS["avx512f" if binding.get_host_cpu_features().get("avx512f", False) else "avx2"]


@functools.cache
def _narrow_kernel() -> Callable:
    """The narrow kernel (`_narrow_kernel_source`), compiled (or loaded from numba's on-disk cache) on first use."""
    import numba

    namespace = {"__name__": __name__, "np": np, "prange": numba.prange}
    exec(compile(_narrow_kernel_source(), __file__, "exec"), namespace)  # this file's name: numba can cache it
    return numba.njit(parallel=True, **_NUMBA_OPTIONS)(namespace["narrow_rows"])


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
    small = shrink(net)
    if _count_nonzero(small) <= _sparse_max_density(small.n_weights, batch_size) * small.n_weights:
        return "sparse"
    return "shrunk" if small.sizes != net.sizes else "dense"


def _sparse_max_density(n_weights: int, batch_size: int) -> float:
    """The largest kept fraction of a (shrunk) net of `n_weights` at which "auto" runs the sparse engine."""
    threshold = SPARSE_MAX_DENSITY[max(b for b in SPARSE_MAX_DENSITY if b <= max(batch_size, 1))]
    if n_weights < SMALL_NET_WEIGHTS and batch_size >= ROW_BY_ROW:
        threshold = min(threshold, SMALL_NET_MAX_DENSITY)
    return threshold


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
        small = shrink(net)
        padded = _pad_narrow(small)
        return ShrunkEngine(padded, narrow=narrow_net(small), first=sparse_input(padded))
    return DenseEngine(net)


def _pad_narrow(net: Network) -> Network:
    """`net` with each hidden layer narrower than PAD_UNITS widened to it by units of zero weights and bias."""
    if min(net.sizes[1:-1], default=PAD_UNITS) >= PAD_UNITS:
        return net
    layers, rows = [], net.layers[0].inputs
    for i, layer in enumerate(net.layers):
        cols = layer.units if i == len(net.layers) - 1 else max(layer.units, PAD_UNITS)
        kernel = np.zeros((rows, cols), np.float32)  # (inputs padded, units padded)
        kernel[: layer.inputs, : layer.units] = layer.kernel
        bias = None if layer.bias is None else np.pad(layer.bias, (0, cols - layer.units))
        layers.append(layer.replace(kernel, bias))
        rows = cols
    return net.with_layers(tuple(layers))


_BLAS_NAMES = ("scipy_openblas_{}64_", "scipy_openblas_{}", "openblas_{}")  # numpy's wheels, then plain OpenBLAS


@functools.cache
def _openblas() -> tuple[Callable[[int], None], Callable[[], int]] | None:
    """(set, get) numpy's OpenBLAS thread count, when numpy runs a pthreads build of OpenBLAS; else None.

    The library is the one numpy's wheel bundles (numpy.libs), or an OpenBLAS this process has loaded
    (/proc/self/maps, e.g. a distribution's numpy); it must export the setter, the getter and
    openblas_get_parallel, report pthreads (1; an OpenMP build's count belongs to OpenMP), and read back a
    count that was set. Anything else (MKL, Accelerate, a missing symbol) is None, and the tiled path is off.
    """
    paths = sorted(Path(np.__file__).parent.parent.glob("numpy.libs/*openblas*"))
    try:
        with open("/proc/self/maps") as f:
            # not scipy's own copy (scipy.libs): numpy's matmuls would not see its count
            paths += sorted({Path(line.split()[-1]) for line in f
                             if "openblas" in line.rsplit("/", 1)[-1] and "scipy.libs" not in line})
    except OSError:
        pass
    for path in paths:
        try:
            lib = ctypes.CDLL(str(path))
        except OSError:
            continue
        for name in _BLAS_NAMES:
            try:
                set_, get, parallel = (getattr(lib, name.format(f)) for f in
                                       ("set_num_threads", "get_num_threads", "get_parallel"))
            except AttributeError:
                continue
            set_.argtypes, set_.restype = [ctypes.c_int], None
            get.restype = parallel.restype = ctypes.c_int
            if parallel() != 1:
                return None
            before = get()
            set_(1)
            ok = get() == 1
            set_(before)
            return (set_, get) if ok and get() == before else None
    return None


_blas_lock = threading.Lock()
_blas_holders = 0  # calls inside `_single_threaded_blas` now
_blas_saved = 0  # the thread count to give back when the last one leaves


@contextlib.contextmanager
def _single_threaded_blas():
    """numpy's OpenBLAS runs single-threaded while any caller is inside (the count is process-wide: OpenBLAS's
    pthreads build has no per-thread count, and its `openblas_set_num_threads_local` sets the global one too),
    and gets its thread count back when the last one leaves. A dense matmul in another thread meanwhile runs on
    one core; the engines' timings never overlap one (`Readings` takes one reading at a time)."""
    global _blas_holders, _blas_saved
    set_, get = _openblas()
    with _blas_lock:
        if _blas_holders == 0:
            _blas_saved = get()
            set_(1)
        _blas_holders += 1
    try:
        yield
    finally:
        with _blas_lock:
            _blas_holders -= 1
            if _blas_holders == 0:
                set_(_blas_saved)


def _after_fork_in_child() -> None:
    """A forked child has none of its parent's threads: a fresh pool when needed, a free lock, and OpenBLAS's
    thread count back if a tiled call was running in the parent."""
    global _blas_lock, _blas_holders
    _tile_pool.cache_clear()
    _blas_lock = threading.Lock()
    if _blas_holders:
        _blas_holders = 0
        _openblas()[0](_blas_saved)


def _cores() -> int:
    """The cores this process may use (its CPU affinity where the OS has one)."""
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        return os.cpu_count() or 1


@functools.cache
def _tile_pool() -> tuple[ThreadPoolExecutor, int] | None:
    """(threads that run row tiles beside the caller, how many): one per core this process may use but the
    caller's; None on one core or when numpy's OpenBLAS thread count cannot be set."""
    cores = _cores()
    if cores < 2 or _openblas() is None:
        return None
    return ThreadPoolExecutor(cores - 1, thread_name_prefix="obd-tiles"), cores - 1


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork_in_child)


@dataclass(frozen=True)
class TimingConfig:
    """How `measure` takes a latency reading."""

    pairs: int = 15  # interleaved (dense, engine) pairs per reading, at least
    window_s: float = 0.2  # a reading lasts at least this long: /proc/stat counts CPU time in 10 ms ticks
    sample_s: float = 5e-4  # calls are repeated until one timed sample lasts this long (a tiny net runs in µs)
    attempts: int = 3  # readings taken while others use the machine, before one is kept and marked noisy
    budget_s: float = 20.0  # no new attempt once a reading has taken this long (slow engines on big batches)
    noise_limit: float = 0.15  # share of the machine's CPU time others may use during a clean reading
    over_ideal: float = 1.2  # a speed-up above this multiple of the engine's FLOP ratio is a bad reading

    def __post_init__(self) -> None:
        if self.pairs < 1 or self.attempts < 1:
            raise ValueError(f"pairs and attempts must be at least 1; got {self.pairs} and {self.attempts}")
        if min(self.window_s, self.sample_s, self.noise_limit, self.budget_s) < 0 or self.over_ideal < 1:
            raise ValueError("window_s, sample_s, noise_limit and budget_s must be >= 0 and over_ideal >= 1; got "
                             f"{self.window_s}, {self.sample_s}, {self.noise_limit}, {self.budget_s} and "
                             f"{self.over_ideal}")


@dataclass(frozen=True)
class Latency:
    """One latency reading: dense against one engine on the same batch, in the same run.

    speedup is the median of per-pair ratios (dense ms / engine ms of calls timed back to back), the robust
    figure; engine_ms is dense_ms / speedup, so the three agree. speedup_range is the interquartile range of the
    ratios (of every attempt's when noisy). flop_ratio is the dense net's multiply-adds over those of the engine
    timed (from `measure` and `Readings.reading`; speedup never exceeds it by more than `TimingConfig.over_ideal`;
    the shrunk engine's first layer counts only nonzero inputs where it skips zero ones) or, from `latency`,
    over the pruned net's nonzero ones (`ideal_speedup`: what a perfect engine would reach) or the engine's own,
    whichever is larger, so the rule holds against it too.
    """

    dense_ms: float  # the dense net's median at this batch size: one figure per shape and batch in a process
    engine: str  # the kind that ran: "dense", "shrunk" or "sparse"
    engine_ms: float
    speedup: float
    speedup_range: tuple[float, float]  # (low, high): the interquartile range of the per-pair ratios
    flop_ratio: float
    noisy: bool  # other work used the machine in every attempt, or the reading had to be capped or held
    repeats: int  # timed pairs behind `speedup`
    note: str = ""  # why a noisy reading reads as it does, for a tooltip; "" when clean


def _busy_cpu_s() -> float | None:
    """CPU seconds the whole machine has spent busy since boot (/proc/stat; steal counts as busy), or None."""
    try:
        with open("/proc/stat") as f:
            ticks = [int(t) for t in f.readline().split()[1:9]]  # user nice system idle iowait irq softirq steal
    except (OSError, ValueError):
        return None
    return (sum(ticks) - ticks[3] - ticks[4]) / os.sysconf("SC_CLK_TCK")


def _sample(engine: Engine, x: np.ndarray, calls: int) -> float:
    """Seconds per call of `calls` back-to-back calls."""
    start = time.perf_counter()
    for _ in range(calls):
        engine.logits(x)
    return (time.perf_counter() - start) / calls


@dataclass(frozen=True)
class _Attempt:
    dense_s: tuple[float, ...]  # (pairs,) seconds per dense call
    ratios: tuple[float, ...]  # (pairs,) dense / engine seconds, pair by pair
    others: float  # share of the machine's CPU time used by other processes during the attempt (0 if unknown)


def _attempt(dense: Engine, engine: Engine, x: np.ndarray, calls: int, config: TimingConfig) -> _Attempt:
    """Interleaved pairs for at least `config.pairs` pairs and `config.window_s` seconds."""
    busy, own, start = _busy_cpu_s(), time.process_time(), time.perf_counter()
    dense_s, ratios = [], []
    while len(ratios) < config.pairs or time.perf_counter() - start < config.window_s:
        if len(ratios) % 2:  # who goes first alternates, so neither gains from the other warming the caches
            e, d = _sample(engine, x, calls), _sample(dense, x, calls)
        else:
            d, e = _sample(dense, x, calls), _sample(engine, x, calls)
        dense_s.append(d)
        ratios.append(d / e)
    wall, others = time.perf_counter() - start, 0.0
    if busy is not None:  # this process's own CPU time (every thread: BLAS's and numba's too) is not others'
        others = max(0.0, _busy_cpu_s() - busy - (time.process_time() - own)) / (wall * (os.cpu_count() or 1))
    return _Attempt(tuple(dense_s), tuple(ratios), others)


def measure(dense: Engine, engine: Engine, x: np.ndarray, flop_ratio: float,
            config: TimingConfig = TimingConfig()) -> Latency:
    """Time `engine` against `dense` on the batch `x`: a robust, retaken, plausible speed-up.

    After an untimed warm-up call each, calls are timed in interleaved pairs (so both see the same machine
    load) and the speed-up is the median of the per-pair ratios. An attempt is retaken, up to
    `config.attempts` times within `config.budget_s`, while other processes use more than `config.noise_limit`
    of the machine's CPU (read from /proc/stat around the attempt) or its speed-up exceeds `config.over_ideal`
    times the FLOP ratio (no engine beats its multiply-adds by that much: a timing accident). If none is clean,
    the quietest is kept, marked noisy, with the range of every attempt's ratios, and capped at that limit.
    Other threads of this process count as its own: callers keep measurements apart from other work.

    Args:
        dense: the baseline engine.
        engine: the engine to time against it (may be `dense` itself).
        x: (n, inputs) the batch.
        flop_ratio: the dense engine's multiply-adds per row / `engine`'s (>= 1 for a pruned net).
        config: pairs, window, attempts and limits.

    Returns:
        A Latency with `engine.name` as its engine.
    """
    for e in (dense, engine):
        e.logits(x)  # first calls pay for compiling, allocation and thread start-up
    slowest = max(_sample(dense, x, 1), _sample(engine, x, 1))
    calls = max(1, math.ceil(config.sample_s / max(slowest, 1e-9)))
    limit = config.over_ideal * flop_ratio

    def clean(a: _Attempt) -> bool:
        return a.others <= config.noise_limit and statistics.median(a.ratios) <= limit

    start = time.perf_counter()
    attempts = [_attempt(dense, engine, x, calls, config)]
    while (len(attempts) < config.attempts and not clean(attempts[-1])
           and time.perf_counter() - start < config.budget_s):
        attempts.append(_attempt(dense, engine, x, calls, config))
    kept = attempts[-1] if clean(attempts[-1]) else min(attempts, key=lambda a: a.others)
    speedup = statistics.median(kept.ratios)
    noisy = kept.others > config.noise_limit or speedup > limit
    pool = [r for a in attempts for r in a.ratios] if noisy else list(kept.ratios)
    low, high = np.percentile(pool, [25, 75])
    note = f"others used {100 * kept.others:.0f} % of the CPU while timing" if kept.others > config.noise_limit else ""
    if speedup > limit:
        note = f"measured {speedup:.3g}x, above {config.over_ideal:g}x its FLOP ratio: capped"
        speedup = limit
    dense_ms = 1000 * statistics.median(kept.dense_s)
    return Latency(dense_ms, engine.name, dense_ms / speedup, speedup,
                   (min(float(low), speedup), min(max(float(high), speedup), limit)), flop_ratio, noisy,
                   len(kept.ratios), note)


def structure_key(net: Network) -> tuple:
    """What every engine's latency on `net` depends on, and nothing else: nets with equal keys time alike.

    The dense engine's time depends on the layer sizes, the shrunk engine's on the shrunk sizes, the sparse
    engine's on the nonzero weights per shrunk layer (and "auto"'s pick on these too). Cache latencies by this
    key (with the batch size) and nets of identical shapes read identically; `latency` does so itself. (On large
    batches the shrunk engine's time also depends on how many inputs are zero: the cache assumes one kind of
    input, MNIST's test images.)

    Args:
        net: a (pruned) network.

    Returns:
        (sizes, shrunk sizes, nonzero weights per shrunk layer), a hashable tuple of ints.
    """
    small = shrink(net)
    return net.sizes, small.sizes, tuple(int(np.count_nonzero(k)) for k in small.kernels())


def _engine_flops(net: Network, kind: str, x: np.ndarray) -> int:
    """Multiply-adds per row the engine `kind` does on `net` for the batch x (n, inputs): the shrunk engine's
    first layer counts only the nonzero inputs when it skips the zero ones (`_skips_zero_inputs`)."""
    if kind == "sparse":
        return nonzero_weights(net)
    if kind == "dense":
        return net.n_weights
    small = shrink(net)
    if not _skips_zero_inputs(_is_narrow(small), x):
        return small.n_weights
    return small.n_weights - round((1 - input_density(x)) * small.layers[0].kernel.size)


class Readings:
    """Latency readings kept for a process, shared by threads: one per engine kind, batch size and structure,
    and one per batch size and structure for what "auto" reports.

    Besides caching (so equal structures read identically, and the dense net reads one figure per batch size),
    it keeps readings monotone in work. Per engine kind: a net that needs fewer multiply-adds from the engine
    must not read slower on it than one that needs more; a reading that breaks this is timed again, and if it
    still does, it is held to its neighbour's speed-up and marked noisy (that is noise: the engine's work
    really is smaller). For "auto": a net with fewer nonzero weights must not read slower than one with more
    (unit-like nets, dense once shrunk, and weight-like ones apart), so one method's speed-up never drops as its
    sparsity grows. That can be real, not noise: a method whose
    masks are not nested (sparsegpt, obs) may leave more units alive at 95 % than at 90 %, so its 95 % net
    runs slower; such a reading is held, marked noisy, and its range spans both figures. Readings are taken one
    at a time (a lock), so two callers never time against each other.
    """

    def __init__(self, max_entries: int = 4096) -> None:
        self.max_entries = max_entries
        self._lock = threading.RLock()
        # (kind, batch, sizes, structure), or ("auto", batch, sizes, unit-like, structure) -> (the multiply-adds
        # readings are ordered by, reading)
        self._found: dict[tuple, tuple[int, Latency]] = {}
        self._dense_ms: dict[tuple, float] = {}  # (batch, sizes) -> the dense net's ms, fixed by the first reading

    def clear(self) -> None:
        """Forget every reading (the next ones are timed afresh)."""
        with self._lock:
            self._found.clear()
            self._dense_ms.clear()

    def reading(self, net: Network, x: np.ndarray, kind: str, config: TimingConfig = TimingConfig()) -> Latency:
        """The reading of engine `kind` on `net` against dense at batch len(x): cached, or timed now.

        Args:
            net: the (pruned) network.
            x: (n, inputs) the batch.
            kind: "dense", "shrunk" or "sparse".
            config: how a new reading is taken (a cached one is returned as it was taken).

        Returns:
            A Latency.

        Raises:
            ValueError: for an unknown kind.
        """
        if kind not in KINDS[1:]:
            raise ValueError(f"a reading's engine kind must be one of {', '.join(KINDS[1:])}; got {kind!r}")
        _, shrunk, nonzeros = structure_key(net)
        key = (kind, len(x), net.sizes, {"dense": (), "shrunk": shrunk, "sparse": nonzeros}[kind])
        with self._lock:
            if (found := self._found.get(key)) is not None:
                return found[1]
            dense = DenseEngine(net)
            engine = dense if kind == "dense" else build_engine(net, kind)
            flops = _engine_flops(net, kind, x)
            lat = measure(dense, engine, x, net.n_weights / max(flops, 1), config)
            if kind == "dense":  # dense against itself: only its time is news
                lat = dataclasses.replace(lat, speedup=1.0, speedup_range=(1.0, 1.0), note="")
            elif not self._in_line(lat, key, flops):  # out of line with the nets around it: once more
                lat = measure(dense, engine, x, lat.flop_ratio, config)
            lat = self._keep(lat, key, flops, f"measured {lat.speedup:.3g}x twice, out of line with the nets around it: held")
            ref = self._dense_ms.setdefault((len(x), net.sizes), lat.dense_ms)
            return self._store(key, flops, dataclasses.replace(lat, dense_ms=ref, engine_ms=ref / lat.speedup))

    def auto(self, net: Network, x: np.ndarray, config: TimingConfig = TimingConfig()) -> Latency:
        """What "auto" reports for `net` at batch len(x): its fastest measured candidate, or dense (see
        `latency`), held monotone in the net's nonzero weights."""
        small = shrink(net)
        nonzeros = _count_nonzero(small)
        # unit-like nets (dense once shrunk) and weight-like ones are ordered apart: a weight-pruned net with fewer
        # nonzero weights than a unit-pruned one can still need more work from every engine
        key = ("auto", len(x), net.sizes, nonzeros == small.n_weights, structure_key(net)[1:])
        with self._lock:
            if (found := self._found.get(key)) is not None:
                return found[1]
            kinds = [kind for kind, ok in (
                ("shrunk", small.sizes != net.sizes),
                # against the unshrunk count, so that a kind stays a candidate as sparsity grows; includes the pick
                ("sparse", nonzeros <= _sparse_max_density(net.n_weights, len(x)) * net.n_weights),
            ) if ok]
            best = max((self.reading(net, x, kind, config) for kind in kinds), key=lambda lat: lat.speedup,
                       default=None)
            if best is None or best.speedup < 1:
                best = self.reading(net, x, "dense", config)
            # the net's ideal, or the engine's own where it skips zero inputs too (so the 1.2x rule holds against it)
            best = dataclasses.replace(best, flop_ratio=max(ideal_speedup(net, net), best.flop_ratio))
            best = self._keep(best, key, nonzeros, f"its engines measured {best.speedup:.3g}x; held to a net with "
                              "other nonzero weights (a method whose masks are not nested)")
            return self._store(key, nonzeros, best)

    def _in_line(self, lat: Latency, key: tuple, flops: int) -> bool:
        low, high = self._bounds(key, flops)
        return low <= lat.speedup <= high

    def _keep(self, lat: Latency, key: tuple, flops: int, note: str) -> Latency:
        """`lat`, or held to the bounds its neighbours set, marked noisy, its range spanning both figures."""
        low, high = self._bounds(key, flops)
        if low <= lat.speedup <= high:
            return lat
        held = min(max(lat.speedup, low), high)
        span = (min(lat.speedup_range[0], lat.speedup, held), max(lat.speedup_range[1], lat.speedup, held))
        return dataclasses.replace(lat, speedup=held, engine_ms=lat.dense_ms / held, speedup_range=span, noisy=True,
                                   note=note)

    def _store(self, key: tuple, flops: int, lat: Latency) -> Latency:
        if len(self._found) >= self.max_entries:
            del self._found[next(iter(self._found))]  # the oldest
        self._found[key] = flops, lat
        return lat

    def _bounds(self, key: tuple, flops: int) -> tuple[float, float]:
        """The speed-ups a reading of `key` must lie between: those of its group's readings (its key but the
        structure: same kind, batch size and dense net) of nets that need more multiply-adds, and of those that
        need fewer."""
        low, high = 0.0, math.inf
        for other, (other_flops, lat) in self._found.items():
            if other[:-1] == key[:-1] and other_flops > flops:
                low = max(low, lat.speedup)
            elif other[:-1] == key[:-1] and other_flops < flops:
                high = min(high, lat.speedup)
        return low, high


READINGS = Readings()  # the process's readings: the app's sessions and `bench` share them


def latency(net: Network, x: np.ndarray, config: TimingConfig = TimingConfig(),
            readings: Readings = READINGS) -> Latency:
    """The latency of `net` on the batch `x` through the engine "auto" picks, against dense.

    auto's candidates are timed and the fastest kept: the shrunk engine when units died, the sparse engine when
    few enough weights are kept (counted against the unpruned net, so that a candidate stays one as sparsity
    grows). When none beats dense, dense is what auto runs and what is reported, so the number shown is never a
    slow-down that auto chose. Readings come from `readings`: one per structure (nets of identical shapes read
    identically), monotone in nonzero weights (see `Readings`); see `measure` for how one is taken.

    Args:
        net: the (pruned) network.
        x: (n, inputs) the batch to time.
        config: how a new reading is taken.
        readings: where readings are kept.

    Returns:
        A Latency; `engine` is "dense" when nothing faster applies or measured faster.
    """
    return readings.auto(net, x, config)


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
    readings: Readings = READINGS,
) -> list[dict]:
    """Time every engine of each mode against dense on the same pruned network, as `latency` does.

    Args:
        net: the unpruned network.
        x: input rows (at least max(batches) of them; MNIST test images for honest first-layer sparsity).
        modes: pruning modes; weight pruning runs dense and sparse, unit pruning dense and shrunk.
        sparsities: fractions in [0, 1].
        batches: rows per call.
        repeats: timed pairs per reading, at least (more for short calls; see `TimingConfig`).
        prune_output: prune the logits layer too.
        progress: called with a one-line description before each (mode, sparsity).
        readings: where readings are kept (shared with `latency`, so both show the same figures).

    Returns:
        Records {"engine", "mode", "sparsity", "batch", "ms", "speedup", "speedup_low", "speedup_high", "noisy",
        "ideal_speedup"}; speedup is the engine's `Latency.speedup` (1.0 for dense), speedup_low/high its
        interquartile range, ideal_speedup `ideal_speedup(net, pruned)`.

    Raises:
        ValueError: for an unknown mode, a sparsity outside [0, 1], a batch < 1 or too few rows in x.
    """
    modes = [check_mode(m) for m in modes]
    sparsities = [check_sparsity(k) for k in sparsities]
    if any(int(b) < 1 or int(b) > len(x) for b in batches):
        raise ValueError(f"batch sizes must be between 1 and the {len(x)} rows given; got {list(batches)}")
    config = TimingConfig(pairs=repeats)
    records = []
    for mode in modes:
        ranking = rank(net, mode, prune_output)
        for k in sparsities:
            if progress:
                progress(f"{mode} pruning at {100 * k:g} %")
            pruned = prune(net, k, ranking=ranking).net
            ideal = ideal_speedup(net, pruned)
            for batch in batches:
                lat = readings.reading(pruned, x[: int(batch)], MODE_ENGINES[mode][1], config)
                common = {"mode": mode, "sparsity": k, "batch": int(batch), "ideal_speedup": ideal}
                records += [
                    {"engine": "dense", **common, "ms": lat.dense_ms, "speedup": 1.0, "speedup_low": 1.0,
                     "speedup_high": 1.0, "noisy": lat.noisy},
                    {"engine": lat.engine, **common, "ms": lat.engine_ms, "speedup": lat.speedup,
                     "speedup_low": lat.speedup_range[0], "speedup_high": lat.speedup_range[1], "noisy": lat.noisy}]
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


def machine() -> str:
    """The CPU the engines run on, for a benchmark's header (their ratios depend on it): model, the target numba
    compiles for, its widest vectors, and the cores this process may use; e.g. "AMD EPYC (znver3, AVX2), 2 cores"."""
    from llvmlite import binding

    model = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as f:
            model = next((line.split(":", 1)[1].strip() for line in f if line.startswith("model name")), model)
    except OSError:
        pass
    features = binding.get_host_cpu_features()
    vectors = next((name.upper() for name in ("avx512f", "avx2", "avx") if features.get(name, False)), "no AVX")
    return f"{model} ({binding.get_host_cpu_name()}, {vectors.replace('AVX512F', 'AVX-512')}), {_cores()} cores"


def table(records: Sequence[dict]) -> str:
    """`bench` records as a text table, one row per engine: ms, speed-up vs dense, ideal, fraction of ideal."""
    head = f"{'mode':<7}{'sparsity':>9}{'batch':>7}  {'engine':<7}{'ms':>10}{'speedup':>9}{'ideal':>8}{'of ideal':>9}"
    lines = [head]
    for r in records:
        reached = 100 * r["speedup"] / r["ideal_speedup"]
        lines.append(f"{r['mode']:<7}{100 * r['sparsity']:>8g}%{r['batch']:>7}  {r['engine']:<7}{r['ms']:>10.3f}"
                     f"{r['speedup']:>8.2f}x{r['ideal_speedup']:>7.1f}x{reached:>8.0f}%")
    return "\n".join(lines)
