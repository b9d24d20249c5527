"""Hostile input at the command line's core (issues 31/33): a model's data folder one may not enter, outputs
that are the data set's files, and a Ctrl-C while any tool still imports."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

from folder_sets import write_digits, write_digits_idx
from helpers import interrupted_while_importing, run_cli, run_train
from xpnet import evaluate

QUICK = ["--device", "cpu", "--hidden", "8", "--epochs", "1", "--quiet"]


def test_a_data_folder_one_may_not_enter_is_one_line(tmp_path, monkeypatch, capsys):
    folder = write_digits_idx(tmp_path / "data", shift_half=False)
    model = tmp_path / "model.npz"
    status, _, err = run_train(capsys, "--dataset", "mnist", "--data-dir", str(folder), *QUICK, "--save", str(model))
    assert status == 0, err
    monkeypatch.setenv("XPNET_DATA", str(tmp_path / "cache"))
    real_stat = os.stat

    def stat(path, *args, **kwargs):  # as for a folder under another user's home: stat itself is refused
        if os.fspath(path).startswith(str(folder)):
            raise PermissionError(13, "Permission denied", os.fspath(path))
        return real_stat(path, *args, **kwargs)

    monkeypatch.setattr(os, "stat", stat)
    status, out, err = run_cli(capsys, evaluate.main, "xpnet.evaluate", ["--model", str(model), "--device", "cpu"])
    assert status == 2 and out == "" and "Traceback" not in err, err
    first, error = err.splitlines()[0], next(line for line in err.splitlines() if "error:" in line)
    assert first.startswith(f"mnist: {folder}, where {model} was trained, is gone or cannot be entered")
    assert error.startswith("xpnet.evaluate: error: mnist not found in ")


def idx_set(tmp_path: Path) -> tuple[list[str], Path]:
    folder = write_digits_idx(tmp_path / "data", shift_half=False)
    return ["--dataset", "idx", "--data-dir", str(folder), *QUICK], next(folder.glob("train-images*"))


@pytest.mark.parametrize("flag", ["--save", "--log"])
def test_an_output_that_is_an_idx_file_read_is_refused(tmp_path, capsys, flag):
    argv, images = idx_set(tmp_path)
    before = images.read_bytes()
    link = tmp_path / "link.npz"
    link.symlink_to(images)
    for path in (images, link):
        status, out, err = run_train(capsys, *argv, flag, str(path))
        assert (status, out, err.count("\n")) == (2, "", 1), err
        assert err.startswith(f"xpnet.train: error: {flag} {path} is also the --data-dir file"), err
        assert images.read_bytes() == before and link.is_symlink()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["data", "link.npz"]


@pytest.mark.parametrize("flag", ["--save", "--log"])
def test_an_output_inside_a_picture_folder_read_is_refused(tmp_path, capsys, flag):
    folder = write_digits(tmp_path / "pics", per_class=(2, 1))
    before = sorted(folder.rglob("*"))
    out_path = folder / "train" / "model.npz"
    status, out, err = run_train(capsys, "--dataset", "folder", "--data-dir", str(folder), *QUICK, flag, str(out_path))
    assert (status, out, err.count("\n")) == (2, "", 1), err
    assert err.startswith(f"xpnet.train: error: {flag} {out_path} is inside the --data-dir folder"), err
    assert sorted(folder.rglob("*")) == before


# The guard that makes it so for every tool is xpnet/__init__.py's (issue 33).


@pytest.mark.skipif(sys.platform == "win32", reason="POSIX signals")
@pytest.mark.parametrize(
    "tool",
    ["train", "predict", "evaluate", "check", "export", "serve"],
)
def test_ctrl_c_while_python_m_xpnet_tool_imports_is_one_line_and_130(tmp_path, tool):
    # A stand-in for NumPy, which every tool imports on its way in.
    result = interrupted_while_importing(tmp_path, "numpy", ["-m", f"xpnet.{tool}", "--help"])
    assert result == (130, "", f"xpnet.{tool}: interrupted\n")
