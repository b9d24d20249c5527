"""``python -m xpnet.evaluate`` and the metrics behind it: accuracy, precision, recall, confusion, plots."""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from xpnet import evaluate, train
from xpnet.backend import resolve_backend
from xpnet.evaluate import cm_accuracy, confusion_matrix, precision_recall
from xpnet.training.model import images_to_device, load, score

pytest.importorskip("sklearn", reason="the test models train on scikit-learn's digits")

from helpers import run_cli

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
PLOTS = ("training-curves.png", "confusion-matrix.png", "worst-misclassified.png")


def run(capsys, *argv: str) -> tuple[int, str, str]:
    return run_cli(capsys, evaluate.main, evaluate.PROG, argv)


# Hand-computed: 5 examples of 3 classes; class 2 is never predicted.
TRUE = [0, 0, 1, 1, 2]
PRED = [0, 1, 1, 1, 0]


def test_confusion_matrix_counts_rows_true_columns_predicted():
    cm = confusion_matrix(np.array(TRUE), np.array(PRED), 3)
    assert cm.tolist() == [[1, 1, 0], [0, 2, 0], [1, 0, 0]]
    assert cm_accuracy(cm) == pytest.approx(3 / 5)


def test_precision_and_recall_by_hand():
    precision, recall = precision_recall(confusion_matrix(np.array(TRUE), np.array(PRED), 3))
    assert precision[:2].tolist() == pytest.approx([1 / 2, 2 / 3]) and math.isnan(precision[2])
    assert recall.tolist() == pytest.approx([1 / 2, 1.0, 0.0])


def test_metrics_refuse_labels_outside_the_classes():
    with pytest.raises(ValueError, match=r"0\.\.2"):
        confusion_matrix(np.array([0, 3]), np.array([0, 1]), 3)
    assert cm_accuracy(np.zeros((3, 3), dtype=np.int64)) == 0.0


@pytest.mark.parametrize("name", ["digits", "mnist"])
def test_reported_accuracy_is_the_trainers_and_the_matrix_adds_up(name, request, capsys):
    data, model = request.getfixturevalue(name)
    args = ["--model", str(model), "--device", "cpu", "--json"]
    if name == "mnist":
        args += ["--data-dir", data.source]
    status, out, err = run(capsys, *args)
    assert status == 0, err
    summary = json.loads(out.splitlines()[-1])
    saved, backend = load(model), resolve_backend("cpu")
    x = images_to_device(backend, data.x_test, backend.xp.float32)
    y = backend.xp.astype(backend.asarray(data.y_test), backend.xp.int64)
    expected = score(backend, [backend.asarray(p) for p in saved.params], x, y, saved.config)
    assert summary["accuracy"] == expected
    assert f"test accuracy {100 * expected:.2f}% " in out
    cm = np.array(summary["confusion_matrix"])
    assert cm.shape == (10, 10) and cm.sum() == len(data.y_test) == summary["n_test"]
    assert np.trace(cm) / cm.sum() == expected
    assert cm.sum(axis=1).tolist() == np.bincount(data.y_test, minlength=10).tolist()
    for k in range(10):  # the printed table holds the same recall
        row = next(line for line in out.splitlines() if line.startswith(f"{k:>2} {k} "))
        assert f"{100 * summary['recall'][k]:6.2f}%" in row


def test_plots_are_real_pngs(digits, tmp_path, capsys):
    Image = pytest.importorskip("PIL.Image", reason="the PNGs are checked with Pillow")
    pytest.importorskip("matplotlib", reason="--plot draws with matplotlib")
    _, model = digits
    folder = tmp_path / "plots"
    status, out, err = run(capsys, "--model", str(model), "--device", "cpu", "--plot", str(folder))
    assert status == 0, err
    assert f"wrote {folder / PLOTS[0]}" in out
    assert sorted(p.name for p in folder.iterdir()) == sorted(PLOTS)  # and no temporary file left
    for name in PLOTS:
        path = folder / name
        assert path.read_bytes()[:8] == PNG_SIGNATURE
        assert path.stat().st_size > 5_000, f"{name} is suspiciously small"
        with Image.open(path) as im:
            im.verify()
        with Image.open(path) as im:
            assert 400 <= im.width <= 2000 and 250 <= im.height <= 2000, (name, im.size)


SMALL = ["--dataset", "digits", "--device", "cpu", "--hidden", "16", "--epochs", "2", "--quiet"]


def train_logged(capsys, folder: Path, *flags: str) -> tuple[Path, Path]:
    """Train a small digits model with ``flags``, saving it and its log in ``folder``: (model, log)."""
    model, log = folder / "m.npz", folder / "train.jsonl"
    argv = [*SMALL, *flags, "--save", str(model), "--log", str(log)]  # the folder is made as for any output
    status, _, err = run_cli(capsys, train.main, "xpnet.train", argv)
    assert status == 0, err
    return model, log


