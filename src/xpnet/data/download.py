"""The named sets' IDX files from mirrors in order, each kept when a published checksum matches; a mirror out of reach
is skipped, and all ends by a deadline (pooch 1.8 takes one URL per file, no file://, and has no overall deadline)."""

import contextlib
import hashlib
import http.client
import os
import ssl
import textwrap
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Mapping, Sequence
from functools import partial
from pathlib import Path
from typing import BinaryIO, NamedTuple

from .. import __version__
from ..errors import DataError, reason
from ..files import WriteError, atomic_write
from .npy import open_regular

USER_AGENT = f"xpnet/{__version__} (Python-urllib/{urllib.request.__version__}; dataset download)"
TIMEOUT_S = 5.0  # per connect and per read: an offline machine with three mirrors answers within about 15 s
DEADLINE_S = 1800.0  # for the whole download: MNIST's 55 MB at 30 kB/s
DEADLINE_ENV, MIRRORS_ENV = "XPNET_DOWNLOAD_DEADLINE", "XPNET_MIRRORS"
TOO_SLOW = "too slow: the download deadline passed"


class Source(NamedTuple):
    """Where a data set's files come from: base URLs tried in order, and the digests each file must match."""

    name: str
    mirrors: tuple[str, ...]
    digests: Mapping[str, tuple[str, ...]]  # file name -> ("md5:<hex>", "sha256:<hex>", ...)


# Published checksums: MNIST's MD5 as torchvision lists them, Fashion-MNIST's SHA-256 as Keras does (the authors').
SOURCES = {
    "mnist": Source(
        "mnist",
        (
            "https://ossci-datasets.s3.amazonaws.com/mnist/",  # torchvision's mirror
            "https://storage.googleapis.com/cvdf-datasets/mnist/",  # TensorFlow's tutorial mirror
            "http://yann.lecun.com/exdb/mnist/",  # the original site, which has answered 403/404 for years
        ),
        {
            "train-images-idx3-ubyte.gz": ("md5:f68b3c2dcbeaaa9fbdd348bbdeb94873",),
            "train-labels-idx1-ubyte.gz": ("md5:d53e105ee54ea40749a09fcbcd1e9432",),
            "t10k-images-idx3-ubyte.gz": ("md5:9fb629c4189551a2d022fa330f9573f3",),
            "t10k-labels-idx1-ubyte.gz": ("md5:ec29112dd5afa0611ce80d1b7f02629c",),
        },
    ),
    "fashion-mnist": Source(
        "fashion-mnist",
        (
            "https://storage.googleapis.com/tensorflow/tf-keras-datasets/",  # Keras' mirror
            "http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/",  # the authors' (torchvision's)
            "https://raw.githubusercontent.com/zalandoresearch/fashion-mnist/master/data/fashion/",
        ),
        {
            "train-images-idx3-ubyte.gz": ("sha256:3aede38d61863908ad78613f6a32ed271626dd12800ba2636569512369268a84",),
            "train-labels-idx1-ubyte.gz": ("sha256:a04f17134ac03560a47e3764e11b92fc97de4d1bfaf8ba1a3aa29af54cc90845",),
            "t10k-images-idx3-ubyte.gz": ("sha256:346e55b948d973a97e58d2351dde16a484bd415d4595297633bb08f03db6a073",),
            "t10k-labels-idx1-ubyte.gz": ("sha256:67da17c76eaffca5446c3361aaab5c3cd6d1c2608764d35dfb1850b086bf8dd5",),
        },
    ),
}


def parse_mirrors(text: str | Sequence[str] | None, where: str = "{name}") -> tuple[str, ...]:
    """Base URLs ending in ``/``, from a list or text separated by commas or spaces; a bad one is to fix ``where``."""
    urls = text.replace(",", " ").split() if isinstance(text, str) else list(text or ())
    for url in urls:
        with contextlib.suppress(ValueError):  # urlsplit refuses a malformed IPv6 address, .port one out of range
            parts = urllib.parse.urlsplit(url)
            if parts.scheme == "file" or (parts.scheme in ("http", "https") and parts.hostname and parts.port != 0):
                continue
        raise DataError(f"mirror {url!r} is not an http://, https:// or file:// URL: fix {where}", parameter="mirrors")
    return tuple(u if u.endswith("/") else u + "/" for u in urls)


def source_for(name: str, mirrors: Sequence[str] | None = None) -> Source:
    """``name``'s `Source`, its mirrors replaced by ``mirrors`` (else ``$XPNET_MIRRORS``), ``{dataset}`` by ``name``."""
    chosen = parse_mirrors(mirrors) if mirrors else parse_mirrors(os.environ.get(MIRRORS_ENV), MIRRORS_ENV)
    return SOURCES[name]._replace(mirrors=tuple(m.replace("{dataset}", name) for m in chosen or SOURCES[name].mirrors))


class MissingData(DataError):
    """A data set's files are missing (where to put which files: the ``details``)."""


class DownloadError(MissingData):
    """No mirror delivered a file whose checksum matched."""


class _Rejected(Exception):
    """One mirror failed for one file (the message says why): the next mirror is tried."""


class _Unreachable(_Rejected):
    """The mirror is out of reach, or the deadline passed: it is skipped for the remaining files."""


