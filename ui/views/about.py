"""What pruning, OBD and OBS are, with the formulas: the page's reference text."""

from __future__ import annotations

import streamlit as st

from obd.methods.registry import METHOD_HELP
from ui.services.state import View

ABOUT = r"""
**Pruning** deletes parts of a trained network and asks what that costs. A Keras `Dense` kernel has shape
(inputs, units); a column is one output unit.

* **Weight pruning** (unstructured) at sparsity $k$: in each pruned kernel of $n$ entries, zero the
  $\mathrm{round}(k\,n)$ entries with the smallest $|w|$.
* **Unit pruning** (structured) at $k$: in each pruned kernel of $c$ columns, zero the $\mathrm{round}(k\,c)$
  columns with the smallest $\lVert w_{:,j}\rVert_2$, and their biases; the unit then outputs exactly 0.
  The count comes from the columns, never the rows.
* The output (logits) layer is left whole unless you tick the box.

**Optimal Brain Damage** (LeCun, Denker & Solla, 1990) estimates how much the loss $L$ grows when weight
$w_k$ is deleted, from a second-order Taylor expansion at a trained minimum (gradient ≈ 0) with the Hessian's
off-diagonal terms ignored:

$$ s_k = \tfrac12\, h_{kk}\, w_k^2, \qquad h_{kk} = \frac{\partial^2 L}{\partial w_k^2}. $$

Magnitude pruning is the special case $h_{kk} = 1$. **obd** uses the Gauss-Newton diagonal, which for a ReLU
network is the exact $h_{kk}$; **obd-fisher** uses the empirical Fisher diagonal (the mean squared per-example
gradient), a common stand-in that understates $h_{kk}$ on images the network already gets right.
**Optimal Brain Surgeon** (Hassibi & Stork, 1993) keeps the
off-diagonal terms: deleting $w_q$ costs $w_q^2 / (2[H^{-1}]_{qq})$ and the other weights move by
$\delta w = -\frac{w_q}{[H^{-1}]_{qq}} H^{-1} e_q$ to compensate. obd applies it layer by layer with
$H = X^\top X$ from a calibration sample of the layer's inputs (as Optimal Brain Compression and SparseGPT do):
**obs** chooses the weights to drop by that cost, then refits every column's kept weights by least squares;
**sparsegpt** (Frantar & Alistarh, 2023) goes through the inputs in order, dropping each one's chosen weights and
spreading the error over the inputs not yet passed, which is cheaper and, at high sparsity, clearly worse.

OBD was meant for small steps with retraining in between: in one shot, its diagonal Hessian can rank worse than
plain magnitude. The curves show what each method buys, measured, not promised.
"""


def render(v: View) -> None:
    st.markdown(ABOUT)
    st.markdown("**The methods in the selector**\n\n" + "\n".join(f"* **{m}**: {h}" for m, h in METHOD_HELP.items()))
