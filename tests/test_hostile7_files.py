"""Review by attack of the files and the tools (helper R2): checkpoints of the new kinds (regressors, binary,
multilabel, lbfgs, the new config fields) read by `xpnet.load` and `xpnet train --resume`, and models converted
from scikit-learn and saved. Each defect was seen failing first, then fixed: what a user saw, and what they see now."""

from __future__ import annotations

import json
import warnings
from pathlib import Path

import numpy as np
import pytest

import xpnet
from helpers import DIGITS, rewrite, run_train, set_meta
from xpnet.errors import CheckpointError
from xpnet.training.model import save


def set_config(arrays: dict, **changes) -> None:
    """Change fields of the checkpoint's config (the metadata's "config" object)."""
    meta = json.loads(arrays["meta"].tobytes())
    meta["config"] |= changes
    arrays["meta"] = np.frombuffer(json.dumps(meta).encode(), dtype=np.uint8)


def drop_optimizer(arrays: dict) -> None:
    for name in [k for k in arrays if k.startswith("opt_")]:
        del arrays[name]


@pytest.fixture
def digits_checkpoint(tmp_path: Path, capsys) -> Path:
    """A one-epoch softmax classifier on the digits, written by ``xpnet train --save``."""
    path = tmp_path / "d.npz"
    status, _, err = run_train(capsys, *DIGITS, "--hidden", "8", "--epochs", "1", "--save", str(path))
    assert status == 0, err
    return path


def resume(capsys, path: Path) -> tuple[int, str]:
    try:
        status, out, err = run_train(capsys, "--resume", str(path), "--epochs", "2")
    except Exception as e:  # a traceback in the shell: what cli.run let through
        return -1, f"{type(e).__name__}: {e}"
    return status, out + err


def small_fit() -> tuple[np.ndarray, np.ndarray]:
    X = np.random.default_rng(0).normal(size=(60, 4))
    return X, np.arange(60) % 3


