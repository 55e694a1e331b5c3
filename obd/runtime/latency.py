"""Latency readings: an engine timed against dense in interleaved pairs, on a machine others may be using.

`measure` times one reading and marks it noisy when other work took the CPU (psutil's system-wide CPU times) or
its speed-up exceeds what the FLOPs allow; `Readings` keeps the process's readings (the app's sessions and
`bench` share them) so that one state shows one figure; `latency` is the one-call entry point.
"""

from __future__ import annotations

import dataclasses
import math
import statistics
import threading
import time
from dataclasses import dataclass

import numpy as np
import psutil

from obd.core.network import Network, as_network
from obd.runtime.dense import DenseEngine, Engine
from obd.runtime.engines import KINDS, build_engine, sparse_max_density
from obd.runtime.shrunk import (
    count_nonzero,
    ideal_speedup,
    input_density,
    is_narrow,
    nonzero_weights,
    shrink,
    skips_zero_inputs,
)


@dataclass(frozen=True)
class TimingConfig:
    """How `measure` takes a latency reading."""

    pairs: int = 15  # interleaved (dense, engine) pairs per reading, at least
    window_s: float = 0.2  # a reading lasts at least this long: the OS counts CPU time in 10 ms ticks
    sample_s: float = 5e-4  # calls are repeated until one timed sample lasts this long (a tiny net runs in µs)
    attempts: int = 3  # readings taken while others use the machine, before one is kept and marked noisy
    budget_s: float = 20.0  # no new attempt once a reading has taken this long (slow engines on big batches)
    noise_limit: float = 0.15  # share of the machine's CPU time others may use during a clean reading
    over_ideal: float = 1.2  # a speed-up above this multiple of the engine's FLOP ratio is a bad reading

    def __post_init__(self) -> None:
        if self.pairs < 1 or self.attempts < 1:
            raise ValueError(f"pairs and attempts must be at least 1; got {self.pairs} and {self.attempts}")
        if min(self.window_s, self.sample_s, self.noise_limit, self.budget_s) < 0 or self.over_ideal < 1:
            raise ValueError(
                "window_s, sample_s, noise_limit and budget_s must be >= 0 and over_ideal >= 1; got "
                f"{self.window_s}, {self.sample_s}, {self.noise_limit}, {self.budget_s} and "
                f"{self.over_ideal}"
            )


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


def _busy_cpu_s() -> float:
    """CPU seconds the whole machine has spent busy since boot (steal counts as busy: a neighbour took it)."""
    times = psutil.cpu_times()
    return sum(times) - times.idle - getattr(times, "iowait", 0.0)


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
    dense_s: list[float] = []
    ratios: list[float] = []
    while len(ratios) < config.pairs or time.perf_counter() - start < config.window_s:
        if len(ratios) % 2:  # who goes first alternates, so neither gains from the other warming the caches
            e, d = _sample(engine, x, calls), _sample(dense, x, calls)
        else:
            d, e = _sample(dense, x, calls), _sample(engine, x, calls)
        dense_s.append(d)
        ratios.append(d / e)
    wall = time.perf_counter() - start
    # this process's own CPU time (every thread: BLAS's and numba's too) is not others'
    others = max(0.0, _busy_cpu_s() - busy - (time.process_time() - own)) / (wall * (psutil.cpu_count() or 1))
    return _Attempt(tuple(dense_s), tuple(ratios), others)


