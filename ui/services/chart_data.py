"""What a session's Curves chart draws: its chosen methods (magnitude, the selected one and the ones it added),
its fine-tuned points, and the records of the curves they make. The Curves view draws them and Downloads writes
them, so the CSV holds exactly what the chart shows."""

from __future__ import annotations

import streamlit as st

from obd.core.pruning import MODES
from obd.methods.registry import supports
from obd.work.sweep import SweepRecord
from ui.services import results
from ui.services.state import Choice, ModelKey, View


def shown_methods(c: Choice) -> list[str]:
    """This session's curves: magnitude (the baseline), the selected method and the ones it added. A new session
    starts with the first two: what another session computed is shared data, not a choice made for this one."""
    extra = st.session_state.setdefault("extra_methods", [])
    return list(dict.fromkeys(("magnitude", c.method, *extra)))


def finetuned_points(key: ModelKey, prune_output: bool) -> dict:
    """This session's fine-tuned points of a model, (method, mode, budget, sparsity_pct, epochs, steps) ->
    SweepRecord: one user's retraining is not another's curve, and the points go when the session does."""
    return st.session_state.setdefault("finetuned", {}).setdefault((key, prune_output), {})


def wanted_curves(c: Choice) -> list[Choice]:
    """The curves the chart draws for a choice: each shown method in each mode it supports under the budget."""
    return [
        Choice(m, md, c.budget, c.prune_output) for m in shown_methods(c) for md in MODES if supports(m, md, c.budget)
    ]


def chart_records(v: View, found: dict) -> tuple[list[SweepRecord], list]:
    """What the chart draws: the wanted curves' records so far, in the chosen order, then this session's
    fine-tuned points of the budget; and the jobs still computing curves.

    Args:
        v: the view.
        found: `results.curve(...)` of each of `wanted_curves(v.choice)`.
    """
    records, jobs = [], []
    for w in wanted_curves(v.choice):
        rs, job = found[w]
        records += rs
        if job is not None:
            jobs.append(job)
    records += [r for r in finetuned_points(v.key, v.choice.prune_output).values() if r.budget == v.choice.budget]
    return records, jobs


def shown_records(v: View) -> tuple[list[SweepRecord], bool]:
    """The chart's records as `chart_records` has them, and whether curves are still being computed."""
    found = {w: results.curve(v.key, w, v.k if w == v.choice else None) for w in wanted_curves(v.choice)}
    records, jobs = chart_records(v, found)
    return records, bool(jobs)
