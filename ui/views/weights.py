"""Each layer's kernel as a heatmap with the pruned entries visible, coloured by weight or by saliency."""

from __future__ import annotations

import streamlit as st

from obd.figures import network
from ui.services import models, results
from ui.services.state import Choice, ModelKey, View


@st.cache_resource(max_entries=64, show_spinner=False)  # up to 340 KB each for the default net
def kernel_chart(key: ModelKey, c: Choice, k: int, layer: int, colour_by: str):
    """The heatmap of one layer for one state (shared read-only: figures are never changed after this)."""
    net = models.network(key)
    p = results.pruned(key, c, k)
    name = f"{layer}: {net.layers[layer].name} ({net.layers[layer].inputs}×{net.layers[layer].units})"
    if colour_by == "weight":
        return network.kernel_figure(p.net.layers[layer].kernel, p.masks[layer], f"Layer {name}")
    scores = models.saliencies(key, c.method)[layer]
    return network.kernel_figure(
        scores, p.masks[layer], f"{c.method} saliency, layer {name}", signed=False, value_name=f"{c.method} saliency"
    )


def render(v: View) -> None:
    cur = v.cur
    if results.pruned(v.key, v.choice, v.k) is None:
        results.wait_for_pruned(v)
        return
    net = models.network(v.key)
    names = [f"{i}: {l.name} ({l.inputs}×{l.units})" for i, l in enumerate(net.layers)]

    @st.fragment
    def heatmap() -> None:  # changing the layer or the colouring redraws this figure only
        cols = st.columns([2, 2])
        i = cols[0].selectbox("Layer", range(len(names)), format_func=lambda j: names[j], key="layer")
        show = cols[1].radio(
            "Colour by",
            ["weight", "saliency"],
            horizontal=True,
            key="colour_by",
            help=f"saliency: the {v.choice.method} score that decides what is pruned",
        )
        st.plotly_chart(kernel_chart(v.key, v.choice, v.k, i, show), key="kernel_chart")

    heatmap()
    st.plotly_chart(network.layer_sparsity_figure(cur["report"]), key="layer_chart")
