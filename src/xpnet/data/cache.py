"""A picture folder's prepared images as one ``.npz`` of plain arrays, sealed with a hash of the pictures' paths and
contents, the recipe and the arrays, kept where no one else may write; a damaged or stale one costs a rebuild."""

import hashlib
import os
import stat
from collections.abc import Sequence
from functools import partial
from pathlib import Path

import numpy as np

from ..errors import XpnetError, reason
from ..files import atomic_write
from . import npy
from .datasets import default_data_dir

VERSION = 4  # bumped when what is cached changes meaning (how a picture is prepared: `images.PREPARATION`)
KEYS = ("key", "x_train", "y_train", "x_test", "y_test", "classes", "skipped")
CACHE_ENV = "XPNET_FOLDER_CACHE"
MAX_CHARS = 4096  # of a class name or a skipped picture's path, as stored


def fingerprint(root: Path, files: Sequence[Path], recipe: str) -> str:
    """A hash of ``recipe`` and of each file's path below ``root`` and contents (or error, when unreadable)."""
    h = hashlib.sha256(f"xpnet-folder-cache {VERSION}\n{recipe}\n".encode())
    for f in files:
        h.update(os.fsencode(f.relative_to(root)) + b"\0")  # names need not be UTF-8
        try:
            with npy.open_regular(f) as stream:
                digest = hashlib.sha256()
                while block := stream.read(1 << 20):
                    digest.update(block)
            h.update(b"=" + digest.digest() + b"\n")
        except OSError as e:
            h.update(f"!{e.errno}\n".encode())
    return h.hexdigest()


def _sealed(key: str, arrays: dict[str, np.ndarray]) -> str:
    """``key`` hashed with the arrays cached under it: what the file stores and `load` checks."""
    h = hashlib.sha256(key.encode())
    for k in KEYS[1:]:
        h.update(f"\n{k} {arrays[k].dtype.str} {arrays[k].shape}\n".encode() + arrays[k].tobytes())  # in C order
    return h.hexdigest()


def cache_path(root: Path, side: int) -> Path:
    """Where the cache of ``root`` at ``side`` x ``side`` lives: ``$XPNET_FOLDER_CACHE``, else the data folder's."""
    folder = Path(os.environ.get(CACHE_ENV) or default_data_dir("folders")).expanduser()
    return folder / f"{hashlib.sha256(os.fsencode(root.resolve())).hexdigest()[:16]}-{side}.npz"


def _private(folder: Path) -> bool:
    """Whether ``folder`` is the user's own and no one else may write in it (Windows: its ACLs say)."""
    st = os.stat(folder)
    return os.name != "posix" or (st.st_uid == os.getuid() and not st.st_mode & (stat.S_IWGRP | stat.S_IWOTH))


def load(path: Path, key: str, n_files: int, n_features: int) -> tuple[dict[str, np.ndarray] | None, str]:
    """``(arrays, "")`` from the cache at ``path`` made under ``key``, else ``(None, why)`` ("": none there)."""

    def fits(name: str, shape: tuple[int, ...], dtype: np.dtype) -> None:  # as `save` writes, rows <= pictures
        want = {"x": np.uint8, "y": np.int64}.get(name[0])  # else text: class names, skipped paths
        rows = shape[:1] and shape[0] <= n_files and shape[1:] == ((n_features,) if want is np.uint8 else ())
        if not (rows and (dtype == want if want else dtype.kind == "U" and dtype.itemsize <= 4 * MAX_CHARS)):
            raise npy.NpyError(f"holds {name} as {dtype}{list(shape)}, more or other than {n_files} pictures make")

    try:
        if not _private(path.parent):
            return None, f"in a folder others may write (chmod 700 {path.parent})"
        with npy.open_npz(path) as (z, members):
            if set(members) != set(KEYS):
                return None, "not an xpnet cache"
            seal = str(npy.read_member(z, members["key"], npy.expect((), "<U64")))
            arrays = {k: npy.read_member(z, members[k], partial(fits, k)) for k in KEYS[1:]}
    except FileNotFoundError:
        return None, ""
    except (OSError, npy.NpyError) as e:
        return None, f"unusable ({reason(e)})"
    if seal != _sealed(key, arrays):
        return None, "stale: made from other pictures (or by another xpnet), or altered since"
    return arrays, ""


def save(path: Path, key: str, arrays: dict[str, np.ndarray]) -> bool:
    """Write the cache atomically; False (and nothing on disk) when it cannot be written."""
    try:
        path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        if not _private(path.parent):
            return False
        if path.is_symlink() or (path.exists() and not path.is_file()):  # a link, a FIFO: replaced, not followed
            path.unlink()
        atomic_write(path, lambda f: np.savez(f, key=np.array(_sealed(key, arrays)), **arrays))
    except (OSError, XpnetError):  # a full disk, a read-only folder, a folder at the path; no partial file
        return False
    return True
