"""``--dataset idx``: any folder of the four IDX files, any number of classes, never downloaded."""

from __future__ import annotations

import json

import numpy as np
import pytest

import folder_sets
from helpers import run_train
from xpnet.data import IdxError, load_dataset
from xpnet.data.datasets import IDX_FILES
from xpnet.data.idx import write_idx


def run(argv, capsys):
    return run_train(capsys, *argv)


@pytest.fixture(scope="module")
def twenty(tmp_path_factory):
    return folder_sets.write_digits_idx(tmp_path_factory.mktemp("idx20"))


def test_digits_with_extra_classes_train_with_twenty_outputs(twenty, capsys):
    argv = ["--dataset", "idx", "--data-dir", str(twenty), "--epochs", "5", "--device", "cpu", "--json"]
    code, out, err = run(argv, capsys)
    assert code == 0, err
    assert "idx: 1438 train / 359 test images, 20 classes; model 784-256-128-20" in out
    summary = json.loads(out.strip().splitlines()[-1])
    assert summary["test_accuracy"] > 0.8  # mirrored digits are classes of their own, and learnable


def test_idx_set_classes_are_numbered_up_to_the_largest_label(twenty):
    data = load_dataset("idx", twenty)
    assert data.n_classes == 20 and data.classes == tuple(str(k) for k in range(20))


def test_named_sets_keep_their_label_check(twenty):
    with pytest.raises(IdxError, match=r"labels must lie in 0\.\.9, found 19"):
        load_dataset("mnist", twenty)


def test_idx_set_is_never_downloaded(tmp_path, capsys):
    write_idx(tmp_path / f"{IDX_FILES['train_labels']}.gz", np.zeros(3, np.uint8))
    code, _, err = run(["--dataset", "idx", "--data-dir", str(tmp_path), "--mirror", "http://127.0.0.1:9/"], capsys)
    assert code == 2 and "downloading" not in err
    assert f"idx not found in {tmp_path}" in err and "put train-images-idx3-ubyte.gz" in err


def test_idx_and_folder_need_a_data_dir(capsys):
    code, _, err = run(["--dataset", "idx"], capsys)
    assert code == 2 and err.endswith(" the folder of its four IDX files\n") and err.count("\n") == 1