def measure(
    dense: Engine, engine: Engine, x: np.ndarray, flop_ratio: float, config: TimingConfig = TimingConfig()
) -> Latency:
    """Time `engine` against `dense` on the batch `x`: a robust, retaken, plausible speed-up.

    After an untimed warm-up call each, calls are timed in interleaved pairs (so both see the same machine
    load) and the speed-up is the median of the per-pair ratios. An attempt is retaken, up to
    `config.attempts` times within `config.budget_s`, while other processes use more than `config.noise_limit`
    of the machine's CPU (the system's CPU times around the attempt) or its speed-up exceeds `config.over_ideal`
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
    while len(attempts) < config.attempts and not clean(attempts[-1]) and time.perf_counter() - start < config.budget_s:
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
    return Latency(
        dense_ms,
        engine.name,
        dense_ms / speedup,
        speedup,
        (min(float(low), speedup), min(max(float(high), speedup), limit)),
        flop_ratio,
        noisy,
        len(kept.ratios),
        note,
    )


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
    first layer counts only the nonzero inputs when it skips the zero ones (`skips_zero_inputs`)."""
    if kind == "sparse":
        return nonzero_weights(net)
    if kind == "dense":
        return net.n_weights
    small = shrink(net)
    if not skips_zero_inputs(is_narrow(small), x):
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
            lat = self._keep(
                lat, key, flops, f"measured {lat.speedup:.3g}x twice, out of line with the nets around it: held"
            )
            ref = self._dense_ms.setdefault((len(x), net.sizes), lat.dense_ms)
            return self._store(key, flops, dataclasses.replace(lat, dense_ms=ref, engine_ms=ref / lat.speedup))

    def auto(self, net: Network, x: np.ndarray, config: TimingConfig = TimingConfig()) -> Latency:
        """What "auto" reports for `net` at batch len(x): its fastest measured candidate, or dense (see
        `latency`), held monotone in the net's nonzero weights."""
        small = shrink(net)
        nonzeros = count_nonzero(small)
        # unit-like nets (dense once shrunk) and weight-like ones are ordered apart: a weight-pruned net with fewer
        # nonzero weights than a unit-pruned one can still need more work from every engine
        key = ("auto", len(x), net.sizes, nonzeros == small.n_weights, structure_key(net)[1:])
        with self._lock:
            if (found := self._found.get(key)) is not None:
                return found[1]
            kinds = [
                kind
                for kind, ok in (
                    ("shrunk", small.sizes != net.sizes),
                    # against the unshrunk count, so that a kind stays a candidate as sparsity grows; includes the pick
                    ("sparse", nonzeros <= sparse_max_density(net.n_weights, len(x)) * net.n_weights),
                )
                if ok
            ]
            best = max(
                (self.reading(net, x, kind, config) for kind in kinds), key=lambda lat: lat.speedup, default=None
            )
            if best is None or best.speedup < 1:
                best = self.reading(net, x, "dense", config)
            # the net's ideal, or the engine's own where it skips zero inputs too (so the 1.2x rule holds against it)
            best = dataclasses.replace(best, flop_ratio=max(ideal_speedup(net, net), best.flop_ratio))
            best = self._keep(
                best,
                key,
                nonzeros,
                f"its engines measured {best.speedup:.3g}x; held to a net with "
                "other nonzero weights (a method whose masks are not nested)",
            )
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
        return dataclasses.replace(
            lat, speedup=held, engine_ms=lat.dense_ms / held, speedup_range=span, noisy=True, note=note
        )

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


def latency(
    net: Network | object, x: np.ndarray, config: TimingConfig = TimingConfig(), readings: Readings = READINGS
) -> Latency:
    """The latency of `net` on the batch `x` through the engine "auto" picks, against dense.

    auto's candidates are timed and the fastest kept: the shrunk engine when units died, the sparse engine when
    few enough weights are kept (counted against the unpruned net, so that a candidate stays one as sparsity
    grows). When none beats dense, dense is what auto runs and what is reported, so the number shown is never a
    slow-down that auto chose. Readings come from `readings`: one per structure (nets of identical shapes read
    identically), monotone in nonzero weights (see `Readings`); see `measure` for how one is taken.

    Args:
        net: the (pruned) network, or a Keras model (`as_network`).
        x: (n, inputs) or (n, 28, 28) the batch to time.
        config: how a new reading is taken.
        readings: where readings are kept.

    Returns:
        A Latency; `engine` is "dense" when nothing faster applies or measured faster.
    """
    x = np.asarray(x, dtype=np.float32).reshape(len(x), -1)  # (n, inputs)
    return readings.auto(as_network(net), x, config)
