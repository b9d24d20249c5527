"""Hostile input for the data sets (issue 33): data folders one may not read, a malformed mirror URL, a mirror
that drips its headers and a ``file://`` mirror whose file is a FIFO.

The tests run as root, whom no permission stops: `deny` makes a folder unreadable by making the calls that
would read it fail as they fail for any other user. Every wait is bounded: servers stop when closed, a guard
thread frees a reader blocked on a FIFO.
"""

from __future__ import annotations

import builtins
import errno
import hashlib
import os
import socket
import threading
import time
from http.server import BaseHTTPRequestHandler
from pathlib import Path

import pytest

from folder_sets import write_digits_idx
from helpers import DIGITS, LocalServer, run_cli, run_train
from xpnet import evaluate
from xpnet.data import load_dataset
from xpnet.data.download import MIRRORS_ENV, DownloadError, Source, download, source_for
from xpnet.errors import DataError

NAME = "train-labels-idx1-ubyte.gz"
QUICK = [*DIGITS[2:], "--epochs", "1", "--quiet"]  # DIGITS without its --dataset


def one_line_error(status: int, err: str, *words: str) -> None:
    assert status == 2, err
    assert err.count("\n") == 1 and "Traceback" not in err, err
    for w in words:
        assert w in err, err


@pytest.fixture
def deny(monkeypatch):
    """``deny(folder, files_only=False)``: ``folder`` as a user who is not root finds a folder of mode 000 (or,
    ``files_only``, a readable folder of unreadable files): listing it, looking at or opening what lies in it
    fail with ``Permission denied``. The folder itself can still be looked at, as its parent allows."""

    def install(folder: Path, files_only: bool = False) -> None:
        top = str(Path(folder).absolute())

        def inside(path, itself: bool) -> bool:
            if isinstance(path, int):  # a file descriptor
                return False
            path = os.path.abspath(os.fsdecode(path))
            return path.startswith(top + os.sep) or (itself and path == top)

        def guard(real, itself: bool):
            def call(path=".", *args, **kwargs):
                if inside(path, itself):
                    raise PermissionError(errno.EACCES, "Permission denied", os.fsdecode(path))
                return real(path, *args, **kwargs)

            return call

        monkeypatch.setattr(builtins, "open", guard(builtins.open, False))
        monkeypatch.setattr(os, "open", guard(os.open, False))
        if not files_only:
            monkeypatch.setattr(os, "stat", guard(os.stat, False))
            monkeypatch.setattr(os, "scandir", guard(os.scandir, True))
            monkeypatch.setattr(os, "listdir", guard(os.listdir, True))

    return install


# --- 1. data folders one may not read ---------------------------------------------------------------------


@pytest.mark.parametrize("files_only", [False, True], ids=["folder", "files"])
def test_an_idx_folder_one_may_not_read_is_one_line(tmp_path, capsys, deny, files_only):
    root = write_digits_idx(tmp_path / "idx")
    deny(root, files_only)
    status, _, err = run_train(capsys, "--dataset", "idx", "--data-dir", str(root), *QUICK)
    one_line_error(status, err, str(root), "Permission denied")


def test_xpnet_data_one_may_not_read_is_one_line(tmp_path, capsys, deny, monkeypatch):
    cache = tmp_path / "cache"
    write_digits_idx(cache / "mnist", shift_half=False)
    monkeypatch.setenv("XPNET_DATA", str(cache))
    deny(cache)
    status, _, err = run_train(capsys, "--dataset", "mnist", *QUICK)
    one_line_error(status, err, str(cache / "mnist"), "Permission denied")
    with pytest.raises(DataError, match="Permission denied"):  # the library's error, which the line shows
        load_dataset("mnist")


def test_evaluate_data_dir_one_may_not_read_is_one_line(mnist, capsys, deny):
    data, model = mnist
    deny(data.source)
    argv = ["--model", str(model), "--device", "cpu", "--data-dir", data.source]
    status, out, err = run_cli(capsys, evaluate.main, "xpnet.evaluate", argv)
    one_line_error(status, err, data.source, "Permission denied")
    assert out == ""


def test_a_malformed_mirror_url_is_one_line_naming_xpnet_mirrors(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv(MIRRORS_ENV, "http://[::1")
    with pytest.raises(DataError, match=MIRRORS_ENV):
        source_for("mnist")
    status, _, err = run_train(capsys, "--dataset", "mnist", "--data-dir", str(tmp_path / "data"), *QUICK)
    one_line_error(status, err, MIRRORS_ENV, "http://[::1")
    assert not (tmp_path / "data").exists()


@pytest.mark.parametrize("url", ["http://[::1", "https://host:99999/", "http:///no-host/"])
def test_urls_that_no_request_can_use_are_refused_when_given(url):
    with pytest.raises(DataError, match="mirror"):
        source_for("mnist", [url])


# --- 2. downloads that would hang --------------------------------------------------------------------------


@pytest.fixture
def dripping():
    """A 127.0.0.1 server that answers every request a header byte every 0.1 s, for at most 60 s."""
    stop = threading.Event()

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self):
            for byte in b"HTTP/1.0 200 OK\r\nX-Drip: " + b"a" * 600:
                if stop.wait(0.1):
                    return
                self.wfile.write(bytes([byte]))
                self.wfile.flush()

        def log_message(self, *args):
            pass

    server = LocalServer(Handler, stop)
    yield server.url + "/"
    server.close()


def test_the_deadline_covers_a_mirror_that_drips_its_headers(dripping, tmp_path):
    start = time.monotonic()
    with pytest.raises(DownloadError, match="deadline"):
        download(Source("mnist", (dripping,), {NAME: ("md5:" + "0" * 32,)}), tmp_path, timeout=2.0, deadline=1.0)
    assert time.monotonic() - start < 15  # was: waiting for the headers until the server gave up (60 s)
    assert list(tmp_path.iterdir()) == []


def test_the_deadline_covers_a_mirror_that_never_accepts(tmp_path, monkeypatch):
    with socket.socket() as listener:  # a backlog that is never accepted: connects, then no answer at all
        listener.bind(("127.0.0.1", 0))
        listener.listen(0)
        url = f"http://127.0.0.1:{listener.getsockname()[1]}/"
        monkeypatch.setenv("XPNET_DOWNLOAD_DEADLINE", "1")
        start = time.monotonic()
        with pytest.raises(DownloadError):
            download(Source("mnist", (url,), {NAME: ("md5:" + "0" * 32,)}), tmp_path / "d", timeout=30.0)
        assert time.monotonic() - start < 15  # the deadline (1 s), not the 30 s timeout


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="no FIFOs on this system")
def test_a_file_mirror_whose_file_is_a_fifo_is_refused_without_blocking(tmp_path):
    mirror = tmp_path / "mirror"
    mirror.mkdir()
    fifo = mirror / NAME
    os.mkfifo(fifo)
    done = threading.Event()

    def release():  # if the download blocks opening the FIFO, open its other end after 5 s to free it
        if not done.wait(5):
            while not done.is_set():
                try:
                    os.close(os.open(fifo, os.O_WRONLY | os.O_NONBLOCK))
                except OSError:  # no reader yet
                    done.wait(0.05)

    guard = threading.Thread(target=release, daemon=True)
    guard.start()
    start = time.monotonic()
    try:
        with pytest.raises(DownloadError, match="not a regular file"):
            download(Source("mnist", (mirror.as_uri() + "/",), {NAME: ("md5:" + hashlib.md5().hexdigest(),)}), tmp_path)
    finally:
        done.set()
        guard.join(10)
    assert time.monotonic() - start < 5
