"""``xpnet serve``: a local page to draw a digit (or drop a picture) and watch the model answer. ``POST /predict``
answers what ``xpnet predict --json`` prints for one picture, ``GET /model`` describes the model. Each limit
(connections, request time, body, Host, Origin, pictures prepared at once) holds before any work is done."""

from __future__ import annotations

import argparse
import base64
import contextlib
import io
import ipaddress
import json
import re
import socket
import sys
import threading
import time
import webbrowser
from collections.abc import Sequence
from concurrent.futures import Executor, ThreadPoolExecutor
from datetime import datetime, timezone
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from importlib import resources
from types import ModuleType
from typing import Any
from urllib.parse import parse_qsl, urlsplit

from .cli import common as cli
from .data.pictures import import_pillow, prepare_bytes
from .errors import XpnetError, escaped, one_line, reason, say
from .predict import answer, load_model, tool_parser
from .training.model import Model

PROG = "xpnet.serve"
PREPARING = 3  # pictures prepared at once: each may cost 250 MB, and eight hostile ones must stay under 1 GB
SLOT_SECONDS = 5.0  # a picture waits this long for a free preparation, then is a 503: busy
MAX_NAME = 255  # characters of the ?file= name a record carries
ANSWER_SECONDS = 60.0  # a forward pass not done by then is a 500, not a request that hangs
MAX_BODY = 10 << 20
TIMEOUT = 20.0  # seconds a request may take to arrive, counted from the end of the one before on its connection
CONNECTIONS = 32  # connections served at once, each on a thread of its own
BACKLOG = 1024  # connections the kernel queues meanwhile: 200 clients at once must not wait for a retry
DRAIN = (1 << 20, 1.0)  # after a 413: at most this many bytes, or seconds, read and dropped before closing
PAGE_FILES = {"index.html": "text/html", "app.js": "text/javascript", "style.css": "text/css"}  # all UTF-8
# The page and its scripts come from this server only; the picture the model saw is a data: URL.
PAGE_POLICY = "default-src 'self'; img-src 'self' data: blob:; object-src 'none'; base-uri 'none'; form-action 'none'"
SAFE = {"Cache-Control": "no-store", "X-Content-Type-Options": "nosniff", "Referrer-Policy": "no-referrer"}
SAFE["Content-Security-Policy"] = PAGE_POLICY


def build_parser() -> cli.ArgumentParser:
    p = tool_parser(
        "serve",
        "Serve a model trained by xpnet train --save on a local web page: draw a digit (mouse, touch or pen) or "
        "drop a picture, and read its answer as you draw; POST /predict answers what predict --json prints.",
        "--open",
        {2: "bad input: a flag, the --model file, an address or port it cannot listen on, Pillow missing"},
    )
    where = "where to listen (default: 127.0.0.1, this machine only; 0.0.0.0: every interface, the network)"
    p.add_argument("--host", default="127.0.0.1", metavar="ADDRESS", help=where)
    p.add_argument("--port", type=port, default=8000, metavar="N", help="the port (default: 8000; 0 takes a free one)")
    p.add_argument("--open", action="store_true", help="open the page in the default web browser")
    cli.add_device_flags(p)
    return p


def port(text: str) -> int:
    if (value := cli.non_negative_int(text)) > 65535:
        raise argparse.ArgumentTypeError(f"must be a port number from 0 to 65535, got {text}")
    return value


def picture_record(
    model: Model, data: bytes, file: str, top: int, pil: ModuleType, seen: bool = False, device: Executor | None = None
) -> dict[str, Any]:
    """What ``xpnet predict --json --top TOP`` prints for a file ``file`` holding ``data`` (``{"file", "error"}``
    if unreadable); ``seen`` adds the image the model saw as a PNG ``data:`` URL; ``device`` runs the forward pass."""
    layout = model.picture_layout()  # outside the try: a model that reads no pictures is no fault of the file's
    try:
        pixels = prepare_bytes(data, pil, layout, file)
    except (ValueError, MemoryError) as e:  # PictureError among them
        return {"file": file, "error": str(e) if not isinstance(e, MemoryError) else "too large to prepare in memory"}
    rows = pixels.reshape(1, -1)
    classes, probs = device.submit(model.classify, rows).result(ANSWER_SECONDS) if device else model.classify(rows)
    found = answer(file, probs[0], int(classes[0]), model.names, top)
    if seen:
        buf = io.BytesIO()
        pil.fromarray(pixels, mode="L").save(buf, format="PNG")
        found["seen"] = "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode()
    return found


