"""``xpnet serve`` (issue 24): the page, ``POST /predict`` (the record ``predict --json`` prints), ``GET /model``,
and hostile requests: huge bodies, broken pictures, bombs, odd paths, slow and many clients.

Every server listens on 127.0.0.1, on a free port, and is started and stopped by its test; every wait is
bounded. Most run in this process (`serving`); one runs the command in a fresh process to see Ctrl-C's exit
status, its memory and that nothing was written to disk.
"""

from __future__ import annotations

import base64
import contextlib
import http.client
import io
import json
import os
import re
import signal
import socket
import struct
import subprocess
import sys
import threading
import time
import zlib
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import quote, urlsplit

import numpy as np
import pytest

from helpers import SRC, run_cli, run_train, seven
from xpnet import predict, serve
from xpnet.training.model import Model

Image = pytest.importorskip("PIL.Image", reason="xpnet serve reads pictures with Pillow")
ROOT = Path(__file__).resolve().parents[1]
WAIT = 30.0  # seconds any one answer may take on a loaded two-core machine


@pytest.fixture(scope="module")
def model(mnist) -> Model:
    """The MNIST-shaped model of conftest (28x28 pictures, centred by mass), loaded for serving on the CPU."""
    return serve.load_model(str(mnist[1]), "cpu")


@contextlib.contextmanager
def serving(model: Model) -> Iterator[str]:
    """A server for ``model`` on 127.0.0.1 (a free port), its loop on a thread here; yields its URL."""
    server = serve.Server(model, Image, "127.0.0.1", 0)
    loop = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    loop.start()
    try:
        yield server.url.rstrip("/")
    finally:
        server.shutdown()
        server.server_close()
        loop.join(WAIT)


@pytest.fixture(scope="module")
def url(model) -> Iterator[str]:
    with serving(model) as u:
        yield u


def request(url: str, method: str, path: str, body: bytes | None = None, headers: dict | None = None):
    """(status, headers, body) of one request on a fresh connection."""
    parts = urlsplit(url)
    conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=WAIT)
    try:
        conn.request(method, path, body=body, headers=headers or {})
        r = conn.getresponse()
        return r.status, dict(r.getheaders()), r.read()
    finally:
        conn.close()


def post(url: str, body: bytes, query: str = "") -> tuple[int, dict]:
    status, headers, raw = request(url, "POST", f"/predict{query}", body)
    assert headers["Content-Type"] == "application/json"
    return status, json.loads(raw)


def png(pixels: np.ndarray, mode: str | None = None) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(pixels, mode=mode).save(buf, format="PNG")
    return buf.getvalue()


def drawn_seven() -> bytes:
    """A 280x280 PNG as the page sends a drawn 7: a dark stroke, 20 pixels wide, on a white opaque RGBA canvas."""
    from PIL import ImageDraw

    canvas = Image.new("RGBA", (280, 280), "white")
    ImageDraw.Draw(canvas).line([(60, 60), (220, 60), (120, 240)], fill="#111", width=20, joint="curve")
    buf = io.BytesIO()
    canvas.save(buf, format="PNG")
    return buf.getvalue()


@pytest.fixture(scope="module")
def pictures(tmp_path_factory, mnist) -> list[Path]:
    """Pictures of every kind predict reads or refuses: PNG, JPEG, .npy, RGBA, blank, a text file, a bomb."""
    folder = tmp_path_factory.mktemp("pictures")
    data = mnist[0]
    (folder / "drawn.png").write_bytes(drawn_seven())
    Image.fromarray(np.rint(255 * seven()).astype(np.uint8)).save(folder / "seven.jpg", quality=80)
    np.save(folder / "test-0.npy", data.x_test[0].reshape(28, 28))
    np.save(folder / "row-1.npy", data.x_test[1])  # a flattened data set row
    (folder / "test-2.png").write_bytes(png(255 - data.x_test[2].reshape(28, 28)))  # dark on light
    (folder / "blank.png").write_bytes(png(np.full((50, 50), 255, np.uint8)))
    (folder / "notes.txt").write_text("not a picture\n")
    (folder / "wide.png").write_bytes(bomb_png(12000, 6000))  # 72 megapixels
    (folder / "cut.png").write_bytes(drawn_seven()[:300])
    return sorted(folder.iterdir())


