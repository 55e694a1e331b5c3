"""A drawn digit becomes an MNIST digit: test digits drawn onto a canvas-format image in either ink convention,
moved and rescaled, come back centred and sized as MNIST's and are read right by the dense default model;
an empty canvas or a dot gives a hint, never an exception."""

import numpy as np
import pytest
from cached_default import cached_default_net
from scipy import ndimage

import obd  # noqa: F401  first: it sets the thread runtimes' environment
from obd.teach.drawing import BOX, CANVAS, CENTRE, EMPTY_HINT, SMALL_HINT, ink, render, to_mnist


@pytest.fixture(scope="module")
def default_net(mnist):
    return cached_default_net(mnist)


# (scale, offset, dark_on_light): a digit drawn small or large, off-centre, in either convention
DRAWN = [(8.0, (0, 0), False), (10.0, (-30, 25), False), (6.0, (50, -45), True), (9.0, (15, 10), True)]


def test_drawn_test_digits_are_read_as_their_labels_by_the_dense_model(default_net, mnist):
    idx = np.random.default_rng(0).choice(len(mnist.x_test), 200, replace=False)
    xs, labels = [], []
    for j, i in enumerate(idx):
        scale, offset, dark = DRAWN[j % len(DRAWN)]
        digit = to_mnist(render(mnist.x_test[i], scale=scale, offset=offset, dark_on_light=dark))
        assert digit.ok and digit.x.shape == (784,) and digit.x.dtype == np.float32
        xs.append(digit.x)
        labels.append(mnist.y_test[i])
    right = default_net.logits(np.stack(xs)).argmax(axis=1) == np.array(labels)
    assert right.mean() >= 0.95


@pytest.mark.parametrize("scale, offset, dark", DRAWN)
def test_a_drawn_digit_is_fitted_into_20_pixels_and_centred_by_its_mass(mnist, scale, offset, dark):
    x = to_mnist(render(mnist.x_test[7], scale=scale, offset=offset, dark_on_light=dark)).x
    image = x.reshape(28, 28)
    assert 0.0 <= x.min() and x.max() <= 1.0
    rows, cols = np.flatnonzero(image.any(axis=1)), np.flatnonzero(image.any(axis=0))
    assert max(rows[-1] - rows[0], cols[-1] - cols[0]) + 1 == BOX
    assert np.allclose(ndimage.center_of_mass(image), (CENTRE, CENTRE), atol=0.5)
    assert np.abs(x - mnist.x_test[7]).mean() < 0.06  # close to the digit it was drawn from


def test_every_ink_convention_reads_the_same():
    stroke = np.zeros((280, 280), dtype=bool)
    stroke[40:240, 130:148] = True  # a "1", 18 px wide as the canvas's brush
    white_on_black = np.zeros((280, 280, 4), np.uint8)
    white_on_black[..., 3] = 255
    white_on_black[stroke, :3] = 255
    black_on_white = np.full((280, 280, 4), 255, np.uint8)
    black_on_white[stroke, :3] = 0
    on_transparent = np.zeros((280, 280, 4), np.uint8)  # the component's default: black ink, no background
    on_transparent[stroke, 3] = 255
    expected = to_mnist(white_on_black).x
    assert expected is not None
    for image in (black_on_white, on_transparent, white_on_black[..., :3], white_on_black[..., 0]):
        assert np.array_equal(ink(image) > 0.5, stroke)
        assert np.allclose(to_mnist(image).x, expected)


def test_an_empty_canvas_or_a_dot_gives_a_hint_not_an_error():
    for empty in (np.zeros((CANVAS.size, CANVAS.size, 4), np.uint8), np.full((280, 280, 4), [0, 0, 0, 255], np.uint8)):
        digit = to_mnist(empty)
        assert not digit.ok and digit.hint == EMPTY_HINT
    dot = np.full((280, 280, 4), [0, 0, 0, 255], np.uint8)
    yy, xx = np.mgrid[:280, :280]
    dot[(yy - 100) ** 2 + (xx - 150) ** 2 <= (CANVAS.stroke_width / 2) ** 2, :3] = 255  # one click of the brush
    digit = to_mnist(dot)
    assert not digit.ok and digit.hint == SMALL_HINT
    one_pixel = np.zeros((280, 280, 4), np.uint8)
    one_pixel[5, 5] = 255
    assert to_mnist(one_pixel).hint == SMALL_HINT


def test_bad_images_are_named():
    with pytest.raises(ValueError, match=r"\(H, W, 4\)"):
        to_mnist(np.zeros((280, 280, 2), np.uint8))
    with pytest.raises(ValueError, match="784 pixels"):
        render(np.zeros(100))
