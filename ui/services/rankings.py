"""Magnitude's and OBD's rankings of a model, the data behind Inside's "OBD vs magnitude" part: built by a
background job (the Hessian diagonal takes seconds on the default net), kept for the two most recent choices.
The lesson asks for them one step ahead, so its OBD step finds them ready."""

from __future__ import annotations

import streamlit as st

from obd.core.cache import LruCache
from obd.methods.saliency import hessian_diagonal
from obd.teach import explain
from ui.services import boards, models
from ui.services.state import Choice, ModelKey


@st.cache_resource
def _criteria_store() -> LruCache:
    # Magnitude and OBD scores and rankings of one (model, mode, budget): up to ~140 MB for the default net in
    # weight mode, so only the two most recent are kept (the job board keeps none: its task returns nothing).
    return LruCache(2)


@st.cache_resource(max_entries=2, show_spinner=False)
def _hessian(key: ModelKey) -> list:
    """The dense network's Hessian diagonal on the shared calibration sample (seconds: run inside a job)."""
    calib = models.calib_for("obd")
    return hessian_diagonal(models.network(key), calib.x, calib.y)


def ranked_budget(c: Choice) -> str:
    """The budget the two criteria are compared under: a loss-aware split is compared per layer."""
    return c.budget if c.budget in explain.RANKED_BUDGETS else "layer"


def job_key(key: ModelKey, c: Choice) -> tuple:
    """The board's key of a choice's rankings job."""
    return ("criteria", key, c.mode, ranked_budget(c), c.prune_output)


def criteria(key: ModelKey, c: Choice) -> explain.Criteria | None:
    """The choice's magnitude-vs-OBD rankings, or None while a background job builds them (started here)."""
    ck = job_key(key, c)
    if (found := _criteria_store().get(ck)) is not None:
        return found

    def build() -> None:
        _criteria_store().put(
            ck, explain.criteria(models.network(key), _hessian(key), c.mode, ranked_budget(c), c.prune_output)
        )

    job = boards.rebuild(None, ck, [build], label=f"OBD and magnitude rankings ({c.mode} pruning)")
    return _criteria_store().get(ck) if job.finished else None
