"""The canvas's PNG data URL (issue 27): a drawing decodes to the image drawn; anything else a client could send in
its place (another form, bad base64, not a PNG, a huge or damaged PNG, an endless URL) is a ValueError whose
message says what, raised before Pillow decodes the pixels."""

from __future__ import annotations

import base64
import io
import struct
import zlib

import numpy as np
import pytest
from PIL import Image

from obd.teach.drawing import MAX_SIDE, MAX_URL_CHARS, PNG_URL, decode_canvas, render, to_mnist


def _png(image: Image.Image) -> bytes:
    out = io.BytesIO()
    image.save(out, format="PNG")
    return out.getvalue()


def _url(raw: bytes) -> str:
    return PNG_URL + base64.b64encode(raw).decode()


def test_a_drawing_decodes_to_the_image_drawn(mnist):
    drawn = render(mnist.x_test[0])  # (280, 280, 4) as the canvas draws a digit
    image = decode_canvas(_url(_png(Image.fromarray(drawn, "RGBA"))))
    assert image.dtype == np.uint8 and image.shape == (280, 280, 4)
    assert np.array_equal(image, drawn)
    assert to_mnist(image).ok


def _huge_png(side: int) -> bytes:
    """A real PNG of side x side black pixels (1 bit each, so it stays small on disk and in this test)."""
    return _png(Image.new("1", (side, side)))


def _claims(width: int, height: int) -> bytes:
    """A PNG header claiming a size, with a little data after it (a decompression bomb's first bytes)."""
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 6, 0, 0, 0)
    chunk = b"IHDR" + ihdr
    return b"\x89PNG\r\n\x1a\n" + struct.pack(">I", 13) + chunk + struct.pack(">I", zlib.crc32(chunk)) + bytes(64)


def _truncated() -> bytes:
    raw = _png(Image.fromarray(np.random.default_rng(0).integers(0, 255, (64, 64, 4), dtype=np.uint8), "RGBA"))
    return raw[: len(raw) // 2]


@pytest.mark.parametrize(
    "url, message",
    [
        (None, "did not arrive as a PNG image"),
        ("", "did not arrive as a PNG image"),
        ("data:image/jpeg;base64,/9j/4AAQ", "did not arrive as a PNG image"),
        ("javascript:alert(1)", "did not arrive as a PNG image"),
        (PNG_URL + "not base64!", "not valid base64"),
        (PNG_URL + "A" * (MAX_URL_CHARS + 4), "over the 2,097,152 read"),
        (_url(b"GIF89a" + bytes(40)), "not a PNG image"),
        (_url(b"\x89PNG"), "not a PNG image"),
        (_url(_claims(100_000, 100_000)), "the drawing is 100,000x100,000 pixels; at most 2048x2048"),
        (_url(_claims(0, 5)), "the drawing is 0x5 pixels"),
        (_url(_huge_png(MAX_SIDE + 1)), "the drawing is 2,049x2,049 pixels"),
        (_url(_truncated()), "the drawing's PNG image is damaged"),
        (_url(_claims(8, 8)), "the drawing's PNG image is damaged"),
    ],
    ids=[
        "none",
        "empty",
        "jpeg",
        "javascript",
        "bad_base64",
        "too_long",
        "gif",
        "short",
        "bomb_header",
        "zero_width",
        "over_side",
        "truncated",
        "no_pixels",
    ],
)
def test_anything_else_is_a_value_error_saying_what(url, message):
    with pytest.raises(ValueError) as e:
        decode_canvas(url)
    assert message in str(e.value) and "clear the canvas and draw again" in str(e.value), str(e.value)


def test_the_largest_drawing_read_decodes():
    image = decode_canvas(_url(_huge_png(MAX_SIDE)))
    assert image.shape == (MAX_SIDE, MAX_SIDE, 4)
