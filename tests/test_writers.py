"""Every file xpnet writes: a full disk is one line and exit 1 with nothing half-written; a log is whole JSON
Lines up to its last complete line; device nodes and FIFOs are refused, symlinks followed; two runs cannot
share a file, nor one file two roles; folders made for an output go again when nothing was written."""

from __future__ import annotations

import errno
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from helpers import DIGITS, SRC, run_cli, start_training
from xpnet import evaluate, files, predict
from xpnet import train as train_cli
from xpnet.cli import common as cli
from xpnet.cli.common import StopOnSignal, Terminated, TerminateLoudly
from xpnet.errors import XpnetError
from xpnet.files import WriteError, atomic_write, check_writable
from xpnet.training import runlog
from xpnet.training.model import load

FULL = OSError(errno.ENOSPC, "No space left on device")


def run(capsys, main, prog, *argv: str) -> tuple[int, str, str]:
    return run_cli(capsys, main, prog, argv)


def one_error_line(err: str, prog: str) -> str:
    lines = err.strip().splitlines()
    assert "Traceback" not in err and lines[-1].startswith(f"{prog}: error: "), err
    return lines[-1]


# --- a full disk, for every writer ---------------------------------------------------------------------


def test_atomic_write_on_a_full_disk_keeps_the_old_file_and_leaves_no_temporary(tmp_path, monkeypatch):
    path = tmp_path / "a.bin"
    path.write_bytes(b"old")
    monkeypatch.setattr(files.os, "fsync", lambda fd: (_ for _ in ()).throw(FULL))
    with pytest.raises(WriteError, match="No space left on device") as info:
        atomic_write(path, lambda f: f.write(b"new"))
    assert info.value.exit_status == 1 and path.read_bytes() == b"old"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.bin"]


def test_the_first_save_on_a_full_disk_does_not_claim_an_intact_previous_one(tmp_path, capsys, monkeypatch):
    def full(*args, **kwargs):
        raise WriteError("cannot write", "No space left on device")

    monkeypatch.setattr(train_cli, "save", full)
    argv = [*DIGITS, "--epochs", "2", "--save", str(tmp_path / "m.npz")]
    status, _, err = run(capsys, train_cli.main, "xpnet.train", *argv)
    line = one_error_line(err, "xpnet.train")
    assert status == 1 and "no checkpoint was written" in line and "intact" not in line


