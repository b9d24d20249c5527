"""Issue 31/33 leftovers: the tools that only use a model read its weights alone; predict's help says which
pictures it reads; no evaluate --plot may replace one of the data set's files or go inside its picture folder."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import numpy as np
import pytest

import folder_sets
from helpers import run_cli
from xpnet import evaluate, export, predict, train
from xpnet.data.pictures import FORMATS, LIMITS
from xpnet.training.model import CheckpointError, load


def nan_optimizer(trained, tmp_path):
    """A copy of ``trained`` whose optimizer arrays hold NaN: unusable to resume, harmless to the weights."""
    with np.load(trained) as z:
        arrays = {k: z[k] for k in z.files}
    optimizer = [k for k in arrays if k.startswith("opt_")]
    assert optimizer, "the fixture's model must hold optimizer state"
    arrays |= {k: np.full_like(arrays[k], np.nan) for k in optimizer}
    path = tmp_path / "nan-optimizer.npz"
    np.savez(path, **arrays)
    with pytest.raises(CheckpointError, match="NaN"):
        load(path)  # what --resume reads: refused
    return path


def test_predict_evaluate_and_export_never_read_the_optimizer_state(digits, tmp_path, capsys):
    data, trained = digits
    model, picture = nan_optimizer(trained, tmp_path), tmp_path / "d.npy"
    np.save(picture, data.x_test[0].reshape(8, 8))
    m = ["--model", str(model)]
    runs = {
        "xpnet.predict": (predict.main, [*m, "--device", "cpu", str(picture)]),
        "xpnet.evaluate": (evaluate.main, [*m, "--device", "cpu", "--json"]),
        "xpnet.export": (export.main, [*m, "--onnx", str(tmp_path / "m.onnx")]),
    }
    pytest.importorskip("onnx")
    for prog, (main, argv) in runs.items():
        status, out, err = run_cli(capsys, main, prog, argv)
        assert status == 0 and out, f"{prog}: {err}"
    assert (tmp_path / "m.onnx").stat().st_size > 0


def test_predict_help_names_the_formats_and_limits_it_holds_to(capsys):
    with pytest.raises(SystemExit):
        predict.main(["--help"])
    text = " ".join(capsys.readouterr().out.split())  # as argparse wraps it
    assert "any format Pillow reads" not in text
    assert all(f in text for f in FORMATS) and LIMITS in text
    usage = " ".join((Path(__file__).resolve().parents[1] / "docs" / "usage.md").read_text(encoding="utf-8").split())
    assert "16 megapixels (4 for WebP and progressive JPEG; other formats are refused)" in usage


def idx_copy(mnist, tmp_path):
    """A private copy of the MNIST-shaped set's folder, and its model."""
    data, model = mnist
    folder = shutil.copytree(data.source, tmp_path / "data")
    return folder, model


@pytest.mark.parametrize("how", ["symlink", "hard link"])
def test_a_plot_that_is_one_of_the_data_sets_files_is_refused(mnist, tmp_path, capsys, how):
    pytest.importorskip("matplotlib")
    folder, model = idx_copy(mnist, tmp_path)
    target = next(p for p in sorted(folder.iterdir()) if p.name.startswith("t10k-images"))
    before = {p.name: p.read_bytes() for p in folder.iterdir()}
    out = tmp_path / "plots"
    out.mkdir()
    plot = out / evaluate.PLOTS[1]
    plot.symlink_to(target) if how == "symlink" else os.link(target, plot)
    argv = ["--model", str(model), "--device", "cpu", "--data-dir", str(folder), "--plot", str(out)]
    status, stdout, err = run_cli(capsys, evaluate.main, "xpnet.evaluate", argv)
    assert status == 2 and err.count("\n") == 1 and "--plot" in err and "Traceback" not in err, err
    assert stdout == "" and {p.name: p.read_bytes() for p in folder.iterdir()} == before
    assert sorted(p.name for p in out.iterdir()) == [plot.name]


def test_plots_inside_the_picture_folder_are_refused(tmp_path, capsys):
    pytest.importorskip("matplotlib")
    pytest.importorskip("PIL")
    root = folder_sets.write_digits(tmp_path / "pictures", per_class=(6, 2))
    model = tmp_path / "m.npz"
    argv = ["--dataset", "folder", "--data-dir", str(root), "--epochs", "1", "--hidden", "8", "--quiet"]
    assert run_cli(capsys, train.main, "xpnet.train", [*argv, "--device", "cpu", "--save", str(model)])[0] == 0
    before = sorted(p.relative_to(root) for p in root.rglob("*"))
    link = tmp_path / "into"  # a path elsewhere that leads inside the folder counts too
    link.symlink_to(root / "train")
    for plots in (root / "train" / "digit-3", link / "new"):
        argv = ["--model", str(model), "--device", "cpu", "--plot", str(plots)]
        status, stdout, err = run_cli(capsys, evaluate.main, "xpnet.evaluate", argv)
        assert status == 2 and "Traceback" not in err, err
        assert err.splitlines()[-1].startswith("xpnet.evaluate: error: --plot") and "inside the --data-dir" in err
        assert stdout == "" and sorted(p.relative_to(root) for p in root.rglob("*")) == before
