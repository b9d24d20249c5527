"""Training output: the progress bar (terminal only, few device reads), --quiet and the --log JSON Lines."""

from __future__ import annotations

import io
import json

import pytest

from helpers import run_train
from xpnet.cli import progress
from xpnet.cli.progress import EpochBar, ProgressBar

pytest.importorskip("sklearn", reason="the training runs use scikit-learn's digits")

TINY = ["--dataset", "digits", "--device", "cpu", "--hidden", "8", "--batch-size", "64"]


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


class Clock:
    """A clock that advances ``tick`` seconds each time it is read."""

    def __init__(self, tick: float):
        self.now, self.tick = 0.0, tick

    def __call__(self) -> float:
        self.now += self.tick
        return self.now


def test_the_bar_draws_on_a_terminal_and_reads_the_loss_only_when_it_redraws():
    reads = []
    stream = Terminal()
    bar = EpochBar(5, 1000, 10, read=lambda s: reads.append(s) or s, stream=stream, clock=Clock(0.01))
    for step in range(1, 101):  # one epoch of 100 steps over 1 simulated second
        bar.step(2, 10 * step, 0.5 * 10 * step)
    text = stream.getvalue()
    assert 2 <= len(reads) <= 5, "the loss is read at most every 0.25 s, never every step"
    last = text.split("\r")[-1]
    assert last.startswith("epoch 2/5 [") and "/100 batches" in last and "samples/s" in last
    assert last.rstrip().endswith("loss 0.5000")
    bar.clear()
    assert stream.getvalue().endswith("\r") and bar.drawn == 0


def test_the_bar_is_silent_off_a_terminal():
    reads = []
    stream = io.StringIO()  # a pipe or a log file
    bar = EpochBar(1, 100, 10, read=reads.append, stream=stream, clock=Clock(1.0))
    for step in range(1, 11):
        bar.step(1, 10 * step, 1.0)
    bar.clear()
    assert stream.getvalue() == "" and reads == []
    assert EpochBar(1, 100, 10, read=float, stream=stream, isatty=True).enabled


def test_a_line_never_wraps_on_a_narrow_terminal(monkeypatch):
    # A terminal 40 columns wide: a wrapped line could not be redrawn in place.
    monkeypatch.setattr(progress.os, "get_terminal_size", lambda fd: progress.os.terminal_size((40, 24)))
    stream = Terminal()
    stream.fileno = lambda: 2
    bar = EpochBar(5, 1000, 10, read=float, stream=stream, clock=Clock(1.0))
    bar.step(1, 10, 1.0)
    bar.step(1, 20, 2.0)
    bar.clear()
    ProgressBar("train-images-idx3-ubyte.gz", stream, min_interval=0)(5_000_000, 9_912_422)
    lines = stream.getvalue().split("\r")
    assert lines[1].startswith("epoch 1/5 [") and lines[-1].startswith("train-images-idx3-ubyte.gz [")
    assert all(len(line) <= 40 for line in lines)


@pytest.mark.parametrize(("rate", "shown"), [(950, "950"), (12_345, "12.3k"), (1_234_567, "1.23M")])
def test_rates_stay_short(rate, shown):
    stream = Terminal()
    bar = EpochBar(1, 10**7, 1, read=float, stream=stream, clock=Clock(1.0))
    bar.step(1, 10, 1.0)  # the epoch's clock starts
    bar.step(1, 10 + rate, 1.0)  # one second later
    assert f"  {shown} samples/s" in stream.getvalue()


def test_training_draws_the_bar_when_stderr_is_a_terminal(capsys, monkeypatch):
    monkeypatch.setattr(progress, "MIN_INTERVAL", 0.0)  # digits epochs are too short for 0.25 s
    terminal = Terminal()
    monkeypatch.setattr("sys.stderr", terminal)
    status, out, _ = run_train(capsys, *TINY, "--epochs", "2")
    assert status == 0
    assert "\repoch 1/2 [" in terminal.getvalue() and "\repoch 2/2 [" in terminal.getvalue()
    assert terminal.getvalue().endswith("\r"), "the bar is erased before the epoch line"
    assert sum(line.startswith("epoch ") for line in out.splitlines()) == 2