def test_each_answer_is_the_record_predict_json_prints(model, url, pictures, capsys):
    """The page's answers equal ``xpnet predict --json`` on the same files: the function, and over HTTP."""
    for path in pictures:
        status, out, err = run_cli(
            capsys,
            predict.main,
            "xpnet.predict",
            ["--model", str(model.path), "--device", "cpu", "--json", "--top", "3", str(path)],
        )
        expected = json.loads(out)
        assert status == (1 if "error" in expected else 0), err
        data = path.read_bytes()
        assert serve.picture_record(model, data, str(path), 3, pil=Image) == expected, path.name
        code, answer = post(url, data, f"?top=3&file={quote(str(path))}")
        assert (code, answer) == (400 if "error" in expected else 200, expected), path.name
    kinds = {
        p.name: "error" in json.loads(json.dumps(serve.picture_record(model, p.read_bytes(), p.name, 1, pil=Image)))
        for p in pictures
    }
    assert kinds == {
        "blank.png": True,
        "cut.png": True,
        "notes.txt": True,
        "wide.png": True,
        "drawn.png": False,
        "row-1.npy": False,
        "seven.jpg": False,
        "test-0.npy": False,
        "test-2.png": False,
    }


def test_a_picture_folder_model_answers_with_its_folder_names(tmp_path, capsys, monkeypatch):
    """A model of ``--dataset folder --image-size 16``: its own layout and class names, as predict prints them."""
    import folder_sets

    monkeypatch.setenv("XPNET_DATA", str(tmp_path / "data"))
    root = folder_sets.write_digits(tmp_path / "pictures", per_class=(20, 3))
    argv = ["--dataset", "folder", "--data-dir", str(root), "--image-size", "16", "--epochs", "3", "--quiet"]
    assert run_train(capsys, *argv, "--device", "cpu", "--save", str(tmp_path / "m.npz"))[0] == 0
    model = serve.load_model(str(tmp_path / "m.npz"), "cpu")
    assert model.layout.side == 16 and describe_names(model) == [f"digit-{k}" for k in range(10)]
    for path in sorted((root / "test").glob("digit-[37]/*.png")):
        status, out, err = run_cli(
            capsys,
            predict.main,
            "xpnet.predict",
            ["--model", str(tmp_path / "m.npz"), "--json", "--top", "2", str(path)],
        )
        record = serve.picture_record(model, path.read_bytes(), str(path), 2, pil=Image)
        assert status == 0 and record == json.loads(out) and record["name"].startswith("digit-"), err


def describe_names(model: Model) -> list[str]:
    return serve.model_info(model)["classes"]


def test_a_drawn_seven_reads_seven(url):
    status, answer = post(url, drawn_seven(), "?file=drawing.png&top=10")
    assert status == 200 and answer["class"] == 7 and answer["name"] == "7"
    assert [c["class"] for c in answer["top"]][:1] == [7] and len(answer["top"]) == 10
    assert sum(c["probability"] for c in answer["top"]) == pytest.approx(1.0)
    assert post(url, drawn_seven(), "?top=99")[1]["top"] == answer["top"]  # as predict: at most every class
    assert post(url, drawn_seven())[1]["file"] == "picture"  # the name, when the client gives none


