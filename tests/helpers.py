"""What the test modules share: running a command in this process or as a subprocess, and tiny data sets."""

from __future__ import annotations

import importlib.util
import json
import os
import signal
import subprocess
import sys
import threading
from collections.abc import Callable, Sequence
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from types import ModuleType

import numpy as np

from xpnet import train
from xpnet.cli import common as cli
from xpnet.data import Dataset
from xpnet.training.loop import Callback
from xpnet.training.model import TrainConfig

SRC = Path(__file__).resolve().parents[1] / "src"
# A small, quick training command line on real data, and a small checkpointed config.
DIGITS = ["--dataset", "digits", "--device", "cpu", "--hidden", "32", "--batch-size", "64"]
CHECKPOINT_CONFIG = TrainConfig(hidden_layer_sizes=(12,), max_iter=2, batch_size=32, dtype="float64", random_state=3)


def load_script(name: str) -> ModuleType:
    """``scripts/NAME.py`` as a module, registered as ``NAME`` (a script's dataclasses look themselves up there)."""
    spec = importlib.util.spec_from_file_location(name, SRC.parent / "scripts" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)  # a script puts scripts/ on sys.path itself where it imports benchlib
    return module


def run_cli(
    capsys, main: Callable[[Sequence[str] | None], int], prog: str, argv: Sequence[str]
) -> tuple[int, str, str]:
    """``python -m PROG ARGV`` in this process, through `cli.run` as ``__main__`` calls it: (status, stdout, stderr)."""
    try:
        status = cli.run(main, list(argv), prog=prog)
    except SystemExit as e:
        status = e.code
    out, err = capsys.readouterr()
    return status, out, err


def interrupted_while_importing(tmp_path: Path, module: str, argv: Sequence[str]) -> tuple[int, str, str]:
    """(status, stdout, stderr) of ``python ARGV`` sent a SIGINT while it imports ``module``: a stand-in for that
    module (put first on the path) says "importing", then waits for the signal. Bounded in time."""
    (tmp_path / module).mkdir()
    (tmp_path / module / "__init__.py").write_text(
        "import sys, time\nprint('importing', file=sys.stderr, flush=True)\ntime.sleep(60)\n"
    )
    path = os.pathsep.join([str(tmp_path), str(SRC), os.environ.get("PYTHONPATH", "")])
    proc = subprocess.Popen(
        [sys.executable, *argv],
        stderr=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONPATH": path, "PYTHONUNBUFFERED": "1"},
    )
    deadline = threading.Timer(120, proc.kill)  # bounds the read below, should the process hang before it
    deadline.start()
    try:
        assert proc.stderr.readline() == "importing\n"
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=60)
    finally:
        deadline.cancel()
        proc.kill()
        proc.wait()
    return proc.returncode, out, err


def run_train(capsys, *argv: str) -> tuple[int, str, str]:
    """``python -m xpnet.train ARGV`` in this process: (status, stdout, stderr)."""
    return run_cli(capsys, train.main, "xpnet.train", argv)


def train_json(capsys, *argv: str) -> tuple[int, dict, str]:
    """``python -m xpnet.train ARGV`` in this process: (status, its --json summary or {}, all output)."""
    status, out, err = run_train(capsys, *argv)
    lines = out.strip().splitlines()
    summary = json.loads(lines[-1]) if lines and lines[-1].startswith("{") else {}
    return status, summary, out + err


def run_module(module: str, *args: str, env: dict[str, str] | None = None, timeout: float = 300):
    """``python -m MODULE ARGS`` in a fresh process with this checkout's ``src`` first on the path."""
    return run_python("-m", module, *args, env=env, timeout=timeout)


