"""The numba kernels behind the sparse and shrunk engines, generated from templates and compiled on first use.

Why numba: scipy's CSR product streams the whole activation matrix through memory once per layer and stays far
from the FLOP-proportional ideal; numba is a well-kept compiler (no C toolchain at install time) and its
on-disk cache (`cache=True`) keeps the compile to a machine's first run. What carries the speed
(docs/architecture.md has the measurements):

- LLVM's SLP vectorizer, not its loop vectorizer (NUMBA_SLP_VECTORIZE=1, NUMBA_LOOP_VECTORIZE=0, set by
  obd/__init__.py before numba loads; a user's own setting wins).
- One scalar accumulator per lane: LLVM cannot prove that an accumulator *array* does not alias the
  activations, so it would vectorize nothing. The kernels' sources are generated (one line per lane) and
  compiled under this file's name, so numba's cache works for them.
- Unsigned indices and slices counted from 0 (no negative-index checks in the inner loops), and branch-free
  lists of nonzero inputs.
- The tile kernel runs *all* layers on a tile of LANES input rows whose activations, held as (units, LANES),
  stay in cache; x's rows go into a tile's lanes 16 inputs at a time so the lines written stay in L1.
"""

from __future__ import annotations

import functools
import textwrap
from collections.abc import Callable
from typing import Any

import numpy as np

LANES = 64  # batch rows per tile: (1000 units x 64) float32 activations = 256 KB, cache-resident
SPARSE_INPUT_CHUNK = 64  # units per pass over a row's nonzero inputs: 64 scalar accumulators, 8 AVX2 registers
NARROW_CHUNK = 16  # units computed at once: a row's 16 accumulators are two AVX2 registers
# Rows per group (`_narrow_rows`): 8 registers of accumulators hide the FMA latency; on AVX2 (16 registers) 8 rows
# spill accumulators to the stack, so 4 rows (benchmarks/speed.py measures both).
NARROW_ROWS = {"avx512f": 8, "avx2": 4}
NARROW_BLOCK = 256  # rows per parallel task (each allocates its two small buffers once)


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
        # read row by row in order (all inputs at once touch hundreds of cache lines per row)
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
                cols = indices[indptr[input0 + i] : indptr[input0 + i + 1]]  # slices count from 0, so numba
                weights = data[indptr[input0 + i] : indptr[input0 + i + 1]]  # skips negative-index checks
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


_NUMBA_OPTIONS: dict[str, Any] = dict(cache=True, nogil=True, boundscheck=False, fastmath={"contract"})

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
            store=textwrap.indent(
                "\n".join(f"b[{r}, c * CHUNK + {k}] = max(s{r}_{k}, floor)" for r in rows for k in units), " " * 4
            ),
        )
        return textwrap.indent(body.strip("\n").replace("CHUNK", str(NARROW_CHUNK)), " " * indent)

    source = _NARROW_KERNEL.replace("BLOCK", str(NARROW_BLOCK)).replace("ROWS", str(_narrow_rows()))
    return source.format(
        x_rows="\n".join(f"            x{r} = x[start + min({r}, last)]" for r in rows),
        a_rows="\n".join(f"                a{r} = a[{r}]" for r in rows),
        first=layer("x", 12),
        rest=layer("a", 16),
    )


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
        store="\n".join(
            f"            if unit0 + {k} < units:\n                out[row, unit0 + {k}] = max(s{k}, floor)"
            for k in units
        ),
    )


@functools.cache
def sparse_input_kernel() -> Callable:
    """The sparse-input kernel, compiled (or loaded from numba's on-disk cache) on first use; serial and without
    the GIL: the row tiles run it on every core."""
    import numba

    namespace = {"__name__": __name__, "np": np}
    exec(compile(_sparse_input_source(), __file__, "exec"), namespace)  # this file's name: numba can cache it
    return numba.njit(**_NUMBA_OPTIONS)(namespace["sparse_input_rows"])


@functools.cache
def sparse_kernels() -> tuple[Callable, Callable]:
    """(tile kernel, row kernel), compiled (or loaded from numba's on-disk cache) on first use.

    Compiling lazily keeps `import obd.runtime.engines` cheap (numba itself is imported here).
    """
    import numba

    namespace = {"__name__": __name__, "np": np, "prange": numba.prange, "get_thread_id": numba.get_thread_id}
    exec(compile(_tile_kernel_source(), __file__, "exec"), namespace)  # this file's name: numba can cache it
    return (
        numba.njit(parallel=True, **_NUMBA_OPTIONS)(namespace["sparse_tiles"]),
        numba.njit(**_NUMBA_OPTIONS)(_sparse_rows),
    )


def _narrow_rows() -> int:
    """`NARROW_ROWS` for the vectors of the CPU numba compiles for (this machine's)."""
    from llvmlite import binding

    return NARROW_ROWS["avx512f" if binding.get_host_cpu_features().get("avx512f", False) else "avx2"]


@functools.cache
def narrow_kernel() -> Callable:
    """The narrow kernel (`_narrow_kernel_source`), compiled (or loaded from numba's on-disk cache) on first use."""
    import numba

    namespace = {"__name__": __name__, "np": np, "prange": numba.prange}
    exec(compile(_narrow_kernel_source(), __file__, "exec"), namespace)  # this file's name: numba can cache it
    return numba.njit(parallel=True, **_NUMBA_OPTIONS)(namespace["narrow_rows"])
