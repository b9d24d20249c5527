"""Writing files safely: check a destination before any work, then replace it atomically, and lock what a
run writes.

Used by checkpoints, the training log (`xpnet.training.runlog` appends whole lines to it), the plots and the
pictures ``predict`` saves. Every failure to write (a full disk above all) is a `WriteError`: one line, exit
status 1, and nothing half-written left. A symlink is followed: the file it points to is written and the
link stays. A destination that exists and is not a regular file (a device such as /dev/null, a FIFO, a
socket) is refused.
"""

from __future__ import annotations

import contextlib
import errno
import os
import stat
import tempfile
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import BinaryIO

from .errors import XpnetError, printable

try:
    import fcntl
except ImportError:  # Windows: no advisory locks; runs are not locked there
    fcntl = None  # type: ignore[assignment]


class WriteError(XpnetError):
    """A file could not be written (the disk is full, the folder went away); what was there is kept."""

    exit_status = 1

    def __init__(self, message: str, reason: str = ""):
        super().__init__(message)
        self.reason = reason or message  # the system's words alone: "No space left on device"


def write_failed(path: Path, e: OSError) -> WriteError:
    """The `WriteError` for the system's error ``e`` writing ``path``."""
    why = e.strerror or str(e)
    return WriteError(f"cannot write {printable(path)}: {why}; free some space or choose another place", why)


def _cannot_save(path: Path, why: str) -> XpnetError:
    """The error refusing ``path`` as a destination, ``why`` (naming the fix)."""
    return XpnetError(f"cannot save to {printable(path)}: {why}")


def refuse_special(path: Path, flag: str) -> None:
    """Refuse a destination that exists and is not a regular file (after following symlinks), and one whose
    links go round in a loop (``ln -s loop loop``): writing there would replace a link with a file."""
    try:
        mode = os.stat(path).st_mode
    except OSError as e:
        if e.errno == errno.ELOOP:
            why = f"its symbolic links go round in a loop; fix the link or choose another {flag}"
            raise _cannot_save(path, why) from None
        return  # missing (or a dangling link): it will be created
    if not stat.S_ISREG(mode) and not stat.S_ISDIR(mode):
        raise _cannot_save(path, f"it is not a regular file (a device, pipe or socket); choose another {flag}")


def check_writable(
    path: str | Path,
    flag: str = "--save",
    example: str = "model.npz",
    *,
    create_parents: bool = True,
    made: list[Path] | None = None,
) -> Path:
    """Fail now, before any training, if a file cannot be written at ``path`` (given as ``flag``).

    Missing parent folders are created (every output of every command is handled alike); if the path still
    cannot be written, the folders made here are removed again, so a refused path leaves nothing behind.
    ``made``, when given, is extended by the folders created (outermost first), for the caller to remove
    with `remove_folders` should it fail before writing into them. ``example`` is a file name to suggest
    when ``path`` is a folder; "" where the command names its files itself (``--plot DIR``).
    """
    if not str(path).strip():
        raise XpnetError(f"{flag} needs a file name, got an empty one; give a path like {example or 'out'}")
    path = Path(path).expanduser()
    try:
        _check_destination(path, flag, example, create_parents, made if made is not None else [])
    except OSError as e:  # a folder on the way the user may not enter (``/root/m.npz`` as another user)
        raise _cannot_save(path, f"{e.strerror or e}; choose another {flag}") from None
    return path


def _check_destination(path: Path, flag: str, example: str, create_parents: bool, made: list[Path]) -> None:
    refuse_special(path, flag)
    # A link is followed (docs/checkpoints.md): the folders and the test write are those of its target.
    real = Path(os.path.realpath(path)) if path.is_symlink() else path
    folder = real.parent
    if path.is_dir():
        fix = f"give a file name like {printable(path / example)}" if example else f"move it or choose another {flag}"
        raise _cannot_save(path, f"it is a folder; {fix}")
    if (links := os.stat(path).st_nlink if path.exists() else 1) > 1:  # another name would pass the lock
        raise _cannot_save(path, f"it has {links} names (hard links); choose another {flag} or copy the file first")
    made_here = _make_folders(real, flag) if create_parents else []
    if not folder.is_dir():
        raise _cannot_save(path, f"folder {printable(folder)} does not exist; create it first")
    try:
        with tempfile.TemporaryFile(dir=folder):
            pass
        if path.exists() and not os.access(path, os.W_OK):
            raise _cannot_save(path, f"the file is read-only; choose another {flag}")
    except OSError as e:
        remove_folders(made_here)
        raise _cannot_save(path, f"{e.strerror or e} in {printable(folder)}; choose another {flag}") from None
    except XpnetError:
        remove_folders(made_here)
        raise
    made.extend(made_here)


def check_all_writable(paths: Sequence[Path], flag: str, made: list[Path]) -> list[Path]:
    """`check_writable` for each file one flag will make (``--plot DIR``'s several plots), all before any
    work. The folders made go to ``made`` (from `made_folders`), which removes them should a later file be
    refused."""
    return [check_writable(p, flag, "", made=made) for p in paths]


@contextlib.contextmanager
def made_folders() -> Iterator[list[Path]]:
    """A list to pass as ``made`` to the checks of a command's outputs; when the block ends, the folders the
    checks made that are still empty (the command failed before writing into them) are removed again."""
    made: list[Path] = []
    try:
        yield made
    finally:
        remove_folders(made)


