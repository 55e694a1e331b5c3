"""Draw a digit: the dense and the pruned network's probabilities for it, side by side, updating as the slider
moves (the drawing stays: the canvas keeps its key). A test digit can stand in for a drawing, passing through
the same preprocessing (obd.teach.drawing: as MNIST was made)."""

from __future__ import annotations

import numpy as np
import streamlit as st

from obd.teach import drawing, explain
from obd.teach import plots as teach_plots
from ui.services import models, results
from ui.services.canvas import drawing_pad
from ui.services.state import View

PREVIEW_SCALE = 6  # the 28x28 image the network sees, shown at this many screen pixels per pixel
HOW = (
    "Preprocessed as MNIST's digits were made: the ink's bounding box is fitted into 20×20 pixels (aspect ratio "
    "kept, anti-aliased), then placed in a 28×28 field with its centre of mass at the centre."
)


def source_image(v: View) -> np.ndarray | None:
    """What to read: the canvas's RGBA image, or a test digit drawn into the same format."""
    source = st.segmented_control("Digit", ["Draw", "Test digit"], default="Draw", key="draw_source", required=True)
    if source == "Test digit":
        d = models.data()
        i = int(st.number_input("Test image number", 0, len(d.x_test) - 1, 0, key="draw_index"))
        st.caption(f"Test digit {i}, labelled {d.y_test[i]}, drawn onto the canvas's format and read back.")
        return drawing.render(d.x_test[i])
    return drawing_pad(drawing.CANVAS, key="draw_canvas")


def render(v: View) -> None:
    """The canvas (or a test digit) beside both networks' probabilities for it."""

    @st.fragment  # a stroke reruns this view only, not the whole page: the prediction follows the pen
    def view() -> None:
        cols = st.columns([2, 3], gap="large")
        with cols[0]:
            image = source_image(v)
        with cols[1]:
            prediction(v, image)

    view()


def prediction(v: View, image: np.ndarray | None) -> None:
    """Both networks' probabilities for the image, and what they see; a hint when there is no digit."""
    digit = drawing.to_mnist(image) if image is not None else drawing.Digit(None, drawing.EMPTY_HINT)
    if not digit.ok:
        st.info(digit.hint)
        return
    pruned = results.pruned(v.key, v.choice, v.k)
    if pruned is None:  # inside this view's fragment: the page reruns when the network exists (see app.py)
        st.info(f"Rebuilding the {v.choice.method} {v.choice.mode} network at {v.k} % in the background…")
        return
    dense_p = explain.probabilities(models.network(v.key), digit.x)
    pruned_p = explain.probabilities(pruned.net, digit.x)
    st.markdown(
        f"Dense network: **{dense_p.argmax()}** ({100 * dense_p.max():.1f} %) · pruned at {v.k} %: "
        f"**{pruned_p.argmax()}** ({100 * pruned_p.max():.1f} %)"
    )
    st.plotly_chart(teach_plots.probabilities_figure(dense_p, pruned_p), key="draw_probabilities")
    preview = np.kron(digit.x.reshape(drawing.SIDE, drawing.SIDE), np.ones((PREVIEW_SCALE, PREVIEW_SCALE)))
    st.image(np.clip(preview, 0.0, 1.0), caption="What the networks see (28×28)", clamp=True)
    st.caption(HOW)
