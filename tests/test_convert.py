"""A fitted network both ways between xpnet and scikit-learn (`xpnet.library.convert`): the same parameters, weights
and fitted attributes, so both predict alike, and the converted estimator trains on from those weights."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
import sklearn.neural_network as skl
from sklearn.base import clone
from sklearn.exceptions import ConvergenceWarning, NotFittedError

from conftest import backend_or_skip
from xpnet import MLPClassifier, MLPRegressor
from xpnet.library.convert import from_sklearn, to_sklearn

pytestmark = pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")

OWN = ("lr_decay", "device", "backend", "dtype", "class_weight")  # xpnet's parameters, none of scikit-learn's
RNG = np.random.default_rng(0)
X = RNG.normal(size=(60, 5))
Y3 = np.argmax(X[:, :3] + 0.3 * RNG.normal(size=(60, 3)), axis=1)  # three classes, learnable
TARGETS = {  # kind -> (classifier?, y, out_activation_)
    "multiclass": (True, Y3, "softmax"),
    "strings": (True, np.array(["cat", "dog", "eel"])[Y3], "softmax"),
    "binary": (True, np.array(["no", "yes"])[(X[:, 0] > 0).astype(int)], "logistic"),
    "multilabel": (True, (X[:, :3] > 0).astype(int), "logistic"),
    "squared_error": (False, X @ RNG.normal(size=5), "identity"),
    "two_outputs": (False, X @ RNG.normal(size=(5, 2)), "identity"),
    "poisson": (False, np.exp(0.3 * X[:, 0]), "exp"),
}
ACTIVATIONS = ("relu", "logistic", "tanh", "identity")


def estimators(kind: str, **params) -> tuple[object, object, np.ndarray]:
    """(xpnet's estimator, scikit-learn's, y) for ``kind``, both unfitted with the same ``params``."""
    classify, y, _ = TARGETS[kind]
    params = {"hidden_layer_sizes": (7,), "max_iter": 5, "random_state": 0, **params}
    if not classify:
        params["loss"] = "poisson" if kind == "poisson" else "squared_error"
    ours, theirs = (MLPClassifier, skl.MLPClassifier) if classify else (MLPRegressor, skl.MLPRegressor)
    return ours(**params), theirs(**params), y


def close(a, b, dtype: str) -> None:
    np.testing.assert_allclose(
        a, b, rtol=1e-12 if dtype == "float64" else 2e-6, atol=1e-12 if dtype == "float64" else 1e-6
    )


def answers(est, x: np.ndarray) -> list[np.ndarray]:
    """predict, and predict_proba where there is one, as host arrays."""
    return [np.asarray(est.predict(x))] + ([np.asarray(est.predict_proba(x))] if hasattr(est, "predict_proba") else [])


def same_answers(a, b, x: np.ndarray, dtype: str) -> None:
    (label_a, *proba_a), (label_b, *proba_b) = answers(a, x), answers(b, x)
    if hasattr(a, "classes_"):
        np.testing.assert_array_equal(label_a, label_b)
        assert label_a.dtype == label_b.dtype
        close(proba_a[0], proba_b[0], dtype)
    else:
        close(label_a, label_b, dtype)


@pytest.mark.parametrize("dtype", ["float64", "float32"])
@pytest.mark.parametrize("kind", TARGETS)
def test_scikit_learn_model_becomes_xpnet_and_predicts_the_same(kind, dtype):
    ours, theirs, y = estimators(kind)
    fitted = theirs.fit(X.astype(dtype), y)
    est = from_sklearn(fitted)
    assert type(est) is type(ours)
    assert {k: v for k, v in est.get_params().items() if k not in OWN} == fitted.get_params()
    assert est.out_activation_ == fitted.out_activation_ == TARGETS[kind][2]
    for a, b in zip(est.coefs_ + est.intercepts_, fitted.coefs_ + fitted.intercepts_, strict=True):
        assert isinstance(a, np.ndarray) and a.dtype == np.dtype(dtype)
        np.testing.assert_array_equal(a, b)
    for name in ("n_iter_", "n_layers_", "n_outputs_", "n_features_in_", "t_", "loss_", "best_loss_"):
        assert getattr(est, name) == getattr(fitted, name), name
    assert list(est.loss_curve_) == list(fitted.loss_curve_)
    if hasattr(fitted, "classes_"):
        np.testing.assert_array_equal(est.classes_, fitted.classes_)
    same_answers(est, fitted, X.astype(dtype), dtype)
    assert est.score(X.astype(dtype), y) == pytest.approx(fitted.score(X.astype(dtype), y), abs=1e-6)


@pytest.mark.parametrize("dtype", ["float64", "float32"])
@pytest.mark.parametrize("kind", TARGETS)
def test_xpnet_model_becomes_scikit_learns_and_predicts_the_same(kind, dtype):
    ours, theirs, y = estimators(kind)
    est = ours.fit(X.astype(dtype), y)
    out = to_sklearn(est)
    assert type(out) is type(theirs)
    assert out.get_params() == {k: v for k, v in est.get_params().items() if k not in OWN}
    assert out.out_activation_ == est.out_activation_ == TARGETS[kind][2]
    for a in out.coefs_ + out.intercepts_:
        assert type(a) is np.ndarray and a.dtype == np.dtype(dtype)
    same_answers(out, est, X.astype(dtype), dtype)
    assert out.score(X.astype(dtype), y) == pytest.approx(est.score(X.astype(dtype), y), abs=1e-6)
    if hasattr(out, "classes_"):
        assert out.predict_log_proba(X.astype(dtype)).shape == est.predict_log_proba(X.astype(dtype)).shape
    # the round trip predicts exactly as xpnet did
    back = from_sklearn(out)
    for a, b in zip(answers(back, X.astype(dtype)), answers(est, X.astype(dtype)), strict=True):
        np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("activation", ACTIVATIONS)
@pytest.mark.parametrize("kind", ["multiclass", "binary", "squared_error"])
def test_every_hidden_activation_converts_both_ways(kind, activation):
    ours, theirs, y = estimators(kind, activation=activation, hidden_layer_sizes=(6, 4))
    same_answers(from_sklearn(theirs.fit(X, y)), theirs, X, "float64")
    est = ours.fit(X, y)
    same_answers(to_sklearn(est), est, X, "float64")


@pytest.mark.parametrize("kind", TARGETS)
def test_scikit_learn_trains_on_from_xpnets_weights(kind):
    """One epoch of full-batch gradient descent from the same weights gives both the same weights; warm_start
    fits on. xpnet's weights stay as they were."""
    params = {"solver": "sgd", "momentum": 0.0, "batch_size": len(X), "shuffle": False, "learning_rate_init": 0.01}
    ours, _, y = estimators(kind, **params)
    est = ours.fit(X, y)
    out, kept = to_sklearn(est), [np.array(w, copy=True) for w in est.coefs_ + est.intercepts_]
    out.partial_fit(X, y)
    assert all(np.array_equal(a, np.asarray(b)) for a, b in zip(kept, est.coefs_ + est.intercepts_, strict=True))
    est.partial_fit(X, y)
    for a, b in zip(out.coefs_ + out.intercepts_, est.coefs_ + est.intercepts_, strict=True):
        np.testing.assert_allclose(a, np.asarray(b), rtol=1e-9, atol=1e-12)
    assert out.n_iter_ == est.n_iter_ == 1 and out.t_ == est.t_
    warm = to_sklearn(est).set_params(warm_start=True, max_iter=3)
    assert warm.fit(X, y).n_iter_ == 3 and len(warm.loss_curve_) == len(est.loss_curve_) + 3


