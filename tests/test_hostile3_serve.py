"""Hostile load on ``xpnet serve`` (issue 33): clients that leave early, odd numbers, slow clients, slow
pictures and pages of other sites.

Every server listens on 127.0.0.1 on a free port and is stopped by its test; every wait is bounded. A slow
picture is simulated by replacing the preparation with one that waits for the test's signal.
"""

from __future__ import annotations

import contextlib
import http.client
import json
import select
import socket
import struct
import threading
import time
from urllib.parse import urlsplit

import pytest

from test_serve import WAIT, drawn_seven, post, raw_exchange, request, serving
from xpnet import serve


@pytest.fixture(scope="module")
def model(mnist):
    return serve.load_model(str(mnist[1]), "cpu")


@pytest.fixture(scope="module")
def url(model):
    with serving(model) as u:
        yield u


def connect(url: str) -> socket.socket:
    parts = urlsplit(url)
    return socket.create_connection((parts.hostname, parts.port), timeout=WAIT)


def wait_for(condition, seconds: float = WAIT) -> bool:
    """Whether ``condition()`` came true within ``seconds`` (polled)."""
    deadline = time.monotonic() + seconds
    while not condition():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.02)
    return True


def test_clients_that_leave_early_print_nothing(model, capfd):
    """A client that resets its connection before, while or after the server answers is no error to report:
    on main each printed a BrokenPipeError or ConnectionResetError traceback."""
    capfd.readouterr()
    before = threading.active_count()
    with serving(model) as url:
        head = b"POST /predict?seen=1 HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: %d\r\n\r\n"
        body = drawn_seven()
        for i in range(30):
            s = connect(url)
            s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))  # close sends a reset
            s.sendall([head % len(body) + body, b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n", head % 100][i % 3])
            s.close()
        assert post(url, drawn_seven())[0] == 200
        ours = ("xpnet-prepare", "xpnet-device")  # the server's own threads stay, the connections' end
        running = lambda: [t for t in threading.enumerate() if not t.name.startswith(ours)]  # noqa: E731
        assert wait_for(lambda: len(running()) <= before + 2), "connection threads still running"
    _, err = capfd.readouterr()
    assert "Traceback" not in err and err == "", err[:2000]


@pytest.mark.parametrize("length", [b"\xb2", "²".encode(), b"\xb9\xb2", b"9" * 5000, b"1_0", b"+5", b" 0x10"])
def test_an_odd_content_length_is_a_400(url, length):
    head = b"POST /predict HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: " + length + b"\r\n\r\n"
    got = raw_exchange(url, head, b"x" * 10, wait=10)
    status = got.split(b" ", 2)[1] if got else b"no answer"
    assert status in (b"400", b"413"), got[:300]
    assert "\n" not in json.loads(got.split(b"\r\n\r\n", 1)[1])["error"]


@pytest.mark.parametrize("top", ["%C2%B2", "%D9%A3", "9" * 5000, "-1", "%200", "1.0"])
def test_an_odd_top_is_a_400_naming_top(url, top):
    status, answer = post(url, drawn_seven(), f"?top={top}")
    assert status == 400 and answer["error"].startswith("?top=") and "\n" not in answer["error"], answer
    assert len(answer["error"]) < 200


def test_slow_clients_hold_a_bounded_number_of_threads(model, monkeypatch):
    """300 connections that never finish their request: on main, 300 threads; now at most
    `serve.CONNECTIONS`, and a normal client is answered once the slow ones time out."""
    monkeypatch.setattr(serve.Handler, "timeout", 0.5)
    before = threading.active_count()
    with serving(model) as url:
        slow = []
        try:
            for _ in range(300):
                s = connect(url)
                s.sendall(b"POST /predict HTTP/1.1\r\nHost: 127.0.0.1\r\n")
                slow.append(s)
            most = 0
            deadline = time.monotonic() + 2
            while time.monotonic() < deadline:
                most = max(most, threading.active_count() - before)
                time.sleep(0.01)
            assert most <= 100, f"{most} threads for 300 slow clients"
            assert post(url, drawn_seven())[0] == 200
        finally:
            for s in slow:
                s.close()


def test_a_client_that_trickles_its_request_is_cut_off(model, monkeypatch):
    """A byte every 50 ms never trips a timeout per read: the whole request must arrive within the timeout."""
    monkeypatch.setattr(serve.Handler, "timeout", 1.0)
    with serving(model) as url, connect(url) as s:
        s.sendall(b"GET /")
        closed = False
        deadline = time.monotonic() + 15
        while not closed and time.monotonic() < deadline:
            try:
                s.sendall(b"a")
            except OSError:
                closed = True
            if select.select([s], [], [], 0.05)[0]:
                with contextlib.suppress(OSError):
                    s.recv(65536)
                closed = True
        assert closed, "the server still reads a request that began 15 s ago"


@pytest.fixture
def slow_pictures(monkeypatch):
    """Bodies starting with ``SLOW`` take until the returned event is set (at most `WAIT`) to prepare; yields
    (release event, list of the preparations running, the most that ran at once)."""
    release, running, most = threading.Event(), [], [0]
    lock = threading.Lock()
    prepare = serve.prepare_bytes

    def slow_prepare(data, *args, **kwargs):
        with lock:
            running.append(1)
            most[0] = max(most[0], len(running))
        try:
            if data.startswith(b"SLOW"):
                release.wait(WAIT)
            return prepare(data, *args, **kwargs)
        finally:
            with lock:
                running.pop()

    monkeypatch.setattr(serve, "prepare_bytes", slow_prepare)
    yield release, running, most
    release.set()


def test_slow_pictures_do_not_stall_a_normal_request(model, slow_pictures):
    """`PREPARING` pictures that take long to prepare fill every preparation slot: on main a fifth request waited
    for them with no limit; now it gets a quick 503 (and is answered once the slots free)."""
    release, running, _ = slow_pictures
    with serving(model) as url:
        answers = []
        clients = [
            threading.Thread(target=lambda: answers.append(post(url, b"SLOW" + bytes(100))), daemon=True)
            for _ in range(serve.PREPARING)
        ]
        for t in clients:
            t.start()
        assert wait_for(lambda: len(running) == serve.PREPARING)
        parts = urlsplit(url)
        conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=15)
        try:
            conn.request("POST", "/predict", body=drawn_seven())
            r = conn.getresponse()
            answer = json.loads(r.read())
        except TimeoutError:
            pytest.fail("no answer in 15 s while four slow pictures are prepared")
        finally:
            conn.close()
        assert r.status == 503 and "busy" in answer["error"], answer
        release.set()
        for t in clients:
            t.join(WAIT)
        assert [a[0] for a in answers] == [400] * serve.PREPARING  # the slow bodies are no pictures
        assert post(url, drawn_seven())[0] == 200


def test_eight_hostile_pictures_are_prepared_at_most_preparing_at_once(model, slow_pictures):
    """Memory is bounded by the number of pictures prepared at once: eight at once, at most `PREPARING`."""
    release, running, most = slow_pictures
    with serving(model) as url:
        answers = []
        clients = [
            threading.Thread(target=lambda: answers.append(post(url, b"SLOW" + bytes(100))[0]), daemon=True)
            for _ in range(8)
        ]
        for t in clients:
            t.start()
        assert wait_for(lambda: len(running) == serve.PREPARING)
        time.sleep(0.5)  # time for any other to start, were they not held back
        assert most[0] == serve.PREPARING
        release.set()
        for t in clients:
            t.join(WAIT)
        assert len(answers) == 8 and set(answers) <= {400, 503}
    assert most[0] == serve.PREPARING


@pytest.mark.parametrize(
    "headers",
    [
        {"Origin": "http://evil.example", "Content-Type": "text/plain"},
        {"Origin": "null", "Content-Type": "text/plain"},
        {"Sec-Fetch-Site": "cross-site", "Content-Type": "text/plain"},
        {"Sec-Fetch-Site": "same-site", "Content-Type": "application/octet-stream"},
    ],
)
def test_a_page_of_another_site_cannot_post(url, headers):
    status, _, raw = request(url, "POST", "/predict", drawn_seven(), headers)
    assert status == 403 and "another site" in json.loads(raw)["error"]


def test_the_page_itself_and_scripts_can_post(url):
    origin = {"Origin": url, "Sec-Fetch-Site": "same-origin", "Content-Type": "application/octet-stream"}
    host = urlsplit(url).netloc
    assert request(url, "POST", "/predict", drawn_seven(), {**origin, "Host": host})[0] == 200
    assert request(url, "POST", "/predict", drawn_seven(), {"Content-Type": "text/plain"})[0] == 200  # curl
