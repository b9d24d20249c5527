"""One picture file (PNG, JPEG, BMP, GIF, TIFF, WebP, PNM, or a NumPy ``.npy`` array) -> the image a model takes.

`prepare_file` (``predict``, the folder sets) and `prepare_bytes` (``serve``) are the one preparation of a
picture, so a model sees at prediction time what it saw in training. Every limit is checked before a pixel
is decoded: the size from the header, a JPEG's scans from its markers, a ``.npy`` array's shape (never
unpickled). Pillow (the ``images`` extra) is imported only when a picture needs it.
"""

from __future__ import annotations

import io
import math
import warnings
from pathlib import Path
from types import ModuleType
from typing import BinaryIO

import numpy as np

from ..errors import XpnetError, one_line, reason
from . import images, npy

# Formats whose cost their pixels and bytes bound, which Image.open does not decode (ICO does, EPS runs
# Ghostscript). A phone's JPEG may open as MPO.
FORMATS = ("PNG", "JPEG", "BMP", "GIF", "TIFF", "WEBP", "PPM")
# Decoding costs up to 4 bytes a pixel (RGBA) before the picture is shrunk, WebP 12 (its decoder's copies),
# a progressive JPEG 6 (its coefficients): one picture costs under 70 MB.
MAX_PIXELS, MAX_COSTLY_PIXELS = 1 << 24, 1 << 22
LIMITS = "16 megapixels, 4 for WebP and progressive JPEG"
MAX_SCANS = 100  # each a pass over the pixels: libjpeg writes 10 at most, a bomb tens of thousands
MAX_NPY_PIXELS, MAX_NPY_BYTES = 1 << 24, 1 << 27  # a .npy array is converted to float64 whole


class PictureError(Exception):
    """One input file cannot be read as a picture; the message says why and what would work."""


def import_pillow() -> ModuleType:
    """``PIL.Image``, or a one-line error (exit 2) naming the extra that installs it."""
    try:
        from PIL import Image
    except ImportError:
        raise XpnetError(
            'reading PNG/JPEG pictures needs Pillow: pip install "xpnet[images]", or give .npy arrays'
        ) from None
    return Image


def prepare_file(path: Path, pil: ModuleType | None, layout: images.Layout) -> np.ndarray:
    """One picture file -> the (side, side) uint8 image a model of ``layout`` takes; `PictureError` for a
    file that holds no picture, `images.BlankImage` for one with no ink. ``pil``: `import_pillow`'s module,
    or None when every picture is a ``.npy`` array."""
    return images.prepare(read_picture(path, pil), layout)


def prepare_bytes(data: bytes, pil: ModuleType | None, layout: images.Layout, name: str = "") -> np.ndarray:
    """`prepare_file` for a picture held in memory (``xpnet serve``'s request body), named ``name`` in messages."""
    return images.prepare(read_picture_bytes(data, pil, name), layout)


def read_picture(path: Path, pil: ModuleType | None) -> np.ndarray:
    """The pixels of ``path`` as an array `images.to_gray` takes; `PictureError` if it holds no picture."""
    if not path.is_file():
        raise PictureError("no such file" if not path.exists() else "not a file")
    if path.suffix.lower() != ".npy":
        return _read_with_pillow(path, pil)
    try:
        with open(path, "rb") as f:
            return _read_npy(f)
    except OSError as e:
        raise PictureError(f"cannot be read ({reason(e)})") from None


class _Named(io.BytesIO):
    """Bytes that Pillow names in its messages as it names a file: ``cannot identify image file 'a.png'``."""

    def __init__(self, data: bytes, name: str):
        super().__init__(data)
        self.shown = name

    def __repr__(self) -> str:
        return repr(self.shown)


