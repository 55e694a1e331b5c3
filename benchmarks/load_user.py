"""One simulated user of benchmarks/load.py: the dashboard's labels it finds things by, a load run's settings,
its next move (a quick pick, a slider value or step, the other mode), one move made and waited for, and the
checks that its page shows its own state (no cross-talk between sessions).

The sessions are protocol-level clients (benchmarks/streamlit_client.py); `user` is one of them from its first
page to the end of the measured phase.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass
from urllib.parse import parse_qs

import numpy as np

from benchmarks.live_app import METRICS, state_caption
from benchmarks.streamlit_client import Page, ProtocolError, Session
from obd.core.pruning import MODES

MOVES = {"pick": 0.35, "slide": 0.2, "nudge": 0.2, "mode": 0.25}  # kind -> probability of a session's next move
LOST_GRACE_S = 3.0  # how long a page that settled on another state may take to start one more run


@dataclass(frozen=True)
class AppLabels:
    """The dashboard's texts the sessions find things by: change them here when the page is reworded."""

    sparsity: str = "Sparsity (%)"  # the slider
    quick_picks: str = "Quick picks (%)"  # the pills that set the slider
    mode: str = "Mode"  # the segmented control: weight / unit
    caption: str = "Model:"  # the caption that names the state starts with this
    metrics: tuple[str, ...] = METRICS  # the metrics whose values depend on the state
    method: str = "magnitude"  # the method and budget the sessions keep (the caption names them)
    budget: str = "layer"
    latency: str = "Latency, batch 100"  # the metric timed in the background once per structure
    measuring: str = "…"  # its value until then


LABELS = AppLabels()


@dataclass(frozen=True)
class LoadConfig:
    """One load run."""

    sessions: int = 30  # concurrent sessions
    duration_s: float = 300.0  # length of the measured phase
    think_s: tuple[float, float] = (1.0, 3.0)  # a user's pause between moves, drawn uniformly
    warmup: int = 3  # moves per session before memory and CPU are first measured
    seed: int = 0  # seeds every session's walk
    timeout_s: float = 120.0  # how long one move may take to settle before it counts as an error
    stagger_s: float = 1.0  # between two sessions' arrivals (a class does not click at the same millisecond)
    first_open_s: float = 600.0  # how long the first page of a fresh server may take (it loads the model)

    def __post_init__(self):
        if self.sessions < 1 or self.duration_s <= 0 or self.warmup < 0 or self.timeout_s <= 0:
            raise ValueError("sessions must be >= 1, duration and timeout > 0 and warmup >= 0")
        if self.stagger_s < 0 or self.first_open_s <= 0:
            raise ValueError("stagger must be >= 0 and the first page's timeout > 0")
        if not 0 <= self.think_s[0] <= self.think_s[1]:
            raise ValueError(f"think time {self.think_s} must be (low, high) with 0 <= low <= high")


def shows(page: Page, mode: str | None, k: int | None, labels: AppLabels = LABELS) -> bool:
    """Whether a page has finished drawing the state (mode, k): its caption names it and the metrics are drawn.

    Args:
        page: the session's page.
        mode: "weight" or "unit"; None (with k None): any state.
        k: sparsity in percent.
        labels: the page's labels.

    Returns:
        True when the state's caption and every state metric are on the page.
    """
    suffix = "" if mode is None else state_caption(mode, k, labels.method, labels.budget)
    caption = any(c.startswith(labels.caption) and c.endswith(suffix) for c in page.captions())
    return caption and all(m in page.metrics() for m in labels.metrics)


def mismatches(session: Session, mode: str, k: int, labels: AppLabels = LABELS) -> list[str]:
    """How a settled session's caption, slider and address differ from its own state (empty: no cross-talk).

    Args:
        session: the session, its page settled on (mode, k).
        mode: the session's mode.
        k: the session's sparsity in percent.
        labels: the page's labels.

    Returns:
        one line per difference.
    """
    wrong = []
    suffix = state_caption(mode, k, labels.method, labels.budget)
    captions = [c for c in session.page.captions() if c.startswith(labels.caption)]
    if not any(c.endswith(suffix) for c in captions):
        wrong.append(f"caption {captions} does not end with {suffix!r}")
    slider = session.value(labels.sparsity, "slider")
    if slider != k:
        wrong.append(f"slider at {slider}, the session is at {k}")
    q = parse_qs(session.address)
    if (q.get("mode", [None])[0], q.get("sparsity", [None])[0]) != (mode, str(k)):
        wrong.append(f"address {session.address!r}, the session is at mode={mode}&sparsity={k}")
    return wrong


def next_move(
    rng: np.random.Generator, session: Session, mode: str, k: int, labels: AppLabels = LABELS
) -> tuple[str, str, object, str, int]:
    """A user's next input, drawn from MOVES; the quick picks are read from the page.

    Args:
        rng: the session's generator.
        session: the session (its page says which quick picks exist and which is selected).
        mode: the current mode.
        k: the current sparsity in percent.
        labels: the page's labels.

    Returns:
        (kind, widget label, value to set, mode after, sparsity after).
    """
    kind = str(rng.choice(list(MOVES), p=list(MOVES.values())))
    if kind == "pick":
        _, pills = session.page.widget(labels.quick_picks, "button_group")
        held = session.value(labels.quick_picks, "button_group")  # clicking the selected pill would clear it
        options = [o.content for o in pills.options if o.content not in (held, str(k))]
        pick = str(rng.choice(options))
        return kind, labels.quick_picks, pick, mode, int(pick)
    if kind == "mode":
        other = MODES[1 - MODES.index(mode)]
        return kind, labels.mode, other, other, k
    if kind == "slide":
        new = int(rng.choice([v for v in range(100) if v != k]))
    else:
        step = int(rng.integers(1, 4)) * int(rng.choice((-1, 1)))
        new = k + step if 0 <= k + step <= 99 else k - step  # off the slider's end: the other way
    return kind, labels.sparsity, new, mode, new


