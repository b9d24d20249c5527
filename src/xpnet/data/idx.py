"""Read IDX files (the format of MNIST and Fashion-MNIST), trusting nothing in them.

Every header field and the payload length are checked, so a truncated download, a label file given as
an image file or trailing garbage raises `IdxError` naming the file, what was expected and what was found.
The payload is never copied or looped over in Python: reading the 60,000-image training file costs one
streamed gzip inflate into one buffer and one `numpy.frombuffer`. Only the length a header declares is
inflated (at most `MAX_PAYLOAD`), so a small file that inflates to gigabytes costs no more than that.
"""

from __future__ import annotations

import gzip
import io
import math
import zlib
from collections.abc import Sequence
from pathlib import Path
from typing import BinaryIO

import numpy as np

from ..errors import DataError, reason
from .npy import read_exactly

UBYTE = 0x08  # the only element type MNIST-style files use
GZIP_MAGIC = b"\x1f\x8b"
MAX_PAYLOAD = 1 << 30  # 1 GiB of pixels, 21 times MNIST's training images: more is not an MNIST-style file


class IdxError(DataError):
    """An IDX file is malformed."""


def _dims(shape: Sequence[int]) -> str:
    return "x".join(str(d) for d in shape)


def _header(head: bytes, name: str, ndim: int, shape: Sequence[int | None] | None) -> tuple[int, ...]:
    """The dimensions in ``head`` (the file's first ``4 + 4 * ndim`` bytes, or all of a shorter file)."""
    if len(head) < 4:
        raise IdxError(f"{name}: expected an IDX header of at least 4 bytes, found {len(head)} bytes")
    if head[:2] == GZIP_MAGIC:
        raise IdxError(f"{name}: expected an uncompressed IDX file, found gzip data: give the file a .gz name")
    if head[0] != 0 or head[1] != 0:
        raise IdxError(f"{name}: expected magic bytes 00 00, found {head[0]:02x} {head[1]:02x}: not an IDX file")
    if head[2] != UBYTE:
        raise IdxError(f"{name}: expected element type 0x{UBYTE:02x} (unsigned byte), found 0x{head[2]:02x}")
    if head[3] != ndim:
        kind = {1: "a label file", 3: "an image file"}
        hint = f" ({kind[head[3]]}?)" if head[3] in kind else ""
        raise IdxError(f"{name}: expected {ndim} dimension(s), found {head[3]}{hint}")
    if len(head) < 4 + 4 * ndim:
        raise IdxError(f"{name}: expected a {4 + 4 * ndim}-byte header, found {len(head)} bytes (truncated)")
    found = tuple(int(d) for d in np.frombuffer(head, dtype=">u4", count=ndim, offset=4))
    if shape is not None:
        want = tuple(shape)
        if len(want) != ndim:
            raise ValueError(f"shape {want} does not have {ndim} dimensions")
        if any(w is not None and w != f for w, f in zip(want, found)):
            shown = _dims("N" if w is None else w for w in want)
            raise IdxError(f"{name}: expected shape {shown}, found {_dims(found)}")
    if min(found) < 1:
        raise IdxError(f"{name}: expected every dimension to be at least 1, found shape {_dims(found)}")
    size = math.prod(found)
    if size > MAX_PAYLOAD:
        raise IdxError(
            f"{name}: its header declares shape {_dims(found)} ({size} bytes), more than xpnet reads "
            f"({MAX_PAYLOAD >> 30} GiB): not an MNIST-style file"
        )
    return found


def read_stream(f: BinaryIO, name: str, ndim: int, shape: Sequence[int | None] | None = None) -> np.ndarray:
    """Read an uncompressed IDX stream: the header, then exactly the payload it declares, then one more byte
    to prove there is none. Memory is the declared payload (capped at `MAX_PAYLOAD`), whatever follows."""
    head = bytes(read_exactly(f, 4 + 4 * ndim))
    found = _header(head, name, ndim, shape)
    header, size = len(head), math.prod(found)
    payload = read_exactly(f, size)
    expected = f"expected {header + size} bytes for shape {_dims(found)}"
    if len(payload) < size:
        raise IdxError(f"{name}: {expected}, found {header + len(payload)} bytes (truncated)")
    if f.read(1):
        raise IdxError(f"{name}: {expected}, found more (trailing bytes)")
    return np.frombuffer(payload, dtype=np.uint8).reshape(found)


def parse_idx(raw: bytes, name: str, ndim: int, shape: Sequence[int | None] | None = None) -> np.ndarray:
    """Parse the bytes of an uncompressed IDX file holding unsigned bytes in ``ndim`` dimensions.

    ``shape``, if given, lists the expected size of each dimension (None: any size of at least 1).
    Every dimension must be at least 1 in any case.
    """
    return read_stream(io.BytesIO(raw), name, ndim, shape)


def read_idx(path: str | Path, ndim: int, shape: Sequence[int | None] | None = None) -> np.ndarray:
    """Read an IDX file, gzip-compressed when its name ends in ``.gz``, inflating only what its header
    declares (a gzip bomb costs no more memory than an honest file); see `parse_idx`."""
    path = Path(path)
    name = str(path)  # as every message shows it
    try:
        with open(path, "rb") as raw:
            if path.suffix != ".gz":
                return read_stream(raw, name, ndim, shape)
            magic = raw.read(2)
            if magic != GZIP_MAGIC:
                raise IdxError(f"{name}: expected gzip data (bytes 1f 8b), found {magic.hex(' ') or 'an empty file'}")
            raw.seek(0)
            with gzip.GzipFile(fileobj=raw) as f:
                return read_stream(f, name, ndim, shape)
    except EOFError:
        raise IdxError(f"{name}: expected a complete gzip stream, found it cut short (truncated)") from None
    except (OSError, zlib.error) as e:  # BadGzipFile is an OSError; a bad CRC or length lands here too
        if isinstance(e, OSError) and not isinstance(e, gzip.BadGzipFile):
            raise IdxError(f"{name}: cannot read: {reason(e)}") from None
        raise IdxError(f"{name}: expected valid gzip data, found damage: {e}") from None


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
