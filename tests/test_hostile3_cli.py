"""Hostile input at the command line's core (issue 33): a Ctrl-C while ``xpnet train`` is still importing."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading

import pytest

from helpers import SRC

pytestmark = pytest.mark.skipif(sys.platform == "win32", reason="POSIX signals")


def test_ctrl_c_while_importing_is_one_line_and_exit_130(tmp_path):
    # A stand-in for tqdm, which the train command imports on its way in: it says so, then waits for the signal.
    fake = tmp_path / "tqdm"
    fake.mkdir()
    (fake / "__init__.py").write_text(
        "import sys, time\nprint('importing', file=sys.stderr, flush=True)\ntime.sleep(60)\n"
    )
    path = os.pathsep.join([str(tmp_path), str(SRC), os.environ.get("PYTHONPATH", "")])
    proc = subprocess.Popen(
        [sys.executable, "-m", "xpnet", "train", "--dataset", "digits", "--epochs", "1"],
        stderr=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONPATH": path},
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
    assert (proc.returncode, out, err) == (130, "", "xpnet.train: interrupted\n")
