"""Hostile input in the training loop's area (issue 33): a scheduler address where something sends a byte and
stalls, a Ctrl-C while a local cluster starts, a training log torn by a crash."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[1] / "src"
ENV = {**os.environ, "PYTHONPATH": os.pathsep.join([str(SRC), os.environ.get("PYTHONPATH", "")])}
DEADLINE = 30  # generous: only a hang gets near it


def needs_dask() -> None:
    pytest.importorskip("distributed", reason='Dask is an optional extra: pip install -e ".[dask]"')


@pytest.fixture
def stalling_scheduler():
    """The address of a server on 127.0.0.1 that sends the first byte of an 8-byte length, then nothing; and the
    list of connections it accepted."""
    listener = socket.create_server(("127.0.0.1", 0))
    listener.settimeout(0.2)
    done, accepted = threading.Event(), []

    def serve() -> None:
        while not done.is_set():
            try:
                conn, _ = listener.accept()
            except OSError:
                continue
            conn.sendall(b"\x10")
            accepted.append(conn)

    server = threading.Thread(target=serve, daemon=True)
    server.start()
    try:
        yield f"tcp://127.0.0.1:{listener.getsockname()[1]}", accepted
    finally:
        done.set()
        server.join(5)
        for conn in accepted:
            conn.close()
        listener.close()


def test_a_server_that_sends_one_byte_and_stalls_fails_within_the_timeout(stalling_scheduler):
    """Dask waits for ever on a handshake cut short; `connect` must give up after its timeout."""
    needs_dask()
    from xpnet.training.distributed import ClusterError, connect

    address, accepted = stalling_scheduler
    result: list[BaseException | None] = []

    def attempt() -> None:
        try:
            connect(address, timeout=1)
            result.append(None)
        except BaseException as e:
            result.append(e)

    caller = threading.Thread(target=attempt, daemon=True)
    caller.start()
    caller.join(DEADLINE)
    assert result, f"connect hung for {DEADLINE} s"
    assert accepted and isinstance(result[0], ClusterError), result
    assert "cannot reach a Dask scheduler" in str(result[0]) and "\n" not in str(result[0])


def test_the_command_line_names_the_flag_for_a_stalling_scheduler(stalling_scheduler):
    needs_dask()
    address, _ = stalling_scheduler
    argv = [sys.executable, "-m", "xpnet.train", "--dataset", "digits", "--device", "cpu", "--scheduler", address]
    out = subprocess.run(argv, capture_output=True, text=True, env=ENV, timeout=DEADLINE)
    assert out.returncode == 2, out.stderr
    assert out.stderr.count("\n") == 1 and f"cannot reach a Dask scheduler at {address}" in out.stderr


@pytest.mark.slow  # starts a local cluster of 2 processes
@pytest.mark.skipif(not hasattr(signal, "pthread_sigmask"), reason="POSIX signals")
def test_ctrl_c_while_a_local_cluster_starts_stops_the_run():
    """Ctrl-C (SIGINT to the whole process group, as a terminal sends it) while the workers start: exit 130,
    one line, no traceback; before, the signal was ignored and the run trained to the end."""
    needs_dask()
    pytest.importorskip("sklearn", reason="the digits data set comes with scikit-learn")
    argv = [sys.executable, "-u", "-m", "xpnet.train", "--dataset", "digits", "--device", "cpu", "--workers", "2",
            "--epochs", "3", "--hidden", "8"]  # fmt: skip
    proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=ENV,
                            start_new_session=True)  # fmt: skip
    try:
        first = proc.stderr.readline()  # the warning printed just before the cluster starts
        assert "a local Dask cluster" in first, first
        time.sleep(0.5)
        os.killpg(proc.pid, signal.SIGINT)
        out, err = proc.communicate(timeout=DEADLINE)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(10)
    assert proc.returncode == 130, (out, err)
    assert len([line for line in err.splitlines() if line.strip()]) == 1 and "Traceback" not in err, err
    assert "test accuracy" not in out, out  # stopped before training (the CLI handler: after step 0 at most)


def test_starting_a_local_cluster_leaves_the_signal_handlers_as_found():
    needs_dask()
    from xpnet.training.distributed import start_local

    def mine(signum, frame) -> None:
        pass

    previous = signal.signal(signal.SIGINT, mine)
    mask = signal.pthread_sigmask(signal.SIG_BLOCK, []) if hasattr(signal, "pthread_sigmask") else None
    try:
        with start_local(1):
            assert signal.getsignal(signal.SIGINT) is mine
        assert signal.getsignal(signal.SIGINT) is mine
        if mask is not None:
            assert signal.pthread_sigmask(signal.SIG_BLOCK, []) == mask
    finally:
        signal.signal(signal.SIGINT, previous)


@pytest.mark.parametrize(
    ("before", "kept"),
    [(b'{"type": "run"}\n{"type": "epo', b'{"type": "run"}\n'), (b"", b""), (b'{"torn', b""), (b"{}\n", b"{}\n")],
)
def test_appending_to_a_log_torn_by_a_crash_cuts_the_torn_line_first(tmp_path, before, kept):
    from xpnet.training.runlog import LineFile

    path = tmp_path / "run.jsonl"
    path.write_bytes(before)
    log = LineFile(path, append=True)
    try:
        assert log.repaired == len(before) - len(kept)
        log.write({"type": "epoch"})
    finally:
        log.close()
    assert path.read_bytes() == kept + b'{"type": "epoch"}\n'
