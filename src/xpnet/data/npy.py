"""Read ``.npy`` arrays, alone or in an ``.npz``, trusting nothing (``numpy.load`` allocates whatever a header
declares): the header, then only the payload the caller's `Check` accepts. Every ``.npz`` goes through `open_npz`."""

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

MAX_NPZ_BYTES = 8 << 30  # an .npz's arrays, as its zip declares them: a 784-1,000,000-10 model with momentum
CHUNK = 1 << 18  # bytes per read, as numpy.load: a zip stream joins and copies what one read returns


class NpyError(ValueError):
    """An ``.npy`` array is malformed, holds objects, or declares more than the caller accepts."""


class NotNpz(NpyError):
    """The file is not a zip archive (or is cut short before its directory)."""


Check = Callable[[tuple[int, ...], np.dtype], None]  # raises NpyError when a declared shape/dtype is unwanted


def nbytes(shape: tuple[int, ...], dtype: np.dtype) -> int:
    """Bytes of a payload, as a Python int: no overflow whatever a header declares."""
    return math.prod(shape) * dtype.itemsize


def read_exactly(f: BinaryIO, n: int) -> memoryview:
    """``n`` bytes of ``f`` (fewer where it ends first), read a slice at a time into one buffer, never copied."""
    buf, done = memoryview(np.empty(n, dtype=np.uint8)), 0
    while done < n and (got := f.readinto(buf[done : done + CHUNK])):
        done += got
    return buf[:done]


def read_npy(f: BinaryIO, check: Check, *, size: int | None = None) -> np.ndarray:
    """Header, ``check(shape, dtype)``, then the payload; ``size``, when known, must be the header's and payload's."""
    try:
        version = npy_format.read_magic(f)
        reader = npy_format.read_array_header_1_0 if version == (1, 0) else npy_format.read_array_header_2_0
        shape, fortran, dtype = reader(f)  # numpy's limit on a header's length: 10,000 bytes
    except (ValueError, EOFError, OSError) as e:  # no magic, an unknown version, a header that is not a dict
        raise NpyError(f"not a NumPy .npy array ({one_line(e, limit=120)})") from None
    if dtype.hasobject:
        raise NpyError("holds pickled or object arrays; xpnet never loads pickles")
    shape = tuple(int(d) for d in shape)
    check(shape, dtype)
    want = nbytes(shape, dtype)
    if size is not None and size != f.tell() + want:
        raise NpyError(f"its header declares {want} bytes of data but it holds {size - f.tell()}")
    buf = read_exactly(f, want)
    if len(buf) < want:
        raise NpyError(f"truncated: {len(buf)} of the {want} bytes its header declares")
    return np.frombuffer(buf, dtype=dtype).reshape(shape, order="F" if fortran else "C")


def expect(shape: tuple[int, ...], dtype: np.dtype | str) -> Check:
    """A `Check` that accepts exactly ``shape`` and ``dtype``."""

    def check(found: tuple[int, ...], found_dtype: np.dtype) -> None:
        if found != shape or found_dtype != np.dtype(dtype):
            raise NpyError(f"is {found_dtype}{list(found)}, expected {np.dtype(dtype)}{list(shape)}")

    return check


def open_regular(path: Path) -> BinaryIO:
    """``path`` opened when a regular file (links followed), else `OSError`: a FIFO or a device is left unread."""
    fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0))
    if not stat.S_ISREG(os.fstat(fd).st_mode):
        os.close(fd)
        raise OSError(errno.EINVAL, "not a regular file (a folder, device or pipe)")
    return os.fdopen(fd, "rb")


@contextlib.contextmanager
def open_npz(path: Path) -> Iterator[tuple[zipfile.ZipFile, dict[str, zipfile.ZipInfo]]]:
    """The zip at ``path`` and its arrays by name (``param_000``); before a byte is inflated, `NotNpz`, or `NpyError`
    for an encrypted zip, a member not ``.npy``, arrays declared past the file's size (xpnet writes them plain)."""
    with open_regular(path) as f:
        try:
            z = zipfile.ZipFile(f)
        except (zipfile.BadZipFile, EOFError, ValueError) as e:
            raise NotNpz(f"is not an .npz file ({one_line(e, limit=120)})") from None
        with z:
            members, size = z.infolist(), os.fstat(f.fileno()).st_size
            declared = sum(info.file_size for info in members)
            if declared > min(size, MAX_NPZ_BYTES):
                what = f"declares {declared / 2**30:.2f} GiB of arrays in {size / 2**30:.2f} GiB of file"
                raise NpyError(f"{what}; xpnet reads uncompressed .npz files of up to {MAX_NPZ_BYTES >> 30} GiB")
            for info in members:
                if info.flag_bits & 1:
                    raise NpyError("is encrypted; xpnet reads only plain .npz files")
                if not info.filename.endswith(".npy") or info.is_dir():
                    raise NpyError(f"holds {info.filename!r}, which is not a .npy array")
            yield z, {info.filename.removesuffix(".npy"): info for info in members}


def read_member(z: zipfile.ZipFile, info: zipfile.ZipInfo, check: Check) -> np.ndarray:
    """One ``.npz`` member, read as `read_npy` reads: the size the zip declares must be the header's."""
    try:
        with z.open(info) as f:
            return read_npy(f, check, size=info.file_size)
    except (zipfile.BadZipFile, zlib.error, EOFError, OSError, NotImplementedError) as e:
        raise NpyError(f"is damaged ({one_line(e, limit=120)})") from None
