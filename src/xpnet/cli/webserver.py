"""The HTTP side of ``xpnet serve``: routes, limits and JSON replies; it serves the page (``xpnet/static``) and
hands ``POST /predict`` and ``GET /model`` to an app (``predict(body, query)``, ``describe()``) that knows the model.

Limits, each enforced before any work: `CONNECTIONS` connections served at once (more wait in the kernel's
queue), a request due whole within `TIMEOUT` seconds, a body read only when its Content-Length is at most
`MAX_BODY`, only loopback Host names on a loopback server (no DNS rebinding), no POST from another site's page.
"""

from __future__ import annotations

import contextlib
import io
import ipaddress
import json
import re
import socket
import sys
import threading
import time
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from importlib import resources
from typing import Any
from urllib.parse import parse_qsl, urlsplit

from ..errors import XpnetError, escaped, one_line, reason, say

MAX_BODY = 10 << 20
MAX_BODY_TEXT = "10 MiB"
TIMEOUT = 20.0  # seconds a request may take to arrive, counted from the end of the one before on its connection
CONNECTIONS = 32  # connections served at once, each on a thread of its own
BACKLOG = 1024  # connections the kernel queues meanwhile: 200 clients at once must not wait for a retry
DRAIN = (1 << 20, 1.0)  # after a 413: at most this many bytes, or seconds, read and dropped before closing
PAGE_FILES = {"index.html": "text/html", "app.js": "text/javascript", "style.css": "text/css"}  # all UTF-8
SAFE = {"Cache-Control": "no-store", "X-Content-Type-Options": "nosniff", "Referrer-Policy": "no-referrer"}
# The page and its scripts come from this server only; the picture the model saw is a data: URL.
PAGE_POLICY = "default-src 'self'; img-src 'self' data: blob:; object-src 'none'; base-uri 'none'; form-action 'none'"


def is_loopback(host: str) -> bool:
    """Whether ``host`` (a name or an address, IPv6 in brackets or not) can only be reached from this machine."""
    name = host.strip("[]").lower()
    with contextlib.suppress(ValueError):
        return ipaddress.ip_address(name).is_loopback
    return name == "localhost" or name.endswith(".localhost")


class Server(ThreadingHTTPServer):
    """A thread per connection, `CONNECTIONS` at most (daemon threads: a stuck client never holds up the exit)."""

    daemon_threads = True
    request_queue_size = BACKLOG

    def __init__(self, address: tuple[str, int], app: Any, files: dict[str, bytes]):
        host = address[0].strip("[]")
        self.address_family = socket.AF_INET6 if ":" in host else socket.AF_INET
        self.app, self.files = app, files
        self.free, self.stopping = threading.BoundedSemaphore(CONNECTIONS), threading.Event()
        super().__init__((host, address[1]), Handler)
        self.loopback = is_loopback(str(self.server_address[0]))

    def process_request(self, request: Any, address: Any) -> None:
        """Serve the connection once a thread is free; until then, accept no other."""
        while not self.free.acquire(timeout=0.1):
            if self.stopping.is_set():
                self.shutdown_request(request)
                return
        super().process_request(request, address)

    def process_request_thread(self, request: Any, address: Any) -> None:
        try:
            super().process_request_thread(request, address)
        finally:
            self.free.release()

    def handle_error(self, request: Any, address: Any) -> None:
        """Silent on a client that left early (a reset, a broken pipe): that is no error of the server's."""
        if not isinstance(e := sys.exc_info()[1], OSError):
            say(f"xpnet serve: {one_line(e, named=True)}", file=sys.stderr)

    def shutdown(self) -> None:
        self.stopping.set()
        super().shutdown()

    @property
    def url(self) -> str:
        """The address to open in a browser: a wildcard address is reached through this machine's loopback."""
        host, port = str(self.server_address[0]), self.server_address[1]
        host = {"0.0.0.0": "127.0.0.1", "::": "::1"}.get(host, host)
        return f"http://{f'[{host}]' if ':' in host else host}:{port}/"