def _make_folders(path: Path, flag: str) -> list[Path]:
    """Create the missing folders above ``path``, outermost first; return the ones made."""
    missing = []
    for folder in path.parents:
        if folder.exists():
            if not folder.is_dir():  # /tmp/notes.txt/model.npz
                raise _cannot_save(path, f"{printable(folder)} is a file, not a folder; choose another {flag}")
            break
        missing.append(folder)
    made: list[Path] = []
    for folder in reversed(missing):
        try:
            folder.mkdir(exist_ok=True)  # another process may make it meanwhile
        except OSError as e:
            remove_folders(made)
            why = f"cannot create folder {printable(folder)} ({e.strerror or e}); choose another {flag}"
            raise _cannot_save(path, why) from None
        made.append(folder)
    return made


def remove_folders(made: list[Path]) -> None:
    """Remove the folders a failed write made (listed outermost first), innermost first; any that holds
    something stays."""
    for folder in reversed(made):
        with contextlib.suppress(OSError):
            folder.rmdir()


def atomic_write(path: Path, write: Callable[[BinaryIO], object]) -> None:
    """Create or replace ``path`` with what ``write`` writes to a binary file, all or nothing.

    The bytes go to a temporary file ``.<name>.<pid>.<random>.tmp`` in the same folder, flushed and
    fsynced, then renamed over ``path``, then the folder is fsynced: a crash or an exception at any point
    leaves the previous file (or none). Temporary files of the same target left by a process that no
    longer runs (kill -9) are removed first. A symlink at ``path`` is followed. Raises `WriteError`.
    """
    target = Path(os.path.realpath(path))
    refuse_special(target, "path")
    _remove_stale(target)
    try:
        fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.{os.getpid()}.", suffix=".tmp")
    except OSError as e:
        raise write_failed(path, e) from None
    try:
        if hasattr(os, "fchmod"):  # mkstemp makes the file private (0600); give it the mode open() would
            umask = os.umask(0)
            os.umask(umask)
            os.fchmod(fd, 0o666 & ~umask)
        with os.fdopen(fd, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, target)
    except BaseException as e:  # an error or a second Ctrl-C: drop the partial file, keep the old one
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        if isinstance(e, OSError):
            raise write_failed(path, e) from None
        raise
    _fsync_dir(target.parent)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:  # PermissionError: it runs, as another user
        return True
    return True


def _remove_stale(target: Path) -> None:
    """Delete ``.<name>.<pid>.*.tmp`` files of ``target`` whose writer (pid) is gone."""
    if os.name != "posix":
        return
    prefix = f".{target.name}."
    with contextlib.suppress(OSError):
        for entry in os.scandir(target.parent):
            pid = entry.name[len(prefix) :].split(".", 1)[0]
            if entry.name.startswith(prefix) and entry.name.endswith(".tmp") and pid.isdigit():
                if int(pid) != os.getpid() and not _alive(int(pid)):
                    with contextlib.suppress(OSError):
                        os.unlink(entry.path)


def refuse_shared(paths: Mapping[str, str | Path | None], allowed: set[frozenset[str]] = frozenset()) -> None:
    """Refuse one file given for two roles (``--log X --save X``), unless the pair of flags is ``allowed``.
    Files are compared by identity (device and inode): a symlink or a hard link is the file it names."""
    seen: dict[object, str] = {}
    for flag, p in paths.items():
        if p is None or not str(p).strip():
            continue
        try:
            st = os.stat(Path(p).expanduser())
            key: object = (st.st_dev, st.st_ino)
        except OSError:  # not there yet: its path is all there is
            key = os.path.realpath(Path(p).expanduser())
        other = seen.setdefault(key, flag)
        if other != flag and frozenset((other, flag)) not in allowed:
            raise XpnetError(
                f"{flag} {printable(p)} is also the {other} file; one file cannot be both: choose another {flag}"
            )


@contextlib.contextmanager
def locked(paths: Mapping[str, Path | None]) -> Iterator[None]:
    """Hold an exclusive lock on each path (by flag) for the block; `XpnetError` naming the pid of the run
    that holds one. The lock is ``.<name>.lock`` beside the file, removed when released."""
    with contextlib.ExitStack() as stack:
        for flag, path in paths.items():
            if path is not None and fcntl is not None:
                stack.enter_context(_lock(path, flag))
        yield


@contextlib.contextmanager
def _lock(path: Path, flag: str) -> Iterator[None]:
    real = Path(os.path.realpath(path))
    lock_path = real.with_name(f".{real.name}.lock")
    while True:
        try:
            fd = os.open(lock_path, os.O_RDWR | os.O_CREAT, 0o666)
        except OSError as e:
            raise write_failed(lock_path, e) from None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.read(fd, 32).decode(errors="replace").strip() or "unknown"
            os.close(fd)
            raise XpnetError(
                f"{flag} {printable(path)} is in use by another xpnet run (pid {holder}); wait for it to end or "
                "choose another"
            ) from None
        # A run that just ended removed the file we opened: lock the one now at the path instead.
        try:
            if os.stat(lock_path).st_ino == os.fstat(fd).st_ino:
                break
        except FileNotFoundError:
            pass
        os.close(fd)
    with contextlib.suppress(OSError):  # only names the holder: a full disk must not stop the run here
        os.ftruncate(fd, 0)
        os.write(fd, f"{os.getpid()}\n".encode())
    try:
        yield
    finally:
        with contextlib.suppress(OSError):
            os.unlink(lock_path)
        os.close(fd)


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