def test_no_bar_off_a_terminal_and_no_epoch_lines_with_quiet(capsys, monkeypatch):
    monkeypatch.setattr(progress, "MIN_INTERVAL", 0.0)
    status, out, err = run_train(capsys, *TINY, "--epochs", "2")
    assert status == 0 and "\r" not in err
    assert sum(line.startswith("epoch ") for line in out.splitlines()) == 2
    status, out, err = run_train(capsys, *TINY, "--epochs", "2", "--quiet", "--json")
    assert status == 0 and "\r" not in err
    assert not any(line.startswith("epoch ") for line in out.splitlines())
    assert json.loads(out.splitlines()[-1])["epochs"] == 2


def test_quiet_prints_the_result_line_and_json_only(capsys, tmp_path):
    # Issue 31: --quiet still printed the run line ("digits: 1438 train / ...") above the result.
    model = tmp_path / "m.npz"
    status, out, err = run_train(capsys, *TINY, "--epochs", "1", "--quiet", "--save", str(model))
    assert status == 0 and err == "", err
    assert [line.split(" ")[0] for line in out.splitlines()] == ["test", "checkpoint:"], out
    status, out, err = run_train(capsys, *TINY, "--epochs", "2", "--quiet", "--resume", str(model), "--json")
    assert status == 0 and err == "", err
    lines = out.splitlines()
    assert len(lines) == 2 and lines[0].startswith("test accuracy") and json.loads(lines[1])["epochs"] == 2, out
    status, out, _ = run_train(capsys, *TINY, "--epochs", "1")
    assert status == 0 and out.startswith("digits: ")  # without --quiet the run line comes first


def test_log_has_a_header_and_one_line_per_epoch_and_resume_appends(capsys, tmp_path):
    log, model = tmp_path / "train.jsonl", tmp_path / "m.npz"
    args = ("--epochs", "2", "--gamma", "0.5", "--log", str(log), "--save", str(model), "--json")
    status, out, _ = run_train(capsys, *TINY, *args)
    assert status == 0
    summary = json.loads(out.splitlines()[-1])
    records = [json.loads(line) for line in log.read_text().splitlines()]
    assert [r["type"] for r in records] == ["run", "epoch", "epoch"]
    assert records[0]["config"] == summary["config"] and records[0]["seed"] == 1
    assert [r["epoch"] for r in records[1:]] == [1, 2]
    assert records[-1]["loss"] == summary["final_loss"]
    assert records[-1]["test_accuracy"] == summary["test_accuracy"]
    assert [r["lr"] for r in records[1:]] == [0.001, 0.0005]  # each epoch's own rate (--gamma 0.5)
    assert records[-1]["samples_per_second"] > 0

    status, out, _ = run_train(capsys, "--resume", str(model), "--epochs", "3", "--log", str(log), "--json")
    assert status == 0
    records = [json.loads(line) for line in log.read_text().splitlines()]
    assert [r["type"] for r in records] == ["run", "epoch", "epoch", "run", "epoch"]
    assert records[3]["resumed_from_epoch"] == 2 and records[-1]["epoch"] == 3
    assert records[-1]["lr"] == 0.00025  # the checkpoint's gamma carries on, not the default of --dataset
    assert records[-1]["loss"] == json.loads(out.splitlines()[-1])["final_loss"]


def test_an_unwritable_log_fails_before_training(capsys, tmp_path):
    model = tmp_path / "m.npz"
    (tmp_path / "a-file").write_text("")
    status, out, err = run_train(capsys, *TINY, "--log", str(tmp_path / "a-file" / "t.jsonl"), "--save", str(model))
    assert status == 2 and out == ""
    assert err.count("\n") == 1 and "a-file is a file, not a folder" in err
    assert not model.exists()
