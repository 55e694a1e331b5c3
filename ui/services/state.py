"""What the page shows: the model, how it is pruned, the sparsity, and the address that holds all of them.

Every cached result is keyed by these frozen dataclasses; they live in this module (imported once per process,
not re-run like app.py) so a key made in one rerun equals the same key made in the next.
"""

from __future__ import annotations

import math
import os
import re
from dataclasses import dataclass, field

import streamlit as st

from obd.core.config import DEFAULT_PRESET, PRESETS
from obd.core.pruning import BUDGETS, MODES
from obd.methods.registry import METHODS, supports

QUICK_PICKS = (25, 50, 60, 70, 80, 90, 95, 97, 99)
PRESET_ENV = "OBD_PRESET"  # the preset a fresh page opens with (a class on slow laptops may want "tiny")
DEFAULTS = {"mode": "weight", "method": "magnitude", "budget": "layer", "sparsity": 90}  # and `default_preset()`
FLAGS = ("prune_output", "present")  # on/off settings carried in the address as 1 or 0
INSIDE_PARTS = ("Diagram", "First layer", "OBD vs magnitude", "Confusion matrix")  # the Inside view's parts
RANKINGS_PART = INSIDE_PARTS[2]  # the part drawn from ui.services.rankings
INSIDE_KEY = "inside"  # the open part, also in the address (?inside=First+layer): a lesson step can open one


@dataclass(frozen=True)
class ModelKey:
    """Names a base model in the caches: a preset, or an upload by content hash."""

    kind: str  # "preset" or "upload"
    name: str  # the preset's name, or the upload's sha256

    def label(self) -> str:
        return f"preset {self.name}" if self.kind == "preset" else f"upload {self.name[:8]}"


@dataclass(frozen=True)
class Choice:
    """How the model is pruned, apart from the sparsity: what every cached result is keyed by."""

    method: str  # one of obd.methods.registry.METHODS
    mode: str  # "weight" or "unit"
    budget: str  # one of obd.core.pruning.BUDGETS
    prune_output: bool  # prune the logits layer too

    def dense(self) -> Choice:
        """The reference the metrics compare against (at sparsity 0 every choice is the dense model)."""
        return Choice("magnitude", self.mode, "layer", self.prune_output)


@dataclass(frozen=True)
class View:
    """What every view module's `render(v)` receives: the model, the pruning, the sparsity, the display mode, the
    state's point once computed and the app's tabs."""

    key: ModelKey
    choice: Choice
    k: int  # sparsity in percent, 0..99
    present: bool  # presenter mode: large type, explanations as visible text
    painted: bool = True  # False in a session's first run until its metrics row had time to paint
    cur: dict | None = field(default=None, compare=False)  # the state's point, once the metrics row has it
    tabs: tuple[str, ...] = ()  # the app's views, in their tabs' order


def plain(value: object, limit: int = 40) -> str:
    """A value from the address, safe to quote in any message the page shows. Use it for EVERY URL parameter's
    value (`st.query_params`, ?mode=, ?sparsity=, ?lesson=, and any parameter added later) that a message repeats.

    A shared link is written by anyone, and Streamlit renders st.warning/st.error/st.info text as Markdown: a raw
    `[Sign in again](http://e.com/login)` would be a link on the page, `![x](http://e.com/x.png)` an image from
    elsewhere. The value is cut to `limit` characters, repr'd (quotes; control characters as escapes) and set in a
    code span, which Markdown shows verbatim: no link, image, emphasis or HTML element can come out of it.

    Args:
        value: the value as the address gave it (any object; str() of it is shown).
        limit: the most characters of it shown; a longer value ends in "…".

    Returns:
        Markdown text: the value's repr in a code span, e.g. `'abc'`.
    """
    text = str(value)
    text = text if len(text) <= limit else text[:limit] + "…"
    return "`" + repr(text).replace("`", "'") + "`"  # a backtick would end the code span


_PUNCTUATION = re.compile(r"([!-/:-@\[-`{-~])")  # every ASCII punctuation character: each may be escaped
_AUTOLINK = re.compile(r"(?i)(?<=www)(?=\.)|(?<=:)(?=//)|(?=@)")  # where a zero-width space stops an autolink


def plain_text(text: str, limit: int = 600) -> str:
    """A whole message holding text from outside obd (an uploaded file's name, its layers' names, a library's error
    about it), escaped so that Streamlit's Markdown shows exactly these characters: every ASCII punctuation
    character is backslash-escaped, so no link, image, emphasis, formula or HTML element can come out of it, and a
    zero-width space goes into "www.", "://" and before "@", which GFM would otherwise turn into links by itself.

    Args:
        text: the message.
        limit: the most characters shown; a longer message ends in "…".

    Returns:
        Markdown source that renders as `text`.
    """
    text = text if len(text) <= limit else text[:limit] + "…"
    text = _AUTOLINK.sub("\u200b", text)  # GFM links www.x, http://x and a@b.c in the text escapes leave
    return _PUNCTUATION.sub(r"\\\1", text)


