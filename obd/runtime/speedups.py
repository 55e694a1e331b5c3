"""A measured speed-up in words: the one text that the app's latency headline, its explanations, the lesson and
the speed view print, so that two places never word (or round) one reading differently.

A `Speedup` is made from a `obd.runtime.latency.Latency` (what "auto" reports for one pruned net) or from an
`obd.runtime.bench.bench` record (one engine at one sparsity); `speedup_text` says how much faster, on which
engine and batch, against how many fewer multiply-adds, and why when the reading is above that ratio.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from obd.runtime.latency import Latency

FASTER = 1.1  # speed-ups below this (and slow-downs above its inverse) are within the timing noise of a shared CPU
ABOVE_IDEAL = 1.05  # a speed-up this many times the FLOP ratio is "above" it (below: rounding and noise)
CACHE_REASON = (
    "above the FLOP ratio because the smaller matrices fit the CPU's caches, so each multiply-add costs less "
    "than in the dense net"
)


@dataclass(frozen=True)
class Speedup:
    """One reading of an engine against dense, as `speedup_text` words it.

    speedup: dense time / engine time (median of the interleaved pairs).
    low, high: the interquartile range of the per-pair ratios.
    flop_ratio: dense multiply-adds / those of the engine's net (the ideal speed-up).
    engine: "dense", "sparse" or "shrunk" ("dense": nothing ran faster, so dense is what runs).
    batch: rows per call that were timed.
    noisy: other work used the CPU during every attempt, or the reading had to be capped or held.
    """

    speedup: float
    low: float
    high: float
    flop_ratio: float
    engine: str
    batch: int
    noisy: bool = False

    def __post_init__(self) -> None:
        if not (self.speedup > 0 and self.flop_ratio > 0 and self.batch >= 1):
            raise ValueError(
                f"a speed-up and its FLOP ratio must be positive and the batch at least 1; got {self.speedup}, "
                f"{self.flop_ratio} and {self.batch}"
            )

    @classmethod
    def of_latency(cls, lat: Latency, batch: int) -> Speedup:
        """The reading `obd.runtime.latency.latency` took on a batch of `batch` rows."""
        return cls(lat.speedup, *lat.speedup_range, lat.flop_ratio, lat.engine, int(batch), lat.noisy)

    @classmethod
    def of_record(cls, record: Mapping) -> Speedup:
        """A `bench` record's reading; its FLOP ratio is the pruned net's ideal speed-up."""
        return cls(
            float(record["speedup"]),
            float(record.get("speedup_low", record["speedup"])),
            float(record.get("speedup_high", record["speedup"])),
            float(record["ideal_speedup"]),
            str(record["engine"]),
            int(record["batch"]),
            bool(record.get("noisy", False)),
        )

    @property
    def faster(self) -> bool:
        """Whether the reading is faster than dense by more than the noise."""
        return self.speedup >= FASTER

    @property
    def above_ideal(self) -> bool:
        """Whether a clean reading measured faster than its multiply-adds allow (see CACHE_REASON; a noisy one
        above them is said to be noisy, which is its reason)."""
        return self.faster and not self.noisy and self.speedup > ABOVE_IDEAL * self.flop_ratio


def speedup_text(s: Speedup, short: bool = False) -> str:
    """A reading in words, the same wherever it is shown.

    Args:
        s: the reading.
        short: the form of a metric's one-line delta ("5.2× faster · shrunk · batch 100 · FLOPs 13.6×"); else
            a clause for a sentence ("5.2× faster than dense (shrunk engine, batch 100; 13.6× fewer
            multiply-adds)"), with the reason when it is above the FLOP ratio and a word when it is noisy.

    Returns:
        The text. A noisy reading whose range differs at the printed precision shows that range ("4.1–6.0×").
    """
    spread = s.noisy and f"{s.low:.1f}" != f"{s.high:.1f}"
    times = f"{s.low:.1f}–{s.high:.1f}×" if spread else f"{s.speedup:.1f}×"
    flops = f"{s.flop_ratio:.1f}×"
    if s.engine == "dense":  # nothing beat dense, so dense is what runs
        if short:
            return f"dense: no engine faster · batch {s.batch:,} · FLOPs {flops}"
        return f"no engine runs it faster than dense at batch {s.batch:,}, for all its {flops} fewer multiply-adds"
    if s.faster:
        head, where = f"{times} faster", f"{s.engine} engine"
    elif s.speedup > 1 / FASTER:
        head, where = "no faster", f"{s.speedup:.2f}× on the {s.engine} engine"
    else:
        head, where = f"{1 / s.speedup:.1f}× slower", f"{s.engine} engine"
    if short:
        parts = [head, s.engine, f"batch {s.batch:,}", f"FLOPs {flops}"]
        return " · ".join(parts + (["above FLOPs: cache"] if s.above_ideal else []) + (["noisy"] if s.noisy else []))
    notes = [CACHE_REASON] if s.above_ideal else []
    if s.noisy:
        notes.append("a noisy reading: other work shared the CPU")
    text = f"{head} than dense ({where}, batch {s.batch:,}; {flops} fewer multiply-adds)"
    return text + "".join(f"; {n}" for n in notes)