def run_python(*args: str, env: dict[str, str] | None = None, timeout: float = 300):
    """``python ARGS`` (a script, ``-m`` or ``-c``) in a fresh process with this checkout's ``src`` on the path."""
    path = os.pathsep.join([str(SRC), os.environ.get("PYTHONPATH", "")])
    return subprocess.run(
        [sys.executable, *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        env={**os.environ, "PYTHONPATH": path, **(env or {})},
    )


def tiny_data(n_train: int = 120, n_test: int = 40, n_features: int = 16) -> Dataset:
    """Random but learnable 10-class images: each class lights up its own block of pixels."""
    rng = np.random.default_rng(0)

    def split(n: int) -> tuple[np.ndarray, np.ndarray]:
        y = rng.integers(0, 10, n).astype(np.uint8)
        x = rng.integers(0, 60, (n, n_features))
        x[np.arange(n), y % n_features] += 190
        return x.astype(np.uint8), y

    (xa, ya), (xb, yb) = split(n_train), split(n_test)
    return Dataset("tiny", xa, ya, xb, yb, (4, 4))


def start_training(*argv: str) -> subprocess.Popen:
    """``python -m xpnet.train ARGV`` started in a fresh process (stdout and stderr piped), not waited for."""
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(SRC), os.environ.get("PYTHONPATH", "")])}
    return subprocess.Popen(
        [sys.executable, "-m", "xpnet.train", *argv],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )


def rewrite(path: Path, change) -> Path:
    """Load the checkpoint's raw arrays, let ``change`` edit the dict, write it back with NumPy."""
    with np.load(path, allow_pickle=False) as npz:
        arrays = {k: npz[k] for k in npz.files}
    change(arrays)
    with open(path, "wb") as f:
        np.savez(f, **arrays)
    return path


def set_meta(arrays: dict, **changes) -> None:
    meta = json.loads(arrays["meta"].tobytes()) | changes
    arrays["meta"] = np.frombuffer(json.dumps(meta).encode(), dtype=np.uint8)


def seven(height: int = 160, width: int = 120, top: int = 20, left: int = 10, stroke: int = 14) -> np.ndarray:
    """A black '7' on white paper (float, 1 = white): a bar on top and a slanted stem, lopsided on purpose."""
    page = np.ones((240, 200))
    page[top : top + stroke, left : left + width] = 0.0
    for r in range(top, top + height):
        c = left + width - stroke - (r - top) * (width - stroke) // (2 * height)
        page[r, c : c + stroke] = 0.0
    return page


def ink_box(image: np.ndarray) -> tuple[int, int]:
    rows, cols = np.flatnonzero(image.any(axis=1)), np.flatnonzero(image.any(axis=0))
    return rows[-1] - rows[0] + 1, cols[-1] - cols[0] + 1


class StopAfter(Callback):
    """Pauses the run before step ``n + 1``, like a Ctrl-C during step ``n``."""

    def __init__(self, n: int):
        self.n, self.calls = n, 0

    def should_pause(self) -> bool:
        self.calls += 1
        return self.calls > self.n


class Hooks(Callback):
    """A callback made of functions: ``on_step``, ``on_epoch_end`` (its answer ignored) and ``should_pause``."""

    def __init__(self, on_step=None, on_epoch_end=None, should_pause=None):
        self.step, self.epoch_end, self.pause = on_step, on_epoch_end, should_pause

    def on_step(self, epoch: int, rows_done: int, loss_sum) -> None:
        if self.step is not None:
            self.step(epoch, rows_done, loss_sum)

    def on_epoch_end(self, state) -> bool:
        if self.epoch_end is not None:
            self.epoch_end(state)
        return False

    def should_pause(self) -> bool:
        return self.pause is not None and self.pause()


class LocalServer:
    """A threading HTTP server on 127.0.0.1 (a free port) serving ``handler`` from a daemon thread, for the
    download tests. `close` first sets ``release``, which handlers that hang or trickle wait on, then stops."""

    def __init__(self, handler: type[BaseHTTPRequestHandler], release: threading.Event):
        self.release = release
        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self.httpd.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        threading.Thread(target=self.httpd.serve_forever, args=(0.05,), daemon=True).start()

    def close(self) -> None:
        self.release.set()
        self.httpd.shutdown()
        self.httpd.server_close()