@pytest.mark.parametrize("kind", TARGETS)
def test_xpnet_trains_on_from_scikit_learns_weights(kind):
    params = {"solver": "sgd", "momentum": 0.0, "batch_size": len(X), "shuffle": False, "learning_rate_init": 0.01}
    _, theirs, y = estimators(kind, **params)
    fitted = theirs.fit(X, y)
    est = from_sklearn(fitted)
    est.partial_fit(X, y)
    fitted.partial_fit(X, y)
    for a, b in zip(est.coefs_ + est.intercepts_, fitted.coefs_ + fitted.intercepts_, strict=True):
        np.testing.assert_allclose(np.asarray(a), b, rtol=1e-9, atol=1e-12)
    warm = from_sklearn(clone(fitted).set_params(max_iter=2).fit(X, y)).set_params(warm_start=True, max_iter=3)
    assert warm.fit(X, y).n_iter_ == 3


@pytest.mark.parametrize("how", ["lbfgs", "early_stopping"])
@pytest.mark.parametrize("kind", ["multiclass", "binary", "two_outputs"])
def test_lbfgs_and_early_stopping_fits_convert_both_ways(kind, how):
    params = {"solver": "lbfgs"} if how == "lbfgs" else {"early_stopping": True, "validation_fraction": 0.3}
    ours, theirs, y = estimators(kind, max_iter=8, **params)
    fitted = theirs.fit(X, y)
    est = from_sklearn(fitted)
    same_answers(est, fitted, X, "float64")
    for name in ("n_iter_", "loss_", "loss_curve_", "validation_scores_", "best_validation_score_", "best_loss_"):
        assert hasattr(est, name) == hasattr(fitted, name) and getattr(est, name, 0) == getattr(fitted, name, 0), name
    mine = ours.fit(X, y)
    out = to_sklearn(mine)
    same_answers(out, mine, X, "float64")
    assert out.n_iter_ == mine.n_iter_ and out.loss_ == mine.loss_
    if how == "early_stopping":
        assert out.validation_scores_ == mine.validation_scores_ and out.fit(X, y).n_iter_ >= 1


