"""A guard against a race in Streamlit's AppSession that throws away a whole script run's output.

What happens (seen in benchmarks/load.py's server, Streamlit 1.67): a session's ScriptRunner finishes a full run and
stops; before the event loop has handled that runner's queued events (the run's elements, its end, its shutdown), a
browser timer asks for a `run_every` fragment's run. `AppSession.request_rerun` finds the runner stopped, so it
starts a new one, and from then on `_handle_scriptrunner_event_on_event_loop` ignores every event of the old runner
("a non-current ScriptRunner"): the full run's elements and its end never reach the browser. The page keeps the
previous state's content (a move never settles) until the next full run, which only the user's next click brings.
Under load (benchmarks/load.py: 30 sessions on 2 cores) a few moves a run were lost this way, more often while new
states compute, since the pages then poll with fragments.

The guard: a fragment's run that would start a new ScriptRunner while the previous one has not shut down waits
until it has (its shutdown is the last event it sends, so everything it drew has then reached the browser), and is
then requested again. Only fragment runs wait: a full run asked for by the browser already replaces whatever the
old runner drew. A fragment run is a timer's poll or a click inside a fragment; it starts a few tens of ms later.

A second race, the same benchmark's "input lost" (a few quick picks a run, all under load): the
browser sends every widget's value with every request, a `run_every` timer's too. A quick pick sets the slider on
the server (a callback); a timer that fires before the browser has that run's new slider value sends the old one,
and the server took it, in the timer's fragment run or in a full run the timer's request joined (a poll's
`st.rerun()`): the page went back to the state before the pick. A timer's request carries no user input (every
input sends its own request first, in order on the same websocket), so the guard drops its widget values: the
server keeps the ones it holds.

Why hand-written: both races are in Streamlit itself (its frontend sends timer reruns whatever the run state is,
with every value it holds); no setting avoids them. The guard wraps three methods of the pinned Streamlit version
(`AppSession.request_rerun` and `_create_scriptrunner`, `ScriptRunner.request_rerun`); `install` refuses any other
version rather than patch code it was not tested on (tests/ui/test_runner_race.py).
"""

from __future__ import annotations

import dataclasses
import logging

import streamlit
from streamlit.runtime import app_session
from streamlit.runtime.scriptrunner import script_runner
from streamlit.runtime.scriptrunner_utils.script_requests import RerunData, ScriptRequestType

TESTED_VERSIONS = ("1.67.0",)  # the Streamlit whose AppSession this guard was written against (requirements.txt)
RETRY_S = 0.02  # how often a waiting fragment run looks again whether the old runner has shut down
GIVE_UP_S = 10.0  # a runner that has not shut down by then: start the fragment's run anyway (Streamlit's own way)

_LOG = logging.getLogger(__name__)
_original = app_session.AppSession._create_scriptrunner
_original_request = app_session.AppSession.request_rerun
_original_runner_request = script_runner.ScriptRunner.request_rerun
_COUNT = "_obd_rerun_requests"  # an attribute this module keeps on each AppSession: the browser's requests so far
_WAITING = "_obd_waiting_runs"  # ...and another: the fragment runs that wait for a runner to shut down


def installed() -> bool:
    """Whether the guard is in place in this process."""
    return app_session.AppSession._create_scriptrunner is _create_scriptrunner


def install() -> bool:
    """Put the guard in place (once per process; later calls do nothing).

    Returns:
        True when it is installed; False (with a warning in the server's log) on a Streamlit version it was not
        written against, whose AppSession it leaves as it is.
    """
    if installed():
        return True
    if streamlit.__version__ not in TESTED_VERSIONS:
        _LOG.warning(
            "obd's guard against lost runs is written for Streamlit %s, not %s: not installed",
            ", ".join(TESTED_VERSIONS),
            streamlit.__version__,
        )
        return False
    app_session.AppSession._create_scriptrunner = _create_scriptrunner
    app_session.AppSession.request_rerun = _request_rerun
    script_runner.ScriptRunner.request_rerun = _runner_request_rerun
    return True


def _request_rerun(session: app_session.AppSession, client_state) -> None:
    """Streamlit's `request_rerun`, counting the requests: a waiting fragment run then knows whether a newer one came
    after it."""
    setattr(session, _COUNT, getattr(session, _COUNT, 0) + 1)
    _original_request(session, client_state)


def _without_timer_values(rerun_data: RerunData) -> RerunData:
    """A timer's request (`is_auto_rerun`) without its widget values (None: the run keeps the session's)."""
    return dataclasses.replace(rerun_data, widget_states=None) if rerun_data.is_auto_rerun else rerun_data


def _runner_request_rerun(runner: script_runner.ScriptRunner, rerun_data: RerunData) -> bool:
    """Streamlit's `ScriptRunner.request_rerun`, for a timer's request without its widget values."""
    return _original_runner_request(runner, _without_timer_values(rerun_data))


def _create_scriptrunner(session: app_session.AppSession, rerun_data: RerunData) -> None:
    """Streamlit's `_create_scriptrunner`, for a timer's request without its widget values, and except for a
    fragment's run while the previous runner is still shutting down: that run waits for the shutdown (see the
    module's docstring)."""
    rerun_data = _without_timer_values(rerun_data)
    if rerun_data.fragment_id and session._scriptrunner is not None:
        waiting = getattr(session, _WAITING, None)
        if waiting is None:  # the first to wait: it looks again every RETRY_S for all that wait
            waiting = []
            setattr(session, _WAITING, waiting)
            session._event_loop.call_later(RETRY_S, _retry, session, GIVE_UP_S)
        waiting.append((rerun_data, getattr(session, _COUNT, 0)))
        return
    _original(session, rerun_data)


def _retry(session: app_session.AppSession, left_s: float) -> None:
    """Start the fragment runs that wait (`_create_scriptrunner`) once no runner is left shutting down: the first
    in a new runner, the others queued on it, where Streamlit merges them (a timer that fired ten times while the
    server was busy runs its fragment once)."""
    runner = session._scriptrunner
    if session._state == app_session.AppSessionState.SHUTDOWN_REQUESTED:
        setattr(session, _WAITING, None)  # the browser went away
        return
    if runner is not None and runner_stopped(runner) and left_s > RETRY_S:  # still shutting down
        session._event_loop.call_later(RETRY_S, _retry, session, left_s - RETRY_S)
        return
    waiting = getattr(session, _WAITING, None) or []
    setattr(session, _WAITING, None)
    for rerun_data, asked_at in waiting:
        if not session.has_fragment(rerun_data.fragment_id):
            continue  # a full run since then dropped the fragment (Streamlit's request_rerun ignores such a run too)
        if getattr(session, _COUNT, 0) != asked_at:
            # A later request carried every widget's newer value: this run's older ones (a slider before the user
            # moved it) must not overwrite them. A browser sends all values with each request, so none is lost.
            rerun_data = dataclasses.replace(rerun_data, widget_states=None)
        runner = session._scriptrunner
        if runner is None or not runner.request_rerun(rerun_data):
            _original(session, rerun_data)  # no runner left (or given up on): start it as Streamlit would have


def runner_stopped(runner: script_runner.ScriptRunner) -> bool:
    """Whether a ScriptRunner has ended its last run and takes no more requests (it is shutting down)."""
    return runner._requests._state == ScriptRequestType.STOP
