"""Read IDX files (the format of MNIST and Fashion-MNIST), trusting nothing in them.

Every header field and the payload length are checked, so a truncated download, a label file given as
an image file or trailing garbage raises `IdxError` naming the file, what was expected and what was found.
The payload is never copied or looped over in Python: reading the 60,000-image training file costs one
gzip inflate and one `numpy.frombuffer`.
"""

from __future__ import annotations

import gzip
import zlib
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from ..errors import DataError

UBYTE = 0x08  # the only element type MNIST-style files use
GZIP_MAGIC = b"\x1f\x8b"


class IdxError(DataError):
    """An IDX file is malformed."""


def _dims(shape: Sequence[int]) -> str:
    return "x".join(str(d) for d in shape)


def parse_idx(raw: bytes, name: str, ndim: int, shape: Sequence[int | None] | None = None) -> np.ndarray:
    """Parse the bytes of an uncompressed IDX file holding unsigned bytes in ``ndim`` dimensions.

    ``shape``, if given, lists the expected size of each dimension (None: any size of at least 1).
    Every dimension must be at least 1 in any case.
    """
    if len(raw) < 4:
        raise IdxError(f"{name}: expected an IDX header of at least 4 bytes, found {len(raw)} bytes")
    if raw[:2] == GZIP_MAGIC:
        raise IdxError(f"{name}: expected an uncompressed IDX file, found gzip data: give the file a .gz name")
    if raw[0] != 0 or raw[1] != 0:
        raise IdxError(f"{name}: expected magic bytes 00 00, found {raw[0]:02x} {raw[1]:02x}: not an IDX file")
    if raw[2] != UBYTE:
        raise IdxError(f"{name}: expected element type 0x{UBYTE:02x} (unsigned byte), found 0x{raw[2]:02x}")
    if raw[3] != ndim:
        kind = {1: "a label file", 3: "an image file"}
        hint = f" ({kind[raw[3]]}?)" if raw[3] in kind else ""
        raise IdxError(f"{name}: expected {ndim} dimension(s), found {raw[3]}{hint}")
    header = 4 + 4 * ndim
    if len(raw) < header:
        raise IdxError(f"{name}: expected a {header}-byte header, found {len(raw)} bytes (truncated)")
    found = tuple(int(d) for d in np.frombuffer(raw, dtype=">u4", count=ndim, offset=4))
    if shape is not None:
        want = tuple(shape)
        if len(want) != ndim:
            raise ValueError(f"shape {want} does not have {ndim} dimensions")
        if any(w is not None and w != f for w, f in zip(want, found)):
            shown = _dims("N" if w is None else w for w in want)
            raise IdxError(f"{name}: expected shape {shown}, found {_dims(found)}")
    if min(found) < 1:
        raise IdxError(f"{name}: expected every dimension to be at least 1, found shape {_dims(found)}")
    expected = header + int(np.prod(found, dtype=np.int64))
    if len(raw) != expected:
        what = "truncated" if len(raw) < expected else "trailing bytes"
        raise IdxError(f"{name}: expected {expected} bytes for shape {_dims(found)}, found {len(raw)} bytes ({what})")
    return np.frombuffer(raw, dtype=np.uint8, offset=header).reshape(found)


def read_idx(path: str | Path, ndim: int, shape: Sequence[int | None] | None = None) -> np.ndarray:
    """Read an IDX file, gzip-compressed when its name ends in ``.gz``; see `parse_idx`."""
    path = Path(path)
    try:
        raw = path.read_bytes()
    except OSError as e:
        raise IdxError(f"{path}: cannot read: {e.strerror or e}") from None
    if path.suffix == ".gz":
        if raw[:2] != GZIP_MAGIC:
            raise IdxError(f"{path}: expected gzip data (bytes 1f 8b), found {raw[:2].hex(' ') or 'an empty file'}")
        try:
            raw = gzip.decompress(raw)
        except EOFError:
            raise IdxError(f"{path}: expected a complete gzip stream, found it cut short (truncated)") from None
        except (OSError, zlib.error) as e:  # BadGzipFile is an OSError; a bad CRC or length lands here too
            raise IdxError(f"{path}: expected valid gzip data, found damage: {e}") from None
    return parse_idx(raw, str(path), ndim, shape)


def encode_idx(array: np.ndarray) -> bytes:
    """The bytes of an uncompressed IDX file holding ``array`` (unsigned bytes, 1 to 255 dimensions)."""
    a = np.ascontiguousarray(array)
    if a.dtype != np.uint8 or not 1 <= a.ndim <= 255:
        raise ValueError(f"IDX needs a uint8 array of 1 to 255 dimensions, got {a.dtype} with {a.ndim}")
    return bytes([0, 0, UBYTE, a.ndim]) + np.asarray(a.shape, dtype=">u4").tobytes() + a.tobytes()


def write_idx(path: str | Path, array: np.ndarray) -> None:
    """Write ``array`` as an IDX file, gzip-compressed when the name ends in ``.gz``."""
    path = Path(path)
    raw = encode_idx(array)
    path.write_bytes(gzip.compress(raw, mtime=0) if path.suffix == ".gz" else raw)