def full_after(n: int, monkeypatch) -> None:
    """From the (n+1)-th write to a file on, write half the bytes, then fail as a full disk does."""
    real, calls = os.write, []

    def write(fd, data):
        if fd <= 2 or not data.endswith(b"\n") or b'"type"' not in data:  # only log lines, not lock pids
            return real(fd, data)
        calls.append(fd)
        if len(calls) <= n:
            return real(fd, data)
        real(fd, data[: len(data) // 2])
        raise FULL

    monkeypatch.setattr(files.os, "write", write)


def test_a_log_on_a_full_disk_is_one_line_and_stays_whole_json_lines(tmp_path, capsys, monkeypatch):
    log = tmp_path / "train.jsonl"
    full_after(1, monkeypatch)  # the header is written, and the first epoch's line; the second's fails
    status, _, err = run(capsys, train_cli.main, "xpnet.train", *DIGITS, "--epochs", "3", "--log", str(log))
    monkeypatch.undo()
    assert status == 1 and "No space left on device" in one_error_line(err, "xpnet.train")
    text = log.read_text()
    assert text.endswith("\n") and [json.loads(line)["type"] for line in text.splitlines()] == ["run", "epoch"]


@pytest.mark.parametrize("before", [None, "the log of an earlier run\n"], ids=["new", "replacing"])
@pytest.mark.parametrize("resume", [False, True], ids=["fresh", "resumed"])
def test_a_full_disk_at_the_first_log_line_leaves_no_log_or_the_old_one(tmp_path, capsys, monkeypatch, before, resume):
    """The header is the first line of a fresh log: it is written whole (as atomic_write writes) or not at all."""
    model, log = tmp_path / "m.npz", tmp_path / "logs" / "train.jsonl"
    if resume:
        assert run(capsys, train_cli.main, "xpnet.train", *DIGITS, "--epochs", "1", "--save", str(model))[0] == 0
    if before is not None:
        log.parent.mkdir()
        log.write_text(before)
    full_after(0, monkeypatch)  # appending a line fails (a resumed run's header, after the lines before it)
    monkeypatch.setattr(files.os, "fsync", lambda fd: (_ for _ in ()).throw(FULL))  # and so does a new file
    argv = ["--resume", str(model), "--epochs", "2"] if resume else [*DIGITS, "--epochs", "2"]
    status, _, err = run(capsys, train_cli.main, "xpnet.train", *argv, "--log", str(log))
    monkeypatch.undo()
    assert status == 1 and "No space left on device" in one_error_line(err, "xpnet.train")
    if before is None:
        assert not log.parent.exists()  # nor the folder made for it
    else:
        assert log.read_text() == before and sorted(p.name for p in log.parent.iterdir()) == ["train.jsonl"]


def test_plots_on_a_full_disk_are_one_line_exit_1(digits, tmp_path, capsys, monkeypatch):
    pytest.importorskip("matplotlib")
    _, model = digits
    monkeypatch.setattr(files.os, "fsync", lambda fd: (_ for _ in ()).throw(FULL))
    status, _, err = run(capsys, evaluate.main, "xpnet.evaluate", "--model", str(model), "--plot", str(tmp_path / "p"))
    assert status == 1 and "No space left on device" in one_error_line(err, "xpnet.evaluate")
    assert not (tmp_path / "p").exists()  # no plot was written, so the folder made for them went again


def test_saved_inputs_on_a_full_disk_are_one_line_exit_1(digits, tmp_path, capsys, monkeypatch):
    data, model = digits
    picture = tmp_path / "d.npy"
    np.save(picture, data.x_test[0].reshape(8, 8))
    (tmp_path / "seen").mkdir()
    monkeypatch.setattr(files.os, "fsync", lambda fd: (_ for _ in ()).throw(FULL))
    argv = ["--model", str(model), "--save-input", str(tmp_path / "seen"), str(picture)]
    pytest.importorskip("PIL")
    status, _, err = run(capsys, predict.main, "xpnet.predict", *argv)
    assert status == 1 and "No space left on device" in one_error_line(err, "xpnet.predict")
    assert list((tmp_path / "seen").iterdir()) == []


# --- torn lines ----------------------------------------------------------------------------------------


def test_a_torn_last_line_is_skipped_by_readers_and_cut_off_by_a_resumed_run(tmp_path, capsys):
    log, model = tmp_path / "train.jsonl", tmp_path / "m.npz"
    argv = ["--epochs", "2", "--save", str(model), "--log", str(log)]
    status, _, _ = run(capsys, train_cli.main, "xpnet.train", *DIGITS, *argv)
    assert status == 0
    with open(log, "a") as f:
        f.write('{"type": "epoch", "epoch": 3, "lo')  # what a crash in the middle of a write leaves
    assert [e["epoch"] for e in runlog.read_log(log)] == [1, 2]
    argv = ["--epochs", "3", "--resume", str(model), "--log", str(log)]
    status, _, err = run(capsys, train_cli.main, "xpnet.train", *argv)
    assert status == 0 and "removed a last line cut short" in err
    records = [json.loads(line) for line in log.read_text().splitlines()]  # every line is JSON again
    assert [r["type"] for r in records] == ["run", "epoch", "epoch", "run", "epoch"]


# --- special files, links, empty names -----------------------------------------------------------------


def test_device_nodes_and_fifos_are_refused_before_any_work(tmp_path):
    # Only the check is called on a real device: a regression in a write here would destroy /dev/null.
    fifo = tmp_path / "pipe"
    os.mkfifo(fifo)
    for path, flag in (("/dev/null", "--save"), (fifo, "--log")):
        with pytest.raises(XpnetError, match=f"not a regular file .* choose another {flag}"):
            check_writable(path, flag=flag)
    with pytest.raises(XpnetError, match="not a regular file"):
        atomic_write(fifo, lambda f: f.write(b"x"))  # and the write itself, should a caller skip the check
    assert Path("/dev/null").is_char_device() and fifo.is_fifo()


def test_a_symlink_is_followed_and_kept(tmp_path, capsys):
    real, link = tmp_path / "runs" / "real.npz", tmp_path / "latest.npz"
    real.parent.mkdir()
    link.symlink_to(real)
    status, _, _ = run(capsys, train_cli.main, "xpnet.train", *DIGITS, "--epochs", "1", "--save", str(link))
    assert status == 0 and link.is_symlink() and real.is_file()
    assert load(link).state.epoch == 1


TRAIN = [*DIGITS, "--epochs", "1"]


def fill(arg: str, names: dict[str, str | Path]) -> str:
    """``arg`` with its placeholder (``NEW/a/m.npz``: the part before the first slash) replaced by its path."""
    head, slash, rest = arg.partition("/")
    return str(names[head]) + slash + rest if head in names else arg


LOOPED = {  # each output flag given a symlink loop (``ln -s loop loop``), or a path through one
    "train --save": (train_cli.main, "xpnet.train", [*TRAIN, "--save", "LOOP"]),
    "train --save through": (train_cli.main, "xpnet.train", [*TRAIN, "--save", "LOOP/m.npz"]),
    "train --log": (train_cli.main, "xpnet.train", [*TRAIN, "--log", "LOOP"]),
    "evaluate --plot": (evaluate.main, "xpnet.evaluate", ["--model", "MODEL", "--plot", "LOOP"]),
    "predict --save-input": (predict.main, "xpnet.predict", ["--model", "MODEL", "--save-input", "LOOP", "PICTURE"]),
}


@pytest.mark.parametrize("case", LOOPED)
def test_a_symlink_loop_is_refused_and_left_as_it_was(digits, tmp_path, capsys, case):
    pytest.importorskip("matplotlib")
    pytest.importorskip("PIL")
    data, model = digits
    main, prog, argv = LOOPED[case]
    loop, picture = tmp_path / "loop", tmp_path / "d.npy"
    loop.symlink_to("loop")
    np.save(picture, data.x_test[0].reshape(8, 8))
    names = {"LOOP": str(loop), "MODEL": str(model), "PICTURE": str(picture)}
    status, out, err = run(capsys, main, prog, *(fill(a, names) for a in argv))
    assert status == 2 and "symbolic links go round in a loop" in one_error_line(err, prog), err
    assert err.count("\n") == 1 and out == ""
    assert loop.is_symlink() and os.readlink(loop) == "loop"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["d.npy", "loop"]


LATER = {  # the last file each command writes, where a single output folder names several files
    "evaluate --plot": (evaluate.main, "xpnet.evaluate", ["--plot", "OUT"], evaluate.PLOTS[-1]),
    "predict --save-input": (predict.main, "xpnet.predict", ["--save-input", "OUT", "D", "E"], "e.seen.png"),
}
BLOCKERS = {  # what makes that one file unwritable, and the words that say so
    "loop": (lambda p: p.symlink_to(p.name), "symbolic links go round in a loop"),
    "folder": (lambda p: p.mkdir(), "it is a folder; move it or choose another"),
    "read-only": (lambda p: (p.write_bytes(b"old"), p.chmod(0o444)), "the file is read-only"),
}


@pytest.mark.parametrize("blocker", BLOCKERS)
@pytest.mark.parametrize("case", LATER)
def test_every_file_a_command_will_write_is_checked_before_any_work(digits, tmp_path, capsys, case, blocker):
    pytest.importorskip("matplotlib")
    pytest.importorskip("PIL")
    if blocker == "read-only" and os.geteuid() == 0:
        pytest.skip("root may write a read-only file")
    data, model = digits
    main, prog, argv, last = LATER[case]
    block, words = BLOCKERS[blocker]
    out_dir = tmp_path / "out"
    out_dir.mkdir()
    block(out_dir / last)
    names = {"OUT": str(out_dir), "D": str(tmp_path / "d.npy"), "E": str(tmp_path / "e.npy")}
    for name in ("D", "E"):
        np.save(names[name], data.x_test[0].reshape(8, 8))
    status, out, err = run(capsys, main, prog, "--model", str(model), *(fill(a, names) for a in argv))
    assert status == 2 and words in one_error_line(err, prog) and err.count("\n") == 1, err
    assert out == ""  # nothing scored or predicted first
    assert [p.name for p in out_dir.iterdir()] == [last]  # and nothing written


MADE_THEN_FAILED = {  # each makes folders under NEW for an output, then fails before writing into them: (..., exit)
    "train --log refused": (train_cli.main, [*TRAIN, "--save", "NEW/a/m.npz", "--log", "LOOP"], 2),
    "evaluate without data": (evaluate.main, ["--model", "MODEL", "--data-dir", "EMPTY", "--plot", "NEW/p"], 2),
    "predict, none readable": (predict.main, ["--model", "MODEL", "--save-input", "NEW/s", "BAD"], 1),
}


@pytest.mark.parametrize("case", MADE_THEN_FAILED)
def test_folders_made_for_outputs_go_again_when_nothing_was_written_into_them(mnist, tmp_path, capsys, case):
    pytest.importorskip("matplotlib")
    pytest.importorskip("PIL")
    _, model = mnist
    main, argv, expected = MADE_THEN_FAILED[case]
    names = {"NEW": tmp_path / "new", "LOOP": tmp_path / "loop", "BAD": tmp_path / "bad.png", "MODEL": model}
    names["LOOP"].symlink_to("loop")
    names["BAD"].write_text("not a picture")
    names["EMPTY"] = tmp_path / "empty"
    status, _, err = run(capsys, main, case, *(fill(a, names) for a in argv))
    assert status == expected and "Traceback" not in err, err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bad.png", "loop"]


def test_atomic_write_refuses_a_symlink_loop_itself(tmp_path):
    loop = tmp_path / "loop"
    loop.symlink_to("loop")
    with pytest.raises(XpnetError, match="go round in a loop"):
        atomic_write(loop, lambda f: f.write(b"x"))
    assert os.readlink(loop) == "loop" and sorted(p.name for p in tmp_path.iterdir()) == ["loop"]


@pytest.mark.parametrize("flag", ["--save", "--log"])
def test_an_empty_path_is_an_error(capsys, flag):
    status, _, err = run(capsys, train_cli.main, "xpnet.train", *DIGITS, "--epochs", "1", flag, "")
    assert status == 2 and "needs a file name" in one_error_line(err, "xpnet.train")


# --- two runs, one file; one file, two roles -----------------------------------------------------------


@pytest.mark.parametrize("roles", [("--log", "--save"), ("--resume", "--log")])
def test_one_path_for_two_roles_is_refused(tmp_path, capsys, roles):
    path = tmp_path / "x"
    path.write_bytes(b"")
    argv = [*DIGITS, "--epochs", "1", roles[0], str(path), roles[1], str(path)]
    status, _, err = run(capsys, train_cli.main, "xpnet.train", *argv)
    assert status == 2 and "one file cannot be both" in one_error_line(err, "xpnet.train")
    assert path.read_bytes() == b""


def test_a_held_lock_names_the_run_that_holds_it(tmp_path):
    path = tmp_path / "train.jsonl"
    with files.locked({"--log": path}):
        with pytest.raises(XpnetError, match=rf"--log {path} is in use by another xpnet run \(pid {os.getpid()}\)"):
            with files.locked({"--log": path}):
                pass
    with files.locked({"--log": path}):  # released, and the lock file is gone when free
        pass
    assert list(tmp_path.iterdir()) == []


@pytest.mark.slow  # two training subprocesses: a few seconds on 2 cores
def test_two_trainers_on_one_log(tmp_path):
    log = tmp_path / "train.jsonl"
    first = start_training(*DIGITS, "--epochs", "200", "--log", str(log), "--quiet")
    try:
        deadline = time.monotonic() + 60
        while not (log.exists() and log.read_text().count("\n") >= 2) and time.monotonic() < deadline:
            assert first.poll() is None, first.stderr.read()
            time.sleep(0.05)
        second = start_training(*DIGITS, "--epochs", "1", "--log", str(log), "--quiet")
        _, err = second.communicate(timeout=60)
        assert second.returncode == 2 and f"in use by another xpnet run (pid {first.pid})" in err
    finally:
        first.send_signal(signal.SIGTERM)
        first.communicate(timeout=60)
    records = [json.loads(line) for line in log.read_text().splitlines()]
    assert [r["type"] for r in records].count("run") == 1 and len(records) >= 2


# --- signals -------------------------------------------------------------------------------------------


def test_sigterm_outside_training_is_one_line_and_exit_143(capsys):
    def main(argv):
        os.kill(os.getpid(), signal.SIGTERM)
        time.sleep(5)  # never reached: the handler raises
        return 0

    before = signal.getsignal(signal.SIGTERM)
    with pytest.raises(SystemExit) as info:
        cli.run(main, [], prog="xpnet.train")
    err = capsys.readouterr().err
    assert info.value.code == 143 and err.startswith("xpnet.train: terminated") and err.count("\n") == 1
    assert signal.getsignal(signal.SIGTERM) == before


def test_sigterm_after_the_stop_save_is_still_loud():
    with TerminateLoudly():
        with StopOnSignal():  # training, then its last save
            pass
        with pytest.raises(Terminated):
            os.kill(os.getpid(), signal.SIGTERM)
            time.sleep(5)  # never reached


# --- smaller ones --------------------------------------------------------------------------------------


def test_out_of_memory_with_a_huge_model_suggests_smaller_layers_not_batches(capsys, monkeypatch):
    monkeypatch.setattr(train_cli, "train", lambda *a, **k: (_ for _ in ()).throw(MemoryError()))
    argv = [*DIGITS[:-4], "--hidden", "1000000,1000000", "--epochs", "1"]  # the model alone cannot fit
    status, _, err = run(capsys, train_cli.main, "xpnet.train", *argv)
    line = one_error_line(err, "xpnet.train")
    assert status == 1 and "try smaller --hidden" in line and "--batch-size" not in line


def test_a_huge_learning_rate_prints_no_numpy_warnings(capsys, recwarn):
    status, _, err = run(capsys, train_cli.main, "xpnet.train", *DIGITS, "--epochs", "1", "--lr", "1e30")
    assert status == 1 and "diverged" in one_error_line(err, "xpnet.train")
    assert not [w for w in recwarn if issubclass(w.category, RuntimeWarning)]


def test_a_log_that_is_a_device_or_too_large_is_refused_before_reading(tmp_path, monkeypatch):
    with pytest.raises(XpnetError, match="is not a file"):
        runlog.read_log("/dev/zero")  # read whole, it would never end
    big = tmp_path / "train.jsonl"
    big.write_text('{"type": "epoch", "epoch": 1, "loss": 1.0}\n')
    monkeypatch.setattr(runlog, "MAX_LOG_BYTES", 10)
    with pytest.raises(XpnetError, match="larger than a training log"):
        runlog.read_log(big)


def test_a_dangling_link_into_a_missing_folder_creates_its_target(tmp_path):
    link = tmp_path / "link.npz"
    link.symlink_to(tmp_path / "target" / "sub" / "m.npz")
    assert check_writable(link) == link and not (tmp_path / "target").exists()  # checking makes nothing
    atomic_write(link, lambda f: f.write(b"x"))
    assert link.is_symlink() and (tmp_path / "target" / "sub" / "m.npz").read_bytes() == b"x"


def test_a_reader_that_stops_early_does_not_cost_the_checkpoint(tmp_path):
    """``train ... --save X | head -1``: head takes the run's header line and leaves; the first epoch line then
    meets a closed pipe, and that epoch must be saved already."""
    model = tmp_path / "m.npz"
    argv = " ".join([*DIGITS, "--epochs", "3", "--save", str(model)])
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(SRC), os.environ.get("PYTHONPATH", "")])}
    done = subprocess.run(
        ["bash", "-c", f"{sys.executable} -m xpnet.train {argv} | head -1"],
        capture_output=True, text=True, env=env, timeout=120,
    )  # fmt: skip
    assert done.returncode == 0 and "Traceback" not in done.stderr, done.stderr
    assert load(model).state.epoch >= 1
