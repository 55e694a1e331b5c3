"""Test digits whose prediction pruning changed, and the accuracy per class."""

from __future__ import annotations

import numpy as np
import streamlit as st

from obd.figures import network
from obd.figures.images import digit_tile
from ui.services import models, results
from ui.services.state import View

DIGITS_SHOWN = 24


def render(v: View) -> None:
    cur = v.cur
    d = models.data()
    dense = results.point(v.key, v.choice.dense(), 0)
    dense_pred, pred = dense["predictions"], cur["predictions"]
    changed = np.flatnonzero(dense_pred != pred)
    shown = np.concatenate([changed, np.flatnonzero(dense_pred == pred)])[:DIGITS_SHOWN]
    st.write(
        f"**{len(changed):,}** of {len(pred):,} test digits changed their prediction; "
        f"changed ones first, framed in red (green frame: still right, grey: wrong in both)."
    )
    changed_set = set(changed.tolist())
    # a wrapping row of fixed-width tiles: columns would stack one tile per row on a phone
    tiles = st.container(horizontal=True, wrap=True, gap="small")
    for idx in shown:
        right = pred[idx] == d.y_test[idx]
        frame = (220, 30, 30) if idx in changed_set else ((40, 170, 60) if right else (150, 150, 150))
        tiles.image(
            digit_tile(d.x_test[idx], frame),
            width=84,
            caption=f"{d.y_test[idx]} · dense {dense_pred[idx]} · pruned {pred[idx]}",
        )
    st.plotly_chart(network.class_accuracy_figure(dense["class_accuracy"], cur["class_accuracy"]), key="class_chart")