def test_curves_come_from_the_training_log(tmp_path, capsys):
    pytest.importorskip("matplotlib", reason="--plot draws with matplotlib")
    model, log = train_logged(capsys, tmp_path)
    # Resumed with another rate, appending to the log: still the log of this model's run.
    argv = ["--resume", str(model), "--epochs", "3", "--lr", "0.002", "--save", str(model), "--log", str(log)]
    assert run_cli(capsys, train.main, "xpnet.train", [*argv, "--quiet"])[0] == 0
    status, _, err = run(capsys, "--model", str(model), "--plot", str(tmp_path / "p"), "--log", str(log))
    assert status == 0, err
    assert (tmp_path / "p" / "training-curves.png").stat().st_size > 5_000


@pytest.mark.parametrize(
    ("other", "named"),
    [
        (["--seed", "2"], "its header has random_state 2 where"),
        (["--hidden", "8"], "its header has hidden_layer_sizes 8 where"),
        (["--val-split", "100"], "its header has n_train 1338 where"),
        (["--lr", "0.002"], "its epoch 1 has loss"),  # a header cannot tell: a resume may change the rate
    ],
    ids=["seed", "layers", "validation", "rate"],
)
def test_the_log_of_another_run_is_refused_before_any_work(tmp_path, capsys, other, named):
    pytest.importorskip("matplotlib", reason="--plot draws with matplotlib")
    model, _ = train_logged(capsys, tmp_path / "a")
    _, log = train_logged(capsys, tmp_path / "b", *other)
    status, out, err = run(capsys, "--model", str(model), "--plot", str(tmp_path / "p"), "--log", str(log))
    assert status == 2 and out == "" and err.count("\n") == 1, err
    assert f"--log {log} is the log of another run ({named}" in err and "leave --log out" in err
    assert not (tmp_path / "p").exists()


@pytest.mark.parametrize(
    ("setup", "message"),
    [
        (lambda tmp: ["--log", str(tmp / "log.jsonl")], "--log only feeds the curves of --plot"),
        (lambda tmp: ["--plot", str(tmp / "model.npz" / "b")], "model.npz is a file, not a folder"),
        (lambda tmp: ["--plot", str(tmp / "p"), "--log", str(tmp / "model.npz")], "not an xpnet training log"),
    ],
    ids=["log-without-plot", "plot-under-a-file", "log-not-a-log"],
)
def test_bad_flags_are_one_line_before_any_work(setup, message, digits, tmp_path, capsys):
    pytest.importorskip("matplotlib", reason="--plot draws with matplotlib")
    _, model = digits
    (tmp_path / "model.npz").write_bytes(Path(model).read_bytes())
    status, out, err = run(capsys, "--model", str(model), *setup(tmp_path))
    assert status == 2 and out == ""
    assert err.count("\n") == 1 and message in err
    assert not (tmp_path / "p").exists() or not any((tmp_path / "p").iterdir())


def test_missing_data_set_says_where_the_files_go_and_how_to_get_them(mnist, tmp_path, capsys):
    _, model = mnist
    status, out, err = run(capsys, "--model", str(model), "--data-dir", str(tmp_path / "empty"))
    assert status == 2 and out == ""
    first, *details = err.splitlines()
    assert first == f"xpnet.evaluate: error: mnist not found in {tmp_path / 'empty'}"  # short; details below
    assert details and all(line.startswith("  ") for line in details)
    text = " ".join(line.strip() for line in details)
    assert "train-images-idx3-ubyte.gz" in text and str(tmp_path / "empty") in text
    assert f"python -m xpnet.train --dataset mnist --data-dir {tmp_path / 'empty'} --epochs 1 download them" in text


def test_missing_matplotlib_names_the_extra(digits, tmp_path, capsys, monkeypatch):
    _, model = digits
    monkeypatch.setitem(sys.modules, "matplotlib", None)
    status, out, err = run(capsys, "--model", str(model), "--plot", str(tmp_path / "p"))
    assert status == 2 and out == ""
    assert err.count("\n") == 1 and 'pip install "xpnet[plot]"' in err
    assert not (tmp_path / "p").exists()


def test_output_piped_into_a_reader_that_stops_early_ends_quietly():
    # As `python -m xpnet.evaluate ... | head -3`: the reader closes the pipe while the table is printed.
    code = "import sys\nfrom xpnet.cli import common as cli\n\n"
    code += "def main(argv):\n    for i in range(200000):\n        print(i)\n\n"
    code += "sys.exit(cli.run(main))\n"
    src = str(Path(__file__).resolve().parents[1] / "src")
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([src, os.environ.get("PYTHONPATH", "")])}
    proc = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env)
    proc.stdout.close()
    err = proc.stderr.read().decode()
    assert proc.wait(timeout=60) == 1
    assert "Traceback" not in err and "BrokenPipeError" not in err, err
