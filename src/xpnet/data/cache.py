"""A cache of a picture folder's prepared images: one ``.npz`` of plain arrays, never pickles.

Reading and preparing thousands of pictures takes a while; the result is kept so that the next run starts
at once. The cache is keyed by a hash of every file's name, size and modification time and of the image
layout: adding, removing, editing or touching a picture, or asking for another ``--image-size``, makes a
new one. It lives in the data folder when that is writable (``.xpnet-cache-<side>.npz``), else in the cache
folder (``$XPNET_DATA/folders`` or ``~/.cache/xpnet/folders``). A damaged or foreign cache is ignored and
rebuilt; writing one that fails (a full disk) only costs the next run the time to read the pictures again.
"""

from __future__ import annotations

import hashlib
import os
import zipfile
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from ..files import WriteError, atomic_write

# Bump when what is cached (or how a picture is prepared) changes meaning; 2: pictures already in place are
# kept as they are (issue 18).
VERSION = 2
KEYS = ("key", "x_train", "y_train", "x_test", "y_test", "classes", "skipped")


def fingerprint(root: Path, files: Sequence[Path], recipe: str) -> str:
    """A hash of each file's path below ``root``, size and modification time, and of ``recipe`` (the layout)."""
    h = hashlib.sha256(f"xpnet-folder-cache {VERSION}\n{recipe}\n".encode())
    for f in files:
        st = f.stat()
        h.update(f"{f.relative_to(root).as_posix()}\0{st.st_size}\0{st.st_mtime_ns}\n".encode())
    return h.hexdigest()


def cache_path(root: Path, side: int, cache_dir: Path) -> Path:
    """Where the cache of ``root`` at ``side`` x ``side`` lives: in ``root`` if writable, else in ``cache_dir``."""
    name = f".xpnet-cache-{side}.npz"
    if os.access(root, os.W_OK):
        return root / name
    tag = hashlib.sha256(str(root.resolve()).encode()).hexdigest()[:16]
    return cache_dir / f"{tag}-{side}.npz"


def load(path: Path, key: str, n_features: int) -> dict[str, np.ndarray] | None:
    """The cached arrays when ``path`` holds a cache made under ``key``, else None (missing, stale, damaged)."""
    try:
        with np.load(path, allow_pickle=False) as npz:
            if set(npz.files) != set(KEYS) or str(npz["key"]) != key:
                return None
            arrays = {k: npz[k] for k in KEYS}
    except (OSError, ValueError, EOFError, KeyError, zipfile.BadZipFile):
        return None
    for split in ("train", "test"):
        x, y = arrays[f"x_{split}"], arrays[f"y_{split}"]
        if x.dtype != np.uint8 or x.ndim != 2 or x.shape[1] != n_features or y.shape != (x.shape[0],):
            return None
        if y.dtype != np.int64 or (y.size and not 0 <= y.min() <= y.max() < arrays["classes"].size):
            return None
    if arrays["classes"].dtype.kind != "U" or arrays["skipped"].dtype.kind != "U":
        return None
    return arrays


def save(path: Path, key: str, arrays: dict[str, np.ndarray]) -> bool:
    """Write the cache atomically; False (and nothing on disk) when it cannot be written."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        atomic_write(path, lambda f: np.savez(f, key=np.array(key), **arrays))
    except (OSError, WriteError):  # a full disk or a read-only folder; atomic_write leaves no partial file
        return False
    return True
