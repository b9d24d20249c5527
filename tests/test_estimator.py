"""xpnet.MLPClassifier: scikit-learn's own estimator suite, everything follows X, and the model's doors."""

from __future__ import annotations

import dataclasses
import json
import pickle
import warnings

import array_api_compat
import numpy as np
import pytest
from sklearn.datasets import load_digits, make_classification
from sklearn.exceptions import ConvergenceWarning
from sklearn.model_selection import GridSearchCV, cross_val_score, train_test_split
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
from sklearn.utils.estimator_checks import check_array_api_input, parametrize_with_checks

import xpnet
from conftest import backend_or_skip, yield_backend_device_dtype_combinations
from helpers import run_module
from xpnet import MLPClassifier, nn
from xpnet.nn import Recipe, init_params, penalty, train_step


@parametrize_with_checks([MLPClassifier()])
def test_scikit_learn_estimator_checks(estimator, check):
    # scikit-learn's whole suite, its Array API checks included (array_api_support=True), no expected failures.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        check(estimator)


@pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")
@pytest.mark.parametrize("check_values", [False, True], ids=["types", "values"])
@pytest.mark.parametrize("dtype", ["float64", "float32"])
def test_scikit_learn_array_api_checks_on_jax(dtype, check_values):
    """scikit-learn's own Array API checks on JAX arrays, a namespace its list of them leaves out."""
    backend_or_skip("jax", "cpu")  # turns on JAX's 64-bit types, as training on JAX does
    check_array_api_input("MLPClassifier", MLPClassifier(), "jax.numpy", dtype_name=dtype, check_values=check_values)


@pytest.fixture(scope="module")
def digits():
    X, y = load_digits(return_X_y=True)
    return train_test_split(X / 16.0, y, random_state=0, stratify=y)


def quick(**kw) -> MLPClassifier:
    return MLPClassifier(**{"hidden_layer_sizes": (32,), "max_iter": 30, "random_state": 0, **kw})


@pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")
@pytest.mark.parametrize(("name", "device", "dtype"), list(yield_backend_device_dtype_combinations()))
def test_everything_follows_x(name, device, dtype, digits):
    """Fitted on a library's arrays, the weights and every answer stay in that library, on that device and
    in X's dtype, and agree with NumPy's fit of the same data (float64: to rounding; float32: 180 steps of
    float32 rounding in another order)."""
    backend = backend_or_skip(name, device)
    Xtr, Xte, ytr, yte = (a.astype(dtype) if a.dtype.kind == "f" else a for a in digits)
    reference = quick().fit(Xtr, ytr)
    x, y, xt = (backend.asarray(a) for a in (Xtr, ytr, Xte))
    clf = quick().fit(x, y)
    for a in [*clf.coefs_, *clf.intercepts_, clf.predict(xt), clf.predict_proba(xt), clf.predict_log_proba(xt)]:
        assert type(a) is type(x) and array_api_compat.device(a) == array_api_compat.device(x)
    assert clf.predict_proba(xt).dtype == clf.coefs_[0].dtype == backend.dtype(dtype)
    exact = dtype == "float64"
    proba = backend.to_numpy(clf.predict_proba(xt))
    np.testing.assert_allclose(proba, reference.predict_proba(Xte), atol=1e-6 if exact else 2e-3)
    agree = np.mean(backend.to_numpy(clf.predict(xt)) == reference.predict(Xte))
    assert agree == 1.0 if exact else agree >= 0.99
    assert abs(clf.score(xt, backend.asarray(yte)) - reference.score(Xte, yte)) <= (0 if exact else 0.01)
    assert clf.loss_curve_ == pytest.approx(reference.loss_curve_, rel=1e-9 if exact else 1e-3)


@pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")
def test_numpy_input_trained_elsewhere_answers_in_numpy(digits):
    pytest.importorskip("torch")
    Xtr, Xte, ytr, _ = digits
    clf = quick(backend="torch").fit(Xtr, ytr)
    assert type(clf.predict_proba(Xte)) is np.ndarray and clf.model_.backend.name == "torch"
    np.testing.assert_allclose(clf.predict_proba(Xte), quick().fit(Xtr, ytr).predict_proba(Xte), atol=1e-6)


@pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")
def test_device_cuda_on_numpy_input_trains_on_the_gpu_and_answers_numpy(digits):
    gpu = backend_or_skip("cupy", "cuda")
    Xtr, Xte, ytr, _ = digits
    clf = quick(device="cuda").fit(Xtr, ytr)
    assert clf.model_.backend == gpu and type(clf.coefs_[0]).__module__.startswith("cupy")
    proba = clf.predict_proba(Xte)
    assert type(proba) is np.ndarray
    np.testing.assert_allclose(proba, quick().fit(Xtr, ytr).predict_proba(Xte), atol=1e-6)


def test_device_cuda_without_a_gpu_is_a_clear_error(digits):
    from xpnet.backend import gpu_present

    if gpu_present():
        pytest.skip("this machine has a GPU")
    with pytest.raises(ValueError, match=r"cuda|CUDA|CuPy"):
        quick(device="cuda").fit(*digits[::2])


def test_a_drop_in_for_scikit_learn(digits):
    """The same script with only the import changed: accuracy within a point of scikit-learn's."""
    from sklearn.neural_network import MLPClassifier as Theirs

    Xtr, Xte, ytr, yte = digits
    kw = {"hidden_layer_sizes": (64,), "alpha": 1e-3, "early_stopping": True, "random_state": 1, "max_iter": 200}
    ours, theirs = MLPClassifier(**kw).fit(Xtr, ytr), Theirs(**kw).fit(Xtr, ytr)
    assert ours.score(Xte, yte) >= theirs.score(Xte, yte) - 0.01
    assert ours.n_iter_ < 200 and ours.best_validation_score_ == max(ours.validation_scores_)
    for name in ("classes_", "n_features_in_", "n_layers_", "loss_curve_", "t_", "coefs_", "intercepts_"):
        assert hasattr(ours, name), name
    assert [w.shape for w in ours.coefs_] == [w.shape for w in theirs.coefs_]


def test_early_stopping_keeps_the_best_epochs_weights(digits):
    Xtr, _, ytr, _ = digits
    clf = MLPClassifier(hidden_layer_sizes=(16,), early_stopping=True, random_state=3, n_iter_no_change=4,
                        learning_rate_init=0.05).fit(Xtr, ytr)  # fmt: skip
    best = int(np.argmax(clf.validation_scores_))
    assert best < clf.n_iter_ - 1  # it ran past its best epoch, so putting the best back is visible
    # The held-out rows, as fit split them (like scikit-learn, a multiclass split is not stratified): their
    # accuracy is the best epoch's, so those weights were kept.
    _, val = train_test_split(np.arange(len(ytr)), test_size=0.1, random_state=3)
    assert clf.score(Xtr[val], ytr[val]) == clf.best_validation_score_


@pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")
def test_string_labels_partial_fit_and_warm_start(digits):
    Xtr, Xte, ytr, _ = digits
    names = np.array(["zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine"])
    clf = quick().fit(Xtr, names[ytr])
    assert clf.classes_.tolist() == sorted(names.tolist()) and set(clf.predict(Xte)) <= set(names)

    inc = MLPClassifier(hidden_layer_sizes=(16,), random_state=0)
    with pytest.raises(ValueError, match="classes must be passed"):
        inc.partial_fit(Xtr, ytr)
    for i in range(3):
        inc.partial_fit(Xtr[i::3], ytr[i::3], classes=np.arange(10) if i == 0 else None)
    assert inc.n_iter_ == 1 and len(inc.loss_curve_) == 3  # n_iter_: the last call's epochs, as scikit-learn counts
    with pytest.raises(ValueError, match=r"not in `self\.classes_`"):
        inc.partial_fit(Xtr[:5], np.full(5, 11))

    warm = quick(warm_start=True).fit(Xtr, ytr)
    first = warm.n_iter_
    warm.fit(Xtr, ytr)
    assert len(warm.loss_curve_) == first + warm.n_iter_


