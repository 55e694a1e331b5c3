"""Pictures as numpy arrays: colour-mapped weight matrices with pruned entries visible, and digit tiles.

A 1000x1000 kernel as a plotly Heatmap is megabytes of JSON; as an RGB image downsampled by blocks it is a
small PNG. Each block's colour is its largest kept weight by magnitude, with its sign, on a diverging scale
(blue < 0 < red): a mean would let opposite signs cancel into a misleading white. A block darkens towards black
with the fraction of its entries pruned (never below MIN_LIGHT while it keeps one), so only fully pruned blocks
(and unit-pruned columns) are black. The block size is returned so the caption can say what a pixel is.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

NEGATIVE = np.array([33, 102, 172], dtype=np.float64)  # blue
ZERO = np.array([247, 247, 247], dtype=np.float64)  # near white
POSITIVE = np.array([178, 24, 43], dtype=np.float64)  # red
PRUNED = np.array([0, 0, 0], dtype=np.float64)  # black: every entry of the block pruned
MIN_LIGHT = 0.45  # the least brightness of a block that keeps any weight


@dataclass(frozen=True)
class KernelImage:
    rgb: np.ndarray  # (rows, cols, 3) uint8: rows = inputs, cols = units
    block: int  # each pixel shows a block x block patch of the kernel
    scale: float  # |w| that maps to full colour (the 99th percentile of kept |w|)


def block_size(shape: tuple[int, int], max_pixels: int) -> int:
    """The smallest block b such that ceil(rows/b) * ceil(cols/b) <= max_pixels."""
    b = 1
    while -(-shape[0] // b) * -(-shape[1] // b) > max_pixels:
        b += 1
    return b


def _blocks(a: np.ndarray, b: int) -> np.ndarray:
    """b x b blocks of a, zero-padded at the edges. (rows, cols) -> (ceil(rows/b), ceil(cols/b), b*b)"""
    rows, cols = -(-a.shape[0] // b), -(-a.shape[1] // b)
    padded = np.zeros((rows * b, cols * b), dtype=np.float64)
    padded[: a.shape[0], : a.shape[1]] = a
    return padded.reshape(rows, b, cols, b).transpose(0, 2, 1, 3).reshape(rows, cols, b * b)


def kernel_image(values: np.ndarray, mask: np.ndarray, max_pixels: int = 90_000, signed: bool = True) -> KernelImage:
    """Colour-map a kernel (or a saliency map) with its pruning mask.

    Args:
        values: (inputs, units) weights (signed: blue-white-red) or non-negative scores (signed=False:
            white to red).
        mask: bool, same shape, True = kept.
        max_pixels: upper bound on the image's pixels (90,000 = 300x300: a PNG well under 300 KB).
        signed: whether values have a sign to show.

    Returns:
        KernelImage(rgb, block, scale).
    """
    values = np.asarray(values, dtype=np.float64)
    mask = np.asarray(mask, dtype=bool)
    b = block_size(values.shape, max_pixels)
    kept = _blocks(mask.astype(np.float64), b).sum(axis=2)  # (rows, cols) kept entries per block
    total = _blocks(np.ones(values.shape), b).sum(axis=2)
    kept_values = _blocks(np.where(mask, values, 0.0), b)  # (rows, cols, b*b), pruned entries 0
    pick = np.abs(kept_values).argmax(axis=2)[..., None]
    largest = np.take_along_axis(kept_values, pick, axis=2)[..., 0]  # signed, largest |w| kept per block
    kept_abs = np.abs(values[mask])
    scale = float(np.percentile(kept_abs, 99)) if kept_abs.size else 1.0
    t = np.clip(largest / (scale or 1.0), -1.0, 1.0)[..., None]  # (rows, cols, 1) in [-1, 1]
    colour = np.where(t >= 0, ZERO + t * (POSITIVE - ZERO), ZERO - t * (NEGATIVE - ZERO))
    if not signed:
        colour = ZERO + np.abs(t) * (POSITIVE - ZERO)
    # A block's brightness falls with its pruned share, but never below MIN_LIGHT while it keeps a weight:
    # at 95 % sparsity a 3x3 block keeps ~0.5 weights, and plain proportional darkening would hide them all.
    kept_frac = (kept / total)[..., None]
    light = np.where(kept_frac > 0, MIN_LIGHT + (1 - MIN_LIGHT) * kept_frac, 0.0)
    rgb = PRUNED + light * (colour - PRUNED)
    return KernelImage(np.round(rgb).astype(np.uint8), b, scale)


def digit_tile(image: np.ndarray, frame: tuple[int, int, int] | None = None, scale: int = 3) -> np.ndarray:
    """A 28x28 digit as an upscaled RGB tile, optionally framed in a colour (e.g. red for a changed prediction).

    Args:
        image: (784,) or (28, 28) floats in [0, 1].
        frame: RGB of a 2-pixel frame, or None.
        scale: pixel upscaling.

    Returns:
        (28*scale, 28*scale, 3) uint8, white digit on black.
    """
    g = np.asarray(image, dtype=np.float64).reshape(28, 28)
    tile = np.repeat(np.repeat((255 * g).astype(np.uint8), scale, 0), scale, 1)
    rgb = np.stack([tile] * 3, axis=-1)
    if frame is not None:
        rgb[:2], rgb[-2:], rgb[:, :2], rgb[:, -2:] = frame, frame, frame, frame
    return rgb
