"""File and class names that hold a newline, a tab or an escape print on one line, as their escaped repr; plain
names print as they are: `xpnet.errors.escaped`, applied once to every error and every line a tool prints."""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import numpy as np
import pytest

from folder_sets import write_digits
from helpers import rewrite, run_cli
from xpnet import evaluate, predict, train
from xpnet.data import load_dataset
from xpnet.errors import XpnetError, escaped, listed

pytest.importorskip("sklearn", reason="the pictures are scikit-learn's digits")
pytest.importorskip("PIL", reason="a picture folder is read with Pillow")

CLASSES = ("one\nline", "tab\there", "\x1b[31mred")  # a newline, a tab, an ANSI escape


def test_plain_names_are_unchanged_and_others_are_escaped():
    for plain in ("model.npz", "dir with spaces/m.npz", "日本語.png", "digit-7", r"back\slash"):
        assert escaped(plain) == plain
    assert escaped("a\nb.png") == "a\\nb.png" and escaped("x\ty") == "x\\ty"
    assert escaped("\x1b[31mred") == "\\x1b[31mred" and escaped("bad\udcffbyte") == "bad\\udcffbyte"
    assert listed(["a", "b", "c"], 2) == "a, b, ..." and escaped(escaped("a\nb")) == "a\\nb"  # escaping once is enough
    error = XpnetError("cannot read a\nb.png", details=["put it in\x1b[2J/"])
    assert error.message == "cannot read a\\nb.png" and error.details == ("put it in\\x1b[2J/",)


@pytest.fixture
def odd(tmp_path, capsys):
    """A picture folder whose classes (and one unreadable file) have odd names, a model trained on it by the
    command line, and what that printed: (folder, model, a test image, stdout, stderr)."""
    root = tmp_path / "pictures\nfolder"
    write_digits(root, per_class=(30, 30))
    for split in ("train", "test"):  # digits 0, 1 and 2 under odd names; the others go
        for k in range(10):
            folder = root / split / f"digit-{k}"
            if k < len(CLASSES):
                folder.rename(root / split / CLASSES[k])
            else:
                shutil.rmtree(folder)
    digits = load_dataset("digits")
    (root / "train" / CLASSES[0] / "not\na picture.png").write_text("text\n")
    model = tmp_path / "m\nodel.npz"
    argv = ["--dataset", "folder", "--data-dir", str(root), "--device", "cpu", "--epochs", "2", "--save", str(model)]
    status, out, err = run_cli(capsys, train.main, "xpnet.train", argv)
    assert status == 0, err
    return root, model, digits.x_test[0].reshape(8, 8), out, err


def shown(name) -> str:
    """A name as the tools print it."""
    return escaped(str(name))


def one_line_each(text: str, names) -> None:
    """Each name appears escaped, on its line, never raw."""
    for name in names:
        assert shown(name) in text and name not in text, (name, text)


def test_training_on_odd_names_prints_each_on_one_line(odd):
    root, model, _, out, err = odd
    unreadable = shown(root / "train" / CLASSES[0] / "not\na picture.png")
    skipped = [line for line in err.splitlines() if ": skipped: " in line]
    assert skipped and all(line.startswith(unreadable) for line in skipped), err
    assert any(line.startswith(f"checkpoint: {shown(model)} ") for line in out.splitlines()), out
    one_line_each(out + err, [str(model)])
    assert str(root) not in out + err and len(skipped) == 1


