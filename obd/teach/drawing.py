"""A digit drawn on a canvas, made into an MNIST image the way MNIST's own digits were made.

LeCun, Cortes and Burges built MNIST from NIST's binary scans in three steps, and `to_mnist` repeats them:
1. the digit's bounding box is size-normalized to fit a 20x20 box, preserving its aspect ratio, with
   anti-aliasing (grey levels at the stroke edges);
2. the 20x20 image is placed in a 28x28 field so that its centre of mass (by pixel intensity) lands on
   the field's centre, pixel (14, 14) (the mean centre of mass of MNIST's test digits: 13.99, 14.00);
3. intensities are in [0, 1], ink bright on a black background, flattened row by row to 784 values: the
   layout of `obd.core.data.Mnist.x_test`.

The canvas convention (what the app's canvas, ui/services/canvas.py, is set to, `CANVAS`): white strokes on a
black background, a 280x280 canvas and an 18-pixel brush, so that a digit drawn across most of the canvas
scales down by about 10 to strokes of about two MNIST pixels, as MNIST's are. The canvas returns its
drawing as an (H, W, 4) uint8 RGBA array. On an opaque canvas the ink is the brightness, inverted when the
background is bright (dark strokes on white); on a transparent background (the component's default) it is
the strokes' opacity. So any of these conventions works.

An empty canvas, or a mark too small to be a digit (a dot, a short tick), gives a `Digit` whose `x` is None
and whose `hint` says what to do: never an exception, since a student's half-drawn canvas is not an error.

The canvas sends its image as a PNG data URL, which anyone can send to the server in its place: `decode_canvas`
checks its length and the PNG header's pixel dimensions before Pillow decodes a byte of it.
"""

from __future__ import annotations

import base64
import binascii
import io
import struct
from dataclasses import dataclass

import numpy as np
from PIL import Image
from scipy import ndimage

SIDE = 28  # MNIST's field
BOX = 20  # MNIST's digits are fitted into a box of this side
CENTRE = 14.0  # where a digit's centre of mass lands in the 28x28 field (row, column)
INK = 0.1  # brightness in [0, 1] above which a canvas pixel counts as ink when finding the bounding box
MIN_EXTENT = 0.12  # a mark whose longer side is below this fraction of the canvas's shorter side is no digit
PNG_URL = "data:image/png;base64,"  # what the canvas sends (canvas.toDataURL("image/png"))
MAX_URL_CHARS = 2**21  # a drawing's data URL: the 280x280 canvas sends tens of KB
MAX_SIDE = 2048  # pixels per side of a drawing decoded: 16 MB of RGBA at most
_PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
EMPTY_HINT = "Draw a digit (0-9) on the canvas."
SMALL_HINT = "That mark is too small to read as a digit: draw the digit larger, across most of the canvas."


@dataclass(frozen=True)
class CanvasSettings:
    """How the app's drawing canvas is set up; `to_mnist` reads any of these, this is the one drawn on."""

    size: int = 280  # canvas side in pixels: 10x MNIST's 28, large enough to draw with a mouse
    stroke_width: int = 18  # brush width: about 2 MNIST pixels once a full-height digit is fitted into 20
    stroke_color: str = "#FFFFFF"  # white ink ...
    background_color: str = "#000000"  # ... on black, as MNIST stores its digits


CANVAS = CanvasSettings()


@dataclass(frozen=True)
class Digit:
    """A canvas read as an MNIST digit.

    x: (784,) float32 in [0, 1], row-major 28x28 like `obd.core.data.Mnist.x_test`; None when there is no digit.
    hint: "" when x is set; otherwise one sentence telling the user what to draw.
    """

    x: np.ndarray | None
    hint: str = ""

    @property
    def ok(self) -> bool:
        return self.x is not None


