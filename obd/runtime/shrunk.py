"""The shrunk engine: dead units physically removed (`shrink`), a smaller dense network with the same logits.

Unit pruning kills whole units, so this is where unit pruning becomes speed (and a smaller .keras). Layers
narrower than PAD_UNITS are padded (OpenBLAS multiplies 16 columns at a time); big batches run in row tiles on
every core with OpenBLAS single-threaded; a net of at most NARROW_UNITS a layer runs in one numba kernel
(`NarrowNet`); a tile of mostly zero inputs runs its first layer in a kernel that skips them (`SparseInput`).
The thresholds below come from timings on a 2-core machine (benchmarks/speed.py; docs/architecture.md).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from obd.core.network import Network, as_network
from obd.core.pruning import live_units
from obd.runtime.dense import DenseEngine
from obd.runtime.kernels import NARROW_CHUNK, SPARSE_INPUT_CHUNK, narrow_kernel, sparse_input_kernel
from obd.runtime.threads import on_every_core, tile_pool

PAD_UNITS = 16  # hidden layers narrower than this are padded with zero units: OpenBLAS's sgemm works on 16 columns
TILE_MIN_BATCH = 2048  # batches of at least this many rows run in row tiles on every core ...
TILE_ROWS = 2500  # ... of at most this many rows, each through every layer while its activations stay in cache
NARROW_UNITS = 16  # a shrunk net whose layers all have at most this many units runs in the narrow kernel ...
NARROW_MIN_BATCH = 1000  # ... for batches of at least this many rows (below, waking numba's threads costs more)
SPARSE_INPUT_MAX_DENSITY = 0.22  # the row tiles skip zero inputs when at most this share is nonzero (MNIST: 19 %)
DENSITY_SAMPLE_ROWS = 64  # rows of a batch read to estimate its density of nonzero inputs


def shrink(net: Network | object) -> Network:
    """Remove units that cannot change the logits: a smaller dense network with the same logits.

    A hidden unit goes when its kernel column (over live inputs) is all zero and its bias is 0 or None (it
    outputs exactly 0, as unit-pruned units do), or when no kept weight connects it to a live unit of the
    next layer; its column and bias, and the next layer's matching row, are removed. Input features and
    output classes are never removed.

    Args:
        net: a (pruned) network, or a Keras model (`as_network`); not changed.

    Returns:
        A Network with the same layer names and activations and fewer (or as many) units per hidden layer.
    """
    net = as_network(net)
    alive = live_units(net, keep_one=True)
    layers, rows = [], np.ones(net.layers[0].inputs, dtype=bool)
    for layer, cols in zip(net.layers, alive):
        kernel = layer.kernel[np.ix_(rows, cols)]  # (live inputs, live units)
        layers.append(layer.replace(kernel, None if layer.bias is None else layer.bias[cols]))
        rows = cols
    return net.with_layers(tuple(layers))


def count_nonzero(net: Network) -> int:
    return sum(int(np.count_nonzero(k)) for k in net.kernels())


def nonzero_weights(net: Network) -> int:
    """Multiply-adds per input row that a perfect engine needs: the nonzero weights of `shrink(net)`."""
    return count_nonzero(shrink(net))


def ideal_speedup(net_dense: Network, net_pruned: Network) -> float:
    """FLOP-proportional speed-up: the dense net's weights / the pruned net's `nonzero_weights`."""
    return net_dense.n_weights / max(nonzero_weights(net_pruned), 1)


@dataclass(frozen=True, eq=False)
class NarrowNet:
    """A shrunk network whose layers all have at most `NARROW_UNITS` units, packed for the narrow kernel.

    Why: at 99 % of units the shrunk net is 784-10-10-10-10-10, and in `ShrunkEngine`'s row tiles x @ W1 took
    about twice as long as reading x once (31 MB at batch 10,000, from memory after a dense call): OpenBLAS
    packs the whole input for a 10-wide product, in every tiling tried. The kernel (`_narrow_kernel_source`)
    reads each group of `_narrow_rows()` rows of x once and takes them through every layer while they are in L1, a
    chunk of `NARROW_CHUNK` units at a time: each input of each row is one broadcast and two 8-lane FMAs
    against the chunk's weights (W1's 784 x 16 chunk, 50 KB, stays in L2), on every core (prange over blocks
    of `NARROW_BLOCK` rows). It beats the row tiles right after a dense call, when x comes from memory; the FMAs
    (6/16 of them on padding) are most of its time. Dot products with lanes over the inputs would need no padding,
    but LLVM's SLP vectorizer packed them across units, with gathers, several times slower. numba compiles the
    kernel once per machine (`cache=True`). `python -m benchmarks.speed` measures it (unit pruning at 99 %).

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
        narrow_kernel()(x, self.sizes, self.widths, self.starts, self.weights, self.relu, out)
        return out


