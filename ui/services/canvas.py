"""A drawing canvas for the Draw view: a Streamlit (v2) component of a few dozen lines of JavaScript.

It replaces streamlit-drawable-canvas, which waits 200 ms after each stroke before it sends the drawing (a
fixed debounce in its frontend): two thirds of the 0.3 s the issue allows from the stroke's end to the
prediction (issue 13). This one sends the moment the pen lifts. It draws what obd.teach.drawing.CANVAS describes
(round white strokes on an opaque black square) and returns the image as the same (H, W, 4) RGBA array that
`obd.teach.drawing.to_mnist` reads; its Clear button empties it in the browser and sends None.

The drawing lives in the browser: it stays while the page reruns (a slider move) as long as the key stays.
"""

from __future__ import annotations

import numpy as np
import streamlit as st

from obd.teach.drawing import CanvasSettings, decode_canvas
from ui.services.state import plain_text

HTML = '<div class="obd-pad"></div>'
CSS = """
.obd-pad canvas { display: block; touch-action: none; cursor: crosshair; border-radius: 0.5rem; }
.obd-pad button {
  margin-top: 0.5rem; padding: 0.25rem 0.75rem; font: inherit; cursor: pointer; border-radius: 0.5rem;
  color: var(--st-text-color); background: var(--st-background-color);
  border: 1px solid var(--st-border-color, rgba(49, 51, 63, 0.2));
}
"""
# State is kept per mount point (a WeakMap, as the component function runs again on every rerun with new
# data): the canvas and its ink must survive reruns. The image is sent as a PNG data URL (~10-20 KB).
JS = """
const pads = new WeakMap();

function build(root, data) {
  const canvas = document.createElement("canvas");
  canvas.className = "obd-canvas";
  canvas.width = canvas.height = data.size;
  canvas.style.width = canvas.style.height = `${data.size}px`;
  const clear = document.createElement("button");
  clear.type = "button";
  clear.textContent = "Clear";
  root.append(canvas, clear);
  const ctx = canvas.getContext("2d");
  const pad = { canvas, clear, ctx, last: null, send: null };
  const wipe = () => { ctx.fillStyle = data.background; ctx.fillRect(0, 0, data.size, data.size); };
  const at = (e) => {
    const r = canvas.getBoundingClientRect();
    return [(e.clientX - r.left) * data.size / r.width, (e.clientY - r.top) * data.size / r.height];
  };
  const line = (from, to) => {
    ctx.strokeStyle = data.stroke; ctx.lineWidth = data.width; ctx.lineCap = ctx.lineJoin = "round";
    ctx.beginPath(); ctx.moveTo(...from); ctx.lineTo(...to); ctx.stroke();
  };
  canvas.addEventListener("pointerdown", (e) => {
    canvas.setPointerCapture(e.pointerId);
    pad.last = at(e);
    line(pad.last, pad.last);  // a click leaves a dot
  });
  canvas.addEventListener("pointermove", (e) => {
    if (pad.last === null) return;
    const p = at(e);
    line(pad.last, p);
    pad.last = p;
  });
  const end = () => {
    if (pad.last === null) return;
    pad.last = null;
    pad.send("image", canvas.toDataURL("image/png"));
  };
  canvas.addEventListener("pointerup", end);
  canvas.addEventListener("pointercancel", end);
  clear.addEventListener("click", () => { wipe(); pad.send("image", null); });
  wipe();
  return pad;
}

export default function (component) {
  const { data, parentElement, setStateValue } = component;
  const root = parentElement.querySelector(".obd-pad");
  let pad = pads.get(parentElement);
  if (!pad) {
    pad = build(root, data);
    pads.set(parentElement, pad);
  } else if (!root.contains(pad.canvas)) {
    root.append(pad.canvas, pad.clear);  // the mount point was redrawn: move the ink over
  }
  pad.send = setStateValue;  // the latest one: it belongs to this run
}
"""

_component = st.components.v2.component("obd_drawing_pad", html=HTML, css=CSS, js=JS)


def drawing_pad(settings: CanvasSettings, key: str) -> np.ndarray | None:
    """A canvas to draw on; returns its image as (size, size, 4) uint8 RGBA, or None before the first stroke, after
    Clear, and for data this canvas does not send (a message says so; `obd.teach.drawing.decode_canvas` checks
    the size before decoding)."""
    result = _component(
        data=dict(
            size=settings.size,
            width=settings.stroke_width,
            stroke=settings.stroke_color,
            background=settings.background_color,
        ),
        key=key,
        default={"image": None},
        on_image_change=lambda: None,
        width="content",
        height="content",
    )
    url = result.get("image")
    if not url:
        return None
    try:
        return decode_canvas(url)
    except ValueError as e:  # not what this canvas sends: said, never raised
        st.warning(f"The drawing could not be read: {plain_text(str(e))}.")  # it may quote Pillow's error
        return None
