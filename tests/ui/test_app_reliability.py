"""Concurrent users on one dashboard server: what one user makes (a fine-tuned point) stays in their session.
Sessions moving at once against a real server, each shown only its own numbers, are tests/ui/test_load_client.py
(benchmarks/load.py's protocol-level client); the full measurement is `python -m benchmarks.load`.
"""

from __future__ import annotations

import json

from apptest import settle
from streamlit.testing.v1 import AppTest

from benchmarks.live_app import ROOT

APP = str(ROOT / "app.py")


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
    settle(next(b for b in mine.button if b.label.startswith("Fine-tune")).click().run())
    assert not mine.exception and mine.success[0].value.startswith("Fine-tuned 1 point for 0.1 epochs each")
    assert fine_tuned_curves(mine) == ["magnitude, unit, fine-tuned 0.1 ep"]  # drawn at once (the app reruns)
    assert not other.run().exception and fine_tuned_curves(other) == []
