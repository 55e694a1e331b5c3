"""What a class needs from a shared link besides the state: `?hide=` (a comma list of controls and tabs to leave
out, as TensorFlow Playground's `*_hide` flags), `?lock=1` (controls shown but disabled, for students following
the lecturer), a check of `?view=`, and a reset that returns the page to the link it was opened with.

Hidden controls are still drawn, only not shown (CSS on their `st-key-` class): a widget that is not drawn loses
its value, and the state a link sets must hold whatever is hidden.
"""

from __future__ import annotations

import streamlit as st

from obd.core.pruning import BUDGETS, MODES
from obd.methods.registry import METHODS
from ui.services import models
from ui.services.state import CONTROLS, INSIDE_KEY, INSIDE_PARTS, ModelKey, plain, url_percent

CONTROL_KEYS = {  # the names ?hide= takes for the sidebar's controls -> the CSS class part of their widgets
    "model": "model_box",
    "mode": "mode",
    "method": "method",
    "budget": "budget",
    "sparsity": "sparsity",
    "quick": "quick_",  # the quick picks' key changes with each pick (`quick_N`): matched by its start
    "prune_output": "prune_output",
    "present": "present",
    "reset": "reset_link",
}
READ = "class_read"  # the session has read its link's class flags
LINK = "link"  # the address the session was opened with, for `reset`
RESTART = ("url_read", "lesson_read", READ, "lesson", "url_problems")  # forgotten on a reset: the address is re-read
BOUND = ("view", INSIDE_KEY)  # tabs bound to the address: a reset sets them through their state (Streamlit's rule)
COMPARE_B = ("compare_mode", "compare_budget", "compare_method", "compare_sparsity")  # bound, like the tabs
B_OPTIONS = {"compare_mode": MODES, "compare_budget": BUDGETS, "compare_method": METHODS}  # and a percent
UPLOAD = "upload"  # ?upload=<sha256>: the checked upload a link opens, by its content's digest
LINKED = "link_upload"  # the session's digest from the link, while no other model has been chosen


def read_link(views: tuple[str, ...]) -> list[str]:
    """Once per session: keep the address (for `reset`), read `hide` and `lock`, check `view`.

    Args:
        views: the app's tabs.

    Returns:
        Problems to show: names in `hide` that are neither a control nor a tab, a `lock` that is not 0 or 1, a
        `view` that is not a tab (the page then opens the first). Every value is quoted through `plain`.
    """
    if READ in st.session_state:
        return []
    s, q, problems = st.session_state, st.query_params, []
    s[READ] = True
    s.setdefault(LINK, {**q.to_dict(), "view": q.get("view", views[0])})
    names = [n.strip().lower() for n in q.get("hide", "").split(",") if n.strip()]
    tabs = {t.lower(): t for t in views}
    bad = [n for n in names if n not in CONTROL_KEYS and n not in tabs]
    if bad:
        problems.append(
            f"hide={plain(', '.join(bad))} in the address names no control or tab; it takes "
            f"{', '.join(CONTROL_KEYS)} and the tabs {', '.join(tabs)}."
        )
    s.hidden = tuple(n for n in names if n not in bad)
    lock = q.get("lock", "0")
    if lock not in ("0", "1"):
        problems.append(f"lock={plain(lock)} in the address is not 0 or 1; the controls stay unlocked.")
    s.locked = lock == "1"
    if (digest := q.get(UPLOAD)) is not None:
        sha256 = len(digest) == 64 and all(ch in "0123456789abcdef" for ch in digest)
        if sha256 and models.upload_path(digest).is_file():
            s[LINKED] = digest
            models.uploads().use(digest, models.session_id())  # kept while this session uses it
        else:
            problems.append(
                f"upload={plain(digest)} in the address names an uploaded model that is no longer on this server "
                "(uploads are removed when no page uses them): upload its .keras file again in the sidebar's "
                "Model box. Meanwhile the page shows the preset."
            )
            del q[UPLOAD]
    view = q.get("view")
    if view is not None and view not in views:
        problems.append(f"view={plain(view)} in the address is not one of {', '.join(views)}; opening {views[0]}.")
        del q["view"]
        s.view = s[LINK]["view"] = views[0]
    if tabs.get(str(s.get("view", views[0])).lower()) in [tabs[n] for n in s.hidden if n in tabs]:
        s.view = next((t for t in views if t.lower() not in s.hidden), views[0])
    return problems


def linked_upload() -> ModelKey | None:
    """The upload the link opened, while the session has chosen no other model (the preset's box forgets it)."""
    digest = st.session_state.get(LINKED)
    return ModelKey("upload", digest) if digest and models.upload_path(digest).is_file() else None


def forget_linked_upload() -> None:
    """A preset chosen: the link's upload is no longer the session's model (a callback)."""
    st.session_state.pop(LINKED, None)


def write_model(key: ModelKey) -> None:
    """The shown model in the address: ?upload=<digest> for an upload (the preset stays as the fallback)."""
    if key.kind == "upload":
        st.query_params[UPLOAD] = key.name
    elif UPLOAD in st.query_params:
        del st.query_params[UPLOAD]


def locked() -> bool:
    """Whether the link locks the controls (`?lock=1`): shown, disabled."""
    return bool(st.session_state.get("locked", False))


def hide_css(views: tuple[str, ...]) -> str:
    """The style that hides what `?hide=` names: controls by their widget's class, tabs by their place."""
    hidden = st.session_state.get("hidden", ())
    rules = [f'[class*="st-key-{CONTROL_KEYS[n]}"]' for n in hidden if n in CONTROL_KEYS]
    rules += [
        f'.st-key-view [role="tablist"] [role="tab"]:nth-of-type({i})'
        for i, t in enumerate(views, 1)
        if t.lower() in hidden
    ]
    return f"<style>{', '.join(rules)} {{ display: none !important; }}</style>" if rules else ""


def reset() -> None:
    """Return to the link's state (a callback: runs before the widgets): the address as it was opened, and the
    session's reading of it forgotten, so that this run reads it afresh."""
    s, q = st.session_state, st.query_params
    link = s.get(LINK, {})
    fixed = (*BOUND, *COMPARE_B)
    for name in [name for name in q if name not in link and name not in fixed]:
        del q[name]
    q.update({name: value for name, value in link.items() if name not in fixed})
    for key in (*RESTART, *CONTROLS):  # each control is set again from the address before its widget is drawn
        s.pop(key, None)
    s.view = link["view"]
    s[INSIDE_KEY] = link.get(INSIDE_KEY, INSIDE_PARTS[0])
    for key in COMPARE_B:  # B as the link gave it; a value missing or wrong: B's default, set by Compare
        value = _link_b(key, link.get(key))
        if value is None:
            s.pop(key, None)
            q.pop(key, None)
        else:
            s[key] = value


def _link_b(key: str, value: str | None) -> str | int | None:
    """A link's value for one of B's controls, or None when it gave none or one that is not an option (a link is
    written by anyone: the widget ignores such a value, and so does the reset)."""
    if value is None:
        return None
    if key == "compare_sparsity":
        return url_percent(value, 0)
    return value if value in B_OPTIONS[key] else None


CHART_PX = 280  # a view's chart in presenter mode: the metrics row, the tabs and the chart fit a 1280x720 screen


def chart_height(present: bool) -> int | str:
    """The height `st.plotly_chart` gives a view's main chart: CHART_PX in presenter mode, else the figure's own."""
    return CHART_PX if present else "content"
