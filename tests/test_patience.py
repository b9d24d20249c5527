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
from xpnet.train import check_resumable
from xpnet.training import runlog
from xpnet.training.loop import best_epoch, train
from xpnet.training.model import Model, TrainConfig, images_to_device, load, save
from xpnet.training.model import score as model_score

PATIENCE = 3  # --patience 3: stop after 3 epochs without a better validation accuracy
CONFIG = TrainConfig(
    hidden_layer_sizes=(32,),
    learning_rate_init=0.003,
    max_iter=60,
    batch_size=64,
    early_stopping=True,
    n_iter_no_change=PATIENCE - 1,  # more than this many epochs without improvement stop the run
    random_state=4,
)


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
    xd = images_to_device(backend, x, backend.dtype(config.dtype))
    yd = backend.xp.astype(backend.asarray(y), backend.xp.int64)
    return model_score(backend, params, xd, yd, config)


def save_run(path, state, config, cpu, data):
    """What --save writes for a run on ``data`` (300 rows held out for validation)."""
    return save(Model.of_data(config, state, cpu, data, val_split=300), path)


def test_stops_after_patience_epochs_without_improvement_and_keeps_the_best(cpu, data, stopped):
    history = stopped.history
    best = best_epoch(history)
    assert stopped.stopped_early and len(history) < CONFIG.max_iter
    assert len(history) - best == PATIENCE
    assert all(h.val_accuracy <= history[best - 1].val_accuracy for h in history[best:])  # a tie is no gain
    # The weights handed back, scored and saved are the best epoch's, not the last one's.
    assert stopped.restored and stopped.epoch == len(history) and stopped.kept.epoch == best
    assert score(cpu, stopped.params, data.x_val, data.y_val) == history[best - 1].val_accuracy
    assert stopped.test_accuracy == score(cpu, stopped.params, data.x_test, data.y_test)


def test_resumed_run_stops_where_the_uninterrupted_one_did(cpu, data, stopped, tmp_path):
    best = best_epoch(stopped.history)
    k = len(stopped.history) - 1  # after the best epoch: the best weights are kept aside
    path = tmp_path / "m.npz"

    def save_epoch(state):  # what --save writes after each epoch of a run that is then killed
        if state.epoch == k and not state.restored:
            save_run(path, state, CONFIG, cpu, data)

    train(cpu, data, CONFIG, callbacks=[Hooks(on_epoch_end=save_epoch)])
    ckpt = load(path)
    assert not ckpt.state.restored and ckpt.state.best_params is not None
    assert best_epoch(ckpt.state.history) == best and len(ckpt.state.history) == ckpt.state.epoch == k
    check_resumable(ckpt, CONFIG, data)
    resumed = train(cpu, data, CONFIG, state=ckpt.state)
    assert resumed.stopped_early and len(resumed.history) == len(stopped.history)
    for a, b in zip(resumed.params, stopped.params):
        np.testing.assert_array_equal(cpu.to_numpy(a), cpu.to_numpy(b))
    assert resumed.test_accuracy == stopped.test_accuracy


def test_a_run_that_ended_with_best_weights_continues_from_its_last_epoch(cpu, data, stopped, tmp_path):
    """Reaching --epochs puts the best weights back too; resuming with more epochs continues from the last
    epoch's weights (kept in the checkpoint) exactly as one longer run would."""
    short = replace(CONFIG, max_iter=len(stopped.history) - 1)
    ended = train(cpu, data, short)
    assert ended.restored and not ended.stopped_early
    path = save_run(tmp_path / "m.npz", ended, short, cpu, data)
    ckpt = load(path)
    assert ckpt.state.restored and len(ckpt.state.history) == ckpt.state.epoch == short.max_iter
    best = best_epoch(stopped.history)
    assert best_epoch(ckpt.state.history) == ckpt.kept_epoch == best < short.max_iter
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
    saved = [cpu.asarray(p) for p in load(model).state.params]
    assert score(cpu, saved, data.x_val, data.y_val) == summary["val_accuracy"]
    assert score(cpu, saved, data.x_test, data.y_test) == summary["test_accuracy"]


