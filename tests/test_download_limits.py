"""Downloads that never end or cannot be kept (issue 16): an overall deadline for a mirror that trickles,
no ``.part`` file left by SIGTERM, and a full disk is exit 1 (the run failed), not 2 (a bad request)."""

from __future__ import annotations

import errno
import hashlib
import os
import signal
import threading
import time
from http.server import BaseHTTPRequestHandler

import pytest

from helpers import LocalServer
from xpnet.cli import common as cli
from xpnet.data.download import DownloadError, Source, download
from xpnet.errors import DataError

NAME = "train-labels-idx1-ubyte.gz"


class Trickle:
    """A 127.0.0.1 server announcing 1000 bytes and sending one every ``gap`` seconds, until closed."""

    def __init__(self, gap: float = 0.3):
        stop = self.stop = threading.Event()

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self):
                self.send_response(200)
                self.send_header("Content-Length", "1000")
                self.end_headers()
                for _ in range(1000):
                    if stop.wait(gap):
                        return
                    self.wfile.write(b"x")
                    self.wfile.flush()

            def log_message(self, *args):
                pass

        local = LocalServer(Handler, stop)
        self.url, self.close = local.url + "/", local.close


@pytest.fixture
def trickle():
    server = Trickle()
    yield server
    server.close()


def source(url: str) -> Source:
    return Source("mnist", (url,), {NAME: ("md5:" + "0" * 32,)})


def test_a_trickling_mirror_fails_at_the_deadline(trickle, tmp_path):
    start = time.monotonic()
    with pytest.raises(DownloadError, match="too slow"):
        download(source(trickle.url), tmp_path, timeout=2.0, deadline=1.0)
    assert time.monotonic() - start < 10  # a byte every 0.3 s would otherwise take 5 minutes
    assert list(tmp_path.iterdir()) == []


def test_the_deadline_can_be_set_in_the_environment(trickle, tmp_path, monkeypatch):
    monkeypatch.setenv("XPNET_DOWNLOAD_DEADLINE", "1")
    with pytest.raises(DownloadError, match="too slow"):
        download(source(trickle.url), tmp_path, timeout=2.0)
    monkeypatch.setenv("XPNET_DOWNLOAD_DEADLINE", "soon")
    with pytest.raises(DataError, match="XPNET_DOWNLOAD_DEADLINE"):
        download(source(trickle.url), tmp_path)


def test_sigterm_during_a_download_leaves_no_part_file(trickle, tmp_path, capsys):
    def progress(name):
        return lambda done, total: os.kill(os.getpid(), signal.SIGTERM)  # after the first byte

    def main(argv):
        download(source(trickle.url), tmp_path, timeout=2.0, deadline=30.0, progress=progress)
        return 0

    with pytest.raises(SystemExit) as info:
        cli.run(main, [], prog="xpnet.train")
    assert info.value.code == 143 and "terminated" in capsys.readouterr().err
    assert list(tmp_path.iterdir()) == []


def test_a_full_disk_during_a_download_exits_1(trickle, tmp_path, monkeypatch):
    def full(fd):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr("os.fsync", full)
    url = "file://" + str(tmp_path / "mirror") + "/"
    (tmp_path / "mirror").mkdir()
    (tmp_path / "mirror" / NAME).write_bytes(b"x")
    good = Source("mnist", (url,), {NAME: ("md5:" + hashlib.md5(b"x").hexdigest(),)})  # fails at the disk alone
    with pytest.raises(DownloadError, match="No space left on device") as info:
        download(good, tmp_path / "data")
    assert info.value.exit_status == 1
    assert not (tmp_path / "data").exists()  # the folder made for the download is removed again
