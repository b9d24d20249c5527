"""Read ``.npy`` arrays (alone or as members of an ``.npz``) trusting nothing: the header first, then only the
payload it declares, and only once the caller has agreed to its shape, its dtype and its size.

``numpy.load`` allocates whatever a header declares and reads a zip member whatever it inflates to; every
``.npz`` xpnet reads (checkpoints, the picture-folder cache) goes through `open_npz` and `read_member` instead.
A header beyond the caller's limit, a zip size that disagrees with it, Python objects or bytes without the
``.npy`` magic are refused with `NpyError` before any payload is read.
"""

from __future__ import annotations

import contextlib
import errno
import math
import os
import stat
import zipfile
import zlib
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import BinaryIO

import numpy as np
from numpy.lib import format as npy_format

from ..errors import one_line

MAX_HEADER = 10_000  # numpy's own default limit on a header's length
CHUNK = 1 << 18  # bytes per read, as numpy.load: a zip stream joins and copies what one read returns


class NpyError(ValueError):
    """An ``.npy`` array is malformed, holds objects, or declares more than the caller accepts."""


class NotNpz(NpyError):
    """The file is not a zip archive (or is cut short before its directory)."""


Check = Callable[[tuple[int, ...], np.dtype], None]  # raises NpyError when a declared shape/dtype is unwanted


def read_header(f: BinaryIO) -> tuple[tuple[int, ...], bool, np.dtype]:
    """``(shape, fortran_order, dtype)`` from the start of an ``.npy`` stream, which is left at the payload."""
    try:
        version = npy_format.read_magic(f)
        reader = npy_format.read_array_header_1_0 if version == (1, 0) else npy_format.read_array_header_2_0
        shape, fortran, dtype = reader(f, max_header_size=MAX_HEADER)
    except (ValueError, EOFError, OSError) as e:  # no magic, an unknown version, a header that is not a dict
        raise NpyError(f"not a NumPy .npy array ({one_line(e, limit=120)})") from None
    if dtype.hasobject:
        raise NpyError("holds pickled or object arrays; xpnet never loads pickles")
    return tuple(int(d) for d in shape), bool(fortran), dtype


def nbytes(shape: tuple[int, ...], dtype: np.dtype) -> int:
    """Bytes of a payload, as a Python int: no overflow whatever a header declares."""
    return math.prod(shape) * dtype.itemsize


def read_exactly(f: BinaryIO, n: int) -> memoryview:
    """``n`` bytes of ``f`` read into one buffer of that size; fewer only where the stream ends first.

    The buffer is uninitialised (``numpy.empty``) and filled a slice at a time, so no copy of the whole
    payload is ever made on the way, and whatever the stream holds beyond ``n`` is never read.
    """
    buf = memoryview(np.empty(n, dtype=np.uint8))
    done = 0
    while done < n:
        got = f.readinto(buf[done : done + CHUNK])
        if not got:
            return buf[:done]
        done += got
    return buf


def read_payload(f: BinaryIO, shape: tuple[int, ...], fortran: bool, dtype: np.dtype) -> np.ndarray:
    """Read exactly the payload of ``shape`` and ``dtype`` into one writable array; `NpyError` if cut short."""
    size = nbytes(shape, dtype)
    buf = read_exactly(f, size)
    if len(buf) < size:
        raise NpyError(f"truncated: {len(buf)} of the {size} bytes its header declares")
    return np.frombuffer(buf, dtype=dtype).reshape(shape, order="F" if fortran else "C")


def read_npy(f: BinaryIO, check: Check, *, size: int | None = None) -> np.ndarray:
    """Header, ``check(shape, dtype)``, then the payload. ``size``: the stream's whole length when known
    (a file's, a zip member's), which must equal header plus payload: nothing more is ever read."""
    shape, fortran, dtype = read_header(f)
    check(shape, dtype)
    if size is not None and size != f.tell() + nbytes(shape, dtype):
        raise NpyError(f"its header declares {nbytes(shape, dtype)} bytes of data but it holds {size - f.tell()}")
    return read_payload(f, shape, fortran, dtype)


def expect(shape: tuple[int, ...], dtype: np.dtype | str) -> Check:
    """A `Check` that accepts exactly ``shape`` and ``dtype``."""
    want = np.dtype(dtype)

    def check(found: tuple[int, ...], found_dtype: np.dtype) -> None:
        if found != shape or found_dtype != want:
            raise NpyError(f"is {found_dtype}{list(found)}, expected {want}{list(shape)}")

    return check


def open_regular(path: Path) -> BinaryIO:
    """``path`` opened for reading when it is a regular file (links followed); else `OSError`. A FIFO or a
    device is refused without blocking or reading from it, whatever its name."""
    fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0))
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            raise OSError(errno.EINVAL, "not a regular file (a folder, device or pipe)")
        return os.fdopen(fd, "rb")
    except BaseException:
        os.close(fd)
        raise


@contextlib.contextmanager
def open_npz(path: Path) -> Iterator[tuple[zipfile.ZipFile, dict[str, zipfile.ZipInfo]]]:
    """The zip of the ``.npz`` at ``path`` and its arrays by name (`npz_members`), for `read_member`.

    Raises `OSError` when it cannot be opened (missing, permission denied, a FIFO, a device or a folder:
    never blocks), `NotNpz` when it is not a zip, `NpyError` when it holds anything but ``.npy`` arrays.
    """
    with open_regular(path) as f:
        try:
            z = zipfile.ZipFile(f)
        except (zipfile.BadZipFile, EOFError, ValueError) as e:
            raise NotNpz(f"is not an .npz file ({one_line(e, limit=120)})") from None
        with z:
            yield z, npz_members(z)


def npz_members(z: zipfile.ZipFile) -> dict[str, zipfile.ZipInfo]:
    """An ``.npz``'s arrays by name (``param_000`` for ``param_000.npy``); `NpyError` for any other member."""
    members = {}
    for info in z.infolist():
        if not info.filename.endswith(".npy") or info.is_dir():
            raise NpyError(f"holds {info.filename!r}, which is not a .npy array")
        members[info.filename[: -len(".npy")]] = info
    return members


def read_member(z: zipfile.ZipFile, info: zipfile.ZipInfo, check: Check) -> np.ndarray:
    """One ``.npz`` member, read as `read_npy` reads: the size the zip declares must be the header's."""
    try:
        with z.open(info) as f:
            return read_npy(f, check, size=info.file_size)
    except (zipfile.BadZipFile, zlib.error, EOFError, OSError, NotImplementedError) as e:
        raise NpyError(f"is damaged ({one_line(e, limit=120)})") from None
