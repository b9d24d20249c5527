"""Picture folders as data sets: real digits written as PNGs train, predict names their folders, the cache
answers the second run and a touched file refreshes it, unreadable pictures are skipped and counted."""

from __future__ import annotations

import io
import json
import os
import shutil
from pathlib import Path

import numpy as np
import pytest

import folder_sets
from helpers import run_cli
from xpnet import evaluate, predict, train
from xpnet.cli.progress import ProgressBar
from xpnet.data import cache, folder, images, load_dataset
from xpnet.files import WriteError
from xpnet.training.model import load

pytest.importorskip("PIL")


@pytest.fixture(scope="module")
def digits_dir(tmp_path_factory) -> Path:
    return folder_sets.write_digits(tmp_path_factory.mktemp("digits"), per_class=(40, 10))


def copy_of(src: Path, tmp_path: Path) -> Path:
    dst = tmp_path / "pictures"
    shutil.copytree(src, dst, ignore=shutil.ignore_patterns(".xpnet-cache-*"))
    return dst


def run(main, argv: list[str], capsys) -> tuple[int, str, str]:
    return run_cli(capsys, main, "xpnet", argv)


def test_folder_trains_and_predict_prints_folder_names(digits_dir, tmp_path, capsys):
    model = tmp_path / "m.npz"
    argv = ["--dataset", "folder", "--data-dir", str(digits_dir), "--epochs", "4", "--json"]  # the run line too
    code, out, err = run(train.main, [*argv, "--save", str(model), "--device", "cpu"], capsys)
    assert code == 0, err
    assert "folder: 400 train / 100 test images, 10 classes; model 784-256-128-10" in out
    summary = json.loads(out.strip().splitlines()[-1])
    assert summary["test_accuracy"] > 0.6 and summary["epochs_run"] == 4 and summary["best_epoch"] is None
    ckpt = load(model)
    assert ckpt.names == tuple(f"digit-{k}" for k in range(10))
    assert ckpt.layout == images.folder_layout(28) and ckpt.layout.side == 28
    sevens = sorted((digits_dir / "test" / "digit-7").iterdir())[:3]
    code, out, err = run(predict.main, ["--model", str(model), "--device", "cpu", *map(str, sevens)], capsys)
    assert code == 0, err
    assert sum("digit-7" in line.split(": ")[1] for line in out.splitlines()) >= 2
    code, out, err = run(
        evaluate.main, ["--model", str(model), "--device", "cpu", "--data-dir", str(digits_dir)], capsys
    )
    assert code == 0, err
    assert f"({round(summary['test_accuracy'] * 100)} of 100 folder test images)" in out
    assert " 7 digit-7 " in out
    # The same pictures under other class names would be scored against the wrong labels: refused.
    renamed = copy_of(digits_dir, tmp_path)
    for split in ("train", "test"):
        (renamed / split / "digit-0").rename(renamed / split / "zero")  # sorts last: every label moves
    code, _, err = run(evaluate.main, ["--model", str(model), "--device", "cpu", "--data-dir", str(renamed)], capsys)
    assert code == 2 and "trained on 10 classes" in err and err.count("\n") == 1, err
    code, _, err = run(train.main, [*argv, "--resume", str(model), "--epochs", "5", "--data-dir", str(renamed)], capsys)
    assert code == 2 and "trained on 10 classes (digit-0, digit-1" in err, err


def test_image_size_reaches_the_model_and_predict(digits_dir, tmp_path, capsys):
    model = tmp_path / "m.npz"
    argv = ["--dataset", "folder", "--data-dir", str(digits_dir), "--image-size", "12", "--epochs", "1"]
    code, out, err = run(train.main, [*argv, "--hidden", "16", "--save", str(model)], capsys)
    assert code == 0, err
    assert "model 144-16-10" in out
    picture = next((digits_dir / "test" / "digit-3").iterdir())
    code, out, err = run(predict.main, ["--model", str(model), str(picture), "--save-input", str(tmp_path)], capsys)
    assert code == 0, err
    assert "(12x12," in err


def test_second_run_reads_the_cache_and_an_edited_file_refreshes_it(digits_dir, tmp_path, monkeypatch):
    root = copy_of(digits_dir, tmp_path)
    seen = []
    first = load_dataset("folder", root, picture_progress=lambda done, total: seen.append((done, total)))
    assert seen[-1] == (500, 500) and cache.cache_path(root, 28).is_file()

    def refuse(*args):
        raise AssertionError("a picture was read although the cache is fresh")

    monkeypatch.setattr(folder, "prepare_file", refuse)
    again = load_dataset("folder", root, picture_progress=lambda done, total: seen.append((done, total)))
    assert len(seen) == 500  # no progress: nothing was read
    for a, b in ((first.x_train, again.x_train), (first.y_test, again.y_test)):
        np.testing.assert_array_equal(a, b)
    assert again.classes == first.classes
    monkeypatch.undo()
    touched = next((root / "train" / "digit-0").iterdir())
    os.utime(touched, ns=(touched.stat().st_atime_ns, touched.stat().st_mtime_ns + 10**9))
    load_dataset("folder", root, picture_progress=lambda done, total: seen.append((done, total)))
    assert len(seen) == 500  # the same contents: still the cache
    with open(touched, "ab") as f:
        f.write(b"\0")  # Pillow still reads it; the contents differ
    notes = []
    load_dataset("folder", root, picture_progress=lambda done, total: seen.append((done, total)), notify=notes.append)
    assert len(seen) == 1000 and any("is stale" in n for n in notes)  # read again, and said why