def test_seen_is_the_image_predict_saves(model, url, pictures, tmp_path, capsys):
    drawn = next(p for p in pictures if p.name == "drawn.png")
    status, answer = post(url, drawn.read_bytes(), "?seen=1")
    assert status == 200 and answer["seen"].startswith("data:image/png;base64,")
    seen = np.asarray(Image.open(io.BytesIO(base64.b64decode(answer["seen"].split(",", 1)[1]))))
    run_cli(
        capsys,
        predict.main,
        "xpnet.predict",
        ["--model", str(model.path), "--device", "cpu", "--save-input", str(tmp_path), str(drawn)],
    )
    saved = np.asarray(Image.open(tmp_path / "drawn.seen.png"))
    k = saved.shape[0] // 28
    assert seen.shape == (28, 28) and np.array_equal(saved[::k, ::k], seen)


def test_the_page_and_its_files_come_from_this_server_only(url):
    status, headers, page = request(url, "GET", "/")
    assert status == 200 and headers["Content-Type"].startswith("text/html")
    assert "default-src 'self'" in headers["Content-Security-Policy"]
    text = page.decode()
    assert "<canvas" in text and 'id="file"' in text and 'id="clear"' in text
    linked = re.findall(r'(?:src|href)="([^"]+)"', text)
    assert sorted(linked) == ["/static/app.js", "/static/style.css"]
    for name, kind in serve.PAGE_FILES.items():
        status, headers, body = request(url, "GET", f"/static/{name}")
        assert status == 200 and headers["Content-Type"] == f"{kind}; charset=utf-8"
        assert not re.search(rb"(?<![\w.])(https?:)?//[\w-]+\.", body), f"{name} names another site"
    assert request(url, "HEAD", "/")[0] == 200 and request(url, "HEAD", "/")[2] == b""


def test_the_model_is_described(model, url):
    status, _headers, raw = request(url, "GET", "/model")
    about = json.loads(raw)
    history = model.state.history
    assert status == 200 and about["dataset"] == "mnist" and about["classes"] == [str(i) for i in range(10)]
    assert about["layers"] == [784, 64, 10] and about["side"] == 28 and about["epoch"] == history[-1].epoch
    assert about["test_accuracy"] == history[-1].test_accuracy and about["backend"] == "numpy on cpu"
    assert about["max_body"] == serve.MAX_BODY and re.match(r"\d{4}-\d\d-\d\dT", about["saved"])


ODD = [
    ("GET", "/nope", 404),
    ("GET", "/static/", 404),
    ("GET", "/static/../serve.py", 404),
    ("GET", "/static/%2e%2e/serve.py", 404),
    ("GET", "//etc/passwd", 404),
    ("GET", "/static/app.js/x", 404),
    ("GET", "/index.html%00", 404),
    ("GET", "/%0a%0d", 404),
    ("GET", "/" + "a" * 5000, 404),
    ("GET", "/predict", 405),
    ("POST", "/", 405),
    ("POST", "/model", 405),
    ("POST", "/x", 404),
    ("PUT", "/predict", 405),
    ("DELETE", "/", 405),
    ("OPTIONS", "*", 405),
    ("BREW", "/", 501),
]


@pytest.mark.parametrize(("method", "path", "code"), ODD, ids=[f"{m} {p[:20]}" for m, p, _ in ODD])
def test_odd_paths_and_methods_are_one_line_json(url, method, path, code):
    status, headers, raw = request(url, method, path, b"x" if method in ("POST", "PUT") else None)
    assert status == code and headers["Content-Type"] == "application/json"
    message = json.loads(raw)["error"]
    assert message and "\n" not in message and len(message) < 400
    assert request(url, "GET", "/model")[0] == 200  # still answering


def raw_exchange(url: str, head: bytes, body: bytes = b"", wait: float = WAIT) -> bytes:
    """Send ``head`` and ``body`` on one socket and read until the server closes it (or ``wait`` passes)."""
    parts = urlsplit(url)
    with socket.create_connection((parts.hostname, parts.port), timeout=wait) as s:
        s.sendall(head + body)
        got = b""
        with contextlib.suppress(ConnectionResetError, TimeoutError):
            while chunk := s.recv(65536):
                got += chunk
        return got