def test_evaluate_and_predict_show_odd_class_and_file_names_on_one_line(odd, tmp_path, capsys):
    root, model, image, _, _ = odd
    argv = ["--model", str(model), "--data-dir", str(root)]
    status, out, err = run_cli(capsys, evaluate.main, "xpnet.evaluate", argv)
    assert status == 0, err
    rows = out.split("class ")[1].split("\n\n")[0].splitlines()[1:]  # the precision/recall table
    assert len(rows) == len(CLASSES) and all(re.match(r" *\d ", row) for row in rows), rows
    one_line_each(out, CLASSES)
    picture, gone = tmp_path / "my\npicture.npy", tmp_path / "gone\nmissing.png"
    np.save(picture, image)
    argv = ["--model", str(model), "--top", "3", str(picture), str(gone)]
    status, out, err = run_cli(capsys, predict.main, "xpnet.predict", argv)
    assert status == 1 and out.count("\n") == 1 and out.startswith(f"{shown(picture)}: "), out
    one_line_each(out, [*CLASSES, str(picture)])
    assert err.count("\n") == 1 and shown(gone) in err, err


def test_errors_name_odd_files_on_one_line(tmp_path, capsys):
    missing = tmp_path / "no\nsuch.npz"
    status, _, err = run_cli(capsys, evaluate.main, "xpnet.evaluate", ["--model", str(missing)])
    assert status == 2 and err.count("\n") == 1 and f"{shown(missing)} does not exist" in err, err
    blocker = tmp_path / "a\nfile"
    blocker.write_text("")
    status, _, err = run_cli(capsys, train.main, "xpnet.train", ["--dataset", "digits", "--save", f"{blocker}/m.npz"])
    assert status == 2 and err.count("\n") == 1 and f"{shown(blocker)} is a file, not a folder" in err, err


CRAFTED = "digits\n\x1b[2Jfake"  # a data set name as a hostile checkpoint may hold it (tests/test_hostile.py)


def crafted(model: Path, path: Path, **changes) -> Path:
    """A copy of ``model`` at ``path`` with its metadata changed; a None value removes the key."""
    shutil.copy(model, path)

    def change(arrays: dict) -> None:
        meta = {k: v for k, v in (json.loads(arrays["meta"].tobytes()) | changes).items() if v is not None}
        arrays["meta"] = np.frombuffer(json.dumps(meta).encode(), dtype=np.uint8)

    return rewrite(path, change)


def test_names_read_from_a_crafted_checkpoint_print_on_one_line(digits, tmp_path, capsys):
    data, model = digits
    picture = tmp_path / "d.npy"
    np.save(picture, data.x_test[0].reshape(8, 8))
    named = str(crafted(model, tmp_path / "named.npz", dataset=CRAFTED))
    refused = {
        "resume as another set": (train.main, ["--resume", named, "--dataset", "digits", "--epochs", "20"]),
        "resume with --image-size": (train.main, ["--resume", named, "--image-size", "9", "--epochs", "20"]),
        "evaluate": (evaluate.main, ["--model", named]),
    }
    for case, (main, argv) in refused.items():
        status, out, err = run_cli(capsys, main, "xpnet", argv)
        assert status == 2 and out == "" and err.count("\n") == 1, (case, err)
        one_line_each(err, [CRAFTED])
    classes = [f"class\n{k}" for k in range(10)]
    labelled = str(crafted(model, tmp_path / "labelled.npz", dataset=CRAFTED, classes=classes))
    status, out, err = run_cli(capsys, predict.main, "xpnet.predict", ["--model", labelled, "--top", "2", str(picture)])
    assert status == 0 and out.count("\n") == 1 and "\x1b" not in out + err, out + err
    # Where it was trained, as the resumed run names it: shown escaped, or as unknown when missing.
    origin = {"backend": "numpy\nfake", "device": "cpu\x1b[2J", "workers": "2 Dask\nworkers"}
    for meta, names in ((origin, list(origin.values())), ({"backend": None, "device": None}, ["unknown"])):
        resumed = str(crafted(model, tmp_path / "resumed.npz", **meta))
        argv = ["--resume", resumed, "--epochs", "13"]
        status, out, err = run_cli(capsys, train.main, "xpnet.train", argv)
        assert status == 0, err
        line = next(line for line in out.splitlines() if line.startswith("resuming "))
        assert all(shown(name) in line for name in names) and "\x1b" not in out, out
