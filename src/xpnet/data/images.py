"""Any picture of one digit (or garment), of any size and polarity, as the image a model was trained on: `prepare`
applies a data set's recipe (`Layout`, docs/usage.md) in host NumPy, leaving a data set's own image as it is."""

from dataclasses import dataclass

import numpy as np

from ..errors import DataError

# `paper` and scipy.ndimage are imported where a picture is prepared: every command imports this module.
BORDER = 0.05  # the outer 5% of each side is taken as background when judging polarity
CLEAN_SHARE, CLEAN_LEVEL = 0.15, 0.5 / 255  # this share of a clean picture's border is black (data sets: 19.6%+)
MIN_PEAK = 0.85  # a clean picture's ink this bright keeps its levels (data sets: 223/255 or more)
MIN_STROKE = 1.5  # a photo's strokes are widened to this many pixels of the model's image (MNIST: 2 to 3)
MAX_SIDE = 1024  # larger pictures are averaged below this first: a digit needs no more pixels
PREPARATION = 2  # which preparation made an image: a cache made by another is stale
DEFAULT_SIZE, MIN_SIZE, MAX_SIZE = 28, 4, 256  # the sides a folder set's images may have (``image_size``)


class BlankImage(ValueError):
    """The picture holds no ink: one flat colour, or nothing above the noise threshold."""


@dataclass(frozen=True)
class Layout:
    """How a data set's images were made: ink fitted in ``box`` pixels of a ``work`` square, averaged to ``side``."""

    side: int
    box: int
    work: int
    by_mass: bool = True  # centre the ink's centre of mass; False: centre its bounding box
    centre: float | None = None  # where the centre goes (pixel-index coordinates); None: the middle
    slack: float = 1.0  # a picture this near the recipe's place is not moved (digits' stray 1.5 pixels)

    @property
    def n_features(self) -> int:
        return self.side * self.side


LAYOUTS = {
    "mnist": Layout(side=28, box=20, work=28, centre=14.0),
    "fashion-mnist": Layout(side=28, box=28, work=28, by_mass=False),
    "digits": Layout(side=8, box=32, work=32, slack=1.5),
}


def layout_for(dataset: str, n_features: int) -> Layout:
    """The recipe of ``dataset``, or of its shape (784 inputs: MNIST's, 64: digits'); `ValueError` if none."""
    for layout in (LAYOUTS.get(dataset), LAYOUTS["mnist"], LAYOUTS["digits"]):
        if layout is not None and layout.n_features == n_features:
            return layout
    raise ValueError(f"a model with {n_features} inputs takes no image layout xpnet knows (784 = 28x28, 64 = 8x8)")


def folder_layout(side: int | None = None) -> Layout:
    """A folder set's recipe at ``side`` pixels a side: Fashion-MNIST's, which assumes nothing about the pictures."""
    side = DEFAULT_SIZE if side is None else side
    if not MIN_SIZE <= side <= MAX_SIZE:
        message = f"{{name}} {side} is out of range: give {MIN_SIZE} to {MAX_SIZE} (default {DEFAULT_SIZE})"
        raise DataError(message, parameter="image_size")
    return Layout(side=side, box=side, work=side, by_mass=False)


def to_gray(image: np.ndarray) -> np.ndarray:
    """An (H, W) or (H, W, 1|2|3|4) array -> float64 (H, W) in [0, 1]; a translucent alpha is the ink (a drawing)."""
    a = np.asarray(image)
    if not (a.ndim == 2 or (a.ndim == 3 and a.shape[2] in (1, 2, 3, 4))) or a.dtype.kind not in "biuf" or not a.size:
        raise ValueError(f"expected one image of numbers, shaped (H, W) or (H, W, 1|2|3|4), got {a.dtype}{a.shape}")
    if a.dtype.kind == "f" and not np.isfinite(a).all():
        raise ValueError("the image holds NaN or infinite values")
    peak = a.max()  # integers are 0..255 (0..65535 past 255), floats 0..1 unless they exceed 1
    scale = (65535.0 if peak > 255 else 255.0) if a.dtype.kind in "iu" else 255.0 if peak > 1 else 1.0
    if a.ndim == 3:  # the channels that make the gray, chosen before any float copy
        drawn = a.shape[2] in (2, 4) and float(a[:, :, -1].min()) / scale < 1.0
        a = a[:, :, -1] if drawn else a[:, :, 0] if a.shape[2] <= 2 else a[:, :, :3]
    x = np.divide(a, scale, dtype=np.float64)  # scaled and clipped in place: one float64 copy at a time
    x = np.clip(x, 0.0, 1.0, out=x)
    return x if x.ndim == 2 else x @ np.array([0.299, 0.587, 0.114])  # as Pillow's convert("L")


