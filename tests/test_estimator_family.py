"""MLPRegressor, lbfgs, sample and class weights, sparse X, binary/multilabel/one-class outputs: the same answers on
every backend xpnet computes with, and the behaviours scikit-learn users rely on (scikit-learn's own suite is
tests/test_sklearn_suite.py)."""

import warnings

import numpy as np
import pytest
import scipy.sparse
from sklearn.datasets import load_diabetes, load_digits, make_multilabel_classification
from sklearn.neural_network import MLPClassifier as TheirClassifier
from sklearn.neural_network import MLPRegressor as TheirRegressor
from sklearn.preprocessing import MinMaxScaler, scale
from sklearn.utils.class_weight import compute_sample_weight

import xpnet
from helpers import run_cli
from xpnet import MLPClassifier, MLPRegressor

pytestmark = pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")
DIABETES_X, DIABETES_Y = load_diabetes(return_X_y=True)
DIABETES_Y = scale(DIABETES_Y)
DIGITS_X, DIGITS_Y = load_digits(return_X_y=True)
DIGITS_X = MinMaxScaler().fit_transform(DIGITS_X)


def namespaces():
    """(name, asarray, to_numpy) of each other array library installed here, on its CPU."""
    found = []
    for name in ("array_api_strict", "torch", "jax"):
        try:
            lib = __import__(name)
        except ImportError:
            continue
        if name == "jax":
            lib.config.update("jax_enable_x64", True)
            found.append((name, lambda a, lib=lib: lib.numpy.asarray(a), np.asarray))
        elif name == "torch":
            found.append((name, lambda a, lib=lib: lib.asarray(a), lambda a: a.numpy()))
        else:
            found.append((name, lambda a, lib=lib: lib.asarray(a), lambda a: np.asarray(a)))
    return found


@pytest.mark.parametrize(("name", "put", "get"), namespaces(), ids=lambda v: v if isinstance(v, str) else "")
@pytest.mark.parametrize(
    "params",
    [
        {"solver": "adam", "max_iter": 4},
        {"solver": "sgd", "learning_rate": "invscaling", "max_iter": 4, "batch_size": 64},
        {"solver": "lbfgs", "max_iter": 15},
        {"solver": "sgd", "loss": "poisson", "max_iter": 3, "learning_rate_init": 1e-3},
    ],
    ids=["adam", "sgd-invscaling", "lbfgs", "poisson"],
)
def test_the_regressor_answers_alike_on_every_backend_and_in_xs_namespace(name, put, get, params):
    X, y = DIABETES_X[:200], DIABETES_Y[:200]
    if params.get("loss") == "poisson":
        y = y - y.min()
    w = np.linspace(0.5, 2.0, len(y))
    ours = MLPRegressor(hidden_layer_sizes=(12,), random_state=0, **params).fit(X, y, sample_weight=w)
    there = MLPRegressor(hidden_layer_sizes=(12,), random_state=0, **params).fit(put(X), put(y), sample_weight=put(w))
    pred = there.predict(put(X))
    assert type(pred) is type(put(X)) and tuple(pred.shape) == (len(y),)
    np.testing.assert_allclose(get(pred), ours.predict(X), rtol=1e-6, atol=1e-8)
    assert there.n_iter_ == ours.n_iter_ and there.t_ == ours.t_


def test_weights_on_rows_act_as_repeated_rows_for_lbfgs():
    X, y = DIGITS_X[:120], DIGITS_Y[:120]
    w = np.arange(120) % 3
    weighted = MLPClassifier(solver="lbfgs", hidden_layer_sizes=(10,), random_state=1, max_iter=30, tol=0)
    repeated = MLPClassifier(solver="lbfgs", hidden_layer_sizes=(10,), random_state=1, max_iter=30, tol=0)
    weighted.fit(X, y, sample_weight=w)
    repeated.fit(np.repeat(X, w, axis=0), np.repeat(y, w))
    np.testing.assert_allclose(weighted.predict_proba(X), repeated.predict_proba(X), rtol=1e-5, atol=1e-7)


