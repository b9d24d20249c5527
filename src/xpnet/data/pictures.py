"""One picture (PNG, JPEG, anything Pillow reads, or a NumPy ``.npy`` array) -> the image a model takes.

`prepare_file` is the one preparation of a picture file: ``predict`` and the folder sets use it, so a model
sees at prediction time exactly what it saw in training; `prepare_bytes` is the same for ``serve``. A
``.npy`` file's header is checked before its payload is read, and never unpickled. Pillow is optional (the
``images`` extra) and imported only when a picture needs it.
"""

from __future__ import annotations

import io
import math
import os
import warnings
from pathlib import Path
from types import ModuleType
from typing import BinaryIO

import numpy as np

from ..errors import XpnetError, one_line, reason
from . import images, npy

PILLOW_HINT = 'pip install "xpnet[images]" (Pillow)'
# Decoding a picture costs its pixels in bytes (times channels) before it is shrunk to MAX_SIDE; a .npy
# array is converted to float64 whole, so it gets a smaller cap. Both are checked from the header alone.
MAX_PIXELS = 1 << 26
MAX_PIXELS_TEXT = "64 megapixels"
MAX_NPY_PIXELS = 1 << 24
MAX_NPY_BYTES = 1 << 27
NPY_MAGIC = b"\x93NUMPY"


def _npy_check(shape: tuple[int, ...], dtype: np.dtype) -> None:
    pixels = math.prod(shape[:2]) if len(shape) > 1 else shape[0] if shape else 1
    if pixels > MAX_NPY_PIXELS or npy.nbytes(shape, dtype) > MAX_NPY_BYTES:
        raise npy.NpyError(
            f"declares a {dtype}{list(shape)} array, more than xpnet reads as a picture "
            f"({MAX_NPY_PIXELS >> 20} megapixels, {MAX_NPY_BYTES >> 20} MiB); shrink it first"
        )


def _read_npy_picture(f: BinaryIO, size: int) -> np.ndarray:
    """A ``.npy`` picture of ``size`` bytes, its header checked against the caps before any pixel is read;
    never a pickle. A flattened data set row (one square's pixels) comes back square."""
    try:
        a = npy.read_npy(f, _npy_check, size=size)
    except npy.NpyError as e:
        raise PictureError(f"{e}; save plain numbers with numpy.save") from None
    side = math.isqrt(a.size)
    return a.reshape(side, side) if a.ndim == 1 and side * side == a.size else a


class PictureError(Exception):
    """One input file cannot be read as a picture; the message says why and what would work."""


def import_pillow() -> ModuleType:
    """``PIL.Image``, or a one-line error (exit 2) naming the extra that installs it."""
    try:
        from PIL import Image
    except ImportError:
        raise XpnetError(f"reading PNG/JPEG pictures needs Pillow: {PILLOW_HINT}, or give .npy arrays") from None
    return Image


def prepare_file(path: Path, pil: ModuleType | None, layout: images.Layout) -> np.ndarray:
    """One picture file -> the (side, side) uint8 image a model of ``layout`` takes.

    Raises `PictureError` for a file that holds no picture, `ValueError` (`images.BlankImage`) for one with
    no ink. ``pil`` is `import_pillow`'s module, or None when every picture is a ``.npy`` array.
    """
    return images.prepare(read_picture(path, pil), layout)


def prepare_bytes(data: bytes, pil: ModuleType | None, layout: images.Layout, name: str = "") -> np.ndarray:
    """`prepare_file` for a picture held in memory (``xpnet serve``'s request body), named ``name`` in messages."""
    return images.prepare(read_picture_bytes(data, pil, name), layout)


def read_picture(path: Path, pil: ModuleType | None) -> np.ndarray:
    """The pixels of ``path`` as an array `images.to_gray` takes; `PictureError` if it holds no picture."""
    if not path.is_file():
        raise PictureError("no such file" if not path.exists() else "not a file")
    if path.suffix.lower() == ".npy":
        try:
            with open(path, "rb") as f:
                return _read_npy_picture(f, os.fstat(f.fileno()).st_size)
        except OSError as e:
            raise PictureError(f"cannot be read ({reason(e)})") from None
    assert pil is not None
    return _read_with_pillow(path, pil)


class _Named(io.BytesIO):
    """Bytes that Pillow names, in its messages, as it names a file: ``cannot identify image file 'a.png'``."""

    def __init__(self, data: bytes, name: str):
        super().__init__(data)
        self.shown = name

    def __repr__(self) -> str:
        return repr(self.shown)


def read_picture_bytes(data: bytes, pil: ModuleType | None, name: str = "") -> np.ndarray:
    """`read_picture` for a picture held in memory (a server's request body), with the same limits and
    messages: ``.npy`` when ``name`` ends in ``.npy`` or ``data`` starts with NumPy's magic, else Pillow's."""
    if name.lower().endswith(".npy") or data.startswith(NPY_MAGIC):
        return _read_npy_picture(io.BytesIO(data), len(data))
    assert pil is not None
    return _read_with_pillow(_Named(data, name), pil)


def _read_with_pillow(source: Path | BinaryIO, pil: ModuleType) -> np.ndarray:
    from PIL import ImageOps

    try:
        with warnings.catch_warnings():  # Pillow's own bomb warning: our cap below says it in one line
            warnings.simplefilter("ignore", pil.DecompressionBombWarning)
            im = pil.open(source)
        with im:
            width, height = im.size
            if width * height > MAX_PIXELS:
                raise PictureError(f"{width}x{height} pixels, more than xpnet reads ({MAX_PIXELS_TEXT}); shrink it")
            im = ImageOps.exif_transpose(im)  # phone photos are stored sideways, with a rotation tag
            if im.mode not in ("1", "L", "LA", "RGB", "RGBA", "I;16", "I", "F"):  # palette, CMYK...: convert
                im = im.convert("RGBA" if "transparency" in im.info or im.mode.endswith("A") else "RGB")
            # A 50-megapixel photo would cost gigabytes as float64; a digit needs a few hundred pixels.
            im.thumbnail((images.MAX_SIDE, images.MAX_SIDE))
            return np.asarray(im)
    except pil.DecompressionBombError:  # a size past Pillow's own limit, which is above ours
        raise PictureError(f"more than {MAX_PIXELS_TEXT}, the most xpnet reads; shrink it first") from None
    except (OSError, SyntaxError, ValueError) as e:  # UnidentifiedImageError too
        raise PictureError(
            f"not a picture Pillow can read ({one_line(e)}); give a PNG or JPEG file or a .npy array"
        ) from None
