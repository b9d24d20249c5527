"""A fitted network both ways between xpnet's estimators and scikit-learn's: `from_sklearn` and `to_sklearn`.
The weights are the same numbers (in the fitted dtype), so both predict alike and either can train on."""

from typing import Any

import numpy as np
from sklearn.base import is_classifier
from sklearn.neural_network import MLPClassifier as ScikitLearnClassifier
from sklearn.neural_network import MLPRegressor as ScikitLearnRegressor
from sklearn.preprocessing import LabelBinarizer
from sklearn.utils.validation import check_is_fitted

# The fitted attributes both sides share, beside the weights and the labels (those of the solver's run only).
FITTED = ("n_features_in_", "feature_names_in_", "n_iter_", "t_", "n_layers_", "n_outputs_", "out_activation_")
HISTORY = ("loss_", "loss_curve_", "best_loss_", "validation_scores_", "best_validation_score_")


def to_sklearn(est: Any) -> ScikitLearnClassifier | ScikitLearnRegressor:
    """scikit-learn's own estimator of fitted xpnet ``est``: its shared parameters (xpnet's own dropped), NumPy
    copies of the weights and every fitted attribute scikit-learn's predict, score, partial_fit and warm_start read."""
    from .estimator import MLPClassifier, MLPRegressor  # here: the estimators' module imports this one

    if not isinstance(est, (MLPClassifier, MLPRegressor)):
        raise TypeError(f"est must be an xpnet MLPClassifier or MLPRegressor, got {type(est).__name__}")
    check_is_fitted(est)
    kind = ScikitLearnClassifier if is_classifier(est) else ScikitLearnRegressor
    shared = kind().get_params()
    out = kind(**{k: v for k, v in est.get_params(deep=False).items() if k in shared})
    host = est.model_.backend.to_numpy  # coefs_ live where the model trained
    out.coefs_ = [np.array(host(w), copy=True) for w in est.coefs_]  # copies: scikit-learn updates in place
    out.intercepts_ = [np.array(host(b), copy=True) for b in est.intercepts_]
    for name in FITTED + HISTORY:
        if hasattr(est, name):
            value = getattr(est, name)
            setattr(out, name, list(value) if isinstance(value, list) else value)
    if kind is ScikitLearnClassifier:
        out.classes_ = np.asarray(est.classes_)
        binarizer = LabelBinarizer()  # as scikit-learn's fit makes it: on y, whose labels classes_ are
        multilabel = out.out_activation_ == "logistic" and out.n_outputs_ > 1
        binarizer.fit(np.eye(out.n_outputs_, dtype=int) if multilabel else out.classes_)
        out._label_binarizer = binarizer
    # What scikit-learn's next epoch reads: the count of epochs without improvement, the best weights so far.
    out._no_improvement_count = 0
    out._best_coefs = [w.copy() for w in out.coefs_]
    out._best_intercepts = [b.copy() for b in out.intercepts_]
    return out
