"""AppTest helpers shared by the dashboard's tests: the page computes slow things in background jobs, so a test
reruns it (as its polling fragments do in a browser) until nothing is pending."""

from __future__ import annotations

import re
import time
from pathlib import Path

from streamlit.testing.v1 import AppTest

from ui.views.metrics import MEASURING

APP = str(Path(__file__).resolve().parents[1] / "app.py")
TIMEOUT = 300  # seconds: the first run trains the tiny preset


def waiting(at: AppTest) -> bool:
    """Whether the page still waits for a background job (a progress bar, a latency being measured, or a view
    whose pruned network is being rebuilt)."""
    return (
        bool(at.get("progress"))
        or any(m.value == MEASURING for m in at.metric)
        or any(i.value.startswith("Rebuilding the ") for i in at.info)
    )


def settle(at: AppTest, timeout: float = TIMEOUT) -> AppTest:
    """Rerun the page (as its polling fragments do in a browser) until no background job is pending."""
    deadline, pause = time.monotonic() + timeout, 0.2
    while waiting(at) and not at.exception:
        assert time.monotonic() < deadline, "the page did not settle"
        time.sleep(pause)
        # a rerun costs about 0.1 s of the cores the background job needs: poll ever less often, up to every 2 s
        pause = min(2.0, pause * 1.5)
        at.run()
    return at


def open_app(settled: bool = True, **params) -> AppTest:
    at = AppTest.from_file(APP, default_timeout=TIMEOUT)
    for name, value in {"preset": "tiny", **params}.items():
        at.query_params[name] = value
    at.run()
    return settle(at) if settled else at


def shown(markdown: str) -> str:
    """The text Markdown shows for `markdown`'s backslash escapes, without the zero-width spaces that stop
    autolinks (ui.services.state.plain_text writes both)."""
    return re.sub(r"\\(.)", r"\1", markdown).replace("\u200b", "")