def fitted(X: np.ndarray, y: np.ndarray) -> xpnet.MLPClassifier:
    """A small classifier, three epochs of adam (short of converging: that warning is not the point here)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return xpnet.MLPClassifier(hidden_layer_sizes=(5,), max_iter=3, random_state=0).fit(X, y)


def test_a_model_converted_from_scikit_learn_saves_a_checkpoint_xpnet_loads(tmp_path):
    """A user converts a fitted scikit-learn MLPClassifier (20 epochs of adam), saves it and loads it back.
    Sees: ``CheckpointError: ... is damaged or not written by xpnet (its epoch must be an integer from 0 to 1)``:
    the file xpnet itself just wrote is refused (every converted sgd/adam model; with one epoch, "its step must be
    an integer from 1"). Should see: the model back, predicting as before. The converted record keeps the
    placeholder config of weights assigned before a fit (max_iter=1, n_train=1) while from_sklearn sets
    state.epoch = n_iter_, and never sets state.step. The same for any xpnet model taken through to_sklearn and
    back (``xpnet.from_sklearn(est.to_sklearn()).save(p)``), lbfgs, multilabel and regressors included."""
    from sklearn.neural_network import MLPClassifier

    X, y = small_fit()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # ConvergenceWarning
        fitted = MLPClassifier(hidden_layer_sizes=(5,), max_iter=20, random_state=0).fit(X, y)
    est = xpnet.from_sklearn(fitted)
    est.save(tmp_path / "converted.npz")
    again = xpnet.load(tmp_path / "converted.npz")
    np.testing.assert_array_equal(again.predict(X), fitted.predict(X))


def test_train_resume_of_a_multilabel_checkpoint_is_one_line(digits_checkpoint, capsys):
    """A digits checkpoint whose config says out_activation "logistic" (10 logistic outputs: a multilabel model,
    which evaluate, predict and serve refuse in one line). ``xpnet train --resume`` of it. Sees: a traceback,
    ``IndexError: tuple index out of range`` (training/loop.py, ``data.y_train.shape[1]`` of the digits' 1-d
    labels). Should see: one line, exit status 2, as evaluate says: the command line trains softmax classifiers."""
    rewrite(digits_checkpoint, lambda a: set_config(a, out_activation="logistic"))
    status, output = resume(capsys, digits_checkpoint)
    assert status == 2, output
    assert "Traceback" not in output and "logistic" in output, output


def test_train_resume_of_an_lbfgs_checkpoint_is_one_line(digits_checkpoint, capsys):
    """A digits checkpoint whose config says solver "lbfgs" (no optimizer arrays, as xpnet writes lbfgs models).
    ``xpnet train --resume`` of it. Sees: a traceback, ``KeyError: 'lbfgs'`` (backend/fast/__init__.py,
    ``OPTIMIZERS[recipe.optimizer]``). Should see: one line, exit status 2 (the command line's --optimizer is sgd,
    momentum or adam), or the run going on with lbfgs; never a traceback."""
    rewrite(digits_checkpoint, lambda a: (drop_optimizer(a), set_config(a, solver="lbfgs", optimizer="lbfgs")))
    xpnet.training.model.load(digits_checkpoint)  # the file itself passes load's checks
    status, output = resume(capsys, digits_checkpoint)
    assert status in (0, 2), output
    assert "Traceback" not in output and "KeyError" not in output, output


def invscaling(power_t: float):
    return lambda a: (
        drop_optimizer(a),
        set_config(a, solver="sgd", momentum=0.0, learning_rate="invscaling", power_t=power_t),
    )


def test_a_large_power_t_loads_as_a_value_error_or_a_model(tmp_path):
    """An sgd regressor checkpoint with learning_rate "invscaling" and power_t 1000 (RULES allow any number >= 0,
    as scikit-learn does). ``xpnet.load`` of it. Sees: ``OverflowError: (34, 'Numerical result out of range')``
    from TrainConfig.lr_at (model.py, ``(seen + 1) ** self.power_t``, called by the estimator's _set_fitted),
    not a ValueError. Should see: a working model (the rate underflows to 0.0), or a CheckpointError naming
    power_t. The same file makes ``xpnet train --resume`` print that traceback (training/loop.py, lr_at)."""
    rng = np.random.default_rng(0)
    X = rng.normal(size=(40, 4))
    est = xpnet.MLPRegressor(hidden_layer_sizes=(5,), max_iter=2, solver="sgd", random_state=0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        est.fit(X, X[:, 0])
    path = save(est._model(), tmp_path / "reg.npz")
    rewrite(path, invscaling(1000.0))
    try:
        model = xpnet.load(path)
    except CheckpointError:
        return
    assert np.isfinite(model.predict(X)).all()


def test_train_resume_with_a_large_power_t_is_one_line(digits_checkpoint, capsys):
    """The command line's side of the test above: a digits sgd checkpoint with invscaling and power_t 1000.
    Sees: a traceback, ``OverflowError: (34, 'Numerical result out of range')``. Should see: one line naming
    power_t, exit status 2 (or 0, training at a rate that underflowed to 0)."""
    rewrite(digits_checkpoint, invscaling(1000.0))
    status, output = resume(capsys, digits_checkpoint)
    assert status in (0, 2), output
    assert "OverflowError" not in output and "Traceback" not in output, output


def test_early_stopping_without_validation_scores_loads_as_a_value_error_or_a_model(tmp_path):
    """A classifier checkpoint (adam, 3 epochs, no validation) whose config is edited to early_stopping true:
    its history's val_accuracy are null. ``xpnet.load`` of it. Sees: ``TypeError: '<' not supported between
    instances of 'NoneType' and 'float'`` (training/loop.py progress, via the estimator's _set_fitted), not a
    ValueError. Should see: a CheckpointError ("damaged or not written by xpnet": early stopping with epochs
    that kept no validation score), or a model. The record loader (training.model.load) passes the file, so
    ``_read_history`` should check val_accuracy against config.early_stopping (or progress skip a None)."""
    X, y = small_fit()
    est = fitted(X, y)
    path = save(est._model(), tmp_path / "clf.npz")
    rewrite(path, lambda a: set_config(a, early_stopping=True, n_iter_no_change=2))
    try:
        model = xpnet.load(path)
    except CheckpointError:
        return
    model.predict(X)


def test_labels_out_of_order_are_refused_or_kept_by_to_sklearn(tmp_path):
    """A 3-class checkpoint whose labels are saved in another order than scikit-learn's (``[2, 1, 0]``, names
    "2", "1", "0"; xpnet and scikit-learn always write them sorted, as np.unique gives them). ``xpnet.load``
    takes it, and predicts with those labels; ``.to_sklearn()`` of it predicts other labels for the same rows
    (every 0 becomes a 2), with the same probabilities: a silent wrong answer. Should see: a CheckpointError
    at load (labels not in sorted order, model.py _saved_labels), or to_sklearn refusing (or reordering the
    last layer's columns) so that both predict alike."""
    X, y = small_fit()
    est = fitted(X, y)
    path = save(est._model(), tmp_path / "clf.npz")
    rewrite(path, lambda a: set_meta(a, classes=["2", "1", "0"], labels=[2, 1, 0]))
    try:
        model = xpnet.load(path)
    except CheckpointError:
        return
    try:
        theirs = model.to_sklearn()
    except ValueError:
        return
    np.testing.assert_array_equal(theirs.predict(X), model.predict(X))


def test_a_softmax_model_with_one_output_is_refused_or_agrees_with_to_sklearn(tmp_path):
    """A one-class classifier (one logistic output, as xpnet and scikit-learn write it) whose config is edited
    to out_activation "softmax": a softmax over one output, which no xpnet door writes (the command line wants
    2 classes). ``xpnet.load`` takes it: predict_proba is [[1.0], ...] (one column), while ``.to_sklearn()``
    of it answers [[0.0, 1.0], ...] (two columns, the class at 1). Should see: a CheckpointError at load
    (model.py _model, ``counts`` for softmax: at least 2 names), or both answering alike."""
    X, _ = small_fit()
    est = fitted(X, np.zeros(len(X), dtype=int))
    path = save(est._model(), tmp_path / "one.npz")
    rewrite(path, lambda a: set_config(a, out_activation="softmax"))
    try:
        model = xpnet.load(path)
    except CheckpointError:
        return
    np.testing.assert_allclose(model.to_sklearn().predict_proba(X), model.predict_proba(X))


def test_uint64_labels_below_and_past_int64_survive_save_and_load(tmp_path):
    """A classifier fitted on uint64 labels 5 and 2**64 - 1 (ids), saved with ``est.save`` and loaded with
    ``xpnet.load``. Sees: the loaded model predicts float64 labels, 5.0 and 1.8446744073709552e+19 (= 2**64,
    not the label it was fitted on), and its ONNX export (``xpnet export``, `_labels`) answers the class index
    0/1 instead of the uint64 label. Should see: the labels exactly as fitted (uint64), as before saving; the
    JSON holds them exactly. Fix: model.py `_saved_labels` builds ``np.asarray(saved)``, which NumPy makes
    float64 when Python ints span int64 and uint64; ask for int64, then uint64, and check ``tolist() == saved``."""
    X, _ = small_fit()
    labels = np.array([5, 2**64 - 1], dtype=np.uint64)
    y = labels[(X[:, 0] > 0).astype(int)]
    est = fitted(X, y)
    est.save(tmp_path / "ids.npz")
    loaded = xpnet.load(tmp_path / "ids.npz")
    assert loaded.classes_.dtype == np.uint64, loaded.classes_
    np.testing.assert_array_equal(loaded.predict(X), est.predict(X))


def test_the_new_kinds_round_trip_and_hostile_metadata_is_refused(tmp_path):
    """What holds (kept green): each new kind saved by the estimators loads back predicting the same; metadata
    that contradicts itself is one CheckpointError."""
    rng = np.random.default_rng(0)
    X = rng.normal(size=(40, 4))
    kinds = {
        "regressor": (xpnet.MLPRegressor(hidden_layer_sizes=(5,), max_iter=3, random_state=0), X[:, 0]),
        "poisson": (xpnet.MLPRegressor(hidden_layer_sizes=(5,), max_iter=3, loss="poisson"), np.abs(X[:, 0])),
        "binary": (xpnet.MLPClassifier(hidden_layer_sizes=(5,), max_iter=3), (X[:, 0] > 0).astype(int)),
        "multilabel": (xpnet.MLPClassifier(hidden_layer_sizes=(5,), max_iter=3), (X[:, :3] > 0).astype(int)),
        "lbfgs": (xpnet.MLPClassifier(hidden_layer_sizes=(5,), max_iter=3, solver="lbfgs"), np.arange(40) % 3),
    }
    for name, (est, y) in kinds.items():
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            est.fit(X, y)
        path = save(est._model(), tmp_path / f"{name}.npz")
        np.testing.assert_array_equal(xpnet.load(path).predict(X), est.predict(X))
    hostile = {
        "regressor": lambda a: set_meta(a, classes=["a"], labels=["a"]),  # a regressor with a class
        "binary": lambda a: set_meta(a, classes=["a", "b", "c"], labels=["a", "b", "c"]),  # 3 names, 1 output
        "lbfgs": lambda a: a.update({f"opt_{i:03d}": np.zeros_like(a[f"param_{i:03d}"]) for i in range(4)}),
        "poisson": lambda a: set_meta(a, seen=-1),
        "multilabel": lambda a: set_config(a, power_t=float("nan")),
    }
    for name, spoil in hostile.items():
        rewrite(tmp_path / f"{name}.npz", spoil)
        with pytest.raises(CheckpointError):
            xpnet.load(tmp_path / f"{name}.npz")