def test_class_weight_is_sample_weight_by_class():
    X, y = DIGITS_X[:300], (DIGITS_Y[:300] == 3).astype(int)  # unbalanced: one row in ten is a three
    params = {"solver": "lbfgs", "hidden_layer_sizes": (3,), "max_iter": 8, "random_state": 0}
    by_class = MLPClassifier(class_weight="balanced", **params).fit(X, y)
    by_row = MLPClassifier(**params).fit(X, y, sample_weight=compute_sample_weight("balanced", y))
    np.testing.assert_array_equal(by_class.coefs_[0], by_row.coefs_[0])
    plain = MLPClassifier(**params).fit(X, y)
    assert by_class.predict(X).sum() > plain.predict(X).sum()  # the rare class is predicted more often


def test_sparse_x_trains_as_dense_x_a_batch_at_a_time():
    X, y = DIGITS_X[:150], DIGITS_Y[:150]
    for solver in ("sgd", "lbfgs"):
        dense = MLPClassifier(solver=solver, hidden_layer_sizes=(9,), random_state=2, max_iter=6).fit(X, y)
        sparse = MLPClassifier(solver=solver, hidden_layer_sizes=(9,), random_state=2, max_iter=6)
        sparse.fit(scipy.sparse.csr_array(X), y)
        np.testing.assert_allclose(sparse.coefs_[0], dense.coefs_[0], rtol=1e-7, atol=1e-10)
        np.testing.assert_array_equal(sparse.predict(scipy.sparse.csc_matrix(X)), dense.predict(X))


def test_the_outputs_are_scikit_learns():
    X = DIGITS_X[:200]
    binary = MLPClassifier(hidden_layer_sizes=(5,), max_iter=3, random_state=0).fit(X, DIGITS_Y[:200] % 2 == 0)
    assert (binary.n_outputs_, binary.out_activation_, binary.predict_proba(X).shape) == (1, "logistic", (200, 2))
    assert binary.coefs_[-1].shape == (5, 1) and binary.predict(X).dtype == bool
    Xm, Ym = make_multilabel_classification(n_samples=60, n_classes=4, random_state=0)
    multi = MLPClassifier(hidden_layer_sizes=(5,), max_iter=3, random_state=0).fit(Xm, Ym)
    assert multi.predict(Xm).shape == Ym.shape and set(np.unique(multi.predict(Xm))) <= {0, 1}
    one = MLPClassifier(hidden_layer_sizes=(3,), max_iter=2, random_state=0).fit(X[:20], ["seven"] * 20)
    assert one.predict(X[:4]).tolist() == ["seven"] * 4
    # The initial weights are scikit-learn's for the same integer seed: one tiny step apart after one epoch.
    ours = MLPClassifier(hidden_layer_sizes=(7,), max_iter=1, random_state=3, learning_rate_init=1e-9).fit(
        X, DIGITS_Y[:200]
    )
    theirs = TheirClassifier(hidden_layer_sizes=(7,), max_iter=1, random_state=3, learning_rate_init=1e-9)
    theirs.fit(X, DIGITS_Y[:200])
    np.testing.assert_allclose(ours.coefs_[0], theirs.coefs_[0], atol=1e-7)


def test_assigned_weights_are_the_models():
    X, y = DIABETES_X[:100], DIABETES_Y[:100]
    reg = MLPRegressor(hidden_layer_sizes=(4,), max_iter=2, random_state=0).fit(X, y)
    reg.coefs_[1] = np.zeros_like(reg.coefs_[1])  # an item, as scikit-learn users set them
    reg.intercepts_ = [reg.intercepts_[0], np.array([0.25])]  # or the whole list
    np.testing.assert_allclose(reg.predict(X), 0.25)


def test_a_diverging_fit_is_scikit_learns_value_error():
    X = np.finfo(np.float64).max * np.random.default_rng(0).uniform(size=(10, 2))
    with pytest.raises(ValueError, match="Solver produced non-finite parameter weights"), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        MLPRegressor().fit(X, np.arange(10.0))


