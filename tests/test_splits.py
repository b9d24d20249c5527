"""--val-split: exactly N stratified, seeded validation rows; epochs scored on them, the test set at the end."""

from __future__ import annotations

import numpy as np
import pytest

from xpnet import train as train_cli
from xpnet.backend import resolve_backend
from xpnet.data import Dataset, hold_out
from xpnet.data.datasets import stratified_holdout
from xpnet.errors import DataError
from xpnet.training.loop import train
from xpnet.training.model import TrainConfig


def unbalanced_labels() -> np.ndarray:
    counts = [50, 30, 20, 7, 3, 1, 0, 12, 40, 37]  # class 6 absent, class 5 has one row
    labels = np.concatenate([np.full(c, k, dtype=np.uint8) for k, c in enumerate(counts)])
    return np.random.default_rng(5).permutation(labels)


@pytest.mark.parametrize("n_val", [0, 1, 9, 10, 37, 100, 199, 200])
def test_exactly_n_rows_held_out_in_proportion(n_val):
    labels = unbalanced_labels()
    kept, held = stratified_holdout(labels, n_val, np.random.default_rng(0))
    assert held.size == n_val and kept.size == labels.size - n_val
    assert np.intersect1d(kept, held).size == 0
    assert np.array_equal(np.union1d(kept, held), np.arange(labels.size))
    assert np.all(np.diff(held) > 0) and np.all(np.diff(kept) > 0)
    classes, counts = np.unique(labels, return_counts=True)
    for c, count in zip(classes, counts):
        share = count * n_val / labels.size
        assert abs(np.count_nonzero(labels[held] == c) - share) < 1, (c, share)


def test_split_is_seeded():
    labels = unbalanced_labels()
    a = stratified_holdout(labels, 50, np.random.default_rng(3))[1]
    b = stratified_holdout(labels, 50, np.random.default_rng(3))[1]
    c = stratified_holdout(labels, 50, np.random.default_rng(4))[1]
    assert np.array_equal(a, b) and not np.array_equal(a, c)


def tiny_dataset(n_train: int = 120, n_test: int = 40) -> Dataset:
    rng = np.random.default_rng(0)
    # Two well-separated blobs per class in 16 pixels, so a tiny MLP learns something in a few epochs.
    centres = rng.integers(0, 256, size=(10, 16))

    def draw(n):
        y = (np.arange(n) % 10).astype(np.uint8)
        x = np.clip(centres[y] + rng.normal(0, 10, size=(n, 16)), 0, 255).astype(np.uint8)
        return x, y

    (xtr, ytr), (xte, yte) = draw(n_train), draw(n_test)
    return Dataset("tiny", xtr, ytr, xte, yte, (4, 4))


def test_hold_out_moves_rows_from_train_to_val():
    data = tiny_dataset()
    split = hold_out(data, 30)
    assert split.x_val.shape == (30, 16) and split.x_train.shape == (90, 16)
    assert np.bincount(split.y_val).tolist() == [3] * 10
    rows = {r.tobytes() for r in data.x_train}
    assert {r.tobytes() for r in split.x_val} <= rows and {r.tobytes() for r in split.x_train} <= rows
    assert split.x_test is data.x_test
    assert hold_out(data, 0) is data


@pytest.mark.parametrize("n_val", [120, 500])
def test_hold_out_rejects_impossible_sizes(n_val):
    with pytest.raises(DataError, match=f"val_split {n_val} is out of range: tiny has 120 training images"):
        hold_out(tiny_dataset(), n_val)


def test_trainer_scores_validation_each_epoch_and_test_once():
    backend = resolve_backend("cpu", "numpy")
    config = TrainConfig(hidden_layer_sizes=(16,), max_iter=3, batch_size=16, dtype="float64", random_state=2)
    state = train(backend, hold_out(tiny_dataset(), 30), config)
    assert all(e.test_accuracy is None and 0 <= e.val_accuracy <= 1 for e in state.history)
    assert state.test_accuracy is not None and 0 <= state.test_accuracy <= 1

    plain = train(backend, tiny_dataset(), config)
    assert all(e.val_accuracy is None and e.test_accuracy is not None for e in plain.history)
    assert plain.test_accuracy == plain.history[-1].test_accuracy


def test_cli_prints_validation_per_epoch(capsys):
    assert train_cli.main(["--dataset", "digits", "--device", "cpu", "--epochs", "2", "--hidden", "16",
                           "--val-split", "100"]) == 0  # fmt: skip
    out = capsys.readouterr().out.splitlines()
    assert "1338 train / 100 validation / 359 test images" in out[0]
    epochs = [line for line in out if line.startswith("epoch")]
    assert len(epochs) == 2 and all(" val " in line and " test " not in line for line in epochs)
    assert out[-1].startswith("test accuracy ")


def test_cli_val_split_too_large_is_exit_2(capsys):
    with pytest.raises(SystemExit) as exit_:
        from xpnet.cli import common as cli

        cli.run(train_cli.main, ["--dataset", "digits", "--device", "cpu", "--val-split", "5000"], "xpnet.train")
    assert exit_.value.code == 2
    assert "5000 is out of range" in capsys.readouterr().err
