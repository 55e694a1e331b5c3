"""A speed-up in words: one text for the headline, the explanations, the lesson and the speed view. It says the
engine, the batch and the FLOP ratio; a reading above that ratio says why; a noisy one shows its range; dense
(nothing faster) is said as such."""

import pytest

from obd.runtime.speedups import CACHE_REASON, Speedup, speedup_text


def test_a_reading_says_its_engine_batch_and_flop_ratio():
    s = Speedup(5.2, 5.0, 5.4, 13.6, "shrunk", 100)
    assert speedup_text(s) == "5.2× faster than dense (shrunk engine, batch 100; 13.6× fewer multiply-adds)"
    assert speedup_text(s, short=True) == "5.2× faster · shrunk · batch 100 · FLOPs 13.6×"


def test_above_the_flop_ratio_is_explained_and_noise_shows_its_range():
    above = Speedup(15.0, 14.0, 16.0, 13.6, "shrunk", 100)
    assert above.above_ideal and CACHE_REASON in speedup_text(above) and "cache" in speedup_text(above, short=True)
    assert not Speedup(13.9, 13.8, 14.0, 13.6, "shrunk", 100).above_ideal  # within rounding of the ratio
    noisy_above = Speedup(15.0, 14.0, 16.0, 13.6, "shrunk", 100, noisy=True)  # noise is the reason said
    assert CACHE_REASON not in speedup_text(noisy_above) and "noisy" in speedup_text(noisy_above)
    noisy = Speedup(5.0, 4.1, 6.0, 13.6, "shrunk", 10_000, noisy=True)
    assert speedup_text(noisy).startswith("4.1–6.0× faster than dense (shrunk engine, batch 10,000;")
    assert "noisy" in speedup_text(noisy) and speedup_text(noisy, short=True).endswith("· noisy")


def test_dense_and_slower_readings_are_said_as_such():
    dense = Speedup(1.0, 1.0, 1.0, 9.8, "dense", 100)
    assert (
        speedup_text(dense) == "no engine runs it faster than dense at batch 100, for all its 9.8× fewer multiply-adds"
    )
    assert speedup_text(dense, short=True).startswith("dense: no engine faster")
    assert speedup_text(Speedup(0.97, 0.9, 1.0, 2.0, "sparse", 100)).startswith("no faster than dense (0.97× on")
    assert speedup_text(Speedup(0.5, 0.5, 0.5, 2.0, "sparse", 1)).startswith("2.0× slower than dense (sparse engine")
    with pytest.raises(ValueError, match="positive"):
        Speedup(0.0, 0.0, 0.0, 2.0, "sparse", 1)