def test_a_huge_body_is_refused_unread(url):
    """A body declared as 1 GB gets its 413 after 64 kB were sent: the server neither waits for the rest nor
    reads it, and closes the connection within its drain limit."""
    head = b"POST /predict HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 1000000000\r\n\r\n"
    start = time.monotonic()
    got = raw_exchange(url, head, bytes(65536))
    assert got.startswith(b"HTTP/1.1 413 ") and b"more than 10 MiB" in got
    assert time.monotonic() - start < serve.DRAIN[1] + 5
    post_head = b"POST /predict HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n"
    for head, code in [
        (post_head + b"Transfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n", 411),
        (post_head + b"Content-Length: -5\r\n\r\n", 400),
        (post_head + b"Content-Length: 0\r\n\r\n", 400),
        (post_head + b"\r\n", 411),
        (b"GET /" + b"x" * 70000 + b" HTTP/1.1\r\n\r\n", 414),
    ]:
        assert raw_exchange(url, head).startswith(f"HTTP/1.1 {code} ".encode()), head[:60]
    # curl asks before sending a large body (Expect: 100-continue): refused before a byte of it is sent.
    asked = raw_exchange(url, post_head + b"Content-Length: 50000000\r\nExpect: 100-continue\r\n\r\n")
    assert asked.startswith(b"HTTP/1.1 413 ") and b"100 Continue" not in asked
    # A line that is no HTTP request gets HTTP/0.9's answer, a body alone: still one line of JSON.
    assert json.loads(raw_exchange(url, b"GARBAGE\r\n\r\n"))["error"].startswith("Bad request syntax")
    assert post(url, drawn_seven())[0] == 200


def test_just_under_the_limit_is_read(url):
    body = drawn_seven()
    padded = body + bytes(serve.MAX_BODY - len(body))  # a PNG ignores what follows its end
    assert post(url, padded)[0] == 200


def test_broken_pictures_are_400_with_the_reason(url):
    obj = io.BytesIO()
    np.save(obj, np.array([{"a": 1}], dtype=object), allow_pickle=True)
    cases = {
        "random bytes": (np.random.default_rng(0).bytes(5000), "not a picture Pillow can read"),
        "a PNG cut short": (drawn_seven()[:500], "not a picture Pillow can read"),
        "a pickle": (obj.getvalue(), "pickled"),
        "an .npy declaring 80 GB": (npy_header((100_000, 100_000)), "more than xpnet reads as a picture"),
        "an .npy cut short": (npy_header((28, 28)) + bytes(10), "header declares 784 bytes"),
        "a white page": (png(np.full((280, 280), 255, np.uint8)), "no digit found"),
        "a 72-megapixel PNG": (bomb_png(12000, 6000), "more than xpnet reads"),
        "a 1-gigapixel PNG": (bomb_png(32000, 32000), "32000x32000 pixels, more than xpnet reads (16 megapixels"),
    }
    for what, (body, reason) in cases.items():
        status, answer = post(url, body, "?file=up.bin")
        assert status == 400 and answer["file"] == "up.bin" and reason in answer["error"], what
        assert "\n" not in answer["error"], what
    assert (
        post(url, drawn_seven(), "?top=0")[0] == 400
        and "positive whole number" in post(url, b"x", "?top=x")[1]["error"]
    )
    assert post(url, drawn_seven(), "?file=" + "n" * 300)[0] == 400
    status, answer = post(url, drawn_seven(), "?top=1%0A2")  # a newline the query decodes to stays escaped
    assert status == 400 and "\n" not in answer["error"] and "1\\n2" in answer["error"]