def decode_canvas(url: object) -> np.ndarray:
    """The canvas's image from the PNG data URL it sends, checked before it is decoded.

    Args:
        url: "data:image/png;base64,..." as the canvas sends it.

    Returns:
        (H, W, 4) uint8 RGBA, H and W at most MAX_SIDE.

    Raises:
        ValueError: for anything else (another form, over MAX_URL_CHARS, not base64, not a PNG, larger than
            MAX_SIDE pixels a side, or damaged); the message says what, and that clearing the canvas helps.
    """
    again = "clear the canvas and draw again"
    if not isinstance(url, str) or not url.startswith(PNG_URL):
        raise ValueError(f"the drawing did not arrive as a PNG image; {again}")
    if len(url) > MAX_URL_CHARS:
        raise ValueError(f"the drawing's data is {len(url):,} characters, over the {MAX_URL_CHARS:,} read; {again}")
    try:
        raw = base64.b64decode(url[len(PNG_URL) :], validate=True)
    except (binascii.Error, ValueError):
        raise ValueError(f"the drawing's data is not valid base64; {again}") from None
    if len(raw) < 24 or raw[:8] != _PNG_SIGNATURE or raw[12:16] != b"IHDR":
        raise ValueError(f"the drawing's data is not a PNG image; {again}")
    width, height = struct.unpack(">II", raw[16:24])  # the IHDR chunk's first fields
    if not (1 <= width <= MAX_SIDE and 1 <= height <= MAX_SIDE):
        raise ValueError(f"the drawing is {width:,}x{height:,} pixels; at most {MAX_SIDE}x{MAX_SIDE} are read; {again}")
    try:
        with Image.open(io.BytesIO(raw), formats=["PNG"]) as image:
            return np.asarray(image.convert("RGBA"))  # (height, width, 4)
    except (OSError, SyntaxError, ValueError, Image.DecompressionBombError) as e:  # truncated or damaged data
        raise ValueError(f"the drawing's PNG image is damaged ({str(e)[:80]}); {again}") from None


def ink(image: np.ndarray) -> np.ndarray:
    """A canvas image's ink as brightness in [0, 1], bright strokes on a dark background.

    Args:
        image: (H, W, 4) RGBA or (H, W, 3) RGB uint8, or (H, W) greyscale uint8, as the canvas returns it.

    Returns:
        (H, W) float32 in [0, 1]. With a transparent background (some alpha below 255) the ink is the
        opacity, whatever the strokes' colour; on an opaque image it is the luminance, inverted when the
        background (the median pixel, since a digit covers far less than half the canvas) is bright.

    Raises:
        ValueError: for an array that is not an image of one of those shapes.
    """
    a = np.asarray(image)
    if a.ndim == 2:
        a = a[..., None]
    if a.ndim != 3 or a.shape[2] not in (1, 3, 4) or min(a.shape[:2]) < 1:
        raise ValueError(f"a canvas image must be (H, W), (H, W, 3) or (H, W, 4); got shape {np.shape(image)}")
    a = a.astype(np.float32) / (255.0 if a.dtype == np.uint8 else 1.0)
    if a.shape[2] == 4 and a[..., 3].min() < 1.0:
        return np.clip(a[..., 3], 0.0, 1.0)
    rgb = a[..., :3] if a.shape[2] >= 3 else np.repeat(a, 3, axis=2)
    grey = rgb @ np.array([0.299, 0.587, 0.114], dtype=np.float32)  # (H, W)
    if np.median(grey) > 0.5:  # dark strokes on a light background
        grey = 1.0 - grey
    return np.clip(grey, 0.0, 1.0)