def model_info(model: Model) -> dict[str, Any]:
    """What ``GET /model`` answers; ``saved`` is the file's time (a checkpoint is written as training goes)."""
    return {
        "file": str(model.path),
        "dataset": model.dataset,
        "classes": list(model.names),
        "layers": model.sizes,
        "side": model.picture_layout().side,
        "activation": model.activation,
        "dtype": model.config.dtype,
        "epoch": model.kept_epoch,
        "test_accuracy": getattr(model.state.kept, "test_accuracy", None),
        "val_accuracy": getattr(model.state.kept, "val_accuracy", None),
        "saved": datetime.fromtimestamp(model.path.stat().st_mtime, timezone.utc).isoformat(timespec="seconds"),
        "backend": str(model.backend),
        "max_body": MAX_BODY,
    }


def is_loopback(host: str) -> bool:
    """Whether ``host`` (a name or an address, IPv6 in brackets or not) can only be reached from this machine."""
    name = host.strip("[]").lower()
    with contextlib.suppress(ValueError):
        return ipaddress.ip_address(name).is_loopback
    return name == "localhost" or name.endswith(".localhost")


class Server(ThreadingHTTPServer):
    """A thread per connection, `CONNECTIONS` at most (daemons: a stuck client never holds up the exit); the forward
    passes run on ``device``, the thread that made the backend (a GPU library's device is per thread)."""

    daemon_threads = True
    request_queue_size = BACKLOG

    def __init__(self, model: Model, pil: ModuleType, host: str, port: int, device: Executor | None = None):
        host = host.strip("[]")
        self.address_family = socket.AF_INET6 if ":" in host else socket.AF_INET
        self.model, self.pil, self.about = model, pil, model_info(model)
        self.device = device or ThreadPoolExecutor(1, thread_name_prefix="xpnet-device")
        # Not on each connection's thread: glibc keeps what a thread freed for it, so memory would grow with them.
        self.pool = ThreadPoolExecutor(PREPARING, thread_name_prefix="xpnet-prepare")
        self.free, self.slots = threading.BoundedSemaphore(CONNECTIONS), threading.BoundedSemaphore(PREPARING)
        self.stopping = threading.Event()
        try:
            self.files = {name: resources.files("xpnet").joinpath("static", name).read_bytes() for name in PAGE_FILES}
        except OSError as e:
            raise XpnetError(f"xpnet/static lacks the page's files ({one_line(e)}); reinstall xpnet") from None
        try:
            super().__init__((host, port), Handler)
        except socket.gaierror as e:
            raise XpnetError(f"--host {host} is not an address here ({one_line(e)}); try 127.0.0.1") from None
        except OSError as e:
            raise XpnetError(f"cannot listen on {host} port {port} ({reason(e)}): choose another --port") from None
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

    def server_close(self) -> None:
        """Close the socket and cancel the calls still waiting for a thread (their requests get a 503)."""
        self.stopping.set()
        super().server_close()
        for pool in (self.device, self.pool):
            pool.shutdown(wait=False, cancel_futures=True)

    @property
    def url(self) -> str:
        """The address to open in a browser: a wildcard address is reached through this machine's loopback."""
        host, port = str(self.server_address[0]), self.server_address[1]
        host = {"0.0.0.0": "127.0.0.1", "::": "::1"}.get(host, host)
        return f"http://{f'[{host}]' if ':' in host else host}:{port}/"


class Deadline(socket.SocketIO):
    """A connection's bytes, read until its ``deadline`` (set by `Handler`): a trickle holds a thread that long."""

    def readinto(self, buffer: Any) -> int | None:
        if (left := self.deadline - time.monotonic()) <= 0:
            raise TimeoutError("the request took too long to arrive")
        self._sock.settimeout(left)
        return super().readinto(buffer)


