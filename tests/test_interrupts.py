"""Training that survives: Ctrl-C/SIGTERM save and exit 130, divergence stops with exit 1 and keeps the last
good checkpoint, out-of-memory is one line, and an unwritable --save fails before any training."""

from __future__ import annotations

import errno
import signal
import subprocess
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

import xpnet.train
from helpers import DIGITS, Hooks, start_training, tiny_data, train_json
from xpnet.backend import is_out_of_memory, resolve_backend
from xpnet.cli.common import StopOnSignal
from xpnet.data import load_dataset
from xpnet.errors import TrainingDiverged
from xpnet.nn import layer_sizes
from xpnet.training.loop import train
from xpnet.training.model import TrainConfig, initial_state, load

NUMPY = resolve_backend("cpu", "numpy")
SRC = str(Path(__file__).resolve().parents[1] / "src")


def wait_for_epoch_line(proc: subprocess.Popen) -> list[str]:
    lines = []
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        line = proc.stdout.readline()
        if not line:
            break
        lines.append(line)
        if line.startswith("epoch "):
            return lines
    proc.kill()
    pytest.fail(f"training printed no epoch line: {''.join(lines)} {proc.stderr.read()}")


@pytest.mark.slow  # a subprocess that imports scikit-learn, then two short trainings: 3-5 s on 2 cores
@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
def test_signal_saves_a_checkpoint_and_exits_130(tmp_path, signum):
    path = tmp_path / "run.npz"
    # Far more epochs than can finish: the run is still training when the signal arrives.
    proc = start_training(*DIGITS, "--epochs", "100000", "--save", str(path))
    wait_for_epoch_line(proc)
    proc.send_signal(signum)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, err
    assert f"checkpoint saved to {path}: continue with --resume {path}" in out
    assert "stopping after the current step" in err and "Traceback" not in err
    ckpt = load(path)
    assert ckpt.state.epoch >= 1 and ckpt.config.max_iter == 100000
    # The interrupted run resumes exactly: two more epochs end where a straight run of as many ends.
    total = ckpt.state.epoch + 2
    data = load_dataset("digits")
    config = replace(ckpt.config, max_iter=total)
    resumed = train(NUMPY, data, config, state=ckpt.state)
    straight = train(NUMPY, data, config)
    for p, q in zip(resumed.params, straight.params):
        assert np.array_equal(p, q)
    assert resumed.history[-1].loss == straight.history[-1].loss


def test_signal_without_save_says_nothing_was_saved(tmp_path):
    proc = start_training(*DIGITS, "--epochs", "100000")
    wait_for_epoch_line(proc)
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, err
    assert "nothing saved (pass --save PATH to keep a checkpoint)" in out


def test_second_signal_quits_at_once():
    previous = signal.getsignal(signal.SIGINT)
    with StopOnSignal() as stop:
        assert not stop.should_pause()
        signal.raise_signal(signal.SIGINT)
        assert stop.should_pause() and stop.signum == signal.SIGINT
        with pytest.raises(KeyboardInterrupt):
            signal.raise_signal(signal.SIGINT)
    assert signal.getsignal(signal.SIGINT) is previous


def test_second_ctrl_c_during_training_exits_130_without_traceback(tmp_path, capsys, monkeypatch):
    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(xpnet.train, "train", interrupted)  # the loop train_saving runs
    status, _, out = train_json(capsys, *DIGITS, "--epochs", "2", "--save", str(tmp_path / "x.npz"))
    assert status == 130 and "interrupted" in out and "Traceback" not in out


def test_a_disk_that_fills_up_mid_run_is_one_line_and_keeps_the_last_checkpoint(tmp_path, capsys, monkeypatch):
    path, real_save = tmp_path / "run.npz", xpnet.train.save
    calls = []

    def save_until_the_disk_is_full(*args, **kwargs):
        calls.append(1)
        if len(calls) > 1:
            raise OSError(errno.ENOSPC, "No space left on device")
        return real_save(*args, **kwargs)

    monkeypatch.setattr(xpnet.train, "save", save_until_the_disk_is_full)  # what the Saver writes with
    status, _, out = train_json(capsys, *DIGITS, "--epochs", "3", "--save", str(path))
    assert status == 1 and "Traceback" not in out
    error = out.strip().splitlines()[-1]
    assert error.startswith("xpnet.train: error: cannot write the checkpoint") and str(path) in error
    assert load(path).state.epoch == 1


# --- divergence -----------------------------------------------------------------------------------------


def test_huge_learning_rate_stops_with_exit_1_and_keeps_the_last_good_checkpoint(tmp_path, capsys):
    path = tmp_path / "run.npz"
    assert train_json(capsys, *DIGITS, "--epochs", "2", "--save", str(path))[0] == 0
    before = path.read_bytes()
    status, _, out = train_json(capsys, "--epochs", "4", "--resume", str(path), "--save", str(path), "--lr", "1e6")
    assert status == 1
    error = out.strip().splitlines()[-1]
    assert error.startswith("xpnet.train: error: training diverged at epoch 3, step ")
    assert "try a lower --lr than 1e+06" in error and f"{path} is left as it was" in error
    assert path.read_bytes() == before and load(path).state.epoch == 2


