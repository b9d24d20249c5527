"""Turn any picture of one digit (or garment) into the image a model was trained on, in host NumPy.

Each data set's convention, from its documentation and measured on its images (pixel-index coordinates:
pixel i spans i - 0.5 .. i + 0.5, so the middle of 28 pixels is 13.5; scripts/prep_example.py measures them):

- MNIST: each digit fitted into a 20x20 box keeping its aspect ratio, antialiased, then moved by whole
  pixels so that its centre of mass sits at the middle of the 28x28 field counted from pixel edges, 14.0.
- Fashion-MNIST: trimmed, longest edge resized to 28, short edge extended to 28 with the image in the
  centre (an odd leftover pixel before); its soft edges are ink, not noise.
- ``digits`` (UCI optdigits: 32x32 bitmaps, on-pixels counted in 4x4 blocks, 0..16): the 8 rows filled.
- All: exactly 0 background, light ink, the brightest pixel near 255, no stretching needed.

A `Layout` records each recipe and `prepare` applies it to a photo, a scan or a drawing of any size and
polarity, and leaves a data set's own image as it is (a fixed point):

1. grayscale in [0, 1] (a transparent background makes the alpha channel the ink);
2. light ink on a dark background: a light border means dark-on-light, which is inverted. A clean picture
   (a border partly exactly black, as every data-set image) keeps its levels; any other (a photo, a scan)
   is read by its own contrast (`paper.on_paper`), its strokes widened to `MIN_STROKE`;
3. a square picture already laid out as the recipe would lay it out is only resized, never moved;
4. any other is cropped to its ink (above the noise level, specks ignored, so that a JPEG's ringing does not
   count), resized so its longest side fills the layout's box, pasted into the canvas centred by mass (or
   by box), and averaged down to the model's size; a photo's ink is then stretched to full scale.

Reading files is `pictures`' job: nothing here needs Pillow.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..errors import DataError

# `paper` and scipy.ndimage are imported where a picture is prepared, not here: every command imports this
# module (for `Layout`), and SciPy would add 0.2 s to each one's start.

BORDER = 0.05  # the outer 5% of each side is taken as background when judging polarity
# A picture is clean when this share of its border is exactly background (within half a grey level): the
# data sets' images all are (the lowest share is 19.6%, a Fashion-MNIST garment touching the edges), while a
# photo's paper, grainy, practically never is.
CLEAN_SHARE = 0.15
CLEAN_LEVEL = 0.5 / 255
# A clean picture whose ink is at least this bright is left at its levels: each data-set image has its
# brightest pixel at 223/255 or more (Fashion-MNIST 254, digits 14/16 of 255).
MIN_PEAK = 0.85
# A photo's strokes narrower than this many pixels of the model's image are widened: MNIST's are 2 to 3.
MIN_STROKE = 1.5
MAX_SIDE = 1024  # larger pictures are block-averaged below this first: a digit needs no more pixels
# Which preparation made an image: a cache of prepared pictures (`cache`) made by another is stale.
PREPARATION = 2
# The sides a folder set's images may have (--image-size).
DEFAULT_SIZE = 28
MIN_SIZE, MAX_SIZE = 4, 256


class BlankImage(ValueError):
    """The picture holds no ink: one flat colour, or nothing above the noise threshold."""


@dataclass(frozen=True)
class Layout:
    """How a data set's images were made: the ink's longest side fills ``box`` pixels of a ``work``
    square canvas, which is then averaged down to ``side`` x ``side`` (``work`` a multiple of ``side``)."""

    side: int
    box: int
    work: int
    by_mass: bool = True  # centre the ink's centre of mass; False: centre its bounding box
    # Where the centre of mass goes, in pixel-index coordinates of the side x side image; None: the middle,
    # (side - 1) / 2. Moves are whole pixels, so the mass centres spread over +-0.5 pixel around it. A box
    # is always centred, an odd leftover pixel before.
    centre: float | None = None
    # A square picture whose ink already has the box's size (+-2 pixels) and whose centre (of mass, or of
    # its box) is within ``slack`` pixels of the recipe's is only resized, never moved: the data sets' own
    # images are not all placed by one exact rule (digits' box centres stray up to 1.5 pixels), and moving
    # an image by one pixel costs a model points.
    slack: float = 1.0

    @property
    def n_features(self) -> int:
        return self.side * self.side

    @property
    def target(self) -> float:
        """Where the centre (of mass, or of the box) goes, in pixel-index coordinates of the model's image."""
        return (self.side - 1) / 2 if self.centre is None else self.centre