@pytest.mark.parametrize(
    ("change", "data", "words"),
    [
        ({"solver": "newton"}, None, "solver"),
        ({"activation": "softplus"}, None, "activation"),
        ({"learning_rate": "cyclic"}, None, "learning_rate"),
        ({"alpha": -1.0}, None, "alpha"),
        ({}, "nan", "NaN"),
        ({}, "1d", "1D|2D"),
        ({}, "continuous", "Unknown label type"),
        ({}, "lengths", "inconsistent numbers of samples"),
    ],
)
def test_bad_input_is_the_error_scikit_learn_users_expect(change, data, words):
    X, y = make_classification(n_samples=40, n_features=5, random_state=0)
    if data == "nan":
        X[3, 2] = np.nan
    elif data == "1d":
        X = X[:, 0]
    elif data == "continuous":
        y = y + 0.5 * X[:, 0]
    elif data == "lengths":
        y = y[:-1]
    with pytest.raises(ValueError, match=words):
        MLPClassifier(max_iter=2, **change).fit(X, y)


def test_wrong_features_and_wrong_namespace_at_predict(digits):
    pytest.importorskip("array_api_strict")
    import array_api_strict

    Xtr, Xte, ytr, _ = digits
    with pytest.warns(ConvergenceWarning, match="Maximum iterations"):  # 2 epochs: expected, and said
        clf = quick(max_iter=2).fit(Xtr, ytr)
    with pytest.raises(ValueError, match="features"):
        clf.predict(Xte[:, :10])
    with pytest.raises(ValueError, match="must use the same namespace"):
        clf.predict(array_api_strict.asarray(Xte))


@pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")
def test_pipelines_searches_clone_and_pickle(digits):
    from sklearn.base import clone

    Xtr, Xte, ytr, yte = digits
    pipe = make_pipeline(StandardScaler(), quick(max_iter=40))
    assert pipe.fit(Xtr, ytr).score(Xte, yte) > 0.8
    search = GridSearchCV(quick(max_iter=5), {"hidden_layer_sizes": [(8,), (16,)]}, cv=2).fit(Xtr, ytr)
    assert search.best_params_["hidden_layer_sizes"] in [(8,), (16,)]
    assert cross_val_score(quick(max_iter=5), Xtr, ytr, cv=3).shape == (3,)
    fitted = quick(max_iter=5).fit(Xtr, ytr)
    assert not hasattr(clone(fitted), "classes_")
    again = pickle.loads(pickle.dumps(fitted))
    np.testing.assert_array_equal(again.predict_proba(Xte), fitted.predict_proba(Xte))


def test_the_l2_penalty_is_the_gradient_of_its_loss_term():
    """alpha's meaning, checked by finite differences in float64: the step's gradient is that of the mean
    cross-entropy plus alpha / (2 n) * sum(W**2), scikit-learn's loss."""
    import array_api_compat.numpy as xp

    rng = np.random.default_rng(0)
    sizes, n, alpha = [5, 4, 3], 7, 0.3
    params = init_params(rng, sizes, "tanh", "float64")
    x, t = rng.random((n, 5)), nn.one_hot(xp, rng.integers(0, 3, n), 3, xp.float64)

    def loss(ps):
        logits, _ = nn.forward(xp, ps, x, "tanh")
        return float(nn.softmax_cross_entropy(xp, logits, t)[0] + penalty(xp, ps, alpha, n))

    lr = 1.0  # one SGD step with rate 1 moves each weight by minus its gradient
    new, *_ = train_step(xp, Recipe("tanh", "sgd", alpha=alpha))([p.copy() for p in params], [], x, t, 1, lr)
    grads = [p - q for p, q in zip(params, new)]
    for k in (0, 1, 2):  # a weight matrix, a bias (never penalised) and the second weight matrix
        i = (0, 0) if params[k].ndim == 2 else (1,)
        bumped = [p.copy() for p in params]
        bumped[k][i] += 1e-6
        lower = [p.copy() for p in params]
        lower[k][i] -= 1e-6
        assert (loss(bumped) - loss(lower)) / 2e-6 == pytest.approx(grads[k][i], rel=1e-6)


@pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")
def test_one_model_under_every_door(tmp_path, digits):
    """Fitted in Python on pixels in [0, 1], saved: the command line predicts the same classes; a command-line
    checkpoint loads with xpnet.load and predicts the classes the command line prints."""
    from xpnet.data.images import LAYOUTS

    Xtr, Xte, ytr, _ = digits
    clf = quick().fit(Xtr, ytr)
    path = clf.save(tmp_path / "python.npz")
    pictures = []
    for i in range(6):  # the data set's own 8x8 pictures, as .npy files: predict prepares them unchanged
        pictures.append(tmp_path / f"p{i}.npy")
        np.save(pictures[-1], np.rint(Xte[i].reshape(8, 8) * 255).astype(np.uint8))
    out = run_module("xpnet.predict", "--model", str(path), "--device", "cpu", "--json", *map(str, pictures))
    assert out.returncode == 0, out.stderr
    cli = [json.loads(line)["class"] for line in out.stdout.splitlines()]
    rows = np.rint(Xte[:6] * 255) / 255
    assert LAYOUTS["digits"].n_features == 64
    assert cli == clf.predict(rows).tolist()
    refused = run_module("xpnet.evaluate", "--model", str(path), "--device", "cpu")
    assert refused.returncode == 2 and "fitted from Python on arrays" in refused.stderr
    scored = run_module("xpnet.evaluate", "--model", str(path), "--device", "cpu", "--dataset", "digits", "--json")
    assert scored.returncode == 0, scored.stderr
    loaded = xpnet.load(path)
    np.testing.assert_array_equal(loaded.predict_proba(Xte), clf.predict_proba(Xte))
    assert loaded.classes_.tolist() == clf.classes_.tolist()

    trained = run_module("xpnet.train", "--dataset", "digits", "--device", "cpu", "--hidden", "16", "--epochs", "3",
                         "--save", str(tmp_path / "cli.npz"), "--quiet")  # fmt: skip
    assert trained.returncode == 0, trained.stderr
    out = run_module("xpnet.predict", "--model", str(tmp_path / "cli.npz"), "--device", "cpu", "--json",
                     *map(str, pictures))  # fmt: skip
    cli = [json.loads(line)["class"] for line in out.stdout.splitlines()]
    assert xpnet.load(tmp_path / "cli.npz").predict(rows).tolist() == cli


def test_onnx_runtime_gives_the_same_classes_and_probabilities(tmp_path, digits):
    pytest.importorskip("onnx")
    ort = pytest.importorskip("onnxruntime")
    Xtr, Xte, ytr, _ = digits
    for labels in (ytr, np.array(list("abcdefghij"))[ytr]):
        clf = MLPClassifier(hidden_layer_sizes=(32, 16), activation="tanh", max_iter=20, random_state=0)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ConvergenceWarning)
            clf.fit(Xtr, labels)
        path = clf.to_onnx(tmp_path / "model.onnx")
        session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
        label, proba = session.run(["label", "probabilities"], {"input": Xte.astype(np.float32)})
        np.testing.assert_allclose(proba, clf.predict_proba(Xte), atol=1e-4)
        np.testing.assert_array_equal(label, clf.predict(Xte))


@pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")
def test_xpnet_export_writes_the_graph_of_a_command_line_model(tmp_path, digits):
    pytest.importorskip("onnx")
    ort = pytest.importorskip("onnxruntime")
    _, Xte, _, _ = digits
    trained = run_module("xpnet.train", "--dataset", "digits", "--device", "cpu", "--hidden", "16", "--epochs", "2",
                         "--save", str(tmp_path / "cli.npz"), "--quiet")  # fmt: skip
    assert trained.returncode == 0, trained.stderr
    out = run_module("xpnet.export", "--model", str(tmp_path / "cli.npz"), "--onnx", str(tmp_path / "g" / "m.onnx"))
    assert out.returncode == 0 and out.stdout.startswith("wrote "), out.stderr
    session = ort.InferenceSession(str(tmp_path / "g" / "m.onnx"), providers=["CPUExecutionProvider"])
    label, proba = session.run(["label", "probabilities"], {"input": Xte.astype(np.float32)})
    model = xpnet.load(tmp_path / "cli.npz")
    np.testing.assert_array_equal(label, model.predict(Xte))
    np.testing.assert_allclose(proba, model.predict_proba(Xte), atol=1e-4)
    bad = run_module("xpnet.export", "--model", str(tmp_path / "missing.npz"), "--onnx", str(tmp_path / "n.onnx"))
    assert bad.returncode == 2 and len(bad.stderr.splitlines()) == 1 and not (tmp_path / "n.onnx").exists()


@pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning", "ignore:Got `batch_size`:UserWarning")
def test_training_on_goes_on_from_the_model_as_it_is(tmp_path, digits):
    """partial_fit and warm start continue the model the user has: its weights after early stopping, its
    dtype, its classes (and a loaded model's outputs, whose labels are not sorted)."""
    Xtr, Xte, ytr, yte = digits
    stopped = MLPClassifier(hidden_layer_sizes=(16,), early_stopping=True, random_state=3, n_iter_no_change=4,
                            learning_rate_init=0.05).fit(Xtr, ytr)  # fmt: skip
    assert int(np.argmax(stopped.validation_scores_)) < stopped.n_iter_ - 1  # the best epoch's weights were put back
    kept = [w.copy() for w in stopped.coefs_]
    stopped.set_params(learning_rate_init=1e-12, early_stopping=False).partial_fit(Xtr, ytr)
    assert max(float(np.abs(a - b).max()) for a, b in zip(stopped.coefs_, kept)) < 1e-6

    warm = quick(warm_start=True, max_iter=3).fit(Xtr.astype(np.float32), ytr)
    warm.fit(Xtr, ytr)  # float64 X: the model stays float32
    assert warm.coefs_[0].dtype == np.float32
    with pytest.raises(ValueError, match="same classes"):
        warm.fit(Xtr[ytr < 5], ytr[ytr < 5])

    # A model whose labels are in output order, not sorted (Fashion-MNIST's names), learns on after loading.
    names = np.array(["T-shirt", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag", "Boot"])
    first = quick(max_iter=1).fit(Xtr, ytr)
    first.save(tmp_path / "m.npz")
    ckpt = tmp_path / "m.npz"
    from xpnet.training.model import load

    loaded = MLPClassifier.from_model(load(ckpt))
    loaded.model_ = dataclasses.replace(loaded.model_, classes=names, names=tuple(names))
    loaded.classes_ = names
    before = loaded.score(Xte, names[yte])
    for _ in range(5):
        loaded.partial_fit(Xtr, names[ytr])
    assert loaded.score(Xte, names[yte]) > before + 0.2
    loaded.partial_fit(Xtr[:10], names[ytr[:10]], classes=names)  # the same classes, in another order, are fine


@pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")
def test_labels_in_a_checkpoint_come_back_as_they_were_or_not_at_all(tmp_path, digits):
    from xpnet.training.model import load

    Xtr, _, ytr, _ = digits
    words = np.array([f"w{k}" for k in range(10)], dtype=object)  # strings as pandas holds them
    clf = quick(max_iter=2).fit(Xtr, words[ytr])
    path = clf.save(tmp_path / "words.npz")
    assert xpnet.load(path).classes_.tolist() == [f"w{k}" for k in range(10)]
    from helpers import rewrite, set_meta

    for crafted in ([1, "1", 2, 3, 4, 5, 6, 7, 8, 9], [10**40, *range(9)], [float("nan"), *range(9)], [0] * 10):
        bad = rewrite(path, lambda arrays, c=crafted: set_meta(arrays, labels=c))
        loaded = MLPClassifier.from_model(load(bad))
        assert loaded.classes_.tolist() == [f"w{k}" for k in range(10)]  # the names, not a crafted mix
