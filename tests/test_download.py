"""Downloads against HTTP servers on 127.0.0.1 serving small generated IDX files; never the internet."""

from __future__ import annotations

import gzip
import hashlib
import io
import socket
import subprocess
import threading
from http.server import BaseHTTPRequestHandler
from pathlib import Path

import numpy as np
import pytest

from helpers import LocalServer, run_module
from xpnet.cli.progress import ProgressBar
from xpnet.data import DownloadError, load_dataset
from xpnet.data.download import (
    MIRRORS_ENV,
    SOURCES,
    USER_AGENT,
    Source,
    download,
    parse_mirrors,
    source_for,
)
from xpnet.data.idx import encode_idx
from xpnet.errors import DataError

SRC = Path(__file__).resolve().parents[1] / "src"
NAMES = list(SOURCES["mnist"].digests)


def make_files(seed: int = 0) -> dict[str, bytes]:
    """Four small gzip IDX files in MNIST's layout (28x28 images, labels 0..9)."""
    rng = np.random.default_rng(seed)
    arrays = {
        "train-images-idx3-ubyte.gz": rng.integers(0, 256, (20, 28, 28), dtype=np.uint8),
        "train-labels-idx1-ubyte.gz": (np.arange(20) % 10).astype(np.uint8),
        "t10k-images-idx3-ubyte.gz": rng.integers(0, 256, (10, 28, 28), dtype=np.uint8),
        "t10k-labels-idx1-ubyte.gz": (np.arange(10) % 10).astype(np.uint8),
    }
    return {name: gzip.compress(encode_idx(a), mtime=0) for name, a in arrays.items()}


FILES = make_files()
DIGESTS = {name: (f"md5:{hashlib.md5(data).hexdigest()}",) for name, data in FILES.items()}


