"""The guided lesson (`?lesson=N`): obd.teach.lesson's steps, each setting the controls and the open view, with its
text filled from the numbers the page shows for the state it set, and Back / Next."""

from __future__ import annotations

import streamlit as st

from obd.teach import lesson
from ui.services import results
from ui.services.state import INSIDE_KEY, INSIDE_PARTS, View, plain


def tab_label(view: str, tabs: tuple[str, ...]) -> str:
    """The app's tab for a lesson view name ("inside" -> "Inside"); the curves when the app has no such tab."""
    label = view.capitalize()
    return label if label in tabs else "Curves"


def start_from_url(tabs: tuple[str, ...]) -> str | None:
    """On a session's first run, `?lesson=N` applies step N; returns a problem to show for a bad N."""
    if "lesson_read" in st.session_state:
        return None
    st.session_state.lesson_read = True
    if (value := st.query_params.get("lesson")) is None:
        return None
    try:
        go(lesson.step_number(value), tabs)
    except ValueError:
        del st.query_params["lesson"]
        steps = len(lesson.STEPS)
        return f"lesson={plain(value)} in the address is not a step number from 1 to {steps}; the lesson is not shown."
    return None


def go(n: int, tabs: tuple[str, ...]) -> None:
    """Set the controls, the open tab and the address to step n (a callback: runs before the widgets)."""
    s = lesson.STEPS[n - 1]
    st.session_state.update(
        lesson=n, mode=s.mode, method=s.method, budget=s.budget, sparsity=s.sparsity, view=tab_label(s.view, tabs)
    )
    if s.view == "inside":  # the part its text talks about (the first, the diagram, unless it names another)
        st.session_state[INSIDE_KEY] = s.part if s.part in INSIDE_PARTS else INSIDE_PARTS[0]
    st.query_params["lesson"] = str(n)


def stop() -> None:
    st.session_state.pop("lesson", None)
    if "lesson" in st.query_params:
        del st.query_params["lesson"]


def render(v: View) -> None:
    """The current step's title, its text with live numbers, and Back / Next / End."""
    cur, tabs = v.cur, v.tabs
    n = st.session_state.get("lesson")
    if not n:
        return
    s = lesson.STEPS[n - 1]
    with st.container(border=True):
        st.markdown(f"**Lesson {n}/{len(lesson.STEPS)} · {s.title}**")
        if cur is None or results.pruned(v.key, v.choice, v.k) is None:
            st.caption("The numbers for this step are being computed…")
        else:
            st.markdown(s.render(results.state_facts(v.key, v.choice, v.k, start=v.painted).fields()))
        cols = st.columns([1, 1, 1, 5])
        cols[0].button("◀ Back", on_click=go, args=(n - 1, tabs), disabled=n == 1, key="lesson_back")
        cols[1].button("Next ▶", on_click=go, args=(n + 1, tabs), disabled=n == len(lesson.STEPS), key="lesson_next")
        cols[2].button("End lesson", on_click=stop, key="lesson_end")
