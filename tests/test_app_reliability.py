"""Concurrent users on one real dashboard server: three chromium sessions move sparsity and mode at the same time
(benchmarks/load.py's driver, a few moves each); none may see an error, and each must be shown obd's numbers for
its own state, never another session's. The full measurement (8 sessions x 50 moves, latency and memory) is
`python -m benchmarks.load`.
"""

from __future__ import annotations

import asyncio

import pytest

from benchmarks.live_app import Expected
from benchmarks.load import drive, scripts, summarize

pytestmark = pytest.mark.browser

SESSIONS, MOVES = 3, 6


def test_concurrent_sessions_see_only_their_own_numbers_and_no_errors(server, chromium, tiny, mnist):
    plans = scripts(SESSIONS, MOVES, seed=1)
    expected = Expected(tiny, mnist.x_test, mnist.y_test)
    figures = summarize(asyncio.run(drive(server.url, "tiny", plans, expected, timeout_s=60)), "tiny", SESSIONS,
                        MOVES)
    assert figures["failure_examples"] == [] and figures["errors"]["error_boxes"] == 0, figures["errors"]
    assert figures["mismatch_examples"] == [] and figures["cross_talk"] == 0
    assert figures["reruns"] == SESSIONS * MOVES
    assert {r["mode"] for r in figures["records"]} == {"weight", "unit"}  # both modes, across sessions at once
