"""Download the MNIST-style IDX files from an ordered list of mirrors, checking every byte.

Each file goes to a hidden temporary name in the data directory and is renamed into place only after
its MD5 or SHA-256 matches a published checksum, so an interrupted, truncated or tampered transfer
never leaves a file that looks complete. A mirror that cannot be reached at all is skipped for the
remaining files, so an offline machine gets its answer after at most one timeout per mirror.
"""

from __future__ import annotations

import errno
import hashlib
import http.client
import os
import ssl
import sys
import tempfile
import textwrap
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Sequence
from pathlib import Path

from .. import __version__
from ..errors import DataError, printable
from ..files import remove_folders
from .sources import MIRRORS_ENV, SOURCES, Source, parse_mirrors, source_for

# The sources are re-exported: callers that download also name where from.
__all__ = ["MIRRORS_ENV", "SOURCES", "DownloadError", "MissingData", "Source", "download", "parse_mirrors"]
__all__ += ["source_for"]

USER_AGENT = f"xpnet/{__version__} (Python-urllib/{sys.version_info[0]}.{sys.version_info[1]}; dataset download)"
# Per connect and per read. A mirror that cannot be reached costs this once (then it is skipped), so an
# offline machine with three mirrors answers within about 15 s; a live mirror never pauses this long.
TIMEOUT_S = 5.0
# For the whole download: a mirror that trickles a byte every few seconds never trips TIMEOUT_S, and would
# keep a run waiting for days. Half an hour fetches MNIST's 55 MB at 30 kB/s. $XPNET_DOWNLOAD_DEADLINE: seconds.
DEADLINE_S = 1800.0
DEADLINE_ENV = "XPNET_DOWNLOAD_DEADLINE"
CHUNK = 1 << 16

class MissingData(DataError):
    """A data set's files are missing. Its message is a short first line, then details on lines of their own
    (what each mirror answered, where to put which files), which the command-line tools print indented."""

    multiline = True


class DownloadError(MissingData):
    """No mirror delivered a file whose checksum matched."""


class _Rejected(Exception):
    """One mirror failed for one file (message says why); the next mirror is tried."""


class _Unreachable(_Rejected):
    """The mirror's host could not be reached at all: skip it for the remaining files."""


def matches(digests: dict[str, str], accepted: Sequence[str]) -> bool:
    """Whether any ``"algo:hex"`` in ``accepted`` equals the computed ``digests[algo]``."""
    for spec in accepted:
        algo, _, want = spec.partition(":")
        if digests.get(algo) == want.lower():
            return True
    return False


def fetch(
    url: str,
    dest: Path,
    accepted: Sequence[str],
    timeout: float = TIMEOUT_S,
    progress: Callable[[int, int | None], None] | None = None,
    until: float | None = None,
) -> None:
    """Download ``url`` to ``dest`` atomically; raise `_Rejected` (leaving nothing behind) on any failure,
    including still receiving at ``until`` (a `time.monotonic` instant)."""
    request = urllib.request.Request(url, headers={"User-Agent": USER_AGENT})
    tmp = tempfile.NamedTemporaryFile(dir=dest.parent, prefix=f".{dest.name}.", suffix=".part", delete=False)
    tmp_path = Path(tmp.name)
    try:
        hashes = {"md5": hashlib.md5(), "sha256": hashlib.sha256()}
        with tmp, urllib.request.urlopen(request, timeout=timeout) as response:
            length = response.headers.get("Content-Length")
            total = int(length) if length and length.isdigit() else None
            done = 0
            read = getattr(response, "read1", response.read)  # what has arrived: read() waits for all CHUNK
            while chunk := read(CHUNK):
                if until is not None and time.monotonic() > until:
                    raise _Unreachable(f"too slow: {done} bytes when the download deadline passed")
                tmp.write(chunk)
                for h in hashes.values():
                    h.update(chunk)
                done += len(chunk)
                if progress is not None:
                    progress(done, total)
            if total is not None and done != total:
                raise _Rejected(f"transfer cut short at {done} of {total} bytes")
            tmp.flush()
            os.fsync(tmp.fileno())
        digests = {algo: h.hexdigest() for algo, h in hashes.items()}
        if not matches(digests, accepted):
            raise _Rejected(f"checksum mismatch (md5 {digests['md5']}, expected {' or '.join(accepted)})")
        os.replace(tmp_path, dest)
    except urllib.error.HTTPError as e:
        raise _Rejected(f"HTTP {e.code} {e.reason}") from None
    except urllib.error.URLError as e:
        reason = e.reason
        if isinstance(reason, FileNotFoundError):  # a file:// mirror without this file
            raise _Rejected("no such file") from None
        if isinstance(reason, ssl.SSLCertVerificationError):
            raise _Unreachable("TLS certificate not trusted (set SSL_CERT_FILE to your CA bundle)") from None
        # Refused, DNS failure, timeout: the host itself is out of reach.
        raise _Unreachable(f"cannot connect: {getattr(reason, 'strerror', None) or reason}") from None
    except TimeoutError:
        raise _Unreachable(f"no data for {timeout:g} s") from None
    except (http.client.HTTPException, ConnectionError, ssl.SSLError) as e:
        raise _Rejected(f"transfer failed: {type(e).__name__} {e}") from None
    except OSError as e:  # what is left is local: the disk is full (exit 1) or the directory is not writable
        raise DownloadError(
            f"cannot write {printable(dest)}: {e.strerror or e}; free space or pass --data-dir DIR",
            exit_status=1 if e.errno in (errno.ENOSPC, errno.EDQUOT) else None,
        ) from None
    finally:
        tmp_path.unlink(missing_ok=True)