class Handler(BaseHTTPRequestHandler):
    """GET / and /static/<file> (the page), GET /model, POST /predict; anything else is a JSON error."""

    protocol_version = "HTTP/1.1"  # keep-alive: a page drawing a digit sends a request every few strokes
    timeout = TIMEOUT
    # Headers and body leave in two writes: Nagle's algorithm would hold the second for a delayed ACK (40 ms).
    disable_nagle_algorithm = True
    server: Server

    def setup(self) -> None:
        super().setup()
        self.rfile.close()  # the standard reader: replaced by one that keeps the deadline
        self.rfile = io.BufferedReader(Deadline(self.connection, "rb"))

    def handle_one_request(self) -> None:
        self.rfile.raw.deadline, self.body_read = time.monotonic() + self.timeout, False
        self.headers = {}  # until parsed: an error before that ends the connection
        super().handle_one_request()

    def respond(self) -> None:
        parts, host = urlsplit(self.path), self.headers.get("Host", "").strip()
        path, query = parts.path or "/", dict(parse_qsl(parts.query, keep_blank_values=True))
        name = "index.html" if path in ("/", "/index.html") else path.removeprefix("/static/")
        page = name in self.server.files and (path.startswith("/static/") or name == "index.html")
        origin, site = self.headers.get("Origin"), self.headers.get("Sec-Fetch-Site", "same-origin")
        if self.server.loopback and host and not is_loopback(host[: host.find("]") + 1] or host.rsplit(":", 1)[0]):
            self.send_error(403, f"this server answers only this machine: open {self.server.url} (not {host[:100]})")
        elif self.command not in ("GET", "HEAD", "POST"):
            self.send_error(405, f"{self.command} is not served; GET / is the page", None, {"Allow": "GET, HEAD, POST"})
        elif self.command == "POST" and path != "/predict":
            known = path in ("/", "/model") or path.startswith("/static/")
            self.send_error(405 if known else 404, f"POST a picture to /predict, not to {path[:200]}")
        elif self.command == "POST" and (site not in ("same-origin", "none") or origin not in (None, f"http://{host}")):
            self.send_error(403, "a page of another site cannot send pictures here; open the page of this server")
        elif self.command == "POST":
            if (body := self.read_body()) is not None:
                self.send(*self.predict(body, query))
        elif path == "/model":
            self.send(200, self.server.about)
        elif page:
            self.send(200, self.server.files[name], f"{PAGE_FILES[name]}; charset=utf-8")
        elif path == "/predict":
            self.send_error(405, "POST the picture's bytes to /predict", None, {"Allow": "POST"})
        else:
            self.send_error(404, f"no such page: {path[:200]}; the page is at /")

    do_GET = do_HEAD = do_POST = do_PUT = do_DELETE = do_PATCH = do_OPTIONS = respond

    def predict(self, body: bytes, query: dict[str, str]) -> tuple[int, dict[str, Any]]:
        """Query: ``top`` (classes listed, default 1), ``file`` (the name the record and messages carry,
        default ``picture``), ``seen=1`` (add the image the model saw)."""
        file, top, server = query.get("file", "picture"), query.get("top", "1"), self.server
        if not re.fullmatch("[0-9]{1,9}", top) or int(top) < 1:  # ASCII digits: int() also reads "٣"
            return 400, {"error": f"?top={top[:20]} must be a positive whole number, like ?top=3"}
        if len(file) > MAX_NAME:
            return 400, {"error": f"?file= is {len(file)} characters long; give at most {MAX_NAME}"}
        if not server.slots.acquire(timeout=SLOT_SECONDS):
            return 503, {"error": f"busy preparing {PREPARING} other pictures; try again in a moment"}
        job = (server.model, body, file, int(top), server.pil, query.get("seen") in ("1", "true"), server.device)
        try:
            found = server.pool.submit(picture_record, *job).result()
        except Exception as e:
            if server.stopping.is_set():  # cancelled, or refused, as the server closes
                return 503, {"error": "the server is stopping"}
            say(f"xpnet serve: {self.command} {self.path[:200]}: {one_line(e, named=True)}", file=sys.stderr)
            return 500, {"error": f"internal error: {one_line(e, named=True)}"}
        finally:
            server.slots.release()
        return (400 if "error" in found else 200), found

    def length(self) -> int | None:
        """The declared Content-Length; None unless ASCII digits (``int`` also reads ``٣``, ``1_0``, ``+5``)."""
        text = (self.headers.get("Content-Length") or "").strip()
        return (int(text) if len(text) < 19 else 1 << 64) if re.fullmatch("[0-9]+", text) else None

    def read_body(self) -> bytes | None:
        """The body, read once its declared length is known and within `MAX_BODY`; else None, answered."""
        n = self.length()
        if not n or "chunked" in self.headers.get("Transfer-Encoding", "").lower():  # no body, or one of unknown length
            code = 400 if "Content-Length" in self.headers else 411
            self.send_error(code, "POST the picture's bytes with a Content-Length header (not chunked)")
        elif n > MAX_BODY:
            self.send_error(413, f"the body is more than {MAX_BODY >> 20} MiB (the most xpnet serve reads); shrink it")
            self.wfile.flush()  # then read and drop a little of the body, so that the client reads the 413
            self.rfile.raw.deadline = time.monotonic() + DRAIN[1]  # before the close (unread data would reset it)
            with contextlib.suppress(OSError):
                self.rfile.read(DRAIN[0])
        else:
            body, self.body_read = self.rfile.read(n), True
            if len(body) == n:
                return body
            self.close_connection = True  # the client left before sending it all: nobody to answer
        return None

    def handle_expect_100(self) -> bool:
        """``Expect: 100-continue`` (curl, before a large body): a body over the limit is refused unsent."""
        return (self.length() or 0) > MAX_BODY or super().handle_expect_100()

    def send_error(self, code: int, message: str = "", explain: Any = None, headers: dict | None = None) -> None:
        """Every error as one line of JSON, the standard library's too (400, 414, 431, 501...); a declared body
        left unread ends the connection (else it would read as the next request)."""
        if not self.body_read and (self.length() != 0 or "Transfer-Encoding" in self.headers):
            headers = {**(headers or {}), "Connection": "close"}
        with contextlib.suppress(OSError):
            self.send(code, {"error": message or self.responses[code][0]}, headers=headers)

    def send(self, code: int, body: bytes | dict, kind: str = "application/json", headers: dict | None = None) -> None:
        """``body``, or a JSON object, whose error leaves on one line whatever names it quotes."""
        if isinstance(body, dict):
            body = json.dumps({**body, "error": escaped(body["error"])} if "error" in body else body).encode()
        self.connection.settimeout(self.timeout)  # the answer's own time, whatever the request left
        self.send_response(code)
        for key, value in {"Content-Type": kind, "Content-Length": str(len(body)), **SAFE, **(headers or {})}.items():
            self.send_header(key, value)
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:
        """Quiet: no line per request (a drawing sends several a second)."""


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    with ThreadPoolExecutor(1, thread_name_prefix="xpnet-device") as device:  # the backend's thread
        model = device.submit(load_model, args.model, args.device, args.backend).result()
        cli.announce(model.backend, args.verbose)
        with Server(model, import_pillow(), args.host, args.port, device) as server:
            say(f"serving {model.path} ({model.describe()}; {model.backend}) at {server.url}")
            if not server.loopback:
                say(f"{PROG}: listening on {args.host}: the page is reachable from the network", file=sys.stderr)
            say("press Ctrl-C to stop", file=sys.stderr)
            if args.open and not webbrowser.open(server.url):
                say(f"{PROG}: no web browser could be opened here; open {server.url} yourself", file=sys.stderr)
            server.serve_forever(0.1)  # until Ctrl-C (KeyboardInterrupt: exit status 130) or SIGTERM (143)
    return 0


if __name__ == "__main__":
    sys.exit(cli.run(main, prog=PROG))