def test_feature_names_travel_both_ways():
    pd = pytest.importorskip("pandas")
    frame = pd.DataFrame(X, columns=[f"f{i}" for i in range(X.shape[1])])
    fitted = skl.MLPRegressor(hidden_layer_sizes=(4,), max_iter=3, random_state=0).fit(
        frame, TARGETS["squared_error"][1]
    )
    est = from_sklearn(fitted)
    assert est.feature_names_in_.tolist() == to_sklearn(est).feature_names_in_.tolist() == list(frame.columns)
    np.testing.assert_allclose(est.predict(frame), fitted.predict(frame), rtol=1e-12)


def test_the_one_class_of_y_converts_both_ways():
    y = np.full(len(X), "only")
    theirs = skl.MLPClassifier(hidden_layer_sizes=(3,), max_iter=3, random_state=0).fit(X, y)
    est = from_sklearn(theirs)
    assert est.predict(X).tolist() == theirs.predict(X).tolist() == y.tolist()
    ours = MLPClassifier(hidden_layer_sizes=(3,), max_iter=3, random_state=0).fit(X, y)
    assert to_sklearn(ours).predict(X).tolist() == y.tolist()
    np.testing.assert_allclose(to_sklearn(ours).predict_proba(X), ours.predict_proba(X), rtol=1e-12)


def test_weights_assigned_to_an_unfitted_estimator_convert():
    theirs = skl.MLPClassifier(hidden_layer_sizes=(4,), max_iter=3, random_state=0).fit(X, Y3)
    est = MLPClassifier(hidden_layer_sizes=(4,))
    est.classes_, est.coefs_, est.intercepts_ = theirs.classes_, theirs.coefs_, theirs.intercepts_
    out = to_sklearn(est)
    np.testing.assert_array_equal(out.predict_proba(X), theirs.predict_proba(X))
    assert out.partial_fit(X, Y3).n_iter_ == 1 and out.t_ == len(X)


@pytest.mark.parametrize("library", ["torch", "jax", "array-api-strict"])
@pytest.mark.parametrize("dtype", ["float64", "float32"])
def test_weights_go_where_asked_and_come_back_as_numpy(library, dtype):
    backend, x = backend_or_skip(library, "cpu"), X.astype(dtype)
    theirs = skl.MLPClassifier(hidden_layer_sizes=(5,), max_iter=5, random_state=0).fit(x, Y3)
    est = from_sklearn(theirs, backend=library, device="cpu")
    assert est.get_params()["backend"] == library
    assert all(type(w) is type(backend.asarray(np.zeros(1))) for w in est.coefs_ + est.intercepts_)
    assert all(w.dtype == backend.dtype(dtype) for w in est.coefs_)
    np.testing.assert_array_equal(est.predict(x), theirs.predict(x))
    close(est.predict_proba(x), theirs.predict_proba(x), dtype)
    np.testing.assert_array_equal(to_sklearn(est).coefs_[0], theirs.coefs_[0])
    mine = MLPClassifier(hidden_layer_sizes=(5,), max_iter=3, random_state=0, backend=library).fit(x, Y3)
    out = to_sklearn(mine)
    assert all(type(w) is np.ndarray and w.dtype == np.dtype(dtype) for w in out.coefs_ + out.intercepts_)
    np.testing.assert_array_equal(out.predict(x), mine.predict(x))


def test_what_is_not_a_fitted_network_is_refused():
    with pytest.raises(TypeError, match="fitted"):
        from_sklearn(object())
    with pytest.raises(TypeError, match="fitted"):
        from_sklearn(MLPClassifier().fit(X, Y3))  # already xpnet's
    with pytest.raises(ValueError, match="fitted"):
        from_sklearn(skl.MLPRegressor())
    with pytest.raises(NotFittedError):
        to_sklearn(MLPClassifier())
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        with pytest.raises(TypeError, match="est"):
            to_sklearn(skl.MLPClassifier(max_iter=1).fit(X, Y3))