LAYOUTS = {
    "mnist": Layout(side=28, box=20, work=28, centre=14.0),
    "fashion-mnist": Layout(side=28, box=28, work=28, by_mass=False),
    "digits": Layout(side=8, box=32, work=32, slack=1.5),
}


def layout_for(dataset: str, n_features: int) -> Layout:
    """The recipe of ``dataset``, or of its shape (784 inputs: MNIST's, 64: digits') for another name.

    Raises `ValueError` when the model's input size matches no known layout.
    """
    layout = LAYOUTS.get(dataset)
    if layout is not None and layout.n_features == n_features:
        return layout
    for name in ("mnist", "digits"):
        if LAYOUTS[name].n_features == n_features:
            return LAYOUTS[name]
    raise ValueError(f"a model with {n_features} inputs takes no image layout xpnet knows (784 = 28x28, 64 = 8x8)")


def folder_layout(side: int | None = None) -> Layout:
    """A folder set's recipe at ``side`` (default `DEFAULT_SIZE`) pixels a side: the picture's longest side
    fills the image, centred by its box (Fashion-MNIST's recipe): it assumes nothing about what the pictures
    show, unlike MNIST's 20-pixel box centred by mass."""
    side = DEFAULT_SIZE if side is None else side
    if not MIN_SIZE <= side <= MAX_SIZE:
        raise DataError(f"--image-size {side} is out of range: give {MIN_SIZE} to {MAX_SIZE} (default {DEFAULT_SIZE})")
    return Layout(side=side, box=side, work=side, by_mass=False)


def to_gray(image: np.ndarray) -> np.ndarray:
    """An (H, W) or (H, W, channels) array of any numeric dtype -> float64 (H, W) in [0, 1].

    Integers are read as 0..255 (0..65535 for 16-bit), floats as 0..1 unless they exceed 1, booleans as
    0/1. With an alpha channel that is not fully opaque, the alpha is the ink: drawing programs save a
    digit as strokes on a transparent background, and the strokes' colour may be black or white.
    """
    a = np.asarray(image)
    if a.ndim == 3 and a.shape[2] == 1:
        a = a[:, :, 0]
    if not (a.ndim == 2 or (a.ndim == 3 and a.shape[2] in (2, 3, 4))):
        raise ValueError(f"expected one image of shape (H, W) or (H, W, 1|2|3|4), got shape {a.shape}")
    if min(a.shape[:2]) < 1:
        raise ValueError(f"the image is empty (shape {a.shape})")
    if a.dtype == np.bool_:
        x = a.astype(np.float64)
    elif np.issubdtype(a.dtype, np.integer):
        x = a.astype(np.float64) / (65535.0 if a.max(initial=0) > 255 else 255.0)
    elif np.issubdtype(a.dtype, np.floating):
        x = a.astype(np.float64)
        if not np.isfinite(x).all():
            raise ValueError("the image holds NaN or infinite values")
        peak = x.max(initial=0.0)
        x = x / 255.0 if peak > 1.0 else x
    else:
        raise ValueError(f"expected numeric pixels, got dtype {a.dtype}")
    if a.dtype not in (np.bool_, np.uint8, np.uint16):  # those are in [0, 1] already: no pass over the pixels
        x = np.clip(x, 0.0, 1.0)
    if x.ndim == 2:
        return x
    colour, alpha = (x[:, :, :-1], x[:, :, -1]) if x.shape[2] in (2, 4) else (x, None)
    if alpha is not None and alpha.min() < 1.0:
        return alpha
    if colour.shape[2] == 1:
        return colour[:, :, 0]
    return colour @ np.array([0.299, 0.587, 0.114])  # ITU-R 601 luma, as Pillow's convert("L")


