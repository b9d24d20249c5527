"""``python -m xpnet.serve --model model.npz``: a local page to draw a digit (or drop a picture) and watch the
model answer. ``POST /predict`` answers what ``xpnet predict --json`` prints for one picture; `PREPARING`
pictures are prepared at once (one may cost a hundred MB), and forward passes run one at a time on the thread
that made the backend (a GPU library's current device is per thread). `cli.webserver` is the HTTP side.
"""

from __future__ import annotations

import argparse
import base64
import contextlib
import functools
import io
import queue
import re
import sys
import threading
import webbrowser
from collections.abc import Callable, Sequence
from concurrent.futures import Future
from datetime import datetime, timezone
from types import ModuleType
from typing import Any

import numpy as np

from .backend import resolve_backend
from .cli import common as cli
from .cli.webserver import MAX_BODY, Server, make_server
from .data.pictures import PictureError, import_pillow, prepare_bytes
from .errors import say
from .predict import answer
from .training.model import Model, load

PROG = "xpnet.serve"
PREPARING = 4  # pictures decoded and prepared at once: bounds the memory that many clients can make it use
SLOT_SECONDS = 5.0  # a picture waits this long for a free preparation, then is a 503: busy
MAX_NAME = 255  # characters of the ?file= name a record carries
ANSWER_SECONDS = 60.0  # a forward pass not done by then is a 500, not a request that hangs


def build_parser() -> cli.ArgumentParser:
    p = cli.ArgumentParser(
        prog=cli.program("serve"),
        description="Serve a model trained by python -m xpnet.train --save on a local web page: draw a digit "
        "(mouse, touch or pen) or drop a picture, and read the model's answer as you draw. POST /predict "
        "answers what predict --json prints for one picture.",
        epilog=cli.epilog(
            "python -m xpnet.serve --model model.npz --open",
            {
                2: "bad input: a flag, the --model file, an address or port it cannot listen on, Pillow missing",
                130: "stopped by Ctrl-C (the normal way to stop it)",
                143: "stopped by SIGTERM",
            },
        ),
    )
    p.add_argument("--model", required=True, metavar="PATH", help="a checkpoint written by xpnet.train --save")
    where = "where to listen (default: 127.0.0.1, this machine only; 0.0.0.0: every interface, the network)"
    p.add_argument("--host", default="127.0.0.1", metavar="ADDRESS", help=where)
    p.add_argument("--port", type=port, default=8000, metavar="N", help="the port (default: 8000; 0 takes a free one)")
    p.add_argument("--open", action="store_true", help="open the page in the default web browser")
    cli.add_device_flags(p)
    return p


def port(text: str) -> int:
    value = cli.non_negative_int(text)
    if value > 65535:
        raise argparse.ArgumentTypeError(f"must be a port number from 0 to 65535, got {text}")
    return value


def load_model(path: str, device: str = "cpu", backend: str | None = None) -> Model:
    """The model at ``path`` on ``device`` (and ``backend``); one-line errors, and a model that reads no
    pictures is refused before a backend is made."""
    model = load(path)
    model.picture_layout()
    return model.on(resolve_backend(device, backend))


def picture_record(
    model: Model,
    data: bytes,
    file: str,
    top: int = 1,
    *,
    pil: ModuleType | None = None,
    seen: bool = False,
    forward: Callable[[np.ndarray], tuple[np.ndarray, np.ndarray]] | None = None,
) -> dict[str, Any]:
    """What ``xpnet predict --json --top TOP`` prints for a file ``file`` holding ``data`` (``{"file", "error"}``
    when unreadable); ``seen`` adds the image the model saw as a PNG ``data:`` URL; ``forward``: `Model.classify`."""
    try:
        pixels = prepare_bytes(data, pil, model.picture_layout(), file)
    except (PictureError, ValueError, MemoryError) as e:  # BlankImage is a ValueError
        return {"file": file, "error": str(e) if not isinstance(e, MemoryError) else "too large to prepare in memory"}
    classes, probs = (forward or model.classify)(pixels.reshape(1, -1))
    found = answer(file, probs[0], int(classes[0]), model.names, top)
    if seen and pil is not None:
        buf = io.BytesIO()
        pil.fromarray(pixels, mode="L").save(buf, format="PNG")
        found["seen"] = "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode()
    return found


def model_info(model: Model) -> dict[str, Any]:
    """What ``GET /model`` answers; ``saved`` is the file's time (a checkpoint is written as training goes)."""
    c, kept = model.config, model.state.kept
    saved = datetime.fromtimestamp(model.path.stat().st_mtime, timezone.utc).isoformat(timespec="seconds")
    return {
        "file": str(model.path),
        "dataset": model.dataset,
        "classes": list(model.names),
        "layers": model.sizes,
        "side": model.picture_layout().side,
        "activation": c.activation,
        "dtype": c.dtype,
        "epoch": kept.epoch if kept else 0,
        "test_accuracy": kept.test_accuracy if kept else None,
        "val_accuracy": kept.val_accuracy if kept else None,
        "saved": saved,
        "backend": str(model.backend),
        "max_body": MAX_BODY,
    }


