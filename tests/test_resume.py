"""Resuming is exact: on NumPy, a run stopped (between epochs or mid-epoch) and resumed from its checkpoint
ends bitwise where the uninterrupted run ends."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest

from helpers import StopAfter, tiny_data, train_json
from xpnet.backend import resolve_backend
from xpnet.training.loop import train
from xpnet.training.model import Model, TrainConfig, load, save

NUMPY = resolve_backend("cpu", "numpy")


def assert_same_run(a, b) -> None:
    """Bitwise equal weights and identical epoch statistics (timings aside)."""
    for p, q in zip(a.params, b.params):
        assert p.dtype == q.dtype and np.array_equal(p, q)
    strip = [(s.epoch, s.loss, s.train_accuracy, s.test_accuracy) for s in a.history]
    assert strip == [(s.epoch, s.loss, s.train_accuracy, s.test_accuracy) for s in b.history]


# NumPy's in-place fast step is bitwise the reference step, so a checkpoint from one resumes on the other.
STEPS = {"fast": (True, True), "reference": (False, False), "fast-then-reference": (True, False)}
# The three update rules: plain gradient descent, heavy-ball momentum, adam.
SOLVERS = {"sgd": {"solver": "sgd"}, "momentum": {"solver": "sgd", "momentum": 0.9}, "adam": {"solver": "adam"}}


def save_run(path, state, config, data):
    """Save the state of a run on ``data`` under ``config`` as the command line would."""
    return save(Model.of_data(config, state, NUMPY, data), path)


@pytest.mark.parametrize("solver", SOLVERS.values(), ids=SOLVERS.keys())
@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("fast", STEPS.values(), ids=STEPS.keys())
def test_four_then_resume_to_eight_equals_eight_straight(tmp_path, solver, dtype, fast):
    data = tiny_data()
    # lr_decay < 1: every epoch has its own learning rate, which the resumed run must pick up from the epoch.
    config = TrainConfig(
        hidden_layer_sizes=(16, 8), lr_decay=0.7, max_iter=8, batch_size=25, dtype=dtype, random_state=5, **solver
    )
    straight = train(NUMPY, data, config, fast=fast[0])
    first = train(NUMPY, data, replace(config, max_iter=4), fast=fast[0])
    path = save_run(tmp_path / "c.npz", first, replace(config, max_iter=4), data)
    resumed = train(NUMPY, data, config, fast=fast[1], state=load(path).state)
    assert [s.epoch for s in resumed.history] == list(range(1, 9))
    assert_same_run(resumed, straight)
    assert resumed.step == straight.step == 8 * 5
    # Not equal by accident: a resume that forgot the RNG state (fresh shuffles) would differ.
    fresh = load(path).state
    fresh.rng = np.random.default_rng(config.random_state)
    with pytest.raises(AssertionError):
        assert_same_run(train(NUMPY, data, config, state=fresh), straight)


@pytest.mark.parametrize("steps", [1, 7, 10, 13, 24])  # 5 steps per epoch: mid-epoch and on epoch boundaries
def test_stop_mid_epoch_then_resume_is_exact(tmp_path, steps):
    data = tiny_data()
    config = TrainConfig(hidden_layer_sizes=(16,), lr_decay=0.8, max_iter=5, batch_size=25, random_state=2)
    straight = train(NUMPY, data, config)
    stopped = train(NUMPY, data, config, callbacks=[StopAfter(steps)])
    assert stopped.stopped and stopped.step == steps
    assert stopped.epoch == len(stopped.history) == len([e for e in range(1, 6) if 5 * e <= steps])
    path = save_run(tmp_path / "c.npz", stopped, config, data)
    ckpt = load(path)
    assert ckpt.state.offset == min(25 * (steps % 5), 120)
    resumed = train(NUMPY, data, config, state=ckpt.state)
    assert not resumed.stopped
    assert_same_run(resumed, straight)


def test_resume_with_a_new_learning_rate_and_batch_size_runs(tmp_path):
    data = tiny_data()
    config = TrainConfig(hidden_layer_sizes=(16,), max_iter=2, batch_size=25, random_state=2)
    first = train(NUMPY, data, config, callbacks=[StopAfter(3)])
    path = save_run(tmp_path / "c.npz", first, config, data)
    more = train(NUMPY, data, replace(config, learning_rate_init=1e-4, batch_size=40), state=load(path).state)
    assert [s.epoch for s in more.history] == [1, 2] and more.step == 3 + 2 + 3  # 45 rows left (40 + 5), then 120


# --- through the command line -------------------------------------------------------------------------

DIGITS = ["--dataset", "digits", "--device", "cpu", "--hidden", "32", "--batch-size", "64", "--json"]


def test_cli_resume_to_eight_matches_eight_straight(tmp_path, capsys):
    path = tmp_path / "run.npz"
    status, four, _ = train_json(capsys, *DIGITS, "--epochs", "4", "--save", str(path))
    assert status == 0 and four["epochs"] == 4
    status, resumed, out = train_json(capsys, "--epochs", "8", "--resume", str(path), "--save", str(path), "--json")
    assert status == 0, out
    assert "epoch 5/8" in out and "epoch 4/8" not in out  # --epochs is the total: only 5..8 run
    status, straight, _ = train_json(capsys, *DIGITS, "--epochs", "8", "--save", str(tmp_path / "straight.npz"))
    assert status == 0
    for key in ("epochs", "final_loss", "train_accuracy", "test_accuracy", "config", "dataset"):
        assert resumed[key] == straight[key], key
    a, b = load(path), load(tmp_path / "straight.npz")
    assert a.state.epoch == b.state.epoch == 8
    for p, q in zip(a.state.params + a.state.opt_state, b.state.params + b.state.opt_state):
        assert np.array_equal(p, q)


def test_cli_resume_refuses_a_different_model(tmp_path, capsys):
    path = tmp_path / "run.npz"
    assert train_json(capsys, *DIGITS, "--epochs", "1", "--save", str(path))[0] == 0
    status, _, out = train_json(capsys, "--epochs", "3", "--resume", str(path), "--hidden", "64", "--device", "cpu")
    assert status == 2
    assert out.strip() == (
        f"xpnet.train: error: {path} cannot be resumed as asked: it holds --hidden 32 (you asked for 64); "
        "drop those flags to continue it, or start a new run without --resume"
    )
    # Flags that agree with the checkpoint, and --lr, are fine.
    status, summary, out = train_json(
        capsys, "--epochs", "2", "--resume", str(path), "--hidden", "32", "--lr", "0.002", "--json"
    )
    assert status == 0, out
    assert summary["config"]["learning_rate_init"] == 0.002 and summary["config"]["hidden_layer_sizes"] == [32]


def test_flags_left_out_on_resume_keep_the_checkpoint_settings(tmp_path, capsys):
    path = tmp_path / "run.npz"
    argv = [*DIGITS, "--epochs", "1", "--hidden", "16", "--lr", "0.003", "--gamma", "0.5", "--save", str(path)]
    assert train_json(capsys, *argv)[0] == 0
    status, summary, _ = train_json(capsys, "--epochs", "2", "--resume", str(path), "--batch-size", "32", "--json")
    assert status == 0
    config = summary["config"]
    assert (config["hidden_layer_sizes"], config["learning_rate_init"], config["lr_decay"]) == ([16], 0.003, 0.5)
    assert summary["config"]["batch_size"] == 32


def test_resume_takes_download_flags(tmp_path, capsys):
    # --mirror appends to a list: resuming with it once crashed with a traceback.
    path = tmp_path / "run.npz"
    assert train_json(capsys, *DIGITS, "--epochs", "1", "--save", str(path))[0] == 0
    status, _, out = train_json(capsys, "--epochs", "2", "--resume", str(path), "--mirror", "http://127.0.0.1:9/")
    assert status == 0 and "Traceback" not in out


def test_cli_refuses_a_bad_checkpoint_with_exit_2(tmp_path, capsys):
    bad = tmp_path / "bad.npz"
    bad.write_bytes(b"PK\x03\x04 not really a zip")
    status, _, out = train_json(capsys, "--resume", str(bad), "--device", "cpu")
    assert status == 2 and out.count("\n") == 1 and "not an xpnet checkpoint" in out
