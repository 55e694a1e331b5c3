"""ui/services/runner_race.py: the app puts its guard against lost runs and stale timer values in place, only on the
Streamlit it was written for, and a timer's request loses its widget values while a user's keeps them. What the
guard prevents is measured by benchmarks/load.py (30 sessions × 300 s; benchmarks/RESULTS.md): moves whose run never
reached the browser and picks the page undid."""

from __future__ import annotations

import streamlit
from apptest import TIMEOUT
from streamlit.proto.WidgetStates_pb2 import WidgetStates
from streamlit.runtime import app_session
from streamlit.runtime.scriptrunner import script_runner
from streamlit.runtime.scriptrunner_utils.script_requests import RerunData
from streamlit.testing.v1 import AppTest

from benchmarks.live_app import ROOT
from ui.services import runner_race


def test_the_app_installs_the_guard(tiny, monkeypatch):
    monkeypatch.setattr(app_session.AppSession, "_create_scriptrunner", runner_race._original)
    monkeypatch.setattr(app_session.AppSession, "request_rerun", runner_race._original_request)
    monkeypatch.setattr(script_runner.ScriptRunner, "request_rerun", runner_race._original_runner_request)
    assert not runner_race.installed()
    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=TIMEOUT)
    at.query_params["preset"] = "tiny"
    at.run()
    assert not at.exception
    assert runner_race.installed()
    assert app_session.AppSession.request_rerun is runner_race._request_rerun
    assert script_runner.ScriptRunner.request_rerun is runner_race._runner_request_rerun


def test_the_guard_leaves_another_streamlit_version_alone(monkeypatch):
    monkeypatch.setattr(app_session.AppSession, "_create_scriptrunner", runner_race._original)
    monkeypatch.setattr(app_session.AppSession, "request_rerun", runner_race._original_request)
    monkeypatch.setattr(script_runner.ScriptRunner, "request_rerun", runner_race._original_runner_request)
    monkeypatch.setattr(streamlit, "__version__", "99.0.0")
    assert runner_race.install() is False
    assert not runner_race.installed()
    assert app_session.AppSession._create_scriptrunner is runner_race._original
    assert script_runner.ScriptRunner.request_rerun is runner_race._original_runner_request


def test_the_guard_is_written_for_the_pinned_streamlit():
    pinned = [
        line.split("==")[1].strip()
        for line in (ROOT / "requirements.txt").read_text().splitlines()
        if line.lower().startswith("streamlit==")
    ]
    assert pinned and pinned[0] in runner_race.TESTED_VERSIONS


def test_a_timers_request_keeps_the_servers_values_and_a_users_request_brings_its_own():
    states = WidgetStates()
    slider = states.widgets.add()
    slider.id, slider.double_array_value.data[:] = "$$ID-sparsity", [30.0]  # the value before a quick pick
    timer = RerunData(widget_states=states, fragment_id="poll", is_auto_rerun=True)
    user = RerunData(widget_states=states)
    click_in_fragment = RerunData(widget_states=states, fragment_id="chart")
    assert runner_race._without_timer_values(timer).widget_states is None
    assert runner_race._without_timer_values(timer).fragment_id == "poll"
    assert runner_race._without_timer_values(user).widget_states is states
    assert runner_race._without_timer_values(click_in_fragment).widget_states is states