def bomb_png(width: int, height: int, whole: bool = False) -> bytes:
    """A grey PNG of ``width`` x ``height`` black pixels: its header and one small block of data, or (``whole``)
    all its rows, which zlib squeezes a thousandfold (81 megapixels: 80 kB)."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    squeeze = zlib.compressobj(9)
    row = bytes(1 + width)  # filter byte 0, then the pixels
    data = b"".join(squeeze.compress(row) for _ in range(height if whole else 1)) + squeeze.flush()
    header = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", data) + chunk(b"IEND", b"")


def npy_header(shape: tuple[int, ...]) -> bytes:
    buf = io.BytesIO()
    np.lib.format.write_array_header_1_0(buf, {"descr": "|u1", "fortran_order": False, "shape": shape})
    return buf.getvalue()


def test_a_foreign_host_is_refused_on_a_loopback_server(url):
    assert request(url, "GET", "/model", headers={"Host": "evil.example:8000"})[0] == 403
    for host in ("localhost:1", "127.0.0.1", "[::1]:8000", "app.localhost"):
        assert request(url, "GET", "/model", headers={"Host": host})[0] == 200, host
    for host in ("[::2]:80", "localhost.evil.com:80", "127.0.0.1.evil.com"):
        assert request(url, "GET", "/model", headers={"Host": host})[0] == 403, host
    assert serve.is_loopback("127.5.0.1") and not serve.is_loopback("0.0.0.0")
    assert not serve.is_loopback("192.168.1.2") and not serve.is_loopback("localhost.evil.com")


def test_two_hundred_clients_at_once_are_all_answered(url):
    body, n = drawn_seven(), 200
    answers: list = [None] * n
    barrier = threading.Barrier(n, timeout=WAIT)

    def client(i: int) -> None:
        barrier.wait()
        answers[i] = post(url, body, f"?file=c{i}.png")

    threads = [threading.Thread(target=client, args=(i,), daemon=True) for i in range(n)]
    for t in threads:
        t.start()
    deadline = time.monotonic() + 120
    for t in threads:
        t.join(max(0.0, deadline - time.monotonic()))
    assert not any(t.is_alive() for t in threads), "some clients got no answer in 2 minutes"
    assert all(a is not None and a[0] == 200 and a[1]["file"] == f"c{i}.png" for i, a in enumerate(answers))
    assert len({json.dumps(a[1]["top"]) for a in answers}) == 1  # the same picture, the same answer


def test_keep_alive_and_a_silent_client(model, monkeypatch):
    monkeypatch.setattr(serve.Handler, "timeout", 0.5)
    with serving(model) as u:
        parts = urlsplit(u)
        conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=WAIT)
        for _ in range(3):  # one connection, three answers
            conn.request("POST", "/predict", body=drawn_seven())
            assert conn.getresponse().read() and conn.sock is not None
        conn.request("HEAD", "/")
        assert conn.getresponse().read() == b""
        conn.request("GET", "/")  # a HEAD before it on the connection does not cut this body
        assert conn.getresponse().read().startswith(b"<!doctype html>")
        conn.close()
        # A refused request's unread body must not be read as the next request: the connection ends.
        smuggled = b"GET /model HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n"
        head = b"POST /model HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: %d\r\n\r\n" % len(smuggled)
        got = raw_exchange(u, head + smuggled, wait=10)
        assert got.startswith(b"HTTP/1.1 405 ") and got.count(b"HTTP/1.1 ") == 1
        with socket.create_connection((parts.hostname, parts.port), timeout=WAIT) as silent:
            silent.sendall(b"POST /predict HTTP/1.1\r\nContent-Length: 100\r\n\r\nonly a few bytes")
            assert request(u, "GET", "/model")[0] == 200  # others are answered meanwhile
            start = time.monotonic()
            assert silent.recv(1000) == b""  # closed once silent for the timeout
            assert time.monotonic() - start < 10


def test_the_backend_is_made_and_used_on_one_thread(model, monkeypatch, capsys):
    """A GPU library's current device is per thread: the command makes the backend on the device thread, and
    every forward pass runs there, whichever thread prepared the picture."""
    made, used = [], []
    resolve, classify, serve_forever = predict.resolve_backend, Model.classify, serve.Server.serve_forever
    monkeypatch.setattr(predict, "resolve_backend", lambda *a: made.append(threading.current_thread()) or resolve(*a))
    monkeypatch.setattr(Model, "classify", lambda m, rows: used.append(threading.current_thread()) or classify(m, rows))

    def serve_then_stop(server, poll_interval):  # a few requests, then Ctrl-C
        threading.Thread(target=serve_forever, args=(server, 0.05), daemon=True).start()
        for _ in range(4):
            assert post(server.url.rstrip("/"), drawn_seven())[0] == 200
        server.shutdown()
        raise KeyboardInterrupt

    monkeypatch.setattr(serve.Server, "serve_forever", serve_then_stop)
    argv = ["--model", str(model.path), "--device", "cpu", "--port", "0"]
    status, _, err = run_cli(capsys, serve.main, "xpnet.serve", argv)
    assert status == 130 and len(made) == 1 and len(used) == 4, err
    assert set(used) == set(made) and made[0] is not threading.current_thread()


def test_a_request_caught_by_the_close_is_a_503(model, monkeypatch):
    """A picture still being prepared when the server closes gets its answer: busy, the server is stopping."""
    started, release, prepare = threading.Event(), threading.Event(), serve.prepare_bytes

    def slow_prepare(*args):
        started.set()
        release.wait(WAIT)
        return prepare(*args)

    monkeypatch.setattr(serve, "prepare_bytes", slow_prepare)
    answers = []
    with serving(model) as url:
        client = threading.Thread(target=lambda: answers.append(post(url, drawn_seven())), daemon=True)
        client.start()
        assert started.wait(WAIT)
    release.set()
    client.join(WAIT)
    assert answers == [(503, {"error": "the server is stopping"})]


def test_a_failing_preparation_is_a_500_and_the_server_goes_on(model, monkeypatch, capfd):
    def broken(*args, **kwargs):
        raise RuntimeError("boom\nsecond line")

    monkeypatch.setattr(serve, "prepare_bytes", broken)
    with serving(model) as u:
        status, _, raw = request(u, "POST", "/predict", b"x")
        assert status == 500 and json.loads(raw)["error"] == "internal error: RuntimeError: boom second line"
        assert request(u, "GET", "/model")[0] == 200
    assert "boom second line" in capfd.readouterr().err


# --- the command line -------------------------------------------------------------------------------------


def test_bad_input_is_one_line_and_status_2(model, tmp_path, capsys):
    path = str(model.path)
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        busy = str(taken.getsockname()[1])
        for argv, first in [
            (["--model", str(tmp_path / "none.npz")], "checkpoint"),
            (["--model", path, "--port", "70000"], "argument --port"),
            (["--model", path, "--port", busy], "cannot listen on 127.0.0.1 port"),
            (["--model", path, "--host", "no-such-host.invalid"], "--host no-such-host.invalid"),
            (["--model", str(tmp_path)], "checkpoint"),
        ]:
            status, _out, err = run_cli(capsys, serve.main, "xpnet.serve", [*argv, "--device", "cpu"])
            assert status == 2 and first in err and len(err.strip().splitlines()) == 1, err
            assert "Traceback" not in err


def test_open_opens_the_address_it_prints(model, monkeypatch, capsys):
    opened = []
    monkeypatch.setattr(serve.webbrowser, "open", lambda u: opened.append(u) or True)
    monkeypatch.setattr(serve, "is_loopback", lambda host: False)  # as if --host were a network address

    def interrupted(self, poll_interval):
        raise KeyboardInterrupt

    monkeypatch.setattr(serve.Server, "serve_forever", interrupted)
    argv = ["--model", str(model.path), "--device", "cpu", "--port", "0", "--open"]
    status, out, err = run_cli(capsys, serve.main, "xpnet.serve", argv)
    assert status == 130 and "interrupted" in err
    printed = re.search(r"at (http://127\.0\.0\.1:\d+/)$", out.strip()).group(1)
    assert opened == [printed]
    assert "the page is reachable from the network" in err  # said whenever it listens beyond this machine


def test_the_xpnet_command_lists_serve(capsys):
    from xpnet.__main__ import main

    assert main(["--help"]) == 0 and "\n  serve " in capsys.readouterr().out
    with pytest.raises(SystemExit) as done:
        serve.build_parser().parse_args(["--help"])
    text = capsys.readouterr().out
    assert done.value.code == 0 and "--model PATH" in text and "--host ADDRESS" in text
    assert {"2", "130", "143"} <= set(text.split("Exit status:")[1].split())


def test_the_documented_serve_commands_parse():
    """test_docs.py cannot run a server that runs until Ctrl-C; each documented command's flags parse here."""
    found = []
    for doc in ("README.md", "docs/usage.md"):
        for line in (ROOT / doc).read_text(encoding="utf-8").splitlines():
            m = re.match(r"^(?:\$ )?(?:python -m xpnet[. ]serve|xpnet serve)\b(.*?)(?:\s+#.*)?$", line.strip())
            if m:
                found.append(m.group(1).split())
    assert len(found) >= 2
    for args in found:
        assert serve.build_parser().parse_args(args).model