def test_patience_without_a_validation_split_is_refused(capsys):
    code, out, err = run(["--dataset", "digits", "--patience", "2"], capsys)
    assert code == 2 and out == ""
    assert err == (
        "xpnet.train: error: --patience needs a validation set to watch: add --val-split N "
        "(e.g. --val-split 150), or leave --patience out\n"
    )


# Version 1 of the format named the settings as the command line's flags.
V1_NAMES = {"hidden_layer_sizes": "hidden", "learning_rate_init": "lr", "lr_decay": "gamma", "max_iter": "epochs",
            "random_state": "seed", "nesterovs_momentum": "nesterov"}  # fmt: skip
NEW_ONLY = ("solver", "early_stopping", "n_iter_no_change", "tol")  # the library's; --patience was version 1's


def test_checkpoint_from_before_classes_layouts_and_patience_loads(cpu, tmp_path):
    data = load_dataset("digits")
    config = TrainConfig(hidden_layer_sizes=(8,), max_iter=1)
    state = train(cpu, data, config)
    path = save(Model.of_data(config, state, cpu, data), tmp_path / "old.npz")
    with np.load(path, allow_pickle=False) as npz:
        arrays = {k: npz[k] for k in npz.files}
    meta = json.loads(arrays["meta"].tobytes())
    for key in ("classes", "labels", "layout", "n_best", "restored", "workers"):
        meta.pop(key, None)
    # A version-1 file from before --patience: its config in the flags' names, no patience key.
    meta["format_version"] = 1
    meta["config"] = {V1_NAMES.get(k, k): v for k, v in meta["config"].items() if k not in NEW_ONLY}
    arrays["meta"] = np.frombuffer(json.dumps(meta).encode(), dtype=np.uint8)
    with open(path, "wb") as f:
        np.savez(f, **arrays)
    ckpt = load(path)
    assert ckpt.names == tuple(str(k) for k in range(10)) and ckpt.layout is None
    assert np.array_equal(ckpt.classes, np.arange(10))
    assert ckpt.config == replace(config, learning_rate_init=config.lr)
    assert not ckpt.config.early_stopping and ckpt.config.n_iter_no_change is None
    assert ckpt.state.best_params is None and not ckpt.state.restored


def test_a_run_that_stopped_early_is_not_trained_on_by_a_resume_with_the_same_patience(cpu, data, stopped, tmp_path):
    """One longer run would have stopped where this one did: resuming it with more --epochs must not go on."""
    path = save_run(tmp_path / "s.npz", stopped, CONFIG, cpu, data)
    ckpt = load(path)
    more = replace(CONFIG, max_iter=CONFIG.max_iter + 10)
    with pytest.raises(CheckpointError, match=rf"already stopped early.* for {PATIENCE} epochs.*larger --patience"):
        check_resumable(ckpt, more, data)
    check_resumable(ckpt, replace(more, n_iter_no_change=CONFIG.n_iter_no_change + 5), data)


def test_resuming_on_data_with_other_classes_is_refused(cpu, data, stopped, tmp_path):
    path = save_run(tmp_path / "s.npz", stopped, CONFIG, cpu, data)
    ckpt, wider = load(path), replace(CONFIG, n_iter_no_change=CONFIG.n_iter_no_change + 5)
    check_resumable(ckpt, wider, data)  # the same classes: only their names or number refuse it below
    renamed = ("zero", *data.classes[1:])
    for classes in (data.classes[:9], renamed):
        with pytest.raises(CheckpointError, match="trained on 10 classes"):
            check_resumable(ckpt, wider, replace(data, classes=classes))


def test_patience_on_a_checkpoint_trained_without_it_says_so_first(tmp_path, capsys):
    model = tmp_path / "d.npz"
    assert run_train(capsys, "--dataset", "digits", "--epochs", "2", "--quiet", "--save", str(model))[0] == 0
    code, _, err = run_train(capsys, "--resume", str(model), "--epochs", "4", "--patience", "2")
    assert code == 2 and "trained without --patience" in err, err  # not "add --val-split", a dead end
