"""The HTTP side of ``xpnet serve``: a threading server on one address, its routes, its limits, JSON replies.

It knows nothing of models: it serves the page's files (``xpnet/static``, read once at start) and hands the
body of ``POST /predict`` to an `App`. Limits, each enforced before any work: a body is read only when its
Content-Length is at most `MAX_BODY` (else 413, the body left unread), a connection idle for `TIMEOUT`
seconds is closed, and a server bound to a loopback address answers only requests that name a loopback host,
so that a web page elsewhere cannot reach it through DNS rebinding. Nothing is written to disk.
"""

from __future__ import annotations

import ipaddress
import json
import socket
import sys
import time
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from importlib import resources
from typing import Any, Protocol
from urllib.parse import parse_qsl, urlsplit

from ..errors import XpnetError, escaped, one_line, reason, say

MAX_BODY = 10 << 20
MAX_BODY_TEXT = "10 MiB"
TIMEOUT = 20.0  # seconds a connection may stay silent, mid-request or between keep-alive requests
BACKLOG = 1024  # connections the kernel queues before accept: 200 clients at once must not wait for a retry
DRAIN = (1 << 20, 1.0)  # after a 413: at most this many bytes, or seconds, read and dropped before closing
PAGE_FILES = {
    "index.html": "text/html; charset=utf-8",
    "app.js": "text/javascript; charset=utf-8",
    "style.css": "text/css; charset=utf-8",
}
# The page and its scripts come from this server only; the picture the model saw is a data: URL.
PAGE_POLICY = "default-src 'self'; img-src 'self' data: blob:; object-src 'none'; base-uri 'none'; form-action 'none'"


class App(Protocol):
    """What the server serves: answers for ``POST /predict`` and ``GET /model``, as (status, JSON object)."""

    def predict(self, body: bytes, query: dict[str, str]) -> tuple[int, dict[str, Any]]: ...

    def describe(self) -> dict[str, Any]: ...


def page_files() -> dict[str, bytes]:
    """The page's files, from the installed package; a one-line error when the install lacks them."""
    folder = resources.files("xpnet").joinpath("static")
    try:
        return {name: folder.joinpath(name).read_bytes() for name in PAGE_FILES}
    except OSError as e:
        raise XpnetError(f"the page's files are missing from xpnet/static ({one_line(e)}); reinstall xpnet") from None


def is_loopback(host: str) -> bool:
    """Whether ``host`` (a name or an address, IPv6 in brackets or not) can only be reached from this machine."""
    name = host.strip("[]").lower()
    if name == "localhost" or name.endswith(".localhost"):
        return True
    try:
        return ipaddress.ip_address(name).is_loopback
    except ValueError:
        return False


def host_of(header: str) -> str:
    """The host of a Host header, less its port: ``127.0.0.1:8000`` -> ``127.0.0.1``, ``[::1]:80`` -> ``[::1]``."""
    text = header.strip()
    return text[: text.find("]") + 1] if text.startswith("[") else text.rsplit(":", 1)[0]


class Server(ThreadingHTTPServer):
    """One thread per connection (daemon threads: a stuck client never holds up the exit)."""

    daemon_threads = True
    request_queue_size = BACKLOG

    def __init__(self, address: tuple[str, int], app: App, files: dict[str, bytes]):
        host = address[0].strip("[]")
        self.address_family = socket.AF_INET6 if ":" in host else socket.AF_INET
        self.app, self.files = app, files
        super().__init__((host, address[1]), Handler)
        self.loopback = is_loopback(str(self.server_address[0]))

    @property
    def url(self) -> str:
        """The address to open in a browser: a wildcard address is reached through this machine's loopback."""
        host, port = str(self.server_address[0]), self.server_address[1]
        host = {"0.0.0.0": "127.0.0.1", "::": "::1"}.get(host, host)
        return f"http://{f'[{host}]' if ':' in host else host}:{port}/"