def test_the_command_stops_on_ctrl_c_with_130_and_writes_nothing(model, tmp_path):
    """The real command in a fresh process: bombs, huge and broken bodies leave it answering, its memory
    barely grows, nothing appears in its folder or its temporary folder, and Ctrl-C ends it with 130."""
    work, temp = tmp_path / "work", tmp_path / "tmp"
    work.mkdir()
    temp.mkdir()
    proc = start_serve(model, work, TMPDIR=str(temp), OMP_NUM_THREADS="1", PYTHONDONTWRITEBYTECODE="1")
    try:
        line = first_line(proc, WAIT)
        u = re.search(r"(http://127\.0\.0\.1:\d+)/$", line.strip()).group(1)
        assert post(u, drawn_seven())[0] == 200
        before = peak_kb(proc.pid)
        for body in (
            bomb_png(9000, 9000, whole=True),
            bomb_png(32000, 32000),
            npy_header((100_000, 100_000)),
            drawn_seven()[:400],
            b"\x89PNG" + bytes(1000),
        ):
            assert post(u, body)[0] == 400
        assert (
            raw_exchange(u, b"POST /predict HTTP/1.1\r\nContent-Length: 999999999\r\n\r\n", bytes(1000))[9:12] == b"413"
        )
        assert post(u, drawn_seven())[0] == 200
        if before is not None:
            assert peak_kb(proc.pid) - before < 40_000  # decoding the 81 megapixels alone would take 81 MB
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=WAIT)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    assert proc.returncode == 130 and "interrupted" in err and "Traceback" not in err, err
    assert list(work.iterdir()) == [] and list(temp.iterdir()) == []