@pytest.mark.parametrize("kind", ["regressor", "lbfgs", "multilabel", "binary"])
def test_every_kind_of_model_saves_and_loads_and_the_tools_refuse_what_is_not_theirs(kind, tmp_path, capsys):
    X, y = DIGITS_X[:120], DIGITS_Y[:120]
    if kind == "regressor":
        est = MLPRegressor(hidden_layer_sizes=(6,), max_iter=2, random_state=0).fit(X, y / 9.0)
    elif kind == "lbfgs":
        est = MLPClassifier(solver="lbfgs", hidden_layer_sizes=(6,), max_iter=5, random_state=0).fit(X, y)
    elif kind == "multilabel":
        est = MLPClassifier(hidden_layer_sizes=(6,), max_iter=2, random_state=0).fit(X, np.stack([y % 2, y > 4], 1))
    else:
        est = MLPClassifier(hidden_layer_sizes=(6,), max_iter=2, random_state=0).fit(X, y % 2 == 0)
    path = est.save(tmp_path / "m.npz")
    back = xpnet.load(path)
    assert type(back) is type(est)
    np.testing.assert_array_equal(back.predict(X), est.predict(X))
    if kind != "lbfgs":
        from xpnet.predict import main

        status, out, err = run_cli(capsys, main, "xpnet.predict", ["--model", str(path), str(tmp_path / "a.png")])
        assert status == 2 and "softmax" in err and len(err.strip().splitlines()) == 1 and not out


def test_verbose_says_why_it_stopped(capsys):
    X, y = [[3, 2], [1, 6]], [1, 0]
    MLPClassifier(tol=0.5, max_iter=3000, solver="sgd", learning_rate="adaptive", verbose=True).fit(X, y)
    out = capsys.readouterr().out
    assert "Setting learning rate to" in out and out.rstrip().endswith("Stopping.")


def test_the_regressor_is_within_scikit_learns_seed_spread():
    X, y = DIABETES_X, DIABETES_Y
    mine = [MLPRegressor(hidden_layer_sizes=(20,), max_iter=60, random_state=s).fit(X, y).score(X, y) for s in range(3)]
    theirs = [
        TheirRegressor(hidden_layer_sizes=(20,), max_iter=60, random_state=s).fit(X, y).score(X, y) for s in range(3)
    ]
    spread = max(theirs) - min(theirs)
    assert min(theirs) - spread - 0.02 <= np.mean(mine) <= max(theirs) + spread + 0.02


def test_a_model_moves_to_scikit_learn_and_back_from_the_top_level_names():
    X, y = DIGITS_X[:150], DIGITS_Y[:150]
    ours = MLPClassifier(hidden_layer_sizes=(6,), max_iter=3, random_state=0).fit(X, y)
    theirs = ours.to_sklearn()
    assert type(theirs) is TheirClassifier and theirs.predict(X).tolist() == ours.predict(X).tolist()
    back = xpnet.from_sklearn(theirs)
    np.testing.assert_array_equal(back.predict_proba(X), ours.predict_proba(X))


def test_wide_sparse_rows_are_made_dense_a_few_at_a_time(monkeypatch):
    """Scoring and lbfgs densify sparse rows in blocks bounded by bytes, not rows: a million columns are a few
    rows at a time."""
    from xpnet.training import model

    assert model.chunk_rows(scipy.sparse.csr_array((1, 10**6))) == 33  # 256 MiB of float64 rows
    monkeypatch.setattr(model, "DENSE_BYTES", 64 * 8 * 10)  # ten rows of these 64 columns
    seen = []
    dense = model.dense
    monkeypatch.setattr(model, "dense", lambda b, x, d: seen.append(x.shape[0]) or dense(b, x, d))
    X = scipy.sparse.csr_array(DIGITS_X[:95])
    clf = MLPClassifier(solver="lbfgs", hidden_layer_sizes=(4,), max_iter=3, random_state=0).fit(X, DIGITS_Y[:95])
    clf.predict(X)
    assert seen and max(seen) == 10


@pytest.mark.parametrize(("name", "put", "get"), namespaces(), ids=lambda v: v if isinstance(v, str) else "")
def test_a_regressors_bad_y_is_refused_in_every_namespace(name, put, get):
    X, y = DIABETES_X[:20], DIABETES_Y[:20].copy()
    y[3] = np.nan
    with pytest.raises(ValueError, match="NaN or infinity"):
        MLPRegressor(max_iter=1).fit(put(X), put(y))
    with pytest.raises(ValueError, match="poisson"):
        MLPRegressor(loss="poisson", max_iter=1).fit(put(X), put(DIABETES_Y[:20]))