def test_fresh_run_with_huge_learning_rate_diverges_in_the_first_epoch(tmp_path, capsys):
    path = tmp_path / "new" / "run.npz"  # a folder made for the checkpoint, and left empty: removed again
    status, _, out = train_json(capsys, *DIGITS, "--epochs", "3", "--lr", "1e6", "--save", str(path))
    assert status == 1 and "training diverged at epoch 1, step 2 " in out and "epoch 1/3" not in out
    assert list(tmp_path.iterdir()) == []


def test_divergence_names_the_first_bad_step_and_skips_on_epoch_end():
    data = tiny_data()
    config = TrainConfig(hidden_layer_sizes=(8,), max_iter=3, batch_size=25, dtype="float64")
    state = initial_state(NUMPY, layer_sizes(data.n_features, config.hidden_layer_sizes, data.n_classes), config)
    saved = []
    hooks = Hooks(on_epoch_end=saved.append, should_pause=lambda: len(saved) == 1)
    good = train(NUMPY, data, config, state=state, callbacks=[hooks])
    assert good.stopped and len(saved) == 1
    # Poison one weight as if update 7 had produced it: epoch 2's second step (7) is the first NaN loss.
    poisoned = good
    poisoned.params = [p.copy() for p in poisoned.params]
    poisoned.params[0][0, 0] = np.nan
    # The library names its parameter; the command line names its flag (--lr) instead.
    message = r"^training diverged at epoch 2, step 6 \(loss nan\): try a lower learning_rate_init than 0\.001$"
    with pytest.raises(TrainingDiverged, match=message):
        train(NUMPY, data, config, state=poisoned, callbacks=[Hooks(on_epoch_end=saved.append)])
    assert len(saved) == 1


def test_weights_that_break_on_the_last_step_are_caught():
    """A NaN weight that no loss has seen yet (full batch: one step per epoch) is still caught."""
    data = tiny_data()
    # A finite rate (the config refuses inf) that float32 cannot hold: cast to the weights' dtype it is inf,
    # so the first update makes them -inf/NaN. That cast is the one overflow here, and NumPy warns of it
    # (the command line's train_saving silences NumPy's warnings before its one-line message); any other
    # warning, a real overflow in the math (a finite rate like 1e38 overflows only the next forward pass,
    # a loss that sees it), would escape pytest.warns and show.
    config = TrainConfig(hidden_layer_sizes=(8,), max_iter=2, batch_size=0, solver="sgd", learning_rate_init=1e300)
    with (
        pytest.warns(RuntimeWarning, match="overflow encountered in cast"),
        pytest.raises(TrainingDiverged, match="epoch 1, by step 1 \\(weights became NaN/Inf\\)"),
    ):
        train(NUMPY, data, config)


# --- out of memory and unwritable paths -----------------------------------------------------------------


# Named and placed like cupy.cuda.memory.OutOfMemoryError, which is all is_out_of_memory looks at.
FakeCupyOOM = type("OutOfMemoryError", (Exception,), {"__module__": "cupy.cuda.memory"})


def test_out_of_memory_errors_are_recognised():
    assert is_out_of_memory(MemoryError())
    assert is_out_of_memory(FakeCupyOOM("allocating 1,024 bytes"))
    assert is_out_of_memory(RuntimeError("CUDA out of memory. Tried to allocate 2.00 GiB"))
    assert is_out_of_memory(RuntimeError("CUBLAS_STATUS_ALLOC_FAILED"))
    assert not is_out_of_memory(ValueError("shapes (3,4) and (5,6) not aligned"))
    torch = pytest.importorskip("torch")
    assert is_out_of_memory(torch.OutOfMemoryError("no more"))


def test_out_of_memory_is_one_line_with_exit_1(tmp_path, capsys, monkeypatch):
    def oom(*args, **kwargs):
        raise FakeCupyOOM("Out of memory allocating 402,653,184 bytes")

    monkeypatch.setattr(xpnet.train, "train", oom)
    status, _, out = train_json(capsys, *DIGITS, "--epochs", "2", "--batch-size", "512")
    assert status == 1
    assert out.strip().splitlines()[-1] == (
        "xpnet.train: error: out of memory on numpy on cpu with --batch-size 512 (512 rows per step): "
        "try --batch-size 256"
    )


@pytest.mark.parametrize("where", ["a-file/sub/run.npz", "a-file/run.npz", "."])  # a missing folder is made
def test_unwritable_save_path_fails_before_training(tmp_path, capsys, monkeypatch, where):
    (tmp_path / "a-file").write_text("")

    def must_not_load(*args, **kwargs):
        raise AssertionError("data loaded before the --save path was checked")

    monkeypatch.setattr(xpnet.train, "load_dataset", must_not_load)  # where train.main reads its data
    status, _, out = train_json(capsys, *DIGITS, "--epochs", "2", "--save", str(tmp_path / where))
    assert status == 2 and out.count("\n") == 1 and "cannot save to" in out