def to_mnist(image: np.ndarray) -> Digit:
    """Preprocess a canvas drawing as MNIST's digits were made (see the module docstring).

    Args:
        image: the canvas's image data, (H, W, 4) RGBA uint8 (or RGB, or greyscale); either ink convention.

    Returns:
        A Digit: x of shape (784,) float32 in [0, 1], or x None with a hint for an empty canvas or a mark
        too small to be a digit.

    Raises:
        ValueError: for an array that is not an image (see `ink`).
    """
    grey = ink(image)  # (H, W)
    rows, cols = np.flatnonzero((grey > INK).any(axis=1)), np.flatnonzero((grey > INK).any(axis=0))
    if rows.size == 0:
        return Digit(None, EMPTY_HINT)
    top, bottom, left, right = rows[0], rows[-1] + 1, cols[0], cols[-1] + 1
    if max(bottom - top, right - left) < MIN_EXTENT * min(grey.shape):
        return Digit(None, SMALL_HINT)
    crop = grey[top:bottom, left:right]  # (h, w)
    scale = BOX / max(crop.shape)
    h, w = (max(1, round(n * scale)) for n in crop.shape)
    # Pillow's resampling filters widen with the reduction factor, so shrinking averages over each output
    # pixel's footprint: the anti-aliasing MNIST's grey stroke edges come from. Bilinear does not ring.
    box = np.asarray(Image.fromarray(crop, mode="F").resize((w, h), Image.Resampling.BILINEAR))  # (h, w)
    box = np.clip(box, 0.0, 1.0)
    if not box.any():
        return Digit(None, SMALL_HINT)
    com_row, com_col = ndimage.center_of_mass(box)
    # Whole-pixel shifts as MNIST used (no second resampling), kept inside the field.
    top = int(np.clip(round(CENTRE - com_row), 0, SIDE - h))
    left = int(np.clip(round(CENTRE - com_col), 0, SIDE - w))
    field = np.zeros((SIDE, SIDE), dtype=np.float32)
    field[top : top + h, left : left + w] = box
    return Digit(field.reshape(-1))


def render(
    x: np.ndarray,
    size: int = CANVAS.size,
    scale: float = 8.0,
    offset: tuple[int, int] = (0, 0),
    dark_on_light: bool = False,
) -> np.ndarray:
    """Draw an MNIST digit onto a canvas-format image, as if a student had drawn it (for tests and demos).

    Args:
        x: (784,) or (28, 28) intensities in [0, 1].
        size: the canvas's side in pixels.
        scale: how many canvas pixels one MNIST pixel becomes (bilinear, so strokes stay smooth).
        offset: (rows, columns) to move the digit from the canvas's centre; it may be cut at the edges.
        dark_on_light: draw black ink on white instead of the canvas's white on black.

    Returns:
        (size, size, 4) uint8 RGBA, fully opaque, like the canvas's `image_data`.

    Raises:
        ValueError: for an image that is not 784 values, or a size or scale below 1.
    """
    x = np.asarray(x, dtype=np.float32)
    if x.size != SIDE * SIDE:
        raise ValueError(f"an MNIST digit has {SIDE * SIDE} pixels; got {x.size}")
    if size < 1 or not scale > 0 or round(SIDE * scale) < 1:
        raise ValueError(f"size and scale must be positive; got size={size!r}, scale={scale!r}")
    side = round(SIDE * scale)
    big = np.asarray(Image.fromarray(x.reshape(SIDE, SIDE), mode="F").resize((side, side), Image.Resampling.BILINEAR))
    canvas = np.zeros((size, size), dtype=np.float32)  # (size, size)
    top, left = (size - side) // 2 + offset[0], (size - side) // 2 + offset[1]
    src_top, src_left = max(0, -top), max(0, -left)
    dst_top, dst_left = max(0, top), max(0, left)
    rows = min(side - src_top, size - dst_top)
    cols = min(side - src_left, size - dst_left)
    if rows > 0 and cols > 0:
        canvas[dst_top : dst_top + rows, dst_left : dst_left + cols] = big[
            src_top : src_top + rows, src_left : src_left + cols
        ]
    grey = np.clip(canvas, 0.0, 1.0)
    grey = 1.0 - grey if dark_on_light else grey
    rgba = np.empty((size, size, 4), dtype=np.uint8)
    rgba[..., :3] = np.round(255 * grey)[..., None]
    rgba[..., 3] = 255
    return rgba
