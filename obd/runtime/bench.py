"""`bench`: every engine of each pruning mode timed against dense on the same pruned network, the machine it ran
on, and the records as a text table (`python -m obd bench`, benchmarks/speed.py)."""

from __future__ import annotations

import platform
from collections.abc import Callable, Sequence

import numpy as np

from obd.core.network import Network, as_network
from obd.core.pruning import check_mode, check_sparsity, prune, rank
from obd.runtime.latency import READINGS, Readings, TimingConfig
from obd.runtime.shrunk import ideal_speedup
from obd.runtime.threads import cores

MODE_ENGINES = {"weight": ("dense", "sparse"), "unit": ("dense", "shrunk")}  # what each pruning can use


def bench(
    net: Network | object,
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
        net: the unpruned network, or a Keras model (`as_network`).
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
        "note", "ideal_speedup"}; speedup is the engine's `Latency.speedup` (1.0 for dense, and for the engine of a
        net where nothing is pruned: it runs the dense net's work, so no speed-up is claimed), speedup_low/high its
        interquartile range, noisy and note say a reading was held or taken while other work ran (`Latency`),
        ideal_speedup `ideal_speedup(net, pruned)`.

    Raises:
        ValueError: for an unknown mode, a sparsity outside [0, 1], a batch < 1 or too few rows in x.
    """
    net, x = as_network(net), np.asarray(x, dtype=np.float32).reshape(len(x), -1)  # (n, inputs)
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
                # nothing pruned: the engine would run the dense net's work, so it reads as the dense net
                kind = MODE_ENGINES[mode][1] if ideal > 1 else "dense"
                lat = readings.reading(pruned, x[: int(batch)], kind, config)
                note = lat.note or ("" if ideal > 1 else "nothing pruned: the dense net's work, read as dense")
                common = {"mode": mode, "sparsity": k, "batch": int(batch), "ideal_speedup": ideal, "note": note}
                records += [
                    {
                        "engine": "dense",
                        **common,
                        "ms": lat.dense_ms,
                        "speedup": 1.0,
                        "speedup_low": 1.0,
                        "speedup_high": 1.0,
                        "noisy": lat.noisy,
                    },
                    {
                        "engine": MODE_ENGINES[mode][1],  # nothing pruned: it is the dense net, read as such
                        **common,
                        "ms": lat.engine_ms,
                        "speedup": lat.speedup,
                        "speedup_low": lat.speedup_range[0],
                        "speedup_high": lat.speedup_range[1],
                        "noisy": lat.noisy,
                    },
                ]
    return records


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
    return f"{model} ({binding.get_host_cpu_name()}, {vectors.replace('AVX512F', 'AVX-512')}), {cores()} cores"


def table(records: Sequence[dict]) -> str:
    """`bench` records as a text table, one row per engine: ms, speed-up vs dense, ideal, fraction of ideal; a held
    or noisy reading (`Latency.noisy`) is marked * and explained below the table."""
    head = f"{'mode':<7}{'sparsity':>9}{'batch':>7}  {'engine':<7}{'ms':>10}{'speedup':>9}{'ideal':>8}{'of ideal':>9}"
    lines = [head]
    for r in records:
        reached = 100 * r["speedup"] / r["ideal_speedup"]
        lines.append(
            f"{r['mode']:<7}{100 * r['sparsity']:>8g}%{r['batch']:>7}  {r['engine']:<7}{r['ms']:>10.3f}"
            f"{r['speedup']:>8.2f}x{r['ideal_speedup']:>7.1f}x{reached:>8.0f}%{' *' if r['noisy'] else ''}"
        )
    if any(r["noisy"] for r in records):
        lines.append(
            "* held or noisy: other work used the machine while it was timed, or it read out of line with the nets "
            "around it and was held to them; not a clean measurement"
        )
    return "\n".join(lines)
