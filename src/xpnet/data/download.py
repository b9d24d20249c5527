"""Download the named sets' IDX files: where from (ordered mirrors, published checksums) and how.

Each file is written through `files.atomic_write` and lands only when its MD5 or SHA-256 matches a
published checksum, so an interrupted, truncated or tampered transfer never leaves a file that looks
complete. A mirror that cannot be reached at all is skipped for the remaining files, so an offline
machine gets its answer after at most one timeout per mirror.
"""

# Not pooch (1.8): it fetches one URL per file (no mirrors tried in order, none skipped once unreachable),
# speaks no file:// (XPNET_MIRRORS may name a local copy), and its requests timeout is per read, with no
# deadline for the whole download, so a mirror that trickles a byte every few seconds would hold a run for days.

from __future__ import annotations

import hashlib
import http.client
import os
import ssl
import sys
import textwrap
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import BinaryIO

from .. import __version__
from ..errors import DataError, reason
from ..files import WriteError, atomic_write, make_folders, remove_folders

USER_AGENT = f"xpnet/{__version__} (Python-urllib/{sys.version_info[0]}.{sys.version_info[1]}; dataset download)"
# Per connect and per read. A mirror that cannot be reached costs this once (then it is skipped), so an
# offline machine with three mirrors answers within about 15 s; a live mirror never pauses this long.
TIMEOUT_S = 5.0
# For the whole download: a mirror that trickles a byte every few seconds never trips TIMEOUT_S, and would
# keep a run waiting for days. Half an hour fetches MNIST's 55 MB at 30 kB/s. $XPNET_DOWNLOAD_DEADLINE: seconds.
DEADLINE_S = 1800.0
DEADLINE_ENV = "XPNET_DOWNLOAD_DEADLINE"
CHUNK = 1 << 16

MIRRORS_ENV = "XPNET_MIRRORS"

# Published checksums of the compressed files. MD5 as torchvision and the data sets' authors list them;
# SHA-256 of Fashion-MNIST as Keras lists them for its copy. A file is accepted if any digest matches.
MNIST_DIGESTS = {
    "train-images-idx3-ubyte.gz": ("md5:f68b3c2dcbeaaa9fbdd348bbdeb94873",),
    "train-labels-idx1-ubyte.gz": ("md5:d53e105ee54ea40749a09fcbcd1e9432",),
    "t10k-images-idx3-ubyte.gz": ("md5:9fb629c4189551a2d022fa330f9573f3",),
    "t10k-labels-idx1-ubyte.gz": ("md5:ec29112dd5afa0611ce80d1b7f02629c",),
}
FASHION_DIGESTS = {
    "train-images-idx3-ubyte.gz": (
        "md5:8d4fb7e6c68d591d4c3dfef9ec88bf0d",
        "sha256:3aede38d61863908ad78613f6a32ed271626dd12800ba2636569512369268a84",
    ),
    "train-labels-idx1-ubyte.gz": (
        "md5:25c81989df183df01b3e8a0aad5dffbe",
        "sha256:a04f17134ac03560a47e3764e11b92fc97de4d1bfaf8ba1a3aa29af54cc90845",
    ),
    "t10k-images-idx3-ubyte.gz": (
        "md5:bef4ecab320f06d8554ea6380940ec79",
        "sha256:346e55b948d973a97e58d2351dde16a484bd415d4595297633bb08f03db6a073",
    ),
    "t10k-labels-idx1-ubyte.gz": (
        "md5:bb300cfdad3c16e7a12a480ee83cd310",
        "sha256:67da17c76eaffca5446c3361aaab5c3cd6d1c2608764d35dfb1850b086bf8dd5",
    ),
}