class Server:
    """Serves FILES under several behaviours, chosen by the first path segment:

    /good/<file> the file; /bad/<file> other bytes (checksum mismatch); /missing/<file> 404;
    /cut/<file> half the file while announcing all of it; /hang/<file> never answers until shutdown.
    """

    def __init__(self):
        self.requests: list[tuple[str, str]] = []  # (path, User-Agent)
        self.release = threading.Event()
        server = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self):
                server.requests.append((self.path, self.headers.get("User-Agent", "")))
                _, mode, name = self.path.split("/", 2)
                body = FILES.get(name)
                if mode == "hang":
                    server.release.wait(10)
                    return
                if body is None or mode == "missing":
                    self.send_error(404)
                    return
                if mode == "bad":
                    body = make_files(seed=1)[name]
                self.send_response(200)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body[: len(body) // 2] if mode == "cut" else body)

            def log_message(self, *args):
                pass

        self.local = LocalServer(Handler, self.release)
        self.url, self.close = self.local.url, self.local.close

    def mirror(self, mode: str) -> str:
        return f"{self.url}/{mode}/"


@pytest.fixture
def server():
    s = Server()
    yield s
    s.close()


def closed_port_url() -> str:
    """A 127.0.0.1 URL where nothing listens: connections are refused at once."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    return f"http://127.0.0.1:{port}/"


def source(*mirrors: str) -> Source:
    return Source("mnist", tuple(mirrors), DIGESTS)


def listing(directory: Path) -> list[str]:
    return sorted(p.name for p in directory.iterdir()) if directory.exists() else []


def test_good_download_lands_and_is_used(server, tmp_path):
    paths = download(source(server.mirror("good")), tmp_path / "mnist")
    assert [p.name for p in paths] == NAMES
    assert listing(tmp_path / "mnist") == sorted(NAMES)  # no temporary files left behind
    for name in NAMES:
        assert (tmp_path / "mnist" / name).read_bytes() == FILES[name]
    assert all(agent == USER_AGENT for _, agent in server.requests)


def test_load_dataset_downloads_only_missing_files(server, tmp_path, monkeypatch):
    (tmp_path / "train-labels-idx1-ubyte.gz").write_bytes(FILES["train-labels-idx1-ubyte.gz"])
    monkeypatch.setitem(SOURCES, "mnist", source(server.mirror("good")))  # the test files' checksums
    monkeypatch.delenv(MIRRORS_ENV, raising=False)
    data = load_dataset("mnist", tmp_path, download=True)
    assert data.x_train.shape == (20, 784) and data.y_test.tolist() == list(range(10))
    fetched = sorted(path.rsplit("/", 1)[1] for path, _ in server.requests)
    assert fetched == sorted(set(NAMES) - {"train-labels-idx1-ubyte.gz"})


def test_real_checksums_reject_generated_files(server, tmp_path):
    # With the published MNIST checksums, our generated files must be refused.
    with pytest.raises(DownloadError, match="checksum mismatch"):
        load_dataset("mnist", tmp_path, download=True, mirrors=[server.mirror("good")])
    assert listing(tmp_path) == []


def test_wrong_checksum_is_rejected_and_leaves_no_file(server, tmp_path):
    with pytest.raises(DownloadError, match=r"train-images-idx3-ubyte\.gz from 127\.0\.0\.1:\d+: checksum mismatch"):
        download(source(server.mirror("bad")), tmp_path)
    assert listing(tmp_path) == []


def test_first_mirror_failing_falls_through_to_second(server, tmp_path):
    download(source(server.mirror("missing"), server.mirror("good")), tmp_path)
    assert listing(tmp_path) == sorted(NAMES)
    modes = [path.split("/")[1] for path, _ in server.requests]
    # An HTTP error is per file: the first mirror is asked again for every file.
    assert modes == ["missing", "good"] * 4


def test_unreachable_mirror_is_tried_once_then_skipped(server, tmp_path):
    download(Source("mnist", (closed_port_url(), server.mirror("good")), DIGESTS), tmp_path)
    assert listing(tmp_path) == sorted(NAMES)


def test_mirror_that_never_answers_costs_one_timeout(server, tmp_path):
    download(source(server.mirror("hang"), server.mirror("good")), tmp_path, timeout=0.5)
    assert listing(tmp_path) == sorted(NAMES)
    modes = [path.split("/")[1] for path, _ in server.requests]
    assert modes.count("hang") == 1  # skipped for the other three files
    assert modes.count("good") == 4


def test_truncated_transfer_leaves_no_file(server, tmp_path):
    with pytest.raises(DownloadError, match=r"cut short|IncompleteRead"):
        download(source(server.mirror("cut")), tmp_path)
    assert listing(tmp_path) == []


def test_truncated_transfer_falls_through(server, tmp_path):
    download(source(server.mirror("cut"), server.mirror("good")), tmp_path)
    assert listing(tmp_path) == sorted(NAMES)


def test_unwritable_data_directory_is_a_download_error(server, tmp_path, monkeypatch):
    def full_disk(*args, **kwargs):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr("os.fsync", full_disk)
    with pytest.raises(DownloadError, match="No space left on device; choose another data_dir"):
        download(source(server.mirror("good")), tmp_path)
    assert listing(tmp_path) == []


def test_file_mirror(tmp_path):
    folder = tmp_path / "internal"
    folder.mkdir()
    for name, data in FILES.items():
        (folder / name).write_bytes(data)
    download(source(folder.as_uri() + "/"), tmp_path / "data")
    assert listing(tmp_path / "data") == sorted(NAMES)


def test_mirrors_from_env_and_dataset_placeholder(monkeypatch):
    monkeypatch.setenv(MIRRORS_ENV, "http://intranet/{dataset}, https://backup/x")
    assert source_for("fashion-mnist").mirrors == ("http://intranet/fashion-mnist/", "https://backup/x/")
    assert source_for("mnist", ["http://flag/"]).mirrors == ("http://flag/",)  # the flag wins
    monkeypatch.delenv(MIRRORS_ENV)
    assert source_for("mnist") == SOURCES["mnist"]
    with pytest.raises(DataError, match="not an http"):
        parse_mirrors("ftp://old/")


def test_public_mirror_lists():
    for name in ("mnist", "fashion-mnist"):
        src = SOURCES[name]
        assert len(src.mirrors) >= 2 and all(m.endswith("/") for m in src.mirrors)
        assert sorted(src.digests) == sorted(NAMES)
        assert all(d.startswith(("md5:", "sha256:")) for ds in src.digests.values() for d in ds)
    assert "yann.lecun.com" not in SOURCES["mnist"].mirrors[0]  # the unreliable original is not first


def test_progress_bar_only_on_a_terminal():
    class Tty(io.StringIO):
        def isatty(self):
            return True

    quiet, tty = io.StringIO(), Tty()
    for stream in (quiet, tty):
        bar = ProgressBar("f.gz", stream, min_interval=0)
        for done in (0, 500, 1000):
            bar(done, 1000)
    assert quiet.getvalue() == ""
    assert "f.gz" in tty.getvalue() and "100%" in tty.getvalue() and tty.getvalue().endswith("\n")


def run_train(args: list[str], env_extra: dict[str, str]) -> subprocess.CompletedProcess:
    return run_module("xpnet.train", "--device", "cpu", *args, env=env_extra, timeout=60)


@pytest.mark.parametrize("how", ["flag", "env"])
def test_no_server_reachable_exits_2_with_one_line(tmp_path, how):
    dead = closed_port_url()
    data_dir = tmp_path / "data"
    args = ["--dataset", "mnist", "--data-dir", str(data_dir)]
    if how == "flag":
        done = run_train([*args, "--mirror", dead, "--mirror", closed_port_url()], {})
    else:
        done = run_train(args, {MIRRORS_ENV: dead})
    assert done.returncode == 2, done.stderr
    lines = done.stderr.strip().splitlines()
    assert lines[0] == f"mnist: downloading missing files to {data_dir}"
    assert "Traceback" not in done.stderr
    # A short first line, the details indented below it, none of them long.
    assert lines[1].startswith(f"xpnet.train: error: mnist not found in {data_dir}, and the download failed")
    assert all(line.startswith("  ") and len(line) <= 120 for line in lines[2:]), lines
    details = " ".join(lines[2:])
    for needle in [str(data_dir), *NAMES, "digits", "127.0.0.1", "HTTPS_PROXY", MIRRORS_ENV]:
        assert needle in details
    assert not data_dir.exists()  # the download made it, nothing arrived: no empty folder is left behind


def test_xpnet_data_sets_the_cache_location(server, tmp_path, monkeypatch):
    monkeypatch.setenv("XPNET_DATA", str(tmp_path))
    done = run_train(["--dataset", "mnist", "--epochs", "1", "--hidden", "8", "--mirror", server.mirror("good")], {})
    # The published checksums refuse the generated files, but the place they were headed is right.
    assert done.returncode == 2 and str(tmp_path / "mnist") in done.stderr
    assert "checksum mismatch" in done.stderr