def read_picture_bytes(data: bytes, pil: ModuleType | None, name: str = "") -> np.ndarray:
    """`read_picture` for a picture held in memory: ``.npy`` when ``name`` ends in ``.npy`` or ``data`` starts
    with NumPy's magic, else Pillow's."""
    if name.lower().endswith(".npy") or data.startswith(b"\x93NUMPY"):
        return _read_npy(io.BytesIO(data))
    return _read_with_pillow(_Named(data, name), pil)


def _npy_check(shape: tuple[int, ...], dtype: np.dtype) -> None:
    if math.prod(shape[:2]) > MAX_NPY_PIXELS or npy.nbytes(shape, dtype) > MAX_NPY_BYTES:
        raise npy.NpyError(
            f"declares a {dtype}{list(shape)} array, more than xpnet reads as a picture "
            f"({MAX_NPY_PIXELS >> 20} megapixels, {MAX_NPY_BYTES >> 20} MiB); shrink it first"
        )


def _read_npy(f: BinaryIO) -> np.ndarray:
    """A ``.npy`` picture, its header checked first; a data set's flattened row comes back square."""
    try:
        size = f.seek(0, io.SEEK_END)
        f.seek(0)
        a = npy.read_npy(f, _npy_check, size=size)
    except npy.NpyError as e:
        raise PictureError(f"{e}; save plain numbers with numpy.save") from None
    side = math.isqrt(a.size)
    return a.reshape(side, side) if a.ndim == 1 and side * side == a.size else a


def _scans(f: BinaryIO) -> int:
    """The JPEG's start-of-scan markers, up to one past `MAX_SCANS` (0xFF in scan data is followed by 0 or RSTn)."""
    f.seek(0)
    n, tail = 0, b""
    while n <= MAX_SCANS and (block := f.read(1 << 20)):
        n, tail = n + (tail + block).count(b"\xff\xda"), block[-1:]
    return n


def _read_with_pillow(source: Path | BinaryIO, pil: ModuleType | None) -> np.ndarray:
    from PIL import ImageOps

    assert pil is not None
    try:
        with warnings.catch_warnings():  # Pillow's own bomb warning: our cap below says it in one line
            warnings.simplefilter("ignore", pil.DecompressionBombWarning)
            im = pil.open(source, formats=FORMATS)
        with im:
            (width, height), jpeg = im.size, im.format in ("JPEG", "MPO")
            costly = im.format == "WEBP" or (jpeg and "progressive" in im.info)
            if width * height > (MAX_COSTLY_PIXELS if costly else MAX_PIXELS):
                raise PictureError(f"{width}x{height} pixels, more than xpnet reads ({LIMITS}); shrink it")
            if jpeg and _scans(im.fp) > MAX_SCANS:
                raise PictureError(f"a JPEG of more than {MAX_SCANS} scans, more than any encoder writes")
            if "jpeg" in str(im.info.get("compression")):  # a TIFF of JPEG tiles, scans uncounted
                raise PictureError("a JPEG-compressed TIFF, which xpnet does not read; save it as PNG")
            alpha = "transparency" in im.info or im.mode.endswith(("A", "a"))
            if im.mode in ("1", "P"):  # a palette shrinks pixel by pixel: greys first
                im = im.convert("LA" if alpha else "L")
            im.thumbnail((images.MAX_SIDE, images.MAX_SIDE))  # before any copy; a JPEG decodes at 1/2 to 1/8
            if im.mode not in ("L", "LA", "I;16", "I", "F"):
                im = im.convert("LA" if alpha else "L")
            return np.asarray(ImageOps.exif_transpose(im))  # phone photos are stored sideways, with a tag
    except pil.DecompressionBombError:  # a size past Pillow's own limit, which is above ours
        raise PictureError(f"more than {LIMITS}, the most xpnet reads; shrink it first") from None
    except (OSError, SyntaxError, ValueError) as e:  # UnidentifiedImageError too
        raise PictureError(
            f"not a picture Pillow can read ({one_line(e)}); give a PNG or JPEG file or a .npy array"
        ) from None
