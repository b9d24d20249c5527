"""Writing files safely: check a destination before any work, then replace it atomically.

Used by checkpoints, the training log's checks, the plots and the pictures ``predict`` saves.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import BinaryIO

from .errors import XpnetError


def check_writable(
    path: str | Path, flag: str = "--save", example: str = "model.npz", *, create_parents: bool = True
) -> Path:
    """Fail now, before any training, if a file cannot be written at ``path`` (given as ``flag``).

    Missing parent folders are created (every output of every command is handled alike); if the path still
    cannot be written, the folders made here are removed again, so a refused path leaves nothing behind.
    """
    path = Path(path).expanduser()
    folder = path.parent
    if path.is_dir():
        raise XpnetError(f"cannot save to {path}: it is a folder; give a file name like {path / example}")
    made = _make_folders(path, flag) if create_parents else []
    if not folder.is_dir():
        raise XpnetError(f"cannot save to {path}: folder {folder} does not exist; create it first")
    try:
        with tempfile.TemporaryFile(dir=folder):
            pass
        if path.exists() and not os.access(path, os.W_OK):
            raise XpnetError(f"cannot save to {path}: the file is read-only; choose another {flag}")
    except OSError as e:
        _remove_folders(made)
        raise XpnetError(f"cannot save to {path}: {e.strerror or e} in {folder}; choose another {flag}") from None
    except XpnetError:
        _remove_folders(made)
        raise
    return path


def _make_folders(path: Path, flag: str) -> list[Path]:
    """Create the missing folders above ``path``, outermost first; return the ones made."""
    missing = []
    for folder in path.parents:
        if folder.exists():
            if not folder.is_dir():  # /tmp/notes.txt/model.npz
                raise XpnetError(f"cannot save to {path}: {folder} is a file, not a folder; choose another {flag}")
            break
        missing.append(folder)
    made: list[Path] = []
    for folder in reversed(missing):
        try:
            folder.mkdir(exist_ok=True)  # another process may make it meanwhile
        except OSError as e:
            _remove_folders(made)
            raise XpnetError(
                f"cannot save to {path}: cannot create folder {folder} ({e.strerror or e}); choose another {flag}"
            ) from None
        made.append(folder)
    return made


def _remove_folders(made: list[Path]) -> None:
    for folder in reversed(made):
        with contextlib.suppress(OSError):
            folder.rmdir()


def atomic_write(path: Path, write: Callable[[BinaryIO], object]) -> None:
    """Create or replace ``path`` with what ``write`` writes to a binary file, all or nothing.

    The bytes go to a temporary file in the same folder, flushed and fsynced, then renamed over ``path``,
    then the folder is fsynced: a crash or an exception at any point leaves the previous file (or none) and
    no temporary file.
    """
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        if hasattr(os, "fchmod"):  # mkstemp makes the file private (0600); give it the mode open() would
            umask = os.umask(0)
            os.umask(umask)
            os.fchmod(fd, 0o666 & ~umask)
        with os.fdopen(fd, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:  # an error or a second Ctrl-C: drop the partial file, keep the old one
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    _fsync_dir(path.parent)


def _fsync_dir(folder: Path) -> None:
    # Makes the rename itself durable; some platforms (Windows) cannot open a folder, and need not.
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)
