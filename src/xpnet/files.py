"""Writing files safely: check a destination before any work, replace it atomically, lock what a run writes.
A failure to write (a full disk) is a `WriteError`: exit 1, nothing half-written left, not even the folders made
for it. A symlink is followed; a device, a FIFO or a hard-linked file (which escapes the lock) is refused."""

from __future__ import annotations

import contextlib
import errno
import os
import stat
import tempfile
import uuid
from collections.abc import Callable, Collection, Iterable, Iterator, Mapping
from pathlib import Path
from typing import BinaryIO

from .errors import XpnetError, reason

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
    return WriteError(f"cannot write {path}: {reason(e)}; free some space or choose another place", reason(e))


def _special(path: Path, flag: str) -> str:
    """Why a file cannot replace ``path``: a device, pipe or socket (after following symlinks), or links that
    go round in a loop (``ln -s loop loop``); "" when it can (missing, a dangling link, a file or a folder)."""
    try:
        mode = os.stat(path).st_mode
    except OSError as e:  # missing or a dangling link (it will be created), or a loop
        return f"its symbolic links go round in a loop; choose another {flag}" if e.errno == errno.ELOOP else ""
    if stat.S_ISREG(mode) or stat.S_ISDIR(mode):
        return ""
    return f"it is not a regular file (a device, pipe or socket); choose another {flag}"


def check_writable(path: str | Path, flag: str = "--save", example: str = "model.npz") -> Path:
    """Fail now, before any work, if a file cannot be written at ``path`` (given as ``flag``); nothing is made.
    ``example``: a file name to suggest when ``path`` is a folder ("" where the command names its files)."""
    if not str(path).strip():
        raise XpnetError(f"{flag} needs a file name, got an empty one; give a path like {example or 'out'}")
    path = Path(path).expanduser()
    real = Path(os.path.realpath(path))  # a link's target, whose folders are the ones written
    try:
        folder = next(p for p in real.parents if p.exists())  # the folder the missing ones will go in
        if special := _special(path, flag):
            why = special
        elif real.is_dir():
            why = f"give a file name like {path / example}" if example else f"move it or choose another {flag}"
            why = f"it is a folder; {why}"
        elif real.exists() and (links := os.stat(real).st_nlink) > 1:
            why = f"it has {links} names (hard links); choose another {flag} or copy the file first"
        elif real.exists() and not os.access(real, os.W_OK):
            why = f"the file is read-only; choose another {flag}"
        elif not folder.is_dir():  # /tmp/notes.txt/model.npz
            why = f"{folder} is a file, not a folder; choose another {flag}"
        else:
            with tempfile.TemporaryFile(dir=folder):
                return path
    except OSError as e:  # a folder the user may not enter or write (``/root/m.npz`` as another user)
        why = f"{reason(e)}; choose another {flag}"
    raise XpnetError(f"cannot save to {path}: {why}")


def make_folders(folder: Path) -> list[Path]:
    """Create ``folder`` and its missing parents; return the ones made, outermost first."""
    made = [p for p in (*reversed(folder.parents), folder) if not p.exists()]
    folder.mkdir(parents=True, exist_ok=True)
    return made


def remove_folders(made: list[Path]) -> None:
    """Remove the folders `make_folders` made, innermost first; any that holds something stays."""
    for folder in reversed(made):
        with contextlib.suppress(OSError):
            folder.rmdir()


