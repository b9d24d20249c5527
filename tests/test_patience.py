"""Early stopping (--patience): it stops, puts the best epoch's weights back, reports and saves them, resumes
exactly; without a validation split it is refused. Checkpoints from before it (and before class names) load."""

from __future__ import annotations

import json
from dataclasses import replace

import numpy as np
import pytest

from helpers import Hooks, run_train
from xpnet.backend import resolve_backend
from xpnet.data import hold_out, load_dataset
from xpnet.errors import CheckpointError
from xpnet.training import runlog
from xpnet.training.checkpoint import load_checkpoint, save_checkpoint
from xpnet.training.config import TrainConfig
from xpnet.training.loop import best_epoch, train
from xpnet.training.scoring import accuracy, to_device
from xpnet.training.session import check_resumable

CONFIG = TrainConfig(hidden=(32,), lr=0.003, epochs=60, batch_size=64, patience=3, seed=4)


@pytest.fixture(scope="module")
def cpu():
    return resolve_backend("cpu", "numpy")


@pytest.fixture(scope="module")
def data():
    return hold_out(load_dataset("digits"), 300)


@pytest.fixture(scope="module")
def stopped(cpu, data):
    return train(cpu, data, CONFIG)


def score(backend, params, x, y, config=CONFIG):
    xd, yd = to_device(backend, x, y, backend.dtype(config.dtype))
    return accuracy(backend, params, xd, yd, config.activation)


def test_stops_after_patience_epochs_without_improvement_and_keeps_the_best(cpu, data, stopped):
    history = stopped.history
    best = best_epoch(history)
    assert stopped.stopped_early and len(history) < CONFIG.epochs
    assert len(history) - best == CONFIG.patience
    assert all(h.val_accuracy <= history[best - 1].val_accuracy for h in history[best:])  # a tie is no gain
    # The weights handed back, scored and saved are the best epoch's, not the last one's.
    assert stopped.state.restored and stopped.state.epoch == len(history)
    assert score(cpu, stopped.params, data.x_val, data.y_val) == history[best - 1].val_accuracy
    assert stopped.test_accuracy == score(cpu, stopped.params, data.x_test, data.y_test)


def test_resumed_run_stops_where_the_uninterrupted_one_did(cpu, data, stopped, tmp_path):
    best = best_epoch(stopped.history)
    k = len(stopped.history) - 1  # after the best epoch: the best weights are kept aside
    path = tmp_path / "m.npz"

    def save(state):  # what --save writes after each epoch of a run that is then killed
        if state.epoch == k and not state.restored:
            save_checkpoint(path, state, CONFIG, cpu, data.name, len(data.y_train), 300)

    train(cpu, data, CONFIG, callbacks=[Hooks(on_epoch_end=save)])
    ckpt = load_checkpoint(path)
    assert not ckpt.state.restored and ckpt.state.best_params is not None
    assert ckpt.meta["best_epoch"] == best and ckpt.meta["epochs_run"] == k
    check_resumable(ckpt, CONFIG, data.name, data.n_features, len(data.y_train))
    resumed = train(cpu, data, CONFIG, state=ckpt.state)
    assert resumed.stopped_early and len(resumed.history) == len(stopped.history)
    for a, b in zip(resumed.params, stopped.params):
        np.testing.assert_array_equal(cpu.to_numpy(a), cpu.to_numpy(b))
    assert resumed.test_accuracy == stopped.test_accuracy


def test_a_run_that_ended_with_best_weights_continues_from_its_last_epoch(cpu, data, stopped, tmp_path):
    """Reaching --epochs puts the best weights back too; resuming with more epochs continues from the last
    epoch's weights (kept in the checkpoint) exactly as one longer run would."""
    short = replace(CONFIG, epochs=len(stopped.history) - 1)
    ended = train(cpu, data, short)
    assert ended.state.restored and not ended.stopped_early
    path = save_checkpoint(tmp_path / "m.npz", ended.state, short, cpu, data.name, len(data.y_train), 300)
    ckpt = load_checkpoint(path)
    assert ckpt.state.restored and ckpt.meta["epochs_run"] == short.epochs
    assert ckpt.meta["best_epoch"] == best_epoch(stopped.history)
    best = best_epoch(stopped.history)
    assert score(cpu, [cpu.asarray(p) for p in ckpt.state.params], data.x_val, data.y_val) == (
        stopped.history[best - 1].val_accuracy
    )
    resumed = train(cpu, data, CONFIG, state=ckpt.state)
    for a, b in zip(resumed.params, stopped.params):
        np.testing.assert_array_equal(cpu.to_numpy(a), cpu.to_numpy(b))
    assert [h.val_accuracy for h in resumed.history] == [h.val_accuracy for h in stopped.history]


def run(argv, capsys):
    return run_train(capsys, *argv)


