"""Training end to end: accuracy on real digits, the CLI, its JSON line and its errors."""

import json
from dataclasses import replace
from pathlib import Path

import pytest

from helpers import run_module, run_train, train_json
from xpnet.backend import resolve_backend
from xpnet.cli import common as cli
from xpnet.data import load_dataset
from xpnet.training.loop import train
from xpnet.training.model import TrainConfig, default_decay

FASHION = Path("/usr/share/datasets/fashion-mnist")


def test_defaults_reach_95_percent_on_digits():
    state = train(resolve_backend("cpu"), load_dataset("digits"), TrainConfig())
    assert state.history[-1].test_accuracy >= 0.95
    assert [e.epoch for e in state.history] == list(range(1, 11))


def test_full_batch_gradient_descent_lowers_the_loss():
    config = TrainConfig(
        hidden_layer_sizes=(32,), activation="logistic", solver="sgd", learning_rate_init=2.0, batch_size=0, max_iter=30
    )
    history = train(resolve_backend("cpu"), load_dataset("digits"), config).history
    assert history[-1].loss < 0.5 * history[0].loss


def test_cli_prints_epochs_and_a_json_line():
    proc = run_module("xpnet.train", "--dataset", "digits", "--device", "cpu", "--epochs", "3", "--json")
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.strip().splitlines()
    assert sum(line.startswith("epoch ") for line in lines) == 3
    summary = json.loads(lines[-1])
    keys = "dataset backend device dtype epochs train_seconds samples_per_second final_loss test_accuracy config"
    assert set(keys.split()) <= set(summary)
    assert [summary[k] for k in ("dataset", "backend", "device", "epochs")] == ["digits", "numpy", "cpu", 3]
    assert 0.5 < summary["test_accuracy"] <= 1.0 and summary["samples_per_second"] > 0
    # 1,438 images: the default decays 0.8 per 60,000 images seen, so the rate stays nearly constant.
    assert summary["config"]["lr_decay"] == default_decay(1438, 128) == 0.9947


@pytest.mark.parametrize(
    "n_train, batch, gamma",
    [
        (60000, 128, 0.8),  # one epoch of Fashion-MNIST at the default batch: 0.8 by either count
        (60000, 16, 0.8),  # by steps it would be 0.8 ** 8 = 0.168 an epoch (issue 31)
        (60000, 1024, 0.9723),  # by examples it would be 0.8 for 59 steps
        (1438, 128, 0.9947),
        (1438, 16, 0.9947),
        (5000, 32, 0.9816),
        (60000, 0, 0.9995),  # full batch: one step an epoch
        (0, 128, 1.0),
    ],
)
def test_default_decay_decays_0_8_per_60000_images_or_469_steps_whichever_is_later(n_train, batch, gamma):
    assert default_decay(n_train, batch) == gamma


def test_batch_size_alone_leaves_the_default_decay_alone(capsys):
    # Issue 31: 0.8 per 469 steps decayed x0.168 an epoch at --batch-size 16 and starved the run.
    argv = ("--dataset", "digits", "--device", "cpu", "--epochs", "1", "--hidden", "8", "--quiet", "--json")
    runs = [train_json(capsys, *argv, "--batch-size", batch) for batch in ("16", "32", "128")]
    assert [status for status, _, _ in runs] == [0, 0, 0], [output for _, _, output in runs]
    assert [summary["config"]["lr_decay"] for _, summary, _ in runs] == [0.9947] * 3


def test_ctrl_c_outside_training_is_one_line_and_exit_130(capsys):
    def interrupted(argv):
        raise KeyboardInterrupt

    with pytest.raises(SystemExit) as e:
        cli.run(interrupted, [], prog="xpnet.evaluate")
    assert e.value.code == 130
    assert capsys.readouterr().err == "xpnet.evaluate: interrupted\n"


def test_lr_decay_shrinks_the_learning_rate_after_every_epoch():
    config = TrainConfig(hidden_layer_sizes=(16,), learning_rate_init=0.004, lr_decay=0.5, max_iter=3)
    history = train(resolve_backend("cpu"), load_dataset("digits"), config).history
    assert [e.lr for e in history] == [0.004, 0.002, 0.001]
    # A different rate changes the run: the rate really reaches the optimizer.
    constant = train(resolve_backend("cpu"), load_dataset("digits"), replace(config, lr_decay=1.0)).history
    assert constant[0].loss == history[0].loss and constant[-1].loss != history[-1].loss


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--epochs", "-1"], "--epochs: must be a positive integer"),
        (["--epochs", "0"], "--epochs: must be a positive integer"),
        (["--hidden", ""], "--hidden"),
        (["--hidden", "256,0"], "--hidden: every hidden layer needs from 1 to"),
        (["--hidden", "a,b"], "comma-separated"),
        (["--lr", "0"], "--lr: must be a positive number"),
        (["--lr", "-0.001"], "--lr: must be a positive number"),
        (["--gamma", "0"], "--gamma: must be in (0, 1]"),
        (["--gamma", "1.5"], "--gamma: must be in (0, 1]"),
        (["--batch-size", "-5"], "--batch-size"),
        (["--optimizer", "lbfgs"], "invalid choice"),
        (["--dataset", "cifar"], "invalid choice"),
        (["--device", "tpu"], "unknown device 'tpu'"),
    ],
)
def test_bad_flags_are_one_line_and_exit_2(args, message, capsys):
    status, out, err = run_train(capsys, "--dataset", "digits", *args)
    assert status == 2
    assert err.count("\n") == 1 and message in err, err
    assert out == ""


def test_missing_idx_files_name_the_files_and_the_alternative(tmp_path):
    # The only mirror is a closed local port: the test never reaches the internet.
    env = {"XPNET_MIRRORS": "http://127.0.0.1:9/"}
    proc = run_module("xpnet.train", "--dataset", "mnist", "--device", "cpu", "--data-dir", str(tmp_path), env=env)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    line = " ".join(proc.stderr.split("xpnet.train: error: ")[-1].split())  # the message and its details
    assert "train-images-idx3-ubyte.gz" in line and "t10k-labels-idx1-ubyte.gz" in line
    assert str(tmp_path) in line and "use the digits set" in line
    assert list(tmp_path.iterdir()) == []


@pytest.mark.slow
@pytest.mark.skipif(not FASHION.is_dir(), reason="Debian's dataset-fashion-mnist is not installed")
def test_fashion_mnist_reaches_88_percent_in_10_epochs(tmp_path):
    # XPNET_DATA points at an empty folder: the Debian copy must be found by itself.
    proc = run_module(
        "xpnet.train", "--dataset", "fashion-mnist", "--device", "cpu", "--json", env={"XPNET_DATA": str(tmp_path)}
    )
    assert proc.returncode == 0, proc.stderr
    summary = json.loads(proc.stdout.strip().splitlines()[-1])
    assert summary["epochs"] == 10 and summary["test_accuracy"] >= 0.88


def test_the_rate_reaches_the_step_as_a_python_float():
    # An np.float64 rate would make NumPy compute lr * g in float64 (NEP 50) where the compiled update casts
    # it to the weights' dtype first: the step would then depend on how the rate was written.
    import numpy as np

    config = TrainConfig(learning_rate_init=np.float64(0.05), lr_decay=np.float64(0.5))
    assert type(config.lr_at(1)) is float and type(config.lr_at(3)) is float
    assert config.lr_at(3) == 0.0125
