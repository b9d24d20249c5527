"""IDX files (MNIST's format), trusting nothing: damage raises `IdxError` naming the file, what was expected and
what was found, and only the payload a header declares (at most `MAX_PAYLOAD`) is inflated, into one buffer."""

import gzip
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


def _dims(shape: Sequence[int | None]) -> str:  # (None, 28, 28) -> Nx28x28
    return "x".join("N" if d is None else str(d) for d in shape)


def read_stream(f: BinaryIO, name: str, ndim: int, shape: Sequence[int | None] | None = None) -> np.ndarray:
    """The ``ndim``-dimensional bytes (of ``shape``, where not None) of an uncompressed IDX stream, read exactly."""
    head = bytes(read_exactly(f, 4 + 4 * ndim))
    if len(head) < 4:
        raise IdxError(f"{name}: expected an IDX header of at least 4 bytes, found {len(head)} bytes")
    if head[:2] == GZIP_MAGIC:
        raise IdxError(f"{name}: expected an uncompressed IDX file, found gzip data: give the file a .gz name")
    if head[:2] != b"\0\0":
        raise IdxError(f"{name}: expected magic bytes 00 00, found {head[0]:02x} {head[1]:02x}: not an IDX file")
    if head[2] != UBYTE:
        raise IdxError(f"{name}: expected element type 0x{UBYTE:02x} (unsigned byte), found 0x{head[2]:02x}")
    if head[3] != ndim:
        hint = {1: " (a label file?)", 3: " (an image file?)"}.get(head[3], "")
        raise IdxError(f"{name}: expected {ndim} dimension(s), found {head[3]}{hint}")
    if len(head) < 4 + 4 * ndim:
        raise IdxError(f"{name}: expected a {4 + 4 * ndim}-byte header, found {len(head)} bytes (truncated)")
    found = tuple(int(d) for d in np.frombuffer(head, dtype=">u4", offset=4))
    if shape is not None and any(w is not None and w != d for w, d in zip(shape, found)):
        raise IdxError(f"{name}: expected shape {_dims(shape)}, found {_dims(found)}")
    if min(found) < 1:
        raise IdxError(f"{name}: expected every dimension to be at least 1, found shape {_dims(found)}")
    if (size := math.prod(found)) > MAX_PAYLOAD:
        why = f"more than xpnet reads ({MAX_PAYLOAD >> 30} GiB): not an MNIST-style file"
        raise IdxError(f"{name}: its header declares shape {_dims(found)} ({size} bytes), {why}")
    payload = read_exactly(f, size)
    expected = f"expected {len(head) + size} bytes for shape {_dims(found)}"
    if len(payload) < size:
        raise IdxError(f"{name}: {expected}, found {len(head) + len(payload)} bytes (truncated)")
    if f.read(1):
        raise IdxError(f"{name}: {expected}, found more (trailing bytes)")
    return np.frombuffer(payload, dtype=np.uint8).reshape(found)


def read_idx(path: str | Path, ndim: int, shape: Sequence[int | None] | None = None) -> np.ndarray:
    """`read_stream` of the IDX file at ``path``, gzip-compressed when its name ends in ``.gz``."""
    path = Path(path)
    try:
        with open(path, "rb") as raw:
            if path.suffix != ".gz":
                return read_stream(raw, str(path), ndim, shape)
            if (magic := raw.peek(2)[:2]) != GZIP_MAGIC:
                raise IdxError(f"{path}: expected gzip data (bytes 1f 8b), found {magic.hex(' ') or 'an empty file'}")
            with gzip.GzipFile(fileobj=raw) as f:
                return read_stream(f, str(path), ndim, shape)
    except EOFError:
        raise IdxError(f"{path}: expected a complete gzip stream, found it cut short (truncated)") from None
    except (gzip.BadGzipFile, zlib.error) as e:  # a bad CRC or length too
        raise IdxError(f"{path}: expected valid gzip data, found damage: {e}") from None
    except OSError as e:
        raise IdxError(f"{path}: cannot read: {reason(e)}") from None


def encode_idx(array: np.ndarray) -> bytes:
    """The bytes of an uncompressed IDX file holding ``array``: unsigned bytes, 1 to 255 dimensions."""
    a = np.ascontiguousarray(array)
    if a.dtype != np.uint8 or not 1 <= a.ndim <= 255:
        raise ValueError(f"IDX needs a uint8 array of 1 to 255 dimensions, got {a.dtype} with {a.ndim}")
    return bytes([0, 0, UBYTE, a.ndim]) + np.asarray(a.shape, dtype=">u4").tobytes() + a.tobytes()


def write_idx(path: str | Path, array: np.ndarray) -> None:
    """Write ``array`` as an IDX file, gzip-compressed when the name ends in ``.gz``."""
    raw = encode_idx(array)
    Path(path).write_bytes(gzip.compress(raw, mtime=0) if Path(path).suffix == ".gz" else raw)
