"""Preprocessing pictures into the data sets' layouts (`xpnet.data.images`): host NumPy and SciPy, no Pillow."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import ndimage

from helpers import ink_box, seven
from xpnet.data import images, paper

MNIST = images.LAYOUTS["mnist"]


def test_an_off_centre_oversized_dark_on_light_digit_ends_centred_in_20x20():
    page = seven()
    out = images.prepare(page, MNIST)
    assert out.shape == (28, 28) and out.dtype == np.uint8
    assert out[0].max() == 0 and out[:, 0].max() == 0, "the paper became ink: no inversion"
    assert out.max() == 255
    h, w = ink_box(out)
    assert max(h, w) in (19, 20) and min(h, w) < max(h, w), "fitted into 20x20 keeping the aspect ratio"
    cy, cx = ndimage.center_of_mass(out.astype(float))
    assert abs(cy - 13.5) <= 1 and abs(cx - 13.5) <= 1
    # The same digit light on dark, as MNIST has it, gives the same image.
    assert np.abs(images.prepare(1.0 - page, MNIST).astype(int) - out).max() <= 1


def test_centring_is_by_mass_not_by_box():
    out = images.prepare(seven(), MNIST).astype(float)
    rows = np.flatnonzero(out.any(axis=1))
    # The heavy bar sits on top: centring the mass puts the box's middle below the field's middle.
    assert (rows[0] + rows[-1]) / 2 > 13.5


def test_noise_and_specks_do_not_move_the_digit():
    rng = np.random.default_rng(0)
    clean = images.prepare(seven(), MNIST)
    noisy = np.clip(0.85 * seven() + 0.1 + rng.normal(0, 0.03, (240, 200)), 0, 1)  # grey paper, grain
    noisy[230, 190] = noisy[5, 195] = 0.0  # two specks of dust far from the digit
    out = images.prepare(noisy, MNIST)
    assert ink_box(out) == ink_box(clean)
    assert np.abs(out.astype(int) - clean).mean() < 5


def test_transparent_background_uses_alpha_as_ink():
    ink = 1.0 - seven()
    rgba = np.zeros((*ink.shape, 4), dtype=np.uint8)
    rgba[..., :3] = 30  # dark strokes on a transparent (and dark) background
    rgba[..., 3] = np.rint(255 * ink).astype(np.uint8)
    assert np.abs(images.prepare(rgba, MNIST).astype(int) - images.prepare(seven(), MNIST)).max() <= 1


@pytest.mark.parametrize("picture", [np.zeros((30, 30)), np.full((30, 30), 200, np.uint8)], ids=["black", "grey"])
def test_a_blank_picture_is_refused(picture):
    with pytest.raises(images.BlankImage, match="no digit found"):
        images.prepare(picture, MNIST)


@pytest.mark.parametrize("bad", [np.zeros((2, 3, 5)), np.zeros((4,)), np.array([["a"]]), np.zeros((0, 5))])
def test_arrays_that_are_not_pictures_are_refused(bad):
    with pytest.raises(ValueError):
        images.prepare(bad, MNIST)


def test_gray_reads_every_pixel_type_on_one_scale():
    base = np.array([[0.0, 0.5], [1.0, 0.25]])
    for a in (base, np.rint(base * 255).astype(np.uint8), base * 255.0, (base * 65535).astype(np.uint16)):
        assert np.allclose(images.to_gray(a), base, atol=1 / 255)
    rgb = np.stack([base] * 3, axis=-1)
    assert np.allclose(images.to_gray(rgb), base)
    assert images.to_gray(base > 0.4).tolist() == [[0.0, 1.0], [1.0, 0.0]]


def test_resize_averages_areas_exactly_for_whole_factors():
    a = np.arange(12.0).reshape(3, 4)
    big = np.kron(a, np.ones((5, 5)))
    assert np.allclose(images.resize(big, (3, 4)), a)
    up = images.resize(a, (7, 9))
    assert up.min() >= a.min() and up.max() <= a.max()  # interpolation never overshoots


def test_digits_layout_is_8x8_in_the_digits_scale():
    small = images.prepare(seven(), images.LAYOUTS["digits"])
    assert small.shape == (8, 8)
    assert ink_box(small)[0] == 8, "the digits fill their height"
    # An 8x8 digit shown enlarged comes back as itself, its levels kept: its brightest block is 232 of 255,
    # within the digits' own range (223 and up), so it is not stretched.
    digit = np.kron(small, np.ones((8, 8), np.uint8))
    assert np.array_equal(images.prepare(digit, images.LAYOUTS["digits"]), small)


def test_mnist_puts_the_centre_of_mass_at_14_by_whole_pixels():
    # Pixel-index coordinates: the field's middle counted from pixel edges (module docstring, issue 18).
    cy, cx = ndimage.center_of_mass(images.prepare(seven(), MNIST).astype(float))
    assert 13.5 <= cy < 14.5 and 13.5 <= cx < 14.5


def test_a_photo_a_few_pixels_high_is_read():
    # A cross on grainy paper in a strip 3 pixels high: the ruled-line search once failed on it.
    rng = np.random.default_rng(4)
    strip = np.clip(rng.normal(200, 6, (3, 40)), 0, 255).astype(np.uint8)
    strip[1, 10:30], strip[:, 19:21] = 30, 30
    out = images.prepare(strip, MNIST)
    assert out.max() == 255 and ink_box(out)[1] >= 19


def test_a_prepared_picture_is_a_fixed_point_whatever_its_polarity_or_size():
    once = images.prepare(seven(), MNIST)
    assert np.array_equal(images.prepare(once, MNIST), once)
    assert np.array_equal(images.prepare(255 - once, MNIST), once)
    assert np.array_equal(images.prepare(np.kron(once, np.ones((4, 4), np.uint8)), MNIST), once)
    # Moved off centre, it is centred again: only a picture already in place is left where it is.
    assert np.array_equal(images.prepare(np.roll(once, (-3, 3), axis=(0, 1)), MNIST), once)


def test_a_clean_picture_keeps_its_levels_unless_its_ink_is_dim():
    once = images.prepare(seven(), MNIST).astype(float)
    faint = np.where(once > 0, np.maximum(once, 3), 0)  # soft edges, as Fashion-MNIST's: ink, not noise
    assert np.array_equal(images.prepare(np.rint(0.9 * faint).astype(np.uint8), MNIST), np.rint(0.9 * faint))
    dim = images.prepare(np.rint(0.5 * once).astype(np.uint8), MNIST)
    assert dim.max() == 255 and np.abs(dim.astype(int) - once).max() <= 2


def test_preparing_twice_changes_little():
    once = images.prepare(seven(), MNIST)
    twice = images.prepare(once, MNIST)
    assert np.abs(twice.astype(int) - once).mean() < 3


def test_large_pictures_are_shrunk_first():
    page = np.kron(seven(), np.ones((8, 8)))  # 1920x1600
    assert max(images.shrink(page).shape) <= images.MAX_SIDE
    assert np.abs(images.prepare(page, MNIST).astype(int) - images.prepare(seven(), MNIST)).max() <= 2


def test_layout_follows_the_data_set_and_the_input_size():
    assert images.layout_for("fashion-mnist", 784).box == 28
    assert images.layout_for("mnist", 784) is MNIST
    assert images.layout_for("my-own-digits", 784) is MNIST
    assert images.layout_for("digits", 64).side == 8
    with pytest.raises(ValueError, match="100 inputs"):
        images.layout_for("mnist", 100)


def test_the_fast_speck_filter_and_gray_scale_give_the_counting_and_clipping_results():
    """`solid` ORs the 8 neighbours and `to_gray` skips the clip for unsigned pictures (for speed): the same
    pixels as counting neighbours in integers and clipping every picture, on random pictures."""
    rng = np.random.default_rng(24)

    def counted(lit: np.ndarray) -> np.ndarray:
        h, w = lit.shape
        padded = np.pad(lit, 1)
        neighbours = sum(padded[1 + dy : h + 1 + dy, 1 + dx : w + 1 + dx] for dy in (-1, 0, 1) for dx in (-1, 0, 1))
        speck = lit & (neighbours == 1)
        return lit & ~speck if speck.sum() < lit.sum() else lit

    for shape in [(1, 1), (1, 9), (7, 1), (5, 6), (64, 48), (280, 280)]:
        for density in (0.001, 0.05, 0.3, 0.9):
            lit = rng.random(shape) < density
            assert np.array_equal(paper.solid(lit), counted(lit)), (shape, density)
    opaque = rng.integers(0, 256, (40, 30, 4), dtype=np.uint8)
    opaque[:, :, 3] = 255  # an opaque RGBA picture: its colour is what counts
    for picture in [
        opaque,
        rng.integers(0, 256, (40, 30), dtype=np.uint16),
        rng.integers(0, 65536, (40, 30, 3), dtype=np.uint16),
        rng.random((40, 30)) < 0.5,
    ]:
        scale = 1.0 if picture.dtype == bool else 65535.0 if picture.max() > 255 else 255.0
        x = np.clip(picture.astype(np.float64) / scale, 0.0, 1.0)
        expected = x if x.ndim == 2 else x[:, :, :3] @ np.array([0.299, 0.587, 0.114])
        assert np.array_equal(images.to_gray(picture), expected), picture.dtype
    alpha = rng.integers(0, 256, (40, 30, 2), dtype=np.uint8)  # grey and alpha: the alpha is the ink
    assert np.array_equal(images.to_gray(alpha), alpha[:, :, 1] / 255.0)