def test_json_reports_epochs_run_and_best_epoch_and_the_kept_weights_scores(cpu, data, tmp_path, capsys):
    argv = ["--dataset", "digits", "--val-split", "300", "--hidden", "32", "--lr", "0.003", "--batch-size", "64"]
    model, log = tmp_path / "m.npz", tmp_path / "log.jsonl"
    argv += ["--seed", "4", "--epochs", "60", "--patience", "3", "--json", "--save", str(model), "--log", str(log)]
    code, out, err = run(argv, capsys)
    assert code == 0, err
    summary = json.loads(out.strip().splitlines()[-1])
    best = summary["best_epoch"]
    assert summary["epochs_run"] - best == 3 and summary["epochs_run"] < 60
    assert f"kept the weights of epoch {best}, the best on validation" in out
    # The figures are those of the weights kept and saved (the best epoch's), not of the last epoch's.
    epochs = runlog.read_log(log)
    assert epochs[-1]["val_accuracy"] < epochs[best - 1]["val_accuracy"]  # else this test could not tell
    assert summary["val_accuracy"] == epochs[best - 1]["val_accuracy"]
    assert summary["train_accuracy"] == epochs[best - 1]["train_accuracy"]
    assert summary["last_val_accuracy"] == epochs[-1]["val_accuracy"]
    saved = [cpu.asarray(p) for p in load_checkpoint(model).state.params]
    assert score(cpu, saved, data.x_val, data.y_val) == summary["val_accuracy"]
    assert score(cpu, saved, data.x_test, data.y_test) == summary["test_accuracy"]


def test_patience_without_a_validation_split_is_refused(capsys):
    code, out, err = run(["--dataset", "digits", "--patience", "2"], capsys)
    assert code == 2 and out == ""
    assert err == (
        "xpnet.train: error: --patience 2 needs a validation set to watch: add --val-split N "
        "(e.g. --val-split 150), or leave --patience out\n"
    )


def test_checkpoint_from_before_classes_layouts_and_patience_loads(cpu, tmp_path):
    data = load_dataset("digits")
    config = TrainConfig(hidden=(8,), epochs=1)
    result = train(cpu, data, config)
    path = save_checkpoint(tmp_path / "old.npz", result.state, config, cpu, "digits", len(data.y_train))
    with np.load(path, allow_pickle=False) as npz:
        arrays = {k: npz[k] for k in npz.files}
    meta = json.loads(arrays["meta"].tobytes())
    for key in ("classes", "layout", "n_best", "best_epoch", "epochs_run", "restored", "workers"):
        meta.pop(key, None)
    meta["config"].pop("patience")
    arrays["meta"] = np.frombuffer(json.dumps(meta).encode(), dtype=np.uint8)
    with open(path, "wb") as f:
        np.savez(f, **arrays)
    ckpt = load_checkpoint(path)
    assert ckpt.classes == tuple(str(k) for k in range(10)) and ckpt.layout is None
    assert ckpt.config.patience == 0 and ckpt.state.best_params is None and not ckpt.state.restored


def test_a_run_that_stopped_early_is_not_trained_on_by_a_resume_with_the_same_patience(cpu, data, stopped, tmp_path):
    """One longer run would have stopped where this one did: resuming it with more --epochs must not go on."""
    path = save_checkpoint(tmp_path / "s.npz", stopped.state, CONFIG, cpu, data.name, len(data.y_train), 300)
    ckpt = load_checkpoint(path)
    more = replace(CONFIG, epochs=CONFIG.epochs + 10)
    with pytest.raises(CheckpointError, match=r"already stopped early.*larger --patience"):
        check_resumable(ckpt, more, data.name, data.n_features, len(data.y_train), data.classes)
    check_resumable(ckpt, replace(more, patience=CONFIG.patience + 5), data.name, data.n_features, len(data.y_train))


def test_resuming_on_data_with_other_classes_is_refused(cpu, data, stopped, tmp_path):
    path = save_checkpoint(tmp_path / "s.npz", stopped.state, CONFIG, cpu, data.name, len(data.y_train), 300)
    ckpt, wider = load_checkpoint(path), replace(CONFIG, patience=CONFIG.patience + 5)
    renamed = ("zero", *data.classes[1:])
    for classes in (data.classes[:9], renamed):
        with pytest.raises(CheckpointError, match="trained on 10 classes"):
            check_resumable(ckpt, wider, data.name, data.n_features, len(data.y_train), classes)


def test_patience_on_a_checkpoint_trained_without_it_says_so_first(tmp_path, capsys):
    model = tmp_path / "d.npz"
    assert run_train(capsys, "--dataset", "digits", "--epochs", "2", "--quiet", "--save", str(model))[0] == 0
    code, _, err = run_train(capsys, "--resume", str(model), "--epochs", "4", "--patience", "2")
    assert code == 2 and "trained without --patience" in err, err  # not "add --val-split", a dead end