def url_percent(value: str | None, default: int) -> int | None:
    """A percent from the address, or None when it is not a number from 0 to 99."""
    try:
        v = float(value) if value is not None else default
    except ValueError:
        return None
    return int(round(v)) if math.isfinite(v) and 0 <= v <= 99 else None


def default_preset() -> str:
    """The preset a fresh page opens with: $OBD_PRESET when it names one, read when a session starts."""
    return os.environ.get(PRESET_ENV) if os.environ.get(PRESET_ENV) in PRESETS else DEFAULT_PRESET


def init_state_from_url() -> list[str]:
    """Seed the controls from ?mode=&method=&budget=&sparsity=&preset=&prune_output=&present= once per session.

    Returns:
        Problems to show (a value that is not valid falls back to its default, with a message quoting it through
        `plain`).
    """
    if "url_read" in st.session_state:
        return []
    st.session_state.url_read = True
    q, problems, defaults = st.query_params, [], {**DEFAULTS, "preset": default_preset()}
    if os.environ.get(PRESET_ENV, DEFAULT_PRESET) not in PRESETS:
        problems.append(
            f"{PRESET_ENV}={plain(os.environ[PRESET_ENV])} is not one of {', '.join(PRESETS)}; "
            f"opening {DEFAULT_PRESET}."
        )
    checks = {"mode": MODES, "method": METHODS, "budget": BUDGETS, "preset": tuple(PRESETS)}
    for name, valid in checks.items():
        value = q.get(name, defaults[name])
        if value not in valid:
            problems.append(
                f"{name}={plain(value)} in the address is not one of {', '.join(valid)}; using {defaults[name]}."
            )
            value = defaults[name]
        st.session_state[name] = value
    if not supports(st.session_state.method, st.session_state.mode):
        problems.append(f"{st.session_state.method} prunes single weights only; showing weight pruning.")
        st.session_state.mode = "weight"
    if not supports(st.session_state.method, st.session_state.mode, st.session_state.budget):
        problems.append(f"{st.session_state.method} has no {st.session_state.budget} split; using the layer budget.")
        st.session_state.budget = "layer"
    k = url_percent(q.get("sparsity"), defaults["sparsity"])
    if k is None:
        problems.append(
            f"sparsity={plain(q.get('sparsity'))} in the address is not a percent from 0 to 99; "
            f"using {defaults['sparsity']}."
        )
        k = defaults["sparsity"]
    st.session_state.sparsity = k
    for flag in FLAGS:
        value = q.get(flag, "0")
        if value not in ("0", "1"):
            problems.append(f"{flag}={plain(value)} in the address is not 0 or 1; using 0.")
        st.session_state[flag] = value == "1"
    return problems


REQUIRED = ("preset", "mode", "method", "budget")  # controls that always hold a choice: None is never a user's
CONTROLS = (*REQUIRED, "sparsity", *FLAGS)  # the sidebar's keyed widgets
LAST = "last_controls"  # the session key of the values the last full run drew


def hold_controls() -> None:
    """Restate every control's value before its widget is drawn, so that each run sends the browser the values
    the server holds; a required control that arrives empty gets the last run's value back.

    Why: chromium on a loaded machine was seen asking for a run while holding no value for any sidebar widget
    (a click during the page's first run). Streamlit then drew the widgets without their values (it believes
    the browser has them), the browser showed the widgets' defaults (no mode, sparsity 0, the output box
    unticked) and sent those with the next click: the state changed with no one touching it (a prune_output
    link showed the numbers of the net without it), or a callback crashed on a budget of None. Assigning a
    widget's key its own value is Streamlit's documented way to keep a value across such runs, and makes the
    widget carry it. A run without a lost value is unchanged: the value restated is the one the run resolved.
    """
    s, last = st.session_state, st.session_state.get(LAST, {})
    for key in CONTROLS:
        if key not in s:
            continue
        if s[key] is None and key in REQUIRED and last.get(key) is not None:
            s[key] = last[key]
        else:
            s[key] = s[key]


def remember_controls() -> None:
    """Keep the values this run drew, for `hold_controls` to restore a required one that arrives empty."""
    st.session_state[LAST] = {key: st.session_state.get(key) for key in CONTROLS}


def write_url() -> None:
    """Put the current state in the address, so that copying it shares exactly this view."""
    s = st.session_state
    params = {"mode": s.mode, "method": s.method, "budget": s.budget, "sparsity": str(s.sparsity), "preset": s.preset}
    params.update({flag: "1" for flag in FLAGS if s.get(flag)})
    for flag in FLAGS:
        if not s.get(flag) and flag in st.query_params:
            del st.query_params[flag]
    st.query_params.update(params)