class Stopping(RuntimeError):
    """The server stopped before a forward pass it was asked for could run."""


class DeviceThread:
    """Runs calls one at a time on the thread that calls `run`: the one that made the backend."""

    def __init__(self) -> None:
        self.jobs: queue.SimpleQueue[tuple[Future, Callable[..., Any], tuple]] = queue.SimpleQueue()
        self.stopped = threading.Event()

    def call(self, fn: Callable[..., Any], *args: Any) -> Any:
        """``fn(*args)`` run on the device thread: its result, or its exception."""
        done: Future = Future()
        self.jobs.put((done, fn, args))
        if self.stopped.is_set():
            self.stop()
        return done.result(timeout=ANSWER_SECONDS)

    def run(self) -> None:
        """Run the calls as they come, until `stop`; a Ctrl-C in the thread that runs it ends it too."""
        while not self.stopped.is_set():
            with contextlib.suppress(queue.Empty):
                done, fn, args = self.jobs.get(timeout=0.25)
                if done.set_running_or_notify_cancel():
                    try:
                        done.set_result(fn(*args))
                    except Exception as e:
                        done.set_exception(e)
                    except BaseException:  # Ctrl-C during a forward pass: its caller gets an answer, then we stop
                        done.set_exception(Stopping("the server is stopping"))
                        raise

    def stop(self) -> None:
        """Stop `run` and fail the calls still waiting, so that no request hangs."""
        self.stopped.set()
        with contextlib.suppress(queue.Empty):
            while True:
                done, _, _ = self.jobs.get_nowait()
                if done.set_running_or_notify_cancel():
                    done.set_exception(Stopping("the server is stopping"))


class Service:
    """What `cli.webserver` serves for one model: ``POST /predict`` and ``GET /model``."""

    def __init__(self, model: Model, pil: ModuleType, device: DeviceThread):
        self.model, self.pil, self.device = model, pil, device
        self.slots, self.description = threading.BoundedSemaphore(PREPARING), model_info(model)

    def describe(self) -> dict[str, Any]:
        return self.description

    def predict(self, body: bytes, query: dict[str, str]) -> tuple[int, dict[str, Any]]:
        """Query: ``top`` (classes listed, default 1), ``file`` (the name the record and messages carry,
        default ``picture``), ``seen=1`` (add the image the model saw)."""
        file, top = query.get("file", "picture"), query.get("top", "1")
        if not re.fullmatch("[0-9]{1,9}", top) or int(top) < 1:  # ASCII digits: int() also reads "٣"
            return 400, {"error": f"?top={top[:20]} must be a positive whole number, like ?top=3"}
        if len(file) > MAX_NAME:
            return 400, {"error": f"?file= is {len(file)} characters long; give at most {MAX_NAME}"}
        forward = functools.partial(self.device.call, self.model.classify)
        seen = query.get("seen") in ("1", "true")
        if not self.slots.acquire(timeout=SLOT_SECONDS):
            return 503, {"error": f"busy preparing {PREPARING} other pictures; try again in a moment"}
        try:
            found = picture_record(self.model, body, file, int(top), pil=self.pil, seen=seen, forward=forward)
        except Stopping as e:
            return 503, {"error": str(e)}
        finally:
            self.slots.release()
        return (400 if "error" in found else 200), found


def start(model: Model, pil: ModuleType, host: str = "127.0.0.1", port: int = 0) -> tuple[Server, DeviceThread]:
    """A server for ``model`` on ``host``:``port``, its HTTP loop in a daemon thread; the caller runs the
    `DeviceThread` (``run``) and, to stop, calls its ``stop`` and the server's ``shutdown``."""
    device = DeviceThread()
    server = make_server(Service(model, pil, device), host, port)
    threading.Thread(target=server.serve_forever, args=(0.1,), name="xpnet-serve-http", daemon=True).start()
    return server, device


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    model = load_model(args.model, args.device, args.backend)
    cli.announce(model.backend, args.verbose)
    pil = import_pillow()
    server, device = start(model, pil, args.host, args.port)
    try:
        say(f"serving {model.path} ({model.describe()}; {model.backend}) at {server.url}")
        if not server.loopback:
            say(
                f"{PROG}: listening on {args.host}: the page is reachable from the network, by anyone "
                "who can reach this machine; --host 127.0.0.1 keeps it to this machine",
                file=sys.stderr,
            )
        say("press Ctrl-C to stop", file=sys.stderr)
        if args.open and not webbrowser.open(server.url):
            say(f"{PROG}: no web browser could be opened here; open {server.url} yourself", file=sys.stderr)
        device.run()  # until Ctrl-C (KeyboardInterrupt: exit status 130) or SIGTERM (143)
    finally:
        device.stop()
        server.shutdown()
        server.server_close()
    return 0


if __name__ == "__main__":
    sys.exit(cli.run(main, prog=PROG))
