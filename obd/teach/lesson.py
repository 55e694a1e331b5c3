"""The guided lesson (`?lesson=N` in the app): eight steps from "what pruning is" to fine-tuning.

Each `Step` says which controls it sets (mode, method, budget, sparsity in percent, the view to open and, where
the view has parts, which one) and what to read; its text holds {placeholders} that `Step.render` fills from
the live numbers of the state it set (`obd.teach.facts.Facts.fields()`), so the lesson never quotes a number the
page does not show.

The app wires it (ui/views/lesson.py: Back/Next, the step number in the URL as `?lesson=N`):

    n = lesson.step_number(st.query_params.get("lesson"))  # 1..len(STEPS); ValueError says what is valid
    s = lesson.STEPS[n - 1]
    st.session_state.update(mode=s.mode, method=s.method, budget=s.budget, sparsity=s.sparsity, view=...)
    st.markdown(s.render(facts.facts(...).fields()))         # the numbers (and sentences) of the state just set
"""

from __future__ import annotations

import string
from collections.abc import Mapping
from dataclasses import dataclass

from obd.methods.registry import check_method_mode

# The views a step can open. The app routes these names to its view modules (app.py, ui/); the lesson's
# tests check that every step names one of them.
VIEWS = ("curves", "weights", "predictions", "speed", "about", "draw", "inside", "compare", "downloads")


@dataclass(frozen=True)
class Step:
    """One lesson step: the state it sets and the text shown beside it."""

    title: str
    text: str  # Markdown; {name} placeholders are keys of obd.teach.facts.Facts.fields()
    mode: str = "weight"  # "weight" or "unit"
    method: str = "magnitude"  # one of obd.methods.registry.METHODS that supports the mode
    budget: str = "layer"  # one of obd.core.pruning.BUDGETS that the method supports
    sparsity: int = 90  # percent, a whole number in [0, 99] as the app's slider holds it
    view: str = "curves"  # one of VIEWS
    part: str = ""  # the part of the view to open (the app's Inside view has several); "" for its first

    def __post_init__(self) -> None:
        check_method_mode(self.method, self.mode, self.budget)
        if isinstance(self.sparsity, bool) or not isinstance(self.sparsity, int) or not 0 <= self.sparsity <= 99:
            raise ValueError(f"a step's sparsity is a whole percent in [0, 99]; got {self.sparsity!r}")
        if self.view not in VIEWS:
            raise ValueError(f"view must be one of {', '.join(VIEWS)}; got {self.view!r}")

    def placeholders(self) -> set[str]:
        """The names its text asks for."""
        return {name for _, name, _, _ in string.Formatter().parse(self.text) if name}

    def render(self, fields: Mapping[str, str]) -> str:
        """The text with its placeholders filled.

        Raises:
            KeyError: naming a placeholder that `fields` lacks.
        """
        return self.text.format_map(fields)


STEPS: tuple[Step, ...] = (
    Step(
        "What pruning is",
        "This network has {total_weights} weights and gets {dense_accuracy} of the 10,000 test digits right. "
        "**Pruning** deletes parts of it and measures what that costs. A weight is one connection; a unit is one "
        "neuron, with a column of incoming weights and a row of outgoing ones. The diagram shows every layer at "
        "full width: nothing is pruned yet (sparsity {sparsity}).",
        sparsity=0,
        view="inside",
    ),
    Step(
        "Weight pruning to 90 %",
        "{removed} of {of} weights are gone, the smallest |w| of each layer, and accuracy is {accuracy} "
        "(dense: {dense_accuracy}): {cost}. On the curves, follow how far to the right weight pruning stays "
        "flat before it falls.",
        mode="weight",
        sparsity=90,
        view="curves",
    ),
    Step(
        "Unit pruning to 90 %",
        "Now whole units go: {removed} of {of} hidden units. Accuracy drops to {accuracy}, {drop} points down. "
        "The same share removed costs far more, because a removed unit takes all its weights with it: only "
        "{effective_weights} of the {total_weights} weights ({effective}) still do work. The diagram's layers "
        "have narrowed.",
        mode="unit",
        sparsity=90,
        view="inside",
    ),
    Step(
        "The loss rises before the accuracy falls",
        "At 80 % of weights removed accuracy is {accuracy}, and {loss_first}. Accuracy only asks whether the "
        "right digit scores highest; the loss also asks how confidently. Switch the curves to the loss "
        "(the toggle above the chart) to compare the two.",
        mode="weight",
        sparsity=80,
        view="curves",
    ),
    Step(
        "OBD's saliency",
        "Optimal Brain Damage ranks a weight by the loss its deletion would cost, ½·h_kk·w², not by |w| alone. "
        "The scatter puts the two criteria side by side: {blank_pixels}; a small weight on a busy pixel can "
        "outrank a larger one. At {sparsity} OBD keeps {accuracy} accuracy, and {versus_magnitude}.",
        mode="weight",
        method="obd",
        sparsity=90,
        view="inside",
        part="OBD vs magnitude",
    ),
    Step(
        "OBS rescues unit pruning",
        "Optimal Brain Surgeon removes units by the damage they do and then refits the next layer's weights "
        "to make up for them, by least squares on a sample of training images. With {removed} of {of} hidden "
        "units gone it keeps {accuracy} ({drop} points below dense), and {versus_magnitude}: on the chart, "
        "magnitude's dashed unit curve against obs's at {sparsity}.",
        mode="unit",
        method="obs",
        sparsity=90,
        view="curves",
    ),
    Step(
        "Why anyone prunes units: speed",
        "The unit-pruned network is a smaller dense network, and on this machine it runs {speed}. Weight "
        "pruning needs a sparse kernel and very high sparsity before a CPU gains anything: the chart times "
        "each engine against sparsity at the batch chosen above it.",
        mode="unit",
        sparsity=90,
        view="speed",
    ),
    Step(
        "Fine-tuning wins the accuracy back",
        "Retraining for an epoch or two with the masks fixed lets the {effective_weights} weights that still do "
        "work take over the work of the removed ones. Press “Fine-tune this point” below the curves and compare "
        "its diamond with the {accuracy} of one-shot unit pruning at {sparsity} and the dense {dense_accuracy}.",
        mode="unit",
        sparsity=90,
        view="curves",
    ),
)


def step_number(value: object) -> int:
    """Read a lesson step number, e.g. the URL's `lesson` parameter.

    Args:
        value: "1".."8" (or an int).

    Returns:
        The step number, 1-based.

    Raises:
        ValueError: for anything that is not a step number, saying which are valid.
    """
    try:
        n = int(str(value).strip())
    except ValueError:
        n = 0
    if isinstance(value, bool) or not 1 <= n <= len(STEPS):
        raise ValueError(f"lesson must be a step number from 1 to {len(STEPS)}; got {value!r}")
    return n