def make_server(app: Any, host: str, port: int) -> Server:
    """A `Server` for ``app`` on ``host``:``port`` (0: any free port); a one-line error when it cannot listen."""
    folder = resources.files("xpnet").joinpath("static")
    try:
        files = {name: folder.joinpath(name).read_bytes() for name in PAGE_FILES}
    except OSError as e:
        raise XpnetError(f"the page's files are missing from xpnet/static ({one_line(e)}); reinstall xpnet") from None
    try:
        return Server((host, port), app, files)
    except socket.gaierror as e:
        raise XpnetError(f"--host {host} is not an address here ({one_line(e)}); try 127.0.0.1") from None
    except OSError as e:
        raise XpnetError(
            f"cannot listen on {host} port {port} ({reason(e)}): choose another --port (0 takes a free one)"
        ) from None


class Deadline(io.RawIOBase):
    """A connection's bytes, read until its handler's deadline: a trickle holds a thread that long, no longer."""

    def __init__(self, handler: Handler):
        self.handler = handler

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        left = self.handler.deadline - time.monotonic()
        if left <= 0:
            raise TimeoutError("the request took too long to arrive")
        self.handler.connection.settimeout(left)
        return self.handler.connection.recv_into(buffer)


class Handler(BaseHTTPRequestHandler):
    """GET / and /static/<file> (the page), GET /model, POST /predict; anything else is a JSON error."""

    protocol_version = "HTTP/1.1"  # keep-alive: a page drawing a digit sends a request every few strokes
    timeout = TIMEOUT
    # The headers and the body leave in two writes: with Nagle's algorithm the second waits for the client's
    # delayed ACK of the first, 40 ms on Linux, twice the whole answer's budget.
    disable_nagle_algorithm = True
    server: Server

    def setup(self) -> None:
        super().setup()
        self.rfile.close()  # the standard reader: replaced by one that keeps the deadline
        self.rfile = io.BufferedReader(Deadline(self))

    def handle_one_request(self) -> None:
        self.deadline, self.body_read = time.monotonic() + self.timeout, False
        super().handle_one_request()

    def respond(self) -> None:
        parts, host = urlsplit(self.path), self.headers.get("Host", "").strip()
        path, query = parts.path or "/", dict(parse_qsl(parts.query, keep_blank_values=True))
        name = "index.html" if path in ("/", "/index.html") else path.removeprefix("/static/")
        page = name in self.server.files and (path.startswith("/static/") or name == "index.html")
        origin, site = self.headers.get("Origin"), self.headers.get("Sec-Fetch-Site", "same-origin")
        if self.server.loopback and host and not is_loopback(host[: host.find("]") + 1] or host.rsplit(":", 1)[0]):
            self.fail(403, f"this server answers only this machine: open {self.server.url} (not {host[:100]})")
        elif self.command not in ("GET", "HEAD", "POST"):
            allow = {"Allow": "GET, HEAD, POST"}
            self.fail(405, f"{self.command} is not served: GET / for the page, POST /predict", allow)
        elif self.command == "POST" and path != "/predict":
            known = path in ("/", "/model") or path.startswith("/static/")
            self.fail(405 if known else 404, f"POST a picture to /predict, not to {path[:200]}")
        elif self.command == "POST" and (site not in ("same-origin", "none") or origin not in (None, f"http://{host}")):
            self.fail(403, "a page of another site cannot send pictures here; open the page of this server")
        elif self.command == "POST":
            if (body := self.read_body()) is not None:
                self.send_json(*self.call(lambda: self.server.app.predict(body, query)))
        elif path == "/model":
            self.send_json(*self.call(lambda: (200, self.server.app.describe())))
        elif page:
            kind = f"{PAGE_FILES[name]}; charset=utf-8"
            self.send_body(200, self.server.files[name], kind, {"Content-Security-Policy": PAGE_POLICY})
        elif path == "/predict":
            self.fail(405, "POST the picture's bytes to /predict", {"Allow": "POST"})
        else:
            self.fail(404, f"no such page: {path[:200]}; the page is at /")

    do_GET = do_HEAD = do_POST = do_PUT = do_DELETE = do_PATCH = do_OPTIONS = respond

    def length(self) -> int | None:
        """The declared Content-Length; None unless ASCII digits (``int`` also reads ``٣``, ``1_0``, ``+5``)."""
        text = (self.headers.get("Content-Length") or "").strip()
        return (int(text) if len(text) < 19 else 1 << 64) if re.fullmatch("[0-9]+", text) else None

    def read_body(self) -> bytes | None:
        """The body, read once its declared length is known and within `MAX_BODY`; else None, answered."""
        n = self.length()
        if "chunked" in self.headers.get("Transfer-Encoding", "").lower():
            self.fail(411, "send the picture with a Content-Length header, not chunked")
        elif n is None:
            missing = self.headers.get("Content-Length") is None
            self.fail(411 if missing else 400, "send the picture's bytes with a Content-Length header")
        elif self.refuse_large():
            self.wfile.flush()  # then read and drop a little of the body, so that the client reads the 413
            self.deadline = time.monotonic() + DRAIN[1]  # before the close (unread data would reset it)
            with contextlib.suppress(OSError):
                self.rfile.read(DRAIN[0])
        elif n == 0:
            self.fail(400, "the body is empty: POST the picture's bytes (PNG, JPEG or .npy)")
        else:
            body, self.body_read = self.rfile.read(n), True
            if len(body) == n:
                return body
            self.close_connection = True  # the client left before sending it all: nobody to answer
        return None

    def refuse_large(self) -> bool:
        """Answer 413 when the declared body is over `MAX_BODY`; whether it was."""
        if (self.length() or 0) <= MAX_BODY:
            return False
        self.fail(413, f"the body is more than {MAX_BODY_TEXT} (the most xpnet serve reads); shrink the picture")
        return True

    def handle_expect_100(self) -> bool:
        """``Expect: 100-continue`` (curl, before a large body): a body over the limit is refused unsent."""
        return not self.refuse_large() and super().handle_expect_100()

    def call(self, answer: Any) -> tuple[int, dict[str, Any]]:
        """``answer()``, a (status, JSON object); an unexpected failure is a 500 with one line."""
        try:
            return answer()
        except Exception as e:
            say(f"xpnet serve: {self.command} {self.path[:200]}: {one_line(e, named=True)}", file=sys.stderr)
            return 500, {"error": f"internal error: {one_line(e, named=True)}"}

    def fail(self, status: int, message: str, headers: dict[str, str] | None = None) -> None:
        """A JSON error; a declared body left unread ends the connection (else it would read as a request)."""
        if not self.body_read and (self.length() != 0 or "Transfer-Encoding" in self.headers):
            self.close_connection = True
            headers = {**(headers or {}), "Connection": "close"}
        self.send_json(status, {"error": message}, headers)

    def send_json(self, status: int, answer: dict[str, Any], headers: dict[str, str] | None = None) -> None:
        if isinstance(answer.get("error"), str):  # every error leaves on one line, whatever names it quotes
            answer = {**answer, "error": escaped(answer["error"])}
        self.send_body(status, json.dumps(answer).encode(), "application/json", headers)

    def send_body(self, status: int, body: bytes, kind: str, headers: dict[str, str] | None = None) -> None:
        self.connection.settimeout(self.timeout)  # the answer's own time, whatever the request left
        self.send_response(status)
        for key, value in {"Content-Type": kind, "Content-Length": str(len(body)), **SAFE, **(headers or {})}.items():
            self.send_header(key, value)
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def send_error(self, code: int, message: str | None = None, explain: str | None = None) -> None:
        """The standard library's replies to a malformed request (400, 414, 431, 501...), as one-line JSON."""
        self.close_connection = True
        with contextlib.suppress(OSError):
            self.send_json(code, {"error": message or HTTPStatus(code).phrase}, {"Connection": "close"})

    def log_message(self, format: str, *args: Any) -> None:
        """Quiet: no line per request (a drawing sends several a second)."""
