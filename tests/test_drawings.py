"""Drawings made the way scikit-learn's digits were made, and the shipped digits model reading them."""

from __future__ import annotations

import numpy as np
import pytest

from toolkit.data.drawings import digit_image, digit_pixels, draw_font_digit, draw_stroke_digit, drawn_digits
from toolkit.errors import DataError


def ring(canvas=(280, 280), box=(40, 60, 200, 140), width=12, background=255, pen=0):
    """An ellipse outline inside ``box`` = (top, left, height, width) on a grey canvas."""
    from PIL import Image, ImageDraw

    img = Image.new("L", (canvas[1], canvas[0]), background)
    top, left, h, w = box
    ImageDraw.Draw(img).ellipse((left, top, left + w, top + h), outline=pen, width=width)
    return np.asarray(img)


def ink_box(pixels):
    rows, cols = np.nonzero(pixels > 1)
    return rows.min(), rows.max(), cols.min(), cols.max()


def test_output_is_8x8_counts_from_0_to_16():
    out = digit_pixels(ring())
    assert out.shape == (8, 8) and out.dtype == np.float32
    assert out.min() == 0 and 8 < out.max() <= 16
    scaled = digit_image(ring())
    assert scaled.shape == (8, 8, 1) and np.allclose(scaled[..., 0], out * 255 / 16)


def test_the_strokes_bounding_box_is_centred_wherever_it_was_drawn():
    centred = digit_pixels(ring(box=(40, 60, 200, 140)))
    for box in [(0, 0, 200, 140), (190, 250, 200, 140), (10, 255, 200, 140)]:
        assert np.allclose(digit_pixels(ring(canvas=(400, 400), box=box)), centred, atol=0.5)
    top, bottom, left, right = ink_box(centred)
    assert (top, bottom) == (0, 7)  # the digit spans the frame's height, as the digits set's do
    assert left + right == 7  # and sits in the middle columns


def test_aspect_is_kept_and_the_size_does_not_matter():
    tall = digit_pixels(ring(box=(20, 100, 240, 80), width=10))
    wide = digit_pixels(ring(box=(100, 20, 80, 240), width=10))
    t_top, t_bottom, t_left, t_right = ink_box(tall)
    w_top, w_bottom, w_left, w_right = ink_box(wide)
    assert t_bottom - t_top == 7 and t_right - t_left <= 3  # 3:1 tall: full height, narrow
    assert w_right - w_left == 5 and w_bottom - w_top <= 3  # 3:1 wide: the 24 middle pixels, short
    small = digit_pixels(ring(canvas=(60, 60), box=(5, 10, 50, 35), width=3))
    assert np.abs(small - digit_pixels(ring())).mean() < 1.5  # 50 px or 200 px tall: the same digit


def test_polarity_and_transparent_coloured_layers():
    dark_on_light = digit_pixels(ring(background=255, pen=0))
    light_on_dark = digit_pixels(ring(background=0, pen=255))
    grey_on_grey = digit_pixels(ring(background=200, pen=60))
    assert np.allclose(dark_on_light, light_on_dark) and np.allclose(dark_on_light, grey_on_grey)
    alpha = 255 - ring()  # red strokes on a transparent canvas, as a sketch layer sends them
    layer = np.zeros((*alpha.shape, 4), np.uint8)
    layer[..., 0], layer[..., 3] = 255, alpha
    assert np.allclose(digit_pixels(layer), dark_on_light)


@pytest.mark.parametrize("canvas", [np.full((280, 280, 4), 0, np.uint8), np.full((280, 280, 3), 255, np.uint8),
                                    np.zeros((100, 80), np.uint8), np.full((50, 50, 3), 128, np.uint8)],
                         ids=["transparent", "white", "black", "grey"])
def test_an_empty_canvas_is_a_clear_error(canvas):
    with pytest.raises(DataError, match="Nothing is drawn"):
        digit_pixels(canvas)


def test_bad_shapes_are_clear_errors():
    with pytest.raises(DataError, match="1, 3 or 4 channels"):
        digit_pixels(np.zeros((20, 20, 2)))
    with pytest.raises(DataError, match="Expected a drawing"):
        digit_pixels(np.zeros((20,)))


def test_renders_are_what_they_claim():
    typed = draw_font_digit(7, "DejaVuSans.ttf", 120, (400, 300), (0.5, -0.5))
    assert typed.shape == (300, 400, 3) and typed.min() == 0 and typed.max() == 255
    drawn = draw_stroke_digit(1, 200, 18, (280, 280), (0.0, 0.0))
    assert drawn.shape == (280, 280, 4) and set(np.unique(drawn[..., 3])) >= {0, 255}
    images, labels = drawn_digits(20, seed=3)
    assert len(images) == 20 and list(labels[:10]) == list(range(10))


def test_the_shipped_model_reads_drawn_digits(shipped_digits):
    import toolkit

    task = toolkit.load(shipped_digits)
    images, labels = drawn_digits(40, seed=0)
    ours = task.probabilities(np.stack([digit_image(im) for im in images])).argmax(1)
    # The peer: the same images squeezed to 8x8 whole (white paper, light ink on black).
    naive = task.probabilities(np.stack([task.prepare(255 - _on_white(im))[0] for im in images])).argmax(1)
    accuracy, peer = float((ours == labels).mean()), float((naive == labels).mean())
    assert accuracy >= 0.8, accuracy
    assert accuracy >= peer + 0.3, (accuracy, peer)


def _on_white(image):
    if image.shape[-1] == 4:
        alpha = image[..., 3:4] / 255.0
        image = image[..., :3] * alpha + 255 * (1 - alpha)
    return image.astype(np.float32)


def test_channel_mean_is_numpys_mean_over_the_channels_bit_for_bit():
    from toolkit.data.drawings import channel_mean

    rng = np.random.default_rng(0)
    for shape in [(280, 280, 3), (28, 28, 4), (5, 5, 1), (3, 32, 32, 3)]:
        for dtype in (np.float32, np.float64):
            arr = (rng.uniform(0, 255, shape) * rng.uniform(0.1, 1.0)).astype(dtype)
            got = channel_mean(arr)
            assert got.dtype == dtype and np.array_equal(got, arr.mean(axis=-1))
