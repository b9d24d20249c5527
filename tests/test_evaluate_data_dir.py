"""evaluate (and train --resume) read the data set from the folder the model was trained from, which the
checkpoint records, and say so; --data-dir still names another."""

from __future__ import annotations

import shutil

import pytest

from folder_sets import write_digits_idx
from helpers import run_cli
from xpnet import evaluate, train
from xpnet.training.model import load

pytest.importorskip("sklearn", reason="the data set is made from scikit-learn's digits")

QUICK = ["--device", "cpu", "--hidden", "16", "--epochs", "1", "--quiet"]


@pytest.fixture
def trained(tmp_path, monkeypatch, capsys):
    """An MNIST-shaped set in ``tmp_path/run/data``, a model trained on it with a relative --data-dir, and the
    working directory moved elsewhere, with nothing where xpnet.train looks by default: (folder, model)."""
    run = tmp_path / "run"
    folder = write_digits_idx(run / "data", shift_half=False)  # 28x28 digits, 10 classes: an MNIST of its own
    monkeypatch.setenv("XPNET_DATA", str(tmp_path / "cache"))  # the default place is empty
    monkeypatch.chdir(run)
    argv = ["--dataset", "mnist", "--data-dir", "data", *QUICK, "--save", "model.npz"]
    status, _, err = run_cli(capsys, train.main, "xpnet.train", argv)
    assert status == 0, err
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    return folder, run / "model.npz"


def test_the_checkpoint_records_the_folder_made_absolute(trained):
    folder, model = trained
    assert load(model).data_dir == str(folder.absolute())


def test_evaluate_reads_the_folder_the_model_was_trained_from_and_says_so(trained, capsys):
    folder, model = trained
    status, out, err = run_cli(capsys, evaluate.main, "xpnet.evaluate", ["--model", str(model), "--device", "cpu"])
    assert status == 0, err
    said = f"mnist: reading {folder}, where {model} was trained (--data-dir DIR reads another folder)"
    assert err.splitlines()[0] == said
    assert "of 359 mnist test images" in out


def test_data_dir_still_overrides_it(trained, tmp_path, capsys):
    _, model = trained
    empty = tmp_path / "empty"
    empty.mkdir()
    argv = ["--model", str(model), "--device", "cpu", "--data-dir", str(empty)]
    status, out, err = run_cli(capsys, evaluate.main, "xpnet.evaluate", argv)
    assert status == 2 and out == ""
    assert err.startswith(f"xpnet.evaluate: error: mnist not found in {empty}") and "where" not in err.splitlines()[0]


def test_a_folder_that_is_gone_is_said_and_the_default_place_is_looked_in(trained, capsys):
    folder, model = trained
    shutil.rmtree(folder)
    status, _, err = run_cli(capsys, evaluate.main, "xpnet.evaluate", ["--model", str(model), "--device", "cpu"])
    assert status == 2
    first, error = err.splitlines()[0], next(line for line in err.splitlines() if "error:" in line)
    assert first.startswith(f"mnist: {folder}, where {model} was trained, is gone")
    assert error.startswith("xpnet.evaluate: error: mnist not found in ") and "cache" in error


def test_resume_reads_it_too(trained, capsys):
    folder, model = trained
    argv = ["--resume", str(model), "--epochs", "2", "--quiet", "--save", str(model)]
    status, _, err = run_cli(capsys, train.main, "xpnet.train", argv)
    assert status == 0, err
    assert err.startswith(f"mnist: reading {folder}, where {model} was trained")
    assert load(model).state.epoch == 2