def shrink(gray: np.ndarray, limit: int = MAX_SIDE) -> np.ndarray:
    """Average ``gray`` over k x k blocks (cheap, antialiased) until its longest side is at most ``limit``."""
    k = -(-max(gray.shape) // limit)
    h, w = (s // k * k for s in gray.shape)  # a very thin strip keeps whole pixels along its short side
    return gray if k <= 1 or h == 0 or w == 0 else gray[:h, :w].reshape(h // k, k, w // k, k).mean(axis=(1, 3))


def resize(image: np.ndarray, shape: tuple[int, int], footprint: float = 1.0) -> np.ndarray:
    """``image`` resampled to ``shape``: the mean of the middle ``footprint`` of each pixel's area, or bilinear."""

    def weights(n_in: int, n_out: int) -> np.ndarray:  # (n_out, n_in), each row the pixels that make one
        scale, j, i = n_in / n_out, np.arange(n_in)[None, :], np.arange(n_out)[:, None] + 0.5
        if scale >= 1:  # the mean of the input area under each output pixel
            width = max(1.0, footprint * scale)
            start = i * scale - width / 2
            w = np.clip(np.minimum(j + 1, start + width) - np.maximum(j, start), 0.0, None)
        else:  # a tent between neighbouring input pixel centres
            w = np.maximum(0.0, 1.0 - np.abs(j + 0.5 - i * scale))
        return w / w.sum(axis=1, keepdims=True)

    return weights(image.shape[0], shape[0]) @ image @ weights(image.shape[1], shape[1]).T


def prepare(image: np.ndarray, layout: Layout) -> np.ndarray:
    """Any picture (see `to_gray`) -> the (side, side) uint8 image of ``layout``; `BlankImage`: no ink found."""
    from scipy import ndimage

    from . import paper

    gray = shrink(to_gray(image))
    b = max(1, round(BORDER * min(gray.shape)))
    ring = np.concatenate([gray[:b].ravel(), gray[-b:].ravel(), gray[:, :b].ravel(), gray[:, -b:].ravel()])
    if np.median(ring) > 0.5:  # dark ink on light paper: MNIST's ink is light on black
        gray, ring = 1.0 - gray, 1.0 - ring
    peak = float(gray.max())
    if peak - float(np.median(ring)) < 0.05:
        raise BlankImage("no digit found: the image is one flat colour")
    if clean := np.mean(ring <= CLEAN_LEVEL) >= CLEAN_SHARE:  # a digital image: faint edges are ink, not noise
        x = np.clip(gray if peak >= MIN_PEAK else gray / peak, 0.0, 1.0)
    elif (x := paper.on_paper(gray)) is None:
        raise BlankImage("no digit found: nothing stands out from the paper")
    else:  # a photo's strokes at least MIN_STROKE pixels of the model's image wide, once fitted
        x = paper.widened(x, MIN_STROKE * layout.work / layout.side / layout.box)
    # A square picture laid out as ``layout`` would (within its slack) is only resampled, its box taken from every
    # lit pixel (as data sets count it) or from the ink above noise; any other is cropped, fitted and centred.
    square, ink = x.shape[0] == x.shape[1], paper.solid(x >= paper.NOISE)  # faint pixels, JPEG ringing left out
    f, box = layout.side / x.shape[0], layout.box * layout.side / layout.work  # f: model pixels per pixel
    target = (layout.side - 1) / 2 if layout.centre is None else layout.centre  # in pixel-index coordinates
    mass = ndimage.center_of_mass(x) if layout.by_mass and square else None
    for lit in (x > 0, ink) if square else ():
        rows, cols = ndimage.find_objects(lit.view(np.int8))[0]
        extent = max(rows.stop - rows.start, cols.stop - cols.start) * f
        centre = mass or ((rows.start + rows.stop - 1) / 2, (cols.start + cols.stop - 1) / 2)
        near = all(abs((c + 0.5) * f - 0.5 - target) <= layout.slack for c in centre)
        if near and box - 2 <= extent <= box + 2:  # faint edges may fall below NOISE, or blur outwards
            out = np.clip(resize(x, (layout.side, layout.side), footprint=0.5), 0.0, 1.0)  # true at pixel centres
            break
    else:
        crop = x[ndimage.find_objects(ink.view(np.int8))[0]]
        scale = layout.box / max(crop.shape)
        glyph = np.clip(resize(crop, tuple(max(1, round(s * scale)) for s in crop.shape)), 0.0, 1.0)
        k, canvas = layout.work // layout.side, np.zeros((layout.work, layout.work))
        if layout.by_mass:  # whole pixels of the model's image, halves up: the same picture lands in one place
            at = (target + 0.5) * k - 0.5  # in the canvas
            corner = [k * int(np.floor((at - cm) / k + 0.5)) for cm in ndimage.center_of_mass(glyph)]
        else:
            corner = [(layout.work - n + 1) // 2 for n in glyph.shape]
        top, left = (min(max(c, 0), layout.work - n) for c, n in zip(corner, glyph.shape))  # no ink is cut off
        canvas[top : top + glyph.shape[0], left : left + glyph.shape[1]] = glyph
        out = canvas.reshape(layout.side, k, layout.side, k).mean(axis=(1, 3))
    if not clean and out.max() > 0:  # a thin or faint stroke averaged down is dim: stretched to full scale
        out = out / out.max()
    return np.rint(255.0 * out).astype(np.uint8)
