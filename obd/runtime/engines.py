"""Inference engines that turn sparsity into speed, and "auto", which picks one: dense (obd.runtime.dense), shrunk
for unit pruning (obd.runtime.shrunk) and sparse for weight pruning (obd.runtime.sparse).

`build_engine(net, "auto", batch_size)` picks by density thresholds measured on a 2-core machine
(benchmarks/thresholds.py), with a margin, so "auto" is never slower than dense there.
"""

from __future__ import annotations

from obd.core.network import Network, as_network
from obd.runtime.dense import DenseEngine, Engine
from obd.runtime.kernels import LANES
from obd.runtime.shrunk import ShrunkEngine, count_nonzero, narrow_net, pad_narrow, shrink, sparse_input
from obd.runtime.sparse import ROW_BY_ROW, sparse_engine

KINDS = ("auto", "dense", "sparse", "shrunk")
# "auto" runs the sparse engine when at most this fraction of the shrunk kernels' entries is kept, by the smallest
# batch size each threshold applies from: the largest kept fraction at which sparse was at least 1.2x faster than
# dense in quiet runs of `python -m benchmarks.thresholds` on the default net (docs/architecture.md).
SPARSE_MAX_DENSITY = {1: 0.25, 8: 0.1, ROW_BY_ROW: 0.05, LANES: 0.15, 2 * LANES: 0.2, 1000: 0.15}
# Below this many weights (after shrinking) the dense matmuls are so small that the tile kernel's fixed costs weigh
# more: batches of tiles there go sparse only at SMALL_NET_MAX_DENSITY.
SMALL_NET_WEIGHTS = 1_000_000
SMALL_NET_MAX_DENSITY = 0.05


def choose_kind(net: Network, batch_size: int) -> str:
    """The engine "auto" picks: sparse when few enough weights are kept, else shrunk when units died, else dense.

    Args:
        net: the (pruned) network.
        batch_size: rows per `logits` call the engine will see.

    Returns:
        "sparse", "shrunk" or "dense".
    """
    small = shrink(net)
    if count_nonzero(small) <= sparse_max_density(small.n_weights, batch_size) * small.n_weights:
        return "sparse"
    return "shrunk" if small.sizes != net.sizes else "dense"


def sparse_max_density(n_weights: int, batch_size: int) -> float:
    """The largest kept fraction of a (shrunk) net of `n_weights` at which "auto" runs the sparse engine."""
    threshold = SPARSE_MAX_DENSITY[max(b for b in SPARSE_MAX_DENSITY if b <= max(batch_size, 1))]
    if n_weights < SMALL_NET_WEIGHTS and batch_size >= ROW_BY_ROW:
        threshold = min(threshold, SMALL_NET_MAX_DENSITY)
    return threshold


def build_engine(net: Network | object, kind: str = "auto", batch_size: int = 10_000) -> Engine:
    """An engine computing `net`'s logits.

    Args:
        net: the (pruned) network, or a Keras model (`as_network`).
        kind: "dense", "shrunk", "sparse", or "auto" (`choose_kind`).
        batch_size: the batch size it will run at (only "auto" uses it).

    Returns:
        An Engine; its `name` is the kind it runs ("auto" resolves to one of the others).

    Raises:
        ValueError: for an unknown kind.
    """
    if kind not in KINDS:
        raise ValueError(f"engine kind must be one of {', '.join(KINDS)}; got {kind!r}")
    net = as_network(net)
    if kind == "auto":
        kind = choose_kind(net, batch_size)
    if kind == "sparse":
        return sparse_engine(net)
    if kind == "shrunk":
        small = shrink(net)
        padded = pad_narrow(small)
        return ShrunkEngine(padded, narrow=narrow_net(small), first=sparse_input(padded))
    return DenseEngine(net)
