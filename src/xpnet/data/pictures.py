"""Read a picture file (PNG, JPEG, anything Pillow reads, or a NumPy ``.npy`` array) into host pixels.

Never unpickles: a ``.npy`` file is checked for its header and loaded with ``allow_pickle=False``. Pillow is
optional (the ``images`` extra) and imported only when a picture needs it.
"""

from __future__ import annotations

import math
from pathlib import Path
from types import ModuleType

import numpy as np

from ..errors import XpnetError, one_line
from . import images

PILLOW_HINT = 'pip install "xpnet[images]" (Pillow)'
NPY_MAGIC = b"\x93NUMPY"


class PictureError(Exception):
    """One input file cannot be read as a picture; the message says why and what would work."""


def import_pillow() -> ModuleType:
    """``PIL.Image``, or a one-line error (exit 2) naming the extra that installs it."""
    try:
        from PIL import Image
    except ImportError:
        raise XpnetError(f"reading PNG/JPEG pictures needs Pillow: {PILLOW_HINT}, or give .npy arrays") from None
    return Image


def read_picture(path: Path, pil: ModuleType | None) -> np.ndarray:
    """The pixels of ``path`` as an array `images.to_gray` takes; `PictureError` if it holds no picture."""
    if not path.is_file():
        raise PictureError("no such file" if not path.exists() else "not a file")
    if path.suffix.lower() == ".npy":
        # np.load would take a zip for an .npz and anything else for a pickle: check the header first.
        with open(path, "rb") as f:
            if f.read(6) != NPY_MAGIC:
                raise PictureError("not a NumPy .npy array (no .npy header); save one with numpy.save")
        try:
            a = np.load(path, allow_pickle=False)
        except ValueError as e:
            if "pickle" in str(e) or "Object arrays" in str(e):
                raise PictureError("holds Python objects, which xpnet never unpickles; save plain numbers") from None
            raise PictureError(f"not a readable .npy array ({e})") from None
        except (OSError, EOFError) as e:
            raise PictureError(f"not a readable .npy array ({e})") from None
        side = math.isqrt(a.size)
        return a.reshape(side, side) if a.ndim == 1 and side * side == a.size else a  # a flattened data set row
    assert pil is not None
    from PIL import ImageOps

    try:
        with pil.open(path) as im:
            im = ImageOps.exif_transpose(im)  # phone photos are stored sideways, with a rotation tag
            if im.mode not in ("1", "L", "LA", "RGB", "RGBA", "I;16", "I", "F"):  # palette, CMYK...: convert
                im = im.convert("RGBA" if "transparency" in im.info or im.mode.endswith("A") else "RGB")
            # A 50-megapixel photo would cost gigabytes as float64; a digit needs a few hundred pixels.
            im.thumbnail((images.MAX_SIDE, images.MAX_SIDE))
            return np.asarray(im)
    except (OSError, SyntaxError, ValueError, pil.DecompressionBombError) as e:  # UnidentifiedImageError too
        raise PictureError(
            f"not a picture Pillow can read ({one_line(e)}); give a PNG or JPEG file or a .npy array"
        ) from None