@dataclass(frozen=True)
class Source:
    """Where a data set's files come from: base URLs tried in order, and the digests each file must match."""

    name: str
    mirrors: tuple[str, ...]
    digests: Mapping[str, tuple[str, ...]]  # file name -> ("md5:<hex>", "sha256:<hex>", ...)

    def with_mirrors(self, mirrors: Sequence[str]) -> Source:
        """This source with ``mirrors`` instead of its own; ``{dataset}`` in a URL becomes the data set name."""
        return Source(self.name, tuple(m.replace("{dataset}", self.name) for m in mirrors), self.digests)


# The original MNIST site (yann.lecun.com) has answered 403/404 for years: it is tried last, if at all.
SOURCES = {
    "mnist": Source(
        "mnist",
        (
            "https://ossci-datasets.s3.amazonaws.com/mnist/",  # torchvision's mirror
            "https://storage.googleapis.com/cvdf-datasets/mnist/",  # TensorFlow's tutorial mirror
            "http://yann.lecun.com/exdb/mnist/",
        ),
        MNIST_DIGESTS,
    ),
    "fashion-mnist": Source(
        "fashion-mnist",
        (
            "https://storage.googleapis.com/tensorflow/tf-keras-datasets/",  # Keras' mirror
            "http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/",  # the authors' (torchvision's)
            "https://raw.githubusercontent.com/zalandoresearch/fashion-mnist/master/data/fashion/",
        ),
        FASHION_DIGESTS,
    ),
}


def parse_mirrors(text: str | None) -> tuple[str, ...]:
    """Base URLs from ``XPNET_MIRRORS``-style text: separated by commas or whitespace, each ending in ``/``."""
    if not text:
        return ()
    urls = [u for u in text.replace(",", " ").split() if u]
    for u in urls:
        if urllib.parse.urlsplit(u).scheme not in ("http", "https", "file"):
            raise DataError(f"mirror {u!r} is not an http://, https:// or file:// URL: fix {MIRRORS_ENV} or --mirror")
    return tuple(u if u.endswith("/") else u + "/" for u in urls)


def source_for(name: str, mirrors: Sequence[str] | None = None) -> Source:
    """The `Source` of data set ``name``; ``mirrors`` (else ``$XPNET_MIRRORS``) replaces its mirror list."""
    if name not in SOURCES:
        raise DataError(f"{name} has no download source: choose one of {', '.join(SOURCES)}")
    chosen = tuple(mirrors) if mirrors else parse_mirrors(os.environ.get(MIRRORS_ENV))
    return SOURCES[name].with_mirrors(chosen) if chosen else SOURCES[name]


class MissingData(DataError):
    """A data set's files are missing: a short message, and as ``details`` what each mirror answered and where
    to put which files."""


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
    f: BinaryIO,
    accepted: Sequence[str],
    timeout: float,
    progress: Callable[[int, int | None], None] | None,
    until: float,
) -> None:
    """Write what ``url`` holds to ``f`` (`files.atomic_write`'s file, which keeps it only if this returns).

    Every failure of the mirror is a `_Rejected`: the transfer fails, its checksum matches none of
    ``accepted``, or it is still receiving at ``until`` (a `time.monotonic` instant). An `OSError` of ``f``
    (the local disk) is left to `files.atomic_write`.
    """
    request = urllib.request.Request(url, headers={"User-Agent": USER_AGENT})
    hashes = {"md5": hashlib.md5(), "sha256": hashlib.sha256()}
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            length = response.headers.get("Content-Length")
            total = int(length) if length and length.isdigit() else None
            done = 0
            read = getattr(response, "read1", response.read)  # what has arrived: read() waits for all CHUNK
            while chunk := read(CHUNK):
                if time.monotonic() > until:
                    raise _Unreachable(f"too slow: {done} bytes when the download deadline passed")
                f.write(chunk)
                for h in hashes.values():
                    h.update(chunk)
                done += len(chunk)
                if progress is not None:
                    progress(done, total)
    except urllib.error.HTTPError as e:
        raise _Rejected(f"HTTP {e.code} {e.reason}") from None
    except urllib.error.URLError as e:
        if isinstance(e.reason, FileNotFoundError):  # a file:// mirror without this file
            raise _Rejected("no such file") from None
        if isinstance(e.reason, ssl.SSLCertVerificationError):
            raise _Unreachable("TLS certificate not trusted (set SSL_CERT_FILE to your CA bundle)") from None
        # Refused, DNS failure, timeout: the host itself is out of reach.
        why = reason(e.reason) if isinstance(e.reason, BaseException) else e.reason
        raise _Unreachable(f"cannot connect: {why}") from None
    except TimeoutError:
        raise _Unreachable(f"no data for {timeout:g} s") from None
    except (http.client.HTTPException, ConnectionError, ssl.SSLError) as e:
        raise _Rejected(f"transfer failed: {type(e).__name__} {e}") from None
    if total is not None and done != total:
        raise _Rejected(f"transfer cut short at {done} of {total} bytes")
    digests = {algo: h.hexdigest() for algo, h in hashes.items()}
    if not matches(digests, accepted):
        raise _Rejected(f"checksum mismatch (md5 {digests['md5']}, expected {' or '.join(accepted)})")


