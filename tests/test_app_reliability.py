"""Concurrent users on one dashboard server: three chromium sessions move sparsity and mode at the same time
against a real server (benchmarks/load.py's driver, a few moves each); none may see an error, and each must be
shown obd's numbers for its own state, never another session's. And what one user makes (a fine-tuned point)
stays in their session. The full measurement (8 sessions x 50 moves, latency and memory) is
`python -m benchmarks.load`.
"""

from __future__ import annotations

import asyncio
import json

import pytest
from streamlit.testing.v1 import AppTest

from benchmarks.live_app import ROOT, Expected
from benchmarks.load import drive, scripts, summarize

APP = str(ROOT / "app.py")
SESSIONS, MOVES = 3, 6


@pytest.mark.browser
def test_concurrent_sessions_see_only_their_own_numbers_and_no_errors(server, chromium, tiny, mnist):
    plans = scripts(SESSIONS, MOVES, seed=1)
    expected = Expected(tiny, mnist.x_test, mnist.y_test)
    figures = summarize(asyncio.run(drive(server.url, "tiny", plans, expected, timeout_s=60)), "tiny", SESSIONS,
                        MOVES)
    assert figures["failure_examples"] == [] and figures["errors"]["error_boxes"] == 0, figures["errors"]
    assert figures["mismatch_examples"] == [] and figures["cross_talk"] == 0
    assert figures["reruns"] == SESSIONS * MOVES
    assert {r["mode"] for r in figures["records"]} == {"weight", "unit"}  # both modes, across sessions at once


def test_a_fine_tuned_point_stays_in_the_session_that_made_it(tiny):
    """Two sessions of one server process share its caches; a fine-tuned curve point is one user's own."""
    def session():
        at = AppTest.from_file(APP, default_timeout=300)
        at.query_params.update(preset="tiny", mode="unit", sparsity="50")
        return at.run()

    def fine_tuned_curves(at) -> list[str]:
        traces = json.loads(at.get("plotly_chart")[0].proto.spec)["data"]  # the curves chart comes first
        return [t["name"] for t in traces if "fine-tuned" in t.get("name", "")]

    mine, other = session(), session()
    mine.number_input(key="ft_epochs").set_value(0.1)
    next(b for b in mine.button if b.label.startswith("Fine-tune")).click().run()
    assert not mine.exception and mine.success[0].value.startswith("Fine-tuned for 0.1 epochs")
    assert fine_tuned_curves(mine) == ["magnitude, unit, fine-tuned 0.1 ep"]  # drawn at once (the app reruns)
    assert not other.run().exception and fine_tuned_curves(other) == []