def atomic_write(path: Path, write: Callable[[BinaryIO], object]) -> None:
    """Create or replace ``path`` (a symlink's target) with what ``write`` writes, all or nothing: a temporary
    file beside it, fsynced, renamed over it, the folder fsynced. Raises `WriteError`."""
    target = Path(os.path.realpath(path))
    if why := _special(target, "path"):
        raise XpnetError(f"cannot save to {target}: {why}")
    tmp = target.with_name(f".{target.name}.{uuid.uuid4().hex[:12]}.tmp")
    made: list[Path] = []
    try:
        made = make_folders(target.parent)
        with open(tmp, "xb") as f:  # the mode open() gives a new file, unlike mkstemp's private 0600
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, target)
    except BaseException as e:  # an error or a second Ctrl-C: drop the partial file, keep the old one
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        remove_folders(made)
        if isinstance(e, OSError):
            raise write_failed(path, e) from None
        raise
    with contextlib.suppress(OSError):  # makes the rename durable; Windows cannot open a folder, and need not
        fd = os.open(target.parent, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


INPUTS = frozenset({"--model", "--resume", "IMAGE"})  # the roles read, never written
STREAMS = ("standard input", "standard output", "standard error")


def refuse_shared(
    paths: Mapping[str, str | Path | None] | Iterable[tuple[str, str | Path | None]],
    allowed: set[frozenset[str]] = frozenset(),
    inputs: Collection[str] = INPUTS,
) -> None:
    """Refuse, before anything is written, an output (a role not in ``inputs``) that is an input, another output
    or a standard stream (``--log /proc/self/fd/1``) unless the pair of flags is ``allowed``, or that lies in an
    input folder listed before it. Identity counts: a symlink is the file it names, a hard link its inode."""
    seen: dict[object, str] = {}
    folders: dict[str, str] = {}  # input folders, by real path
    for fd in (1, 2, 0):  # a terminal or /dev/null is no file to replace (check_writable refuses devices)
        with contextlib.suppress(OSError):
            if stat.S_ISREG((st := os.fstat(fd)).st_mode):
                seen.setdefault((st.st_dev, st.st_ino), STREAMS[fd])
    for flag, p in paths.items() if isinstance(paths, Mapping) else paths:
        if p is None or not str(p).strip():
            continue
        real = os.path.realpath(Path(p).expanduser())
        if flag in inputs and os.path.isdir(real):
            folders[real] = flag
        holder = next((f for d, f in folders.items() if real.startswith(d + os.sep)), None)
        if holder and flag not in inputs:
            raise XpnetError(f"{flag} {p} is inside the {holder} folder, which is read; choose another {flag}")
        try:
            st = os.stat(real)
            key: object = (st.st_dev, st.st_ino)
        except OSError:  # not there yet: its path is all there is
            key = real
        if key not in seen:
            seen[key] = flag
            continue
        other = seen[key]
        if (other in (*inputs, *STREAMS) and flag in inputs) or frozenset((other, flag)) in allowed:
            continue
        what = f"the {other} file" if other not in STREAMS else f"this command's {other}"
        raise XpnetError(f"{flag} {p} is also {what}; one file cannot be both: choose another {flag}")


# Not filelock (4.3): its lock file stays after release and holds no pid, and the refusal names the holder's.
@contextlib.contextmanager
def locked(paths: Mapping[str, Path | None]) -> Iterator[None]:
    """Hold an exclusive lock on each path (by flag) for the block, else `XpnetError` naming the holder's pid; the
    lock, ``.<name>.lock`` beside the file, goes on release, with the folders made for it that stayed empty."""
    with contextlib.ExitStack() as stack:
        for flag, path in paths.items():
            if path is None or fcntl is None:
                continue
            real = Path(os.path.realpath(path))
            lock = real.with_name(f".{real.name}.lock")
            try:
                stack.callback(remove_folders, make_folders(real.parent))
                while True:
                    fd = os.open(lock, os.O_RDWR | os.O_CREAT, 0o666)
                    try:
                        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                    except BlockingIOError:
                        holder = os.read(fd, 32).decode(errors="replace").strip() or "unknown"
                        os.close(fd)
                        why = f"is in use by another xpnet run (pid {holder}); wait for it to end or choose another"
                        raise XpnetError(f"{flag} {path} {why}") from None
                    if os.fstat(fd).st_nlink:  # else the run that held it removed it as it ended: lock the new one
                        break
                    os.close(fd)
            except OSError as e:
                raise write_failed(lock, e) from None
            stack.callback(os.close, fd)
            stack.callback(_remove, lock)  # before the close: no other run may lock a file about to go
            with contextlib.suppress(OSError):  # only names the holder: a full disk must not stop the run here
                os.ftruncate(fd, 0)
                os.write(fd, f"{os.getpid()}\n".encode())
        yield


def _remove(path: Path) -> None:
    with contextlib.suppress(OSError):
        path.unlink()