def make_server(app: App, host: str, port: int) -> Server:
    """A `Server` listening on ``host``:``port`` (0: any free port); a one-line error when it cannot listen."""
    files = page_files()
    try:
        return Server((host, port), app, files)
    except socket.gaierror as e:
        raise XpnetError(f"--host {host} is not an address here ({one_line(e)}); try 127.0.0.1") from None
    except OSError as e:
        why = reason(e)
        raise XpnetError(
            f"cannot listen on {host} port {port} ({why}): choose another --port (0 takes a free one)"
        ) from None


class Handler(BaseHTTPRequestHandler):
    """GET / and /static/<file> (the page), GET /model, POST /predict; anything else is a JSON error."""

    protocol_version = "HTTP/1.1"  # keep-alive: a page drawing a digit sends a request every few strokes
    timeout = TIMEOUT
    # The headers and the body leave in two writes: with Nagle's algorithm the second waits for the client's
    # delayed ACK of the first, 40 ms on Linux, twice the whole answer's budget.
    disable_nagle_algorithm = True
    server: Server
    head_only = body_read = False  # until a request is parsed (the standard library may refuse it first)

    def parse_request(self) -> bool:
        """The standard parse, then this request's state: one connection carries many requests."""
        self.head_only, self.body_read = False, False
        return super().parse_request()

    def do_GET(self) -> None:
        path, _ = self.target()
        if path is None:
            return
        name = "index.html" if path in ("/", "/index.html") else path.removeprefix("/static/")
        if path == "/model":
            self.send_json(*self.call(lambda: (200, self.server.app.describe())))
        elif name in self.server.files and (path.startswith("/static/") or name == "index.html"):
            self.send_body(200, self.server.files[name], PAGE_FILES[name], {"Content-Security-Policy": PAGE_POLICY})
        elif path == "/predict":
            self.fail(405, "POST the picture's bytes to /predict", {"Allow": "POST"})
        else:
            self.fail(404, f"no such page: {path[:200]}; the page is at /")

    def do_HEAD(self) -> None:
        self.head_only = True
        self.do_GET()

    def do_POST(self) -> None:
        path, query = self.target()
        if path is None:
            return
        if path != "/predict":
            known = path in ("/", "/model") or path.startswith("/static/")
            self.fail(405 if known else 404, f"POST a picture to /predict, not to {path[:200]}")
            return
        body = self.read_body()
        if body is not None:
            self.send_json(*self.call(lambda: self.server.app.predict(body, query)))

    def do_other(self) -> None:
        self.fail(405, f"{self.command} is not served: GET / for the page, POST /predict", {"Allow": "GET, HEAD, POST"})

    do_PUT = do_DELETE = do_PATCH = do_OPTIONS = do_other

    def target(self) -> tuple[str | None, dict[str, str]]:
        """The path and query of the request; (None, {}) after refusing a foreign Host on a loopback server."""
        host = self.headers.get("Host")
        if self.server.loopback and host is not None and not is_loopback(host_of(host)):
            self.fail(403, f"this server answers only this machine: open {self.server.url} (not {host[:100]})")
            return None, {}
        parts = urlsplit(self.path)
        return parts.path or "/", dict(parse_qsl(parts.query, keep_blank_values=True))

    def read_body(self) -> bytes | None:
        """The request body, read only once its declared length is known and within `MAX_BODY`; else None
        (after answering, or when the client left before sending it all)."""
        if "chunked" in self.headers.get("Transfer-Encoding", "").lower():
            self.fail(411, "send the picture with a Content-Length header, not chunked", {"Connection": "close"})
            self.close_connection = True
            return None
        text = self.headers.get("Content-Length")
        if text is None or not text.strip().isdigit():
            self.fail(411 if text is None else 400, "send the picture's bytes with a Content-Length header")
            self.close_connection = self.close_connection or text is not None  # a bad length: where would it end?
            return None
        n = int(text)
        if self.refuse_large():
            self.drain()
            return None
        if n == 0:
            self.fail(400, "the body is empty: POST the picture's bytes (PNG, JPEG or .npy)")
            return None
        body = self.rfile.read(n)
        self.body_read = True
        if len(body) < n:  # the client closed the connection early: nobody to answer
            self.close_connection = True
            return None
        return body

    def refuse_large(self) -> bool:
        """Answer 413 and close when the declared body is over `MAX_BODY`; whether it was."""
        text = (self.headers.get("Content-Length") or "").strip()
        if not text.isdigit() or int(text) <= MAX_BODY:
            return False
        message = (
            f"the body is {text} bytes, more than {MAX_BODY_TEXT} (the most xpnet serve reads); shrink the picture"
        )
        self.fail(413, message, {"Connection": "close"})
        self.close_connection = True
        return True

    def handle_expect_100(self) -> bool:
        """``Expect: 100-continue`` (curl sends it before a large body): a body over the limit is refused before
        the client sends it."""
        return False if self.refuse_large() else super().handle_expect_100()

    def drain(self) -> None:
        """Read and drop a little of an unwanted body, so that the client reads the 413 before the connection
        closes (closing with unread data resets it, which can discard the answer), never all of it."""
        self.wfile.flush()
        most, seconds = DRAIN
        deadline = time.monotonic() + seconds
        try:
            while most > 0 and (left := deadline - time.monotonic()) > 0:
                self.connection.settimeout(left)
                got = self.connection.recv(min(most, 1 << 16))
                if not got:
                    break
                most -= len(got)
        except OSError:
            pass

    def call(self, answer: Any) -> tuple[int, dict[str, Any]]:
        """``answer()``, a (status, JSON object); an unexpected failure is a 500 with one line, and the server
        goes on answering."""
        try:
            return answer()
        except Exception as e:
            say(f"xpnet serve: {self.command} {self.path[:200]}: {one_line(e, named=True)}", file=sys.stderr)
            return 500, {"error": f"internal error: {one_line(e, named=True)}"}

    def fail(self, status: int, message: str, headers: dict[str, str] | None = None) -> None:
        """A one-line JSON error. A body the request declared and that was not read ends the connection: its
        bytes would otherwise be read as the next request."""
        headers_in = getattr(self, "headers", None) or {}
        declared = (headers_in.get("Content-Length") or "0").strip() != "0" or headers_in.get("Transfer-Encoding")
        if declared and not self.body_read:
            self.close_connection = True
            headers = {**(headers or {}), "Connection": "close"}
        self.send_json(status, {"error": message}, headers)

    def send_json(self, status: int, answer: dict[str, Any], headers: dict[str, str] | None = None) -> None:
        if isinstance(answer.get("error"), str):  # every error leaves on one line, whatever names it quotes
            answer = {**answer, "error": escaped(answer["error"])}
        self.send_body(status, json.dumps(answer).encode(), "application/json", headers)

    def send_body(self, status: int, body: bytes, kind: str, headers: dict[str, str] | None = None) -> None:
        self.send_response(status)
        for key, value in {
            "Content-Type": kind,
            "Content-Length": str(len(body)),
            "Cache-Control": "no-store",
            "X-Content-Type-Options": "nosniff",
            "Referrer-Policy": "no-referrer",
            **(headers or {}),
        }.items():
            self.send_header(key, value)
        self.end_headers()
        if not self.head_only:
            self.wfile.write(body)

    def send_error(self, code: int, message: str | None = None, explain: str | None = None) -> None:
        """The standard library's replies to a malformed request (400, 414, 431, 501...), as one-line JSON."""
        self.close_connection = True
        text = message or HTTPStatus(code).phrase
        try:
            self.fail(code, one_line(Exception(text)), {"Connection": "close"})
        except OSError:
            pass

    def log_message(self, format: str, *args: Any) -> None:
        """Quiet: no line per request (a drawing sends several a second)."""