def is_narrow(net: Network) -> bool:
    """Whether every layer of `net` (a shrunk one) has at most `NARROW_UNITS` units: the narrow kernel takes it."""
    return max(net.sizes[1:]) <= NARROW_UNITS


def narrow_net(net: Network) -> NarrowNet | None:
    """`net` (a shrunk one) packed for the narrow kernel, or None when a layer has more than `NARROW_UNITS`."""
    if not is_narrow(net):
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
    multiply-adds, while most of MNIST's pixels are zero. The kernel (`_sparse_input_source`) lists a row's
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
        sparse_input_kernel()(x, self.weights, self.bias, self.relu, self.units, out)
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


def skips_zero_inputs(narrow: bool, x: np.ndarray) -> bool:
    """Whether `ShrunkEngine` runs the first layer of the batch x (n, inputs) in the sparse-input kernel: in row
    tiles (a net too wide for the narrow kernel, a batch of `TILE_MIN_BATCH` rows or more, a settable OpenBLAS)
    and for mostly zero inputs."""
    return (
        not narrow
        and len(x) >= TILE_MIN_BATCH
        and tile_pool() is not None
        and input_density(x) <= SPARSE_INPUT_MAX_DENSITY
    )


@dataclass(frozen=True)
class ShrunkEngine(DenseEngine):
    """The shrunk network (`shrink`, narrow layers padded): dense matmuls on smaller matrices.

    A batch of at least `NARROW_MIN_BATCH` rows on a net whose layers all have at most `NARROW_UNITS` units runs
    in the narrow kernel instead (`NarrowNet`). Otherwise a batch of at least `TILE_MIN_BATCH` rows runs in row
    tiles of at most `TILE_ROWS`, each through every layer while its activations stay in cache, on all cores at
    once (`on_every_core`: the calling thread and `tile_pool`'s), each thread calling OpenBLAS single-threaded.
    Smaller batches, and any process where numpy's OpenBLAS thread count cannot be set (another BLAS, an OpenMP
    build, one core), run as `DenseEngine` does. In the row tiles, a batch whose inputs are mostly zeros
    (`input_density` at most `SPARSE_INPUT_MAX_DENSITY`) runs its first layer in the sparse-input kernel
    (`SparseInput`), the other layers in OpenBLAS. The logits agree within float32 rounding (BLAS blocks a tile's
    product as it likes; the kernels sum each unit's inputs in order).
    """

    name: str = "shrunk"
    narrow: NarrowNet | None = None  # `narrow_net` of the shrunk net (before padding), when it is narrow enough
    first: SparseInput | None = None  # `sparse_input` of the (padded) shrunk net: its first layer for sparse batches

    def logits(self, x: np.ndarray) -> np.ndarray:
        x = np.asarray(x, dtype=np.float32).reshape(len(x), -1)  # (n, inputs)
        if self.narrow is not None and len(x) >= NARROW_MIN_BATCH:
            return self.narrow.logits(self.net.prepare(x))
        pool = tile_pool() if len(x) >= TILE_MIN_BATCH else None
        if pool is None:
            return self.net.logits(x)
        first = self.first if skips_zero_inputs(self.narrow is not None, x) else None
        helpers = pool[1]
        out = np.empty((len(x), self.net.layers[-1].units), dtype=np.float32)  # (n, classes)
        threads = helpers + 1
        n_tiles = threads * -(-len(x) // (threads * TILE_ROWS))  # a multiple of the threads: equal shares
        size = -(-len(x) // n_tiles)  # rows per tile, at most TILE_ROWS

        def run(tile: int) -> None:
            rows = slice(tile * size, (tile + 1) * size)
            if first is not None:
                out[rows] = self.net._forward(first(x[rows]), start=1)  # (tile rows, classes)
            else:
                out[rows] = self.net._forward(self.net.prepare(x[rows]))

        on_every_core(n_tiles, run)
        return out


def pad_narrow(net: Network) -> Network:
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
