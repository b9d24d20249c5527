"""One picture file (PNG, JPEG, BMP, GIF, TIFF, WebP, PNM, or ``.npy``) or its bytes -> the image a model takes, every
limit checked before a pixel is decoded: the size from the header, a JPEG's scans, an array's shape (no pickles)."""

import contextlib
import io
import math
import struct
from pathlib import Path
from types import ModuleType
from typing import BinaryIO

import numpy as np

from ..errors import XpnetError, one_line, reason
from . import images, npy

FORMATS = ("PNG", "JPEG", "BMP", "GIF", "TIFF", "WEBP", "PPM")  # bounded by their size, opened undecoded (not ICO)
# A picture decodes to 4 bytes a pixel (RGBA) before it is shrunk, WebP 12, progressive JPEG 6: under 70 MB each.
MAX_PIXELS, MAX_COSTLY_PIXELS, MAX_NPY_BYTES = 1 << 24, 1 << 22, 1 << 27
LIMITS = f"{MAX_PIXELS >> 20} megapixels, {MAX_COSTLY_PIXELS >> 20} for WebP and progressive JPEG"
NPY_LIMITS = f"{MAX_PIXELS >> 20} megapixels, {MAX_NPY_BYTES >> 20} MiB"
MAX_SCANS = 100  # each a pass over the pixels: libjpeg writes 10 at most, a bomb tens of thousands


class PictureError(ValueError):
    """One input file cannot be read as a picture; the message says why and what would work."""


def import_pillow() -> ModuleType:
    """``PIL.Image``, or a one-line error (exit 2) naming the extra that installs it."""
    try:
        from PIL import Image
    except ImportError:
        raise XpnetError('reading pictures needs Pillow: pip install "xpnet[images]", or give .npy arrays') from None
    return Image


def prepare_file(path: Path, pil: ModuleType | None, layout: images.Layout) -> np.ndarray:
    """One picture file -> the (side, side) uint8 image of ``layout``, or `PictureError`; ``pil`` None: .npy only."""
    return images.prepare(read_picture(path, pil), layout)


def prepare_bytes(data: bytes, pil: ModuleType | None, layout: images.Layout, name: str = "") -> np.ndarray:
    """`prepare_file` for ``serve``'s bytes, named ``name``: ``.npy`` by that name or NumPy's magic."""
    npy_file = name.lower().endswith(".npy") or data.startswith(b"\x93NUMPY")
    return images.prepare(_read_npy(io.BytesIO(data)) if npy_file else _pillow(io.BytesIO(data), pil, name), layout)


def read_picture(path: Path, pil: ModuleType | None) -> np.ndarray:
    """The pixels of ``path`` as an array `images.to_gray` takes; `PictureError` if it holds no picture."""
    if not path.is_file():
        raise PictureError("no such file" if not path.exists() else "not a file")
    try:
        with open(path, "rb") as f:
            return _read_npy(f) if path.suffix.lower() == ".npy" else _pillow(f, pil, str(path))
    except OSError as e:
        raise PictureError(f"cannot be read ({reason(e)})") from None


def _read_npy(f: BinaryIO) -> np.ndarray:
    """A ``.npy`` picture, its header checked first; a data set's flattened row comes back square."""

    def check(shape: tuple[int, ...], dtype: np.dtype) -> None:
        if math.prod(shape[:2]) > MAX_PIXELS or npy.nbytes(shape, dtype) > MAX_NPY_BYTES:
            raise npy.NpyError(f"declares {dtype}{list(shape)}, more than xpnet reads as a picture ({NPY_LIMITS})")

    try:
        a = npy.read_npy(f, check, size=f.seek(0, io.SEEK_END) - f.seek(0))
    except npy.NpyError as e:
        raise PictureError(f"{e}; save plain numbers with numpy.save") from None
    side = math.isqrt(a.size)
    return a.reshape(side, side) if a.ndim == 1 and side * side == a.size else a


def _pillow(f: BinaryIO, pil: ModuleType | None, name: str) -> np.ndarray:
    """A picture Pillow reads, its size and (a JPEG's) scans checked first, shrunk as it is decoded."""
    from PIL import ImageOps

    # Image.open(f, formats=FORMATS) less its size check: its DecompressionBombWarning could only be silenced by a
    # process-wide warnings filter, which threads (serve) would race on; xpnet's own, lower cap is checked below.
    def opened():
        pil.init()
        prefix = f.read(16)
        for factory, accept in (pil.OPEN[fmt] for fmt in FORMATS):
            if accept(prefix) is True:  # a string says the format's decoder is missing
                f.seek(0)
                with contextlib.suppress(SyntaxError, IndexError, TypeError, struct.error):
                    return factory(f, "")  # no file name: Pillow would map the file it names
        raise pil.UnidentifiedImageError(f"cannot identify image file {name!r}")

    try:
        with opened() as im:
            (width, height), jpeg = im.size, im.format in ("JPEG", "MPO")  # a phone's JPEG may open as MPO
            costly = im.format == "WEBP" or (jpeg and "progressive" in im.info)
            if width * height > (MAX_COSTLY_PIXELS if costly else MAX_PIXELS):
                raise PictureError(f"{width}x{height} pixels, more than xpnet reads ({LIMITS}); shrink it")
            scans, tail = 0, b""  # start-of-scan markers (0xFF in scan data is followed by 0 or RSTn)
            f.seek(0)
            while jpeg and scans <= MAX_SCANS and (block := f.read(1 << 20)):
                scans, tail = scans + (tail + block).count(b"\xff\xda"), block[-1:]
            if scans > MAX_SCANS:
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
    except (OSError, SyntaxError, ValueError, pil.DecompressionBombError) as e:  # a GIF's frame past Pillow's cap
        why = PictureError(f"not a picture Pillow can read ({one_line(e)}); give a PNG or JPEG file or a .npy array")
        raise e if isinstance(e, PictureError) else why from None  # xpnet's own checks above are ValueErrors too
