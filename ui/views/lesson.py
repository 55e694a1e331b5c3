"""The guided lesson (`?lesson=N`): obd.teach.lesson's steps, each setting the controls and the open view, with its
text filled from the numbers the page shows for the state it set, and Back / Next."""

from __future__ import annotations

import streamlit as st

from obd.teach import lesson
from ui.services import rankings, results
from ui.services.state import INSIDE_KEY, INSIDE_PARTS, RANKINGS_PART, Choice, View, plain

# A presenter's clicker sends →/PageDown/Space (forward) and ←/PageUp (back): the keys press the lesson's own
# buttons, so a key does exactly what a click does. Keys typed into a field, a slider, a list or a tab strip (which
# use the arrows themselves) are left alone, as is Space on a focused button (the browser presses that button).
KEYS_JS = """
<script>
(() => {
  if (window.obdLessonKeys) return;
  window.obdLessonKeys = true;
  const FORWARD = ["ArrowRight", "PageDown", " "], BACK = ["ArrowLeft", "PageUp"];
  const OWN_KEYS = ["slider", "combobox", "listbox", "option", "tab", "textbox", "spinbutton", "radio"];
  document.addEventListener("keydown", (e) => {
    const t = e.target;
    if (e.altKey || e.ctrlKey || e.metaKey || e.shiftKey || e.defaultPrevented) return;
    if (!FORWARD.includes(e.key) && !BACK.includes(e.key)) return;
    if (t && (t.isContentEditable || ["INPUT", "TEXTAREA", "SELECT"].includes(t.tagName))) return;
    if (t && t.closest && t.closest(OWN_KEYS.map((r) => `[role="${r}"]`).join(","))) return;
    if (e.key === " " && t && t.closest && t.closest("button")) return;
    const label = FORWARD.includes(e.key) ? "Next ▶" : "◀ Back";
    const button = [...document.querySelectorAll("button")].find((b) => b.innerText.trim() === label);
    if (!button || button.disabled) return;
    e.preventDefault();
    button.click();
  });
})();
</script>
"""


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
        part = s.part if s.part in INSIDE_PARTS else INSIDE_PARTS[0]
        # the address too: the bound tabs write it only when they see a change of their own
        st.session_state[INSIDE_KEY] = st.query_params[INSIDE_KEY] = part
    st.query_params["lesson"] = str(n)


def prepare(v: View, n: int) -> None:
    """Start what step n needs in the background (its point; the rankings when it opens OBD vs magnitude) while
    the presenter talks about the step before: its Next then finds them ready."""
    s = lesson.STEPS[n - 1]
    c = Choice(s.method, s.mode, s.budget, v.choice.prune_output)
    results.prefetch(v.key, c, s.sparsity)
    if s.view == "inside" and s.part == RANKINGS_PART:
        rankings.criteria(v.key, c)


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
        # Above the text in presenter mode, where the step sits in a column beside its view: a long text must not
        # push Next below a projector's screen.
        buttons = st.container() if v.present else None
        if cur is None:  # (the metrics row shows the job and reruns the page when the point exists)
            st.caption("The numbers for this step are being computed…")
        elif results.pruned(v.key, v.choice, v.k) is None:  # a reconstructed net, rebuilt: rerun when it exists
            results.wait_for_pruned(v)
        else:
            st.markdown(s.render(results.state_facts(v.key, v.choice, v.k, start=v.painted).fields()))
        with (buttons or st.container()).container(horizontal=True, gap="small"):  # each as wide as its label
            st.button("◀ Back", on_click=go, args=(n - 1, tabs), disabled=n == 1, key="lesson_back")
            st.button("Next ▶", on_click=go, args=(n + 1, tabs), disabled=n == len(lesson.STEPS), key="lesson_next")
            st.button("End lesson", on_click=stop, key="lesson_end")
        st.html(KEYS_JS, unsafe_allow_javascript=True)
    if n < len(lesson.STEPS):
        prepare(v, n + 1)
