"""The load benchmark's protocol-level client against a real `streamlit run app.py` (tiny preset, from
tests/conftest.py): one session moves the sparsity slider and the mode and must be shown obd's numbers for each
state, in the caption, the metrics, the slider and the address; and three sessions moving at once must each see
their own state, never another's, and no error. The 30-session measurement is `python -m benchmarks.load`.
"""

from __future__ import annotations

import asyncio

from benchmarks.live_app import Expected
from benchmarks.load_user import LABELS, mismatches, move
from benchmarks.streamlit_client import Session

TIMEOUT_S = 60.0  # one move on a busy 2-core machine, the first one computing the state


def _settled(record: dict) -> dict:
    assert record["failure"] is None and record["errors"] == [], record
    assert record["mismatches"] == [], record["mismatches"]
    return record


def test_one_session_sees_its_sparsity_and_mode_with_obds_numbers(server, tiny, mnist):
    expected = Expected(tiny, mnist.x_test, mnist.y_test)

    async def scenario():
        session, first = await Session.open(server.url, "mode=weight&sparsity=30", TIMEOUT_S)
        try:
            assert first.status == "FINISHED_SUCCESSFULLY" and first.latency_s > 0
            assert session.value(LABELS.sparsity, "slider") == 30  # the address set the slider
            moved = _settled(await move(session, LABELS.sparsity, 85, "weight", 85, TIMEOUT_S))
            assert session.value(LABELS.sparsity, "slider") == 85
            switched = _settled(await move(session, LABELS.mode, "unit", "unit", 85, TIMEOUT_S))
            return moved, switched, mismatches(session, "weight", 85)
        finally:
            await session.close()

    moved, switched, stale = asyncio.run(scenario())
    assert moved["runs"] == 1, "alone on the server, a new magnitude state is computed in the page's run"
    assert moved["metrics"] == expected("weight", 85) and switched["metrics"] == expected("unit", 85)
    assert moved["metrics"] != switched["metrics"]  # the two states differ, so the check above can fail
    assert moved["settle_s"] >= moved["run_s"] > 0
    assert any("weight pruning at 85 %" in line for line in stale)  # the check names a state the page left


def test_concurrent_sessions_see_only_their_own_state(server, tiny, mnist):
    expected = Expected(tiny, mnist.x_test, mnist.y_test)
    walks = [
        [("weight", 20), ("weight", 64), ("unit", 64)],
        [("unit", 40), ("unit", 91), ("weight", 91)],
        [("weight", 75), ("unit", 75), ("unit", 12)],
    ]

    async def walk(states):
        (mode, k), records = states[0], []
        session, _ = await Session.open(server.url, f"mode={mode}&sparsity={k}", TIMEOUT_S)
        try:
            for m, p in states[1:]:
                label, value = (LABELS.mode, m) if m != mode else (LABELS.sparsity, p)
                records.append(await move(session, label, value, m, p, TIMEOUT_S))
                mode, k = m, p
        finally:
            await session.close()
        return records

    async def together():
        return await asyncio.gather(*(walk(w) for w in walks))

    for records in asyncio.run(together()):
        for r in records:
            assert _settled(r)["metrics"] == expected(r["mode"], r["sparsity"])


def test_with_others_connected_a_new_state_is_computed_in_the_background(server, tiny, mnist):
    """Under a class's load a new state's evaluation left the page's script for the quick board: the run that
    asks for it answers at once with the job's progress, and a later run shows the numbers."""
    expected = Expected(tiny, mnist.x_test, mnist.y_test)

    async def scenario():
        mover, _ = await Session.open(server.url, "mode=weight&sparsity=20", TIMEOUT_S)
        other, _ = await Session.open(server.url, "mode=unit&sparsity=40", TIMEOUT_S)
        try:
            return _settled(await move(mover, LABELS.sparsity, 67, "weight", 67, TIMEOUT_S))
        finally:
            await mover.close()
            await other.close()

    record = asyncio.run(scenario())
    assert record["metrics"] == expected("weight", 67)
    assert record["runs"] >= 2, "the run that asked for the state showed it: it waited for the evaluation"


def test_a_run_asked_for_without_widget_values_keeps_the_state(server):
    # chromium under load once asked for a run holding no sidebar values; the widgets then fell back to their
    # defaults and the next click sent those: the output layer's box came unticked, or a budget of None crashed
    query = "mode=unit&method=obs&budget=global&sparsity=71&prune_output=1"
    state = {
        LABELS.mode: "unit",
        "Method": "obs",
        "Budget": "global",
        LABELS.sparsity: 71,
        "Prune the output layer too": True,
    }

    async def scenario():
        session, _ = await Session.open(server.url, query, TIMEOUT_S)
        try:
            lossy = await session.rerun(holding=False)
            shown = {label: session.value(label) for label in state}
            after = await session.rerun()  # the next click sends what the widgets show
            return lossy, shown, after, {label: session.value(label) for label in state}, session
        finally:
            await session.close()

    lossy, shown, after, kept, session = asyncio.run(scenario())
    assert lossy.status == after.status == "FINISHED_SUCCESSFULLY"
    assert shown == state and kept == state
    assert all(part in session.address for part in query.split("&"))
    assert session.page.errors() == []
    assert any("obs unit pruning at 71 % (global budget)" in line for line in session.page.captions())


def test_a_client_that_fails_reading_a_frame_says_so_at_once(server):
    # a reader task that died silently left a session waiting its whole timeout for frames it could no longer
    # read, reported as "no run started": indistinguishable from a server that dropped the request
    async def scenario():
        session, _ = await Session.open(server.url, "mode=unit&sparsity=40", TIMEOUT_S)

        def broken(frame: bytes, now: float) -> None:
            raise ValueError("a frame this client cannot parse")

        session._receive = broken
        started = asyncio.get_running_loop().time()
        try:
            await session.rerun()
        except Exception as e:  # noqa: BLE001  the test asserts what it is
            return e, asyncio.get_running_loop().time() - started
        finally:
            await session.close()
        return None, 0.0

    error, waited = asyncio.run(scenario())
    assert type(error).__name__ == "ProtocolError"
    assert "this client failed reading a frame: ValueError: a frame this client cannot parse" in str(error)
    assert waited < TIMEOUT_S / 2