def first_line(proc: subprocess.Popen, seconds: float) -> str:
    """The first line ``proc`` prints, waited for at most ``seconds`` ("" if none came)."""
    lines: list[str] = []
    reader = threading.Thread(target=lambda: lines.append(proc.stdout.readline()), daemon=True)
    reader.start()
    reader.join(seconds)
    return lines[0] if lines else ""


def start_serve(model, cwd: Path | None = None, **env: str) -> subprocess.Popen:
    """``python -m xpnet.serve`` on ``model``'s checkpoint, on a free port, in a fresh process (``env`` added)."""
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(SRC), os.environ.get("PYTHONPATH", "")]), **env}
    argv = [sys.executable, "-m", "xpnet.serve", "--model", str(model.path), "--device", "cpu",
            "--port", "0"]  # fmt: skip
    return subprocess.Popen(argv, cwd=cwd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def test_sigterm_ends_it_with_143(model):
    proc = start_serve(model)
    try:
        assert "http://127.0.0.1:" in first_line(proc, WAIT)
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=WAIT)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    assert proc.returncode == 143 and "terminated" in err and "Traceback" not in err, err


def peak_kb(pid: int) -> int | None:
    """The peak resident memory of process ``pid`` in kB (Linux's VmHWM), or None where /proc lacks it."""
    with contextlib.suppress(OSError):
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1])
    return None
