"""Downloads of the current state: the pruned model (.keras, pruned weights zeroed), the physically shrunk model
(.keras, dead units removed: loads in plain Keras and predicts the same), a TensorFlow Lite model, and the curves
the Curves tab draws as CSV with the CLI's columns. Files are made only when their button is pressed
(obd.work.export)."""

from __future__ import annotations

import streamlit as st

from obd.work import export
from ui.services import chart_data, results
from ui.services.state import View


def render(v: View) -> None:
    """The two models and the curves as download buttons; each file is made when its button is pressed."""
    cur = v.cur
    c, k = v.choice, v.k
    pruned = results.pruned(v.key, c, k)
    if pruned is None:
        results.wait_for_pruned(v)
        return
    r = cur["report"]
    st.markdown(
        f"**{c.method}, {c.mode} pruning at {k} %**: test accuracy {100 * cur['accuracy']:.2f} %. The "
        "models are plain Keras (load with `keras.saving.load_model`, no obd needed) or TensorFlow Lite, take "
        "what the model took (its input shape and pixels) and give what it gave (logits or a softmax; argmax = "
        "the digit), and reproduce that accuracy."
    )
    cols = st.columns(4)
    name = lambda kind: export.filename(kind, c.mode, c.method, k / 100)  # noqa: E731
    cols[0].download_button(
        "Pruned model (.keras)",
        lambda: export.masked_model(pruned),
        name("masked"),
        "application/octet-stream",
        key="downloads_masked",
        on_click="ignore",
        help=f"the original shapes, {r.kept_weights:,} of {r.total_weights:,} weights kept, the rest stored as zeros",
    )
    cols[1].download_button(
        "Shrunk model (.keras)",
        lambda: export.shrunk_model(pruned),
        name("shrunk"),
        "application/octet-stream",
        key="downloads_shrunk",
        on_click="ignore",
        help="dead units physically removed: smaller matrices, the same predictions"
        + ("" if c.mode == "unit" else " (weight pruning rarely kills a unit, so it is about as large)"),
    )
    cols[2].download_button(
        "TensorFlow Lite (.tflite)",
        lambda: export.tflite_model(pruned),
        name("tflite"),
        "application/octet-stream",
        key="downloads_tflite",
        on_click="ignore",
        help="for phones and edge devices: unit pruning shrunk, weight pruning stored sparse "
        "(TFLite's sparsity optimisation); as `python -m obd export --out m.tflite`",
    )
    records, waiting = chart_data.shown_records(v)  # what the Curves chart draws, every compared method included
    if waiting:
        cols[3].info("The curves are still being computed (see Curves).")
    else:
        cols[3].download_button(
            "Curves (.csv)",
            export.curves_csv(records),
            name("curves"),
            "text/csv",
            key="downloads_curves",
            on_click="ignore",
            help="the curves the Curves tab draws (every method shown there, fine-tuned points included): mode, "
            "sparsity, accuracy, loss, kept_weights, method, … (as `python -m obd sweep --csv`)",
        )
    st.caption("Each figure downloads as PNG from the camera icon in its toolbar.")