def shrink(gray: np.ndarray, limit: int = MAX_SIDE) -> np.ndarray:
    """Average ``gray`` over k x k blocks (cheap, antialiased) until its longest side is at most ``limit``."""
    k = -(-max(gray.shape) // limit)
    if k <= 1:
        return gray
    h, w = (s // k * k for s in gray.shape)
    if h == 0 or w == 0:  # a very thin strip: keep whole pixels along the short side
        return gray
    return gray[:h, :w].reshape(h // k, k, w // k, k).mean(axis=(1, 3))


def ink(gray: np.ndarray) -> tuple[np.ndarray, bool]:
    """Light ink on a zero background in [0, 1], noise removed, and whether the picture was clean (its levels
    kept); `BlankImage` if no ink is left."""
    h, w = gray.shape
    b = max(1, round(BORDER * min(h, w)))
    ring = _ring(gray, b)
    background = float(np.median(ring))
    if background > 0.5:  # dark ink on light paper: MNIST's ink is light on black
        gray, ring, background = 1.0 - gray, 1.0 - ring, 1.0 - background
    peak = float(gray.max())
    if peak - background < 0.05:
        raise BlankImage("no digit found: the image is one flat colour")
    if np.mean(ring <= CLEAN_LEVEL) >= CLEAN_SHARE:
        # A digital image on an exactly black (or, inverted, white) background, as every data-set image is:
        # its faint edge pixels are ink, not noise, and its levels are kept unless the ink is too dim.
        return (np.clip(gray, 0.0, 1.0) if peak >= MIN_PEAK else np.clip(gray / peak, 0.0, 1.0)), True
    from . import paper

    x = paper.on_paper(gray)
    if x is None:
        raise BlankImage("no digit found: nothing stands out from the paper")
    return x, False


def _ring(gray: np.ndarray, b: int) -> np.ndarray:
    """The pixels of the outer ``b`` rows and columns: the background, unless the ink reaches the border."""
    return np.concatenate([gray[:b].ravel(), gray[-b:].ravel(), gray[:, :b].ravel(), gray[:, -b:].ravel()])


def resize(image: np.ndarray, shape: tuple[int, int], footprint: float = 1.0) -> np.ndarray:
    """Resample ``image`` to ``shape``: area averaging when shrinking (antialiased), bilinear when growing.

    Shrinking averages the middle ``footprint`` share (along each side) of the area under each output pixel.
    """
    # By hand: ndimage.zoom interpolates a spline through the pixels, it never averages the area under one.
    rows, cols = _weights(image.shape[0], shape[0], footprint), _weights(image.shape[1], shape[1], footprint)
    return rows @ image @ cols.T


def _weights(n_in: int, n_out: int, footprint: float = 1.0) -> np.ndarray:
    """(n_out, n_in) matrix whose row i mixes the input pixels that make output pixel i; rows sum to 1."""
    scale = n_in / n_out
    j = np.arange(n_in)[None, :]
    if scale >= 1:  # each output pixel is the mean of the input area under it (exact for whole factors)
        width = max(1.0, footprint * scale)
        start = (np.arange(n_out)[:, None] + 0.5) * scale - width / 2
        w = np.clip(np.minimum(j + 1, start + width) - np.maximum(j, start), 0.0, None)
    else:  # a tent between neighbouring input pixel centres
        centres = (np.arange(n_out)[:, None] + 0.5) * scale
        w = np.maximum(0.0, 1.0 - np.abs(j + 0.5 - centres))
    return w / w.sum(axis=1, keepdims=True)


def fit(x: np.ndarray, layout: Layout) -> np.ndarray:
    """Crop ``x`` (ink on zero) to its ink, fit it in ``layout.box`` and centre it in the canvas."""
    from scipy import ndimage

    from . import paper

    if in_place(x, layout):
        # Averaged over the middle half of each model pixel: a smooth enlargement (bicubic, Lanczos) passes
        # through the original pixels' values at their centres, and whole-area averaging would blur them.
        return np.clip(resize(x, (layout.side, layout.side), footprint=0.5), 0.0, 1.0)
    # The box of the ink proper: a clean picture kept its faint pixels and specks (soft edges, but also the
    # ringing a JPEG adds around strokes), which must not widen the box and so shrink the digit.
    crop = x[paper.box(paper.solid(x >= paper.NOISE))]
    scale = layout.box / max(crop.shape)
    glyph = np.clip(resize(crop, tuple(max(1, round(s * scale)) for s in crop.shape)), 0.0, 1.0)
    k = layout.work // layout.side
    if layout.by_mass:
        # Moves are whole pixels of the model's image, so that averaging down to it mixes no extra pixels;
        # halves round up (not to even), so that the same picture always lands in the same place.
        target = (layout.target + 0.5) * k - 0.5  # the model's pixel-index coordinate on the work canvas
        top, left = (k * int(np.floor((target - cm) / k + 0.5)) for cm in ndimage.center_of_mass(glyph))
    else:
        top, left = ((layout.work - n + 1) // 2 for n in glyph.shape)  # the odd pixel before, as Fashion-MNIST
    # Clamped so that no ink is cut off: a glyph as wide as the canvas cannot move sideways.
    top = min(max(top, 0), layout.work - glyph.shape[0])
    left = min(max(left, 0), layout.work - glyph.shape[1])
    canvas = np.zeros((layout.work, layout.work))
    canvas[top : top + glyph.shape[0], left : left + glyph.shape[1]] = glyph
    return canvas.reshape(layout.side, k, layout.side, k).mean(axis=(1, 3))


def in_place(x: np.ndarray, layout: Layout) -> bool:
    """Whether the square picture ``x`` (ink on zero) is already laid out as ``layout`` would lay it out,
    within the data set's own spread (`Layout.slack`): then it is only resized, never moved.

    The ink's box is taken twice: from every lit pixel, as the data sets count it (Fashion-MNIST's soft
    edges are part of its box), and from the ink above the noise level, as `fit` crops it (a smooth
    enlargement, bicubic or Lanczos, rings faintly around the ink). Either may show the picture in place.
    """
    from scipy import ndimage

    from . import paper

    if x.shape[0] != x.shape[1]:
        return False
    f = layout.side / x.shape[0]  # model pixels per picture pixel
    box = layout.box * layout.side / layout.work
    mass = ndimage.center_of_mass(x) if layout.by_mass else None
    for lit in (x > 0, paper.solid(x >= paper.NOISE)):
        rows, cols = paper.box(lit)
        extent = max(rows.stop - rows.start, cols.stop - cols.start) * f
        centre = mass if mass is not None else ((rows.start + rows.stop - 1) / 2, (cols.start + cols.stop - 1) / 2)
        # -2: faint edge pixels may fall below paper.NOISE; +2: an enlargement blurs the edges outwards.
        near = all(abs((c + 0.5) * f - 0.5 - layout.target) <= layout.slack for c in centre)
        if near and box - 2 <= extent <= box + 2:
            return True
    return False


def prepare(image: np.ndarray, layout: Layout) -> np.ndarray:
    """Any picture (see `to_gray`) -> the (side, side) uint8 image in 0..255 a model of ``layout`` expects.

    Raises `ValueError` for an array that is not an image and `BlankImage` when no ink is found.
    """
    from . import paper

    x, clean = ink(shrink(to_gray(image)))
    if not clean:  # strokes at least MIN_STROKE pixels of the model's image wide, once fitted to the layout
        x = paper.widened(x, MIN_STROKE * layout.work / layout.side / layout.box)
    out = fit(x, layout)
    if not clean and out.max() > 0:  # a thin or faint stroke averaged down is dim: stretched to full scale
        out = out / out.max()
    return np.rint(255.0 * out).astype(np.uint8)
