"""AppTest helpers shared by the dashboard's tests: the page computes slow things in background jobs, so a test
reruns it (as its polling fragments do in a browser) until nothing is pending."""

from __future__ import annotations

import time

from streamlit.testing.v1 import AppTest

from ui.metrics import MEASURING

TIMEOUT = 300  # seconds: the first run trains the tiny preset


def waiting(at: AppTest) -> bool:
    """Whether the page still waits for a background job (a progress bar, or a latency being measured)."""
    return bool(at.get("progress")) or any(m.value == MEASURING for m in at.metric)


def settle(at: AppTest, timeout: float = TIMEOUT) -> AppTest:
    """Rerun the page (as its polling fragments do in a browser) until no background job is pending."""
    deadline = time.monotonic() + timeout
    while waiting(at) and not at.exception:
        assert time.monotonic() < deadline, "the page did not settle"
        time.sleep(0.2)
        at.run()
    return at