def _opener(until: float) -> urllib.request.OpenerDirector:
    """urllib's HTTP(S) whose every read ends by ``until``: a server dripping its answer cannot outlast it."""

    def response(sock, *args, **kwargs) -> http.client.HTTPResponse:
        answer, timeout = http.client.HTTPResponse(sock, *args, **kwargs), sock.gettimeout()
        read = answer.fp.raw.readinto  # the socket's, below the buffer that every read of the answer goes through

        def readinto(buffer) -> int | None:
            if (left := until - time.monotonic()) <= 0:
                raise TimeoutError(TOO_SLOW)
            sock.settimeout(min(left, timeout))
            return read(buffer)

        answer.fp.raw.readinto = readinto
        return answer

    class Handler(urllib.request.HTTPHandler, urllib.request.HTTPSHandler):
        def do_open(self, http_class, request, **kwargs):  # each connection reads its answers through `response`
            connection = type("Connection", (http_class,), {"response_class": staticmethod(response)})
            return super().do_open(connection, request, **kwargs)

    return urllib.request.build_opener(Handler)


def fetch(url: str, accepted: Sequence[str], timeout: float, progress, until: float, f: BinaryIO) -> None:
    """Write ``url`` to ``f``, calling ``progress(done, total)``: any failure of the mirror is a `_Rejected`."""
    hashes, done = {algo: hashlib.new(algo) for algo in {a.partition(":")[0] for a in accepted}}, 0
    try:
        if url.startswith("file:"):
            try:  # refuses a FIFO, which urllib's open would wait on forever
                response = open_regular(Path(urllib.request.url2pathname(urllib.parse.urlsplit(url).path)))
            except OSError as e:
                raise _Rejected(f"cannot read: {reason(e)}") from None
        elif (left := until - time.monotonic()) > 0:
            request = urllib.request.Request(url, headers={"User-Agent": USER_AGENT})
            response = _opener(until).open(request, timeout=min(timeout, left))
        else:
            raise TimeoutError(TOO_SLOW)
        with response:
            total = getattr(response, "length", None)  # an HTTP answer's Content-Length
            while chunk := response.read1(1 << 16):  # what has arrived: read() would wait for all 64 KiB
                f.write(chunk)
                for h in hashes.values():
                    h.update(chunk)
                done += len(chunk)
                progress(done, total)
    except urllib.error.HTTPError as e:
        raise _Rejected(f"HTTP {e.code} {e.reason}") from None
    except urllib.error.URLError as e:  # refused, DNS failure, timeout: the host itself is out of reach
        raise _Unreachable(f"cannot connect: {reason(e.reason)}") from None
    except TimeoutError:
        raise _Unreachable(TOO_SLOW if time.monotonic() >= until else f"no data for {timeout:g} s") from None
    except (http.client.HTTPException, ConnectionError, ssl.SSLError) as e:
        raise _Rejected(f"transfer failed: {type(e).__name__} {e}") from None
    if total is not None and done != total:
        raise _Rejected(f"transfer cut short at {done} of {total} bytes")
    if not set(got := [f"{algo}:{h.hexdigest()}" for algo, h in hashes.items()]) & set(accepted):
        raise _Rejected(f"checksum mismatch ({' '.join(got)}, expected {' or '.join(accepted)})")


def fix_lines(files: Sequence[str], directory: Path, other: str) -> list[str]:
    """Where the missing ``files`` go, or the ``other`` way, wrapped to lines of about 100 characters."""
    text = f"put {', '.join(files)} in {directory}, or {other}"
    return textwrap.wrap(text, 100, break_long_words=False, break_on_hyphens=False)


def download(
    source: Source,
    directory: str | Path,
    files: Sequence[str] | None = None,
    timeout: float = TIMEOUT_S,
    progress: Callable[[str], Callable[[int, int | None], None]] | None = None,
    deadline: float | None = None,
) -> list[Path]:
    """``files`` (default: all) into ``directory`` by ``deadline`` s (`DEADLINE_ENV`); else `DownloadError`."""
    text = os.environ.get(DEADLINE_ENV) or str(DEADLINE_S)
    if deadline is None and not (text.replace(".", "", 1).isdigit() and float(text) > 0):
        raise DataError(f"{DEADLINE_ENV}={text!r} is not a positive number of seconds: fix or unset it")
    until, directory = time.monotonic() + (float(text) if deadline is None else deadline), Path(directory)
    names, unreachable = list(source.digests if files is None else files), set()
    for name in names:
        reasons = []
        for base in (m for m in source.mirrors if m not in unreachable):
            bar = progress(name) if progress is not None else lambda done, total: None
            try:  # atomic_write removes the folders it made for a file that does not arrive
                atomic_write(directory / name, partial(fetch, base + name, source.digests[name], timeout, bar, until))
                break
            except WriteError as e:  # a full disk, a quota, a folder one may not write in
                message = f"cannot write {directory / name}: {e.reason}; choose another {{name}}"
                raise DownloadError(message, exit_status=1, parameter="data_dir") from None
            except _Rejected as e:
                if isinstance(e, _Unreachable):
                    unreachable.add(base)
                reasons.append(f"  {name} from {urllib.parse.urlsplit(base).netloc or base}: {e}")
        else:
            reasons = reasons or [f"  {'no reachable mirror left' if source.mirrors else 'no mirrors configured'}"]
            proxy = ["  behind a proxy? set HTTPS_PROXY"] if unreachable else []
            fix = fix_lines(list(source.digests), directory, f"set {MIRRORS_ENV}, or use the digits set (no download)")
            message = f"{source.name} not found in {directory}, and the download failed (try other {{name}}):"
            raise DownloadError(message, details=[*reasons, *proxy, *fix], parameter="mirrors")
    return [directory / name for name in names]