def test_a_damaged_cache_is_rebuilt(digits_dir, tmp_path):
    root = copy_of(digits_dir, tmp_path)
    where = cache.cache_path(root, 28)
    where.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    where.write_bytes(b"not a zip")
    data = load_dataset("folder", root)
    assert len(data.y_train) == 400 and np.load(where, allow_pickle=False)["x_train"].size


def test_unreadable_pictures_are_named_skipped_and_counted(digits_dir, tmp_path, capsys):
    root = copy_of(digits_dir, tmp_path)
    (root / "train" / "digit-1" / "notes.png").write_text("not a picture\n")
    np.save(root / "train" / "digit-2" / "blank.npy", np.zeros((8, 8), np.uint8))
    argv = ["--dataset", "folder", "--data-dir", str(root), "--epochs", "1", "--hidden", "8", "--quiet"]
    code, _, err = run(train.main, argv, capsys)
    assert code == 0, err
    lines = err.splitlines()
    assert any(
        line.startswith(str(root / "train" / "digit-1" / "notes.png") + ": skipped: not a picture") for line in lines
    )
    assert any(line.startswith(str(root / "train" / "digit-2" / "blank.npy") + ": skipped:") for line in lines)
    assert "folder: 2 unreadable picture(s) skipped, 500 read" in lines
    code, _out, err = run(train.main, argv, capsys)  # from the cache: the count is still reported
    assert code == 0 and "folder: 2 unreadable picture(s) skipped (named when" in err


def test_a_class_without_readable_pictures_is_one_line_and_exit_2(digits_dir, tmp_path, capsys):
    root = copy_of(digits_dir, tmp_path)
    empty = root / "train" / "empty"
    empty.mkdir()
    (empty / "broken.jpg").write_bytes(b"\xff\xd8 cut short")
    code, _out, err = run(train.main, ["--dataset", "folder", "--data-dir", str(root), "--epochs", "1"], capsys)
    assert code == 2
    last = err.strip().splitlines()[-1]
    assert last.startswith(f"xpnet: error: folder: {empty} has no readable picture (of 1 files)")


def test_without_test_folder_a_stratified_fifth_is_held_out_and_said(digits_dir, tmp_path):
    root = copy_of(digits_dir, tmp_path)
    shutil.rmtree(root / "test")
    notes = []
    data = load_dataset("folder", root, notify=notes.append)
    assert len(data.y_test) == 80 and len(data.y_train) == 320
    assert np.bincount(data.y_test).tolist() == [8] * 10
    assert any("has no test/ folder: holding out 80 of 400" in n for n in notes)


@pytest.mark.parametrize(
    "layout, expected",
    [
        (None, "has no train/ folder"),
        ("one-class", "has 1 class folder(s): a classifier needs at least 2"),
    ],
)
def test_malformed_folders_are_one_line(tmp_path, capsys, layout, expected):
    if layout:
        (tmp_path / "train" / "only").mkdir(parents=True)
    code, _out, err = run(train.main, ["--dataset", "folder", "--data-dir", str(tmp_path)], capsys)
    assert code == 2 and expected in err and len(err.strip().splitlines()) <= 2


@pytest.mark.slow
@pytest.mark.skipif(not folder_sets.FASHION.is_dir(), reason="Fashion-MNIST is not installed here")
def test_twenty_class_folder_of_digits_and_garments_trains_with_default_flags(tmp_path, capsys):
    root = folder_sets.write_digits(tmp_path / "pictures")
    folder_sets.write_garments(root, per_class=(40, 10))
    model = tmp_path / "m.npz"
    code, out, err = run(
        train.main, ["--dataset", "folder", "--data-dir", str(root), "--save", str(model), "--json"], capsys
    )
    assert code == 0, err
    assert ", 20 classes; model 784-256-128-20" in out
    assert json.loads(out.strip().splitlines()[-1])["test_accuracy"] > 0.8
    trousers = sorted((root / "test" / "Trouser").iterdir())[:4]
    code, out, err = run(predict.main, ["--model", str(model), *map(str, trousers)], capsys)
    assert code == 0, err
    assert sum(" Trouser (" in line for line in out.splitlines()) >= 3  # "9 Trouser (99.9%)": the folder's name


def test_the_cache_is_kept_in_the_private_cache_folder_never_beside_the_pictures(digits_dir, tmp_path, monkeypatch):
    root = copy_of(digits_dir, tmp_path)
    monkeypatch.delenv(cache.CACHE_ENV)
    monkeypatch.setenv("XPNET_DATA", str(tmp_path / "cache"))
    load_dataset("folder", root, image_size=16)
    assert not list(root.rglob(".xpnet-cache-*")) and len(list((tmp_path / "cache" / "folders").glob("*-16.npz"))) == 1
    assert (tmp_path / "cache" / "folders").stat().st_mode & 0o777 == 0o700


def test_picture_progress_counts_pictures_on_a_terminal():
    class Terminal(io.StringIO):
        def isatty(self):
            return True

    stream = Terminal()
    bar = ProgressBar("folder: reading pictures", stream=stream, unit="pictures")
    bar(3, 3)
    assert stream.getvalue() == "\rfolder: reading pictures [" + "#" * 30 + "] 100% 3/3 pictures\n"


def test_image_size_for_another_set_is_refused(capsys):
    code, _, err = run(train.main, ["--dataset", "digits", "--image-size", "16"], capsys)
    assert code == 2 and "sizes a folder set's pictures; digits has its own" in err


def test_a_cache_that_cannot_be_written_costs_only_a_reread(tmp_path, monkeypatch):
    def full(*args, **kwargs):
        raise WriteError("cannot write the cache: No space left on device")

    monkeypatch.setattr(cache, "atomic_write", full)
    assert cache.save(tmp_path / "c.npz", "key", {"x": np.zeros(1)}) is False