async def move(
    session: Session, label: str, value: object, mode: str, k: int, timeout_s: float, labels: AppLabels = LABELS
) -> dict:
    """Make one input and wait for the page to show (mode, k).

    Args:
        session: the session.
        label: the widget's label.
        value: its new value.
        mode: the mode the input leads to.
        k: the sparsity it leads to.
        timeout_s: how long the page may take to settle.
        labels: the page's labels.

    Returns:
        a record: run_s (request to the first finished run), settle_s (request to the page showing the state),
        server_s (that run's time on the server), runs (how many runs it took), errors (what the page shows as
        failed), mismatches (cross-talk), metrics (as shown, for the oracle) and failure (None, or why the move
        never settled).
    """
    record = {
        "mode": mode,
        "sparsity": k,
        "run_s": None,
        "settle_s": None,
        "server_s": None,
        "runs": None,
        "errors": [],
        "mismatches": [],
        "metrics": {},
        "failure": None,
    }
    before = len(session.runs)
    try:
        run = await session.set(label, value)
        record.update(run_s=run.latency_s, server_s=run.server_s)
        target = lambda page: shows(page, mode, k, labels) or bool(page.errors())  # noqa: E731
        # A page that shows some other state, complete, with nothing polling, has dropped the input (unless one
        # more run is on its way): no need to wait the whole timeout for it.
        settled = await session.until(
            lambda page: target(page) or (not session.polling and shows(page, None, None, labels)), timeout_s
        )
        if not target(session.page):
            try:
                settled = await session.until(target, LOST_GRACE_S)
            except ProtocolError:
                shown = [c for c in session.page.captions() if c.startswith(labels.caption)]
                raise ProtocolError(f"input lost: the page settled on {shown} and stayed") from None
        record.update(settle_s=settled - run.sent, runs=len(session.runs) - before)
    except (ProtocolError, LookupError, ValueError) as e:
        record["failure"] = f"{type(e).__name__}: {e}"
    page = session.page
    record["errors"] = page.errors()
    if record["failure"] is None and not record["errors"]:
        try:
            record["mismatches"] = mismatches(session, mode, k, labels)
        except LookupError as e:  # the page lost its slider
            record["failure"] = f"LookupError: {e}"
        record["metrics"] = {m: page.metrics().get(m) for m in labels.metrics}
    return record


async def user(
    i: int, url: str, start: tuple[str, int], cfg: LoadConfig, warm: asyncio.Barrier, phase: dict, labels: AppLabels
) -> tuple[Session | None, list[dict]]:
    """One session: open, warm up, wait for the others, then move until the measured phase ends."""
    rng = np.random.default_rng([cfg.seed, i])
    mode, k = start
    records = []
    await asyncio.sleep(i * cfg.stagger_s)
    session = None
    try:
        session, run = await Session.open(url, f"mode={mode}&sparsity={k}", cfg.timeout_s)
        settled = await session.until(lambda page: shows(page, mode, k, labels) or bool(page.errors()))
    except (ProtocolError, OSError) as e:
        if session:
            await session.close()
        await warm.wait()
        return None, [
            {
                "session": i,
                "move": -1,
                "kind": "open",
                "phase": "warmup",
                "mode": mode,
                "sparsity": k,
                "failure": f"{type(e).__name__}: {e}",
                "errors": [],
                "mismatches": [],
                "metrics": {},
            }
        ]
    records.append(
        {
            "session": i,
            "move": -1,
            "kind": "open",
            "phase": "warmup",
            "mode": mode,
            "sparsity": k,
            "run_s": run.latency_s,
            "settle_s": settled - run.sent,
            "server_s": run.server_s,
            "errors": session.page.errors(),
            "mismatches": [],
            "failure": None,
            "metrics": {m: session.page.metrics().get(m) for m in labels.metrics},
        }
    )
    n, waited = 0, False
    while True:
        if n == cfg.warmup and not waited:
            waited = True
            await warm.wait()
        if waited and time.perf_counter() >= phase["end"]:
            break
        await asyncio.sleep(rng.uniform(*cfg.think_s))
        kind, label, value, mode_after, k_after = next_move(rng, session, mode, k, labels)
        started = time.perf_counter()
        rec = await move(session, label, value, mode_after, k_after, cfg.timeout_s, labels)
        records.append(
            {
                "session": i,
                "move": n,
                "kind": kind,
                "phase": "warmup" if n < cfg.warmup else "measured",
                "started": started,
                **rec,
            }
        )
        n += 1
        mode, k = mode_after, k_after
        if rec["failure"]:  # go on from the state the page holds once it settles (its address), as a user would
            try:
                await session.until(lambda page: shows(page, None, None, labels) and not session.polling)
                q = parse_qs(session.address)
                mode, k = q["mode"][0], int(q["sparsity"][0])
                if mode not in MODES:
                    raise ValueError(f"mode {mode!r} in the address")
            except (ProtocolError, KeyError, ValueError):
                break  # the session is gone, or the page never came back to a state it names
    if not waited:  # it failed during the warm-up: the others must not wait for it
        await warm.wait()
    return session, records
