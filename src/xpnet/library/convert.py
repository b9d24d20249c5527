"""A fitted network both ways between xpnet's estimators and scikit-learn's: `from_sklearn` and `to_sklearn`.
The weights are the same numbers (in the fitted dtype), so both predict alike and either can train on."""

import dataclasses
from typing import Any

import numpy as np
from sklearn.base import is_classifier
from sklearn.neural_network import MLPClassifier as ScikitLearnClassifier
from sklearn.neural_network import MLPRegressor as ScikitLearnRegressor
from sklearn.preprocessing import LabelBinarizer
from sklearn.utils.validation import check_is_fitted

from ..training.model import EpochStats

# The fitted attributes both sides share, beside the weights and the labels (those of the solver's run only).
FITTED = ("n_features_in_", "feature_names_in_", "n_iter_", "t_", "n_layers_", "n_outputs_", "out_activation_")
HISTORY = ("loss_", "loss_curve_", "best_loss_", "validation_scores_", "best_validation_score_")


def from_sklearn(fitted: Any, *, device: str | None = None, backend: str | None = None) -> Any:
    """The xpnet estimator of a fitted scikit-learn ``MLPClassifier`` or ``MLPRegressor``: the same parameters,
    weights (in their dtype, placed where ``device`` and ``backend`` say: NumPy on the CPU by default), labels and
    fitted attributes; its history is the model's, so ``partial_fit`` and ``warm_start`` go on from there."""
    from .estimator import MLPClassifier, MLPRegressor  # here: the estimators' module imports this one

    if not isinstance(fitted, (ScikitLearnClassifier, ScikitLearnRegressor)):
        raise TypeError(
            f"fitted must be a fitted scikit-learn MLPClassifier or MLPRegressor, not {type(fitted).__name__}"
        )
    if not hasattr(fitted, "coefs_"):
        raise ValueError(f"fitted must be fitted: call {type(fitted).__name__}.fit first")
    kind = MLPClassifier if isinstance(fitted, ScikitLearnClassifier) else MLPRegressor
    est = kind(**fitted.get_params(), device=device, backend=backend)
    if kind is MLPClassifier:
        est.classes_ = np.asarray(fitted.classes_)
        est._labels_kind = fitted._label_binarizer.y_type_  # multilabel, or labels
    est.out_activation_ = fitted.out_activation_  # before the weights: it says what their last layer is
    est.coefs_ = [np.array(w, copy=True) for w in fitted.coefs_]
    est.intercepts_ = [np.array(b, copy=True) for b in fitted.intercepts_]
    state = est._model().state  # the model of the weights assigned, on the device asked for
    curve, scores = getattr(fitted, "loss_curve_", []), getattr(fitted, "validation_scores_", None) or []
    state.history = [  # the epochs scikit-learn ran (none of its lbfgs), as xpnet's record keeps them
        EpochStats(i + 1, float(loss), None, None, 0.0, 0.0, float(scores[i]) if i < len(scores) else None)
        for i, loss in enumerate(curve)
    ]
    state.epoch, state.seen = len(curve), int(fitted.t_)
    # The record's run as scikit-learn's was, so that it saves and loads: rows an epoch, updates, the settings.
    model, t = est.model_, getattr(getattr(fitted, "_optimizer", None), "t", None)  # Adam's count of updates
    model.n_train = max(state.seen // max(len(curve), 1), 1)
    batch = min(200 if fitted.batch_size == "auto" else fitted.batch_size, model.n_train)
    state.step = max(len(curve), int(t) if t else -(-state.seen // batch))
    settings = {"max_iter": max(len(curve), 1), "batch_size": batch, "early_stopping": bool(scores)}
    model.config = dataclasses.replace(model.config, **settings)
    _copy_fitted(fitted, est)
    return est


def to_sklearn(est: Any) -> ScikitLearnClassifier | ScikitLearnRegressor:
    """scikit-learn's own estimator of fitted xpnet ``est``: its shared parameters (xpnet's own dropped), NumPy
    copies of the weights and every fitted attribute scikit-learn's predict, score, partial_fit and warm_start read."""
    from .estimator import MLPClassifier, MLPRegressor  # here: the estimators' module imports this one

    if not isinstance(est, (MLPClassifier, MLPRegressor)):
        raise TypeError(f"est must be an xpnet MLPClassifier or MLPRegressor, got {type(est).__name__}")
    check_is_fitted(est)
    kind, model = ScikitLearnClassifier if is_classifier(est) else ScikitLearnRegressor, est._model()
    shared = kind().get_params()
    out = kind(**{k: v for k, v in est.get_params(deep=False).items() if k in shared})
    host = model.backend.to_numpy  # coefs_ live where the model is
    out.coefs_ = [np.array(host(w), copy=True) for w in est.coefs_]  # copies: scikit-learn updates in place
    out.intercepts_ = [np.array(host(b), copy=True) for b in est.intercepts_]
    # The model's shape, and a fresh history, for weights assigned to an estimator never fitted; then est's own.
    out.n_features_in_, out.n_layers_, out.n_outputs_ = model.sizes[0], len(model.sizes), model.sizes[-1]
    out.out_activation_, out.n_iter_, out.t_, out.loss_curve_ = model.config.out_activation, 0, 0, []
    out.best_loss_, out.validation_scores_, out.best_validation_score_ = np.inf, None, None
    _copy_fitted(est, out)
    if kind is ScikitLearnClassifier:
        out.classes_ = np.asarray(getattr(est, "classes_", model.classes))
        order = np.argsort(out.classes_, kind="stable")  # scikit-learn's outputs follow its sorted labels
        if out.out_activation_ == "softmax":
            out.coefs_[-1], out.intercepts_[-1] = out.coefs_[-1][:, order], out.intercepts_[-1][order]
        elif out.n_outputs_ == 1 and len(order) == 2 and order[0] == 1:  # its positive class is the other one
            out.coefs_[-1], out.intercepts_[-1] = -out.coefs_[-1], -out.intercepts_[-1]
        out.classes_ = out.classes_[order]
        binarizer = LabelBinarizer()  # as scikit-learn's fit makes it: on y, whose labels classes_ are
        multilabel = out.out_activation_ == "logistic" and out.n_outputs_ > 1
        binarizer.fit(np.eye(out.n_outputs_, dtype=int) if multilabel else out.classes_)
        out._label_binarizer = binarizer
    # What scikit-learn's next epoch reads: the count of epochs without improvement, the best weights so far.
    out._no_improvement_count = 0
    out._best_coefs = [w.copy() for w in out.coefs_]
    out._best_intercepts = [b.copy() for b in out.intercepts_]
    return out


def _copy_fitted(source: Any, target: Any) -> None:
    """The fitted attributes both sides share that ``source`` has, onto ``target`` (lists as new lists)."""
    for name in FITTED + HISTORY:
        if hasattr(source, name):
            value = getattr(source, name)
            setattr(target, name, list(value) if isinstance(value, list) else value)