def missing_message(
    source: Source, directory: Path, reasons: Sequence[str] = (), offline: bool = False
) -> tuple[str, list[str]]:
    """What to say when files are missing and the download failed: a short message, and as details each
    mirror's answer, then where to put which files and the alternatives."""
    details = [f"  {reason}" for reason in reasons]
    if offline:
        details.append("  behind a proxy? set HTTPS_PROXY")
    details += fix_lines(list(source.digests), directory)
    details.append(f"or set {MIRRORS_ENV} or --mirror to a reachable mirror, or use --dataset digits (no download)")
    return f"{source.name} not found in {directory}, and the download failed:", details


def fix_lines(files: Sequence[str], directory: Path) -> list[str]:
    """Where the missing ``files`` go, wrapped to lines of about 100 characters: both missing-data messages
    say it."""
    text = f"put {', '.join(files)} in {directory} (or pass --data-dir DIR),"
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
    try:
        made = make_folders(directory)  # removed again if nothing arrives
    except OSError as e:
        raise DownloadError(f"cannot create data directory {directory}: {reason(e)}; pass --data-dir DIR") from None
    if not os.access(directory, os.W_OK):  # a bad request (exit 2), unlike a disk that fills up on the way
        raise DownloadError(f"cannot write in data directory {directory}: permission denied; pass --data-dir DIR")
    unreachable: set[str] = set()  # mirrors skipped from now on
    try:
        for name in names:
            reasons = []
            for base in source.mirrors:
                host = urllib.parse.urlsplit(base).netloc or base
                if base in unreachable:
                    continue
                bar = progress(name) if progress is not None else None
                try:
                    accepted = source.digests[name]
                    receive = partial(fetch, base + name, accepted=accepted, timeout=timeout, progress=bar, until=until)
                    atomic_write(directory / name, receive)
                    break
                except WriteError as e:  # a full disk, a quota
                    why = f"{e.reason}; free space or pass --data-dir DIR"
                    raise DownloadError(f"cannot write {directory / name}: {why}", exit_status=1) from None
                except _Rejected as e:
                    if isinstance(e, _Unreachable):
                        unreachable.add(base)
                    reasons.append(f"{name} from {host}: {e}")
            else:
                if not reasons:
                    reasons.append("no mirrors configured" if not source.mirrors else "no reachable mirror left")
                message, details = missing_message(source, directory, reasons, offline=bool(unreachable))
                raise DownloadError(message, details=details)
    except BaseException:
        remove_folders(made)
        raise
    return [directory / name for name in names]


def _deadline() -> float:
    text = os.environ.get(DEADLINE_ENV, "")
    try:
        value = float(text) if text else DEADLINE_S
    except ValueError:
        value = -1.0
    if not value > 0:
        raise DataError(f"{DEADLINE_ENV}={text!r} is not a positive number of seconds: fix or unset it")
    return value
