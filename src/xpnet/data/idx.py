"""Read IDX files (the format of MNIST and Fashion-MNIST), trusting nothing in them.

Every header field and the payload length are checked, so a truncated download, a label file given as
an image file or trailing garbage raises `IdxError` naming the file, what was expected and what was found.
"""

from __future__ import annotations

import gzip
import zlib
from pathlib import Path

import numpy as np

from ..errors import DataError

UBYTE = 0x08  # the only element type MNIST-style files use


class IdxError(DataError):
    """An IDX file is malformed."""


def parse_idx(raw: bytes, name: str, ndim: int) -> np.ndarray:
    """Parse the bytes of an uncompressed IDX file holding unsigned bytes in ``ndim`` dimensions."""
    if len(raw) < 4:
        raise IdxError(f"{name}: expected an IDX header of at least 4 bytes, found {len(raw)} bytes")
    if raw[0] != 0 or raw[1] != 0:
        raise IdxError(f"{name}: expected magic bytes 00 00, found {raw[0]:02x} {raw[1]:02x}: not an IDX file")
    if raw[2] != UBYTE:
        raise IdxError(f"{name}: expected element type 0x{UBYTE:02x} (unsigned byte), found 0x{raw[2]:02x}")
    if raw[3] != ndim:
        raise IdxError(f"{name}: expected {ndim} dimension(s), found {raw[3]}")
    header = 4 + 4 * ndim
    if len(raw) < header:
        raise IdxError(f"{name}: expected a {header}-byte header, found {len(raw)} bytes")
    shape = tuple(int(d) for d in np.frombuffer(raw, dtype=">u4", count=ndim, offset=4))
    expected = header + int(np.prod(shape, dtype=np.int64))
    if len(raw) != expected:
        what = "truncated" if len(raw) < expected else "trailing bytes"
        raise IdxError(f"{name}: expected {expected} bytes for shape {shape}, found {len(raw)} ({what})")
    return np.frombuffer(raw, dtype=np.uint8, offset=header).reshape(shape)


def read_idx(path: str | Path, ndim: int) -> np.ndarray:
    """Read an IDX file, gzip-compressed when its name ends in ``.gz``."""
    path = Path(path)
    try:
        raw = path.read_bytes()
        if path.suffix == ".gz":
            raw = gzip.decompress(raw)
    except (OSError, EOFError, zlib.error) as e:  # BadGzipFile is an OSError
        raise IdxError(f"{path}: cannot read: {e}") from None
    return parse_idx(raw, str(path), ndim)