def missing_message(source: Source, directory: Path, reasons: Sequence[str] = (), offline: bool = False) -> str:
    """What to say when files are missing and the download failed: one short line, then each mirror's answer,
    then where to put which files and the alternatives, each on a line of its own."""
    lines = [f"{source.name} not found in {printable(directory)}, and the download failed:"]
    lines += [f"  {reason}" for reason in reasons]
    if offline:
        lines.append("  behind a proxy? set HTTPS_PROXY")
    lines += fix_lines(list(source.digests), directory)
    lines.append(f"or set {MIRRORS_ENV} or --mirror to a reachable mirror, or use --dataset digits (no download)")
    return "\n".join(lines)


def fix_lines(files: Sequence[str], directory: Path) -> list[str]:
    """Where the missing ``files`` go, wrapped to lines of about 100 characters: both missing-data messages
    say it."""
    text = f"put {', '.join(files)} in {printable(directory)} (or pass --data-dir DIR),"
    return textwrap.wrap(text, 100, break_long_words=False, break_on_hyphens=False)


def download(
    source: Source,
    directory: str | Path,
    files: Sequence[str] | None = None,
    timeout: float = TIMEOUT_S,
    progress: Callable[[str], Callable[[int, int | None], None]] | None = None,
    deadline: float | None = None,
) -> list[Path]:
    """Download ``files`` (default: all of ``source``'s) into ``directory``, trying mirrors in order.

    ``progress(file_name)`` returns a callback ``(bytes_done, bytes_total)`` for that file. Raises
    `DownloadError` naming the directory, the file names and the alternatives when a file cannot be had
    from any mirror; the folders it made for ``directory`` are then removed again if they are empty. All of
    it must end within ``deadline`` seconds (default: `DEADLINE_S`, or ``$XPNET_DOWNLOAD_DEADLINE``).
    """
    until = time.monotonic() + (deadline if deadline is not None else _deadline())
    directory = Path(directory)
    names = list(source.digests if files is None else files)
    # Outermost first, as remove_folders takes them: removed again if nothing arrives.
    made = [p for p in reversed((directory, *directory.parents)) if not p.exists()]
    try:
        directory.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        why = e.strerror or e
        raise DownloadError(
            f"cannot create data directory {printable(directory)}: {why}; pass --data-dir DIR"
        ) from None
    try:
        return _download_all(source, directory, names, timeout, progress, until)
    except BaseException:
        remove_folders(made)
        raise


def _download_all(
    source: Source,
    directory: Path,
    names: Sequence[str],
    timeout: float,
    progress: Callable[[str], Callable[[int, int | None], None]] | None,
    until: float,
) -> list[Path]:
    unreachable: dict[str, str] = {}  # mirror -> why it is skipped from now on
    done = []
    for name in names:
        reasons = []
        for base in source.mirrors:
            host = urllib.parse.urlsplit(base).netloc or base
            if base in unreachable:
                continue
            try:
                bar = progress(name) if progress is not None else None
                fetch(base + name, directory / name, source.digests[name], timeout, bar, until)
            except _Unreachable as e:
                unreachable[base] = str(e)
                reasons.append(f"{name} from {host}: {e}")
            except _Rejected as e:
                reasons.append(f"{name} from {host}: {e}")
            else:
                break
        else:
            if not reasons:
                reasons.append("no mirrors configured" if not source.mirrors else "no reachable mirror left")
            raise DownloadError(missing_message(source, directory, reasons, offline=bool(unreachable)))
        done.append(directory / name)
    return done


def _deadline() -> float:
    text = os.environ.get(DEADLINE_ENV, "")
    try:
        value = float(text) if text else DEADLINE_S
    except ValueError:
        value = -1.0
    if not value > 0:
        raise DataError(f"{DEADLINE_ENV}={text!r} is not a positive number of seconds: fix or unset it")
    return value
