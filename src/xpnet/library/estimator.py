"""`MLPClassifier`: scikit-learn's estimator on xpnet's trainer (`training.loop.train`), in the namespace and on
the device of X ("everything follows X"); the fitted network is a `Model`, ``model_``, and nothing beside it."""

import dataclasses
import numbers
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
from sklearn.base import BaseEstimator, ClassifierMixin
from sklearn.exceptions import ConvergenceWarning
from sklearn.model_selection import train_test_split
from sklearn.neural_network import MLPClassifier as ScikitLearnMLP
from sklearn.utils import check_random_state, validation
from sklearn.utils._param_validation import Interval, StrOptions
from sklearn.utils.multiclass import check_classification_targets
from sklearn.utils.validation import check_consistent_length, check_is_fitted, column_or_1d, validate_data

from .. import nn
from ..backend import Backend, backend_of, make_backend, resolve_backend
from ..data import Dataset
from ..errors import BackendError
from ..training import model as record
from ..training.loop import Callback, train
from ..training.model import FITTED_ON_ARRAYS, SEED_LIMIT, Model, TrainConfig, TrainState
from .export import write_onnx

NUMPY = ("numpy", "cpu")
SUPPORTED = "use solver 'adam' or 'sgd', activation relu, logistic or tanh, learning_rate 'constant' (and lr_decay)"
REALS = ("learning_rate_init", "lr_decay", "alpha", "beta_1", "beta_2", "epsilon", "tol")
BOOLS = ("nesterovs_momentum", "shuffle")
NO_Y = "no_validation"  # scikit-learn's `validate_data` default: X alone


class MLPClassifier(ClassifierMixin, BaseEstimator):
    """A multilayer perceptron classifier trained by xpnet on the arrays it is given (docs/api.md).

    Parameters shared with scikit-learn's ``MLPClassifier`` mean what they mean there (``power_t``, ``max_fun``
    unused; lbfgs, identity and the invscaling/adaptive rates refused). xpnet's own: ``device`` (None: where X
    is), ``backend`` (the library for NumPy input), ``dtype`` (None: X's) and ``lr_decay`` (per epoch)."""

    _parameter_constraints: ClassVar[dict] = {
        **ScikitLearnMLP._parameter_constraints,
        "lr_decay": [Interval(numbers.Real, 0, 1, closed="right")],
        "device": [None, str],
        "backend": [None, str],
        "dtype": [None, StrOptions({"float32", "float64"})],
    }

    def __init__(
        self,
        hidden_layer_sizes=(100,),
        activation="relu",
        *,
        solver="adam",
        alpha=0.0001,
        batch_size="auto",
        learning_rate="constant",
        learning_rate_init=0.001,
        power_t=0.5,
        max_iter=200,
        shuffle=True,
        random_state=None,
        tol=1e-4,
        verbose=False,
        warm_start=False,
        momentum=0.9,
        nesterovs_momentum=True,
        early_stopping=False,
        validation_fraction=0.1,
        beta_1=0.9,
        beta_2=0.999,
        epsilon=1e-8,
        n_iter_no_change=10,
        max_fun=15000,
        lr_decay=1.0,
        device=None,
        backend=None,
        dtype=None,
    ):
        vars(self).update({k: v for k, v in locals().items() if k != "self"})  # each parameter as given

    def __sklearn_tags__(self):
        return dataclasses.replace(super().__sklearn_tags__(), array_api_support=True)

    def fit(self, X: Any, y: Any) -> "MLPClassifier":
        """Train on X (rows of features) and y (labels) for ``max_iter`` epochs, fewer once it stops improving."""
        return self._fit(X, y, incremental=False)

    def partial_fit(self, X: Any, y: Any, classes: Any = None) -> "MLPClassifier":
        """One epoch over X and y; the first call needs ``classes``, every label there will be."""
        if not hasattr(self, "classes_") and classes is None:
            raise ValueError("classes must be passed on the first call to partial_fit")
        return self._fit(X, y, incremental=True, classes=classes)

    def _fit(self, X: Any, y: Any, incremental: bool, classes: Any = None) -> "MLPClassifier":
        self._validate_params()
        for name in ("solver", "activation", "learning_rate"):
            if getattr(self, name) in ("lbfgs", "identity", "invscaling", "adaptive"):
                raise ValueError(f"{name}={getattr(self, name)!r} is not supported by xpnet: {SUPPORTED}")
        fresh = not hasattr(self, "model_") or not (incremental or self.warm_start)
        model = None if fresh else self.model_  # a model trains on with its dtype and seed, as scikit-learn's does
        x, y, given = self._check(X, y, reset=fresh, dtype=self.dtype if fresh else model.config.dtype)
        check_classification_targets(y)
        labels = np.unique(y if classes is None else _host(classes))
        if fresh and len(labels) < 2:
            raise ValueError(f"y has one class ({labels[0]!r}): MLPClassifier needs at least two classes")
        changed = not fresh and not np.array_equal(labels, np.unique(self.classes_))
        if changed and (classes is not None or not incremental):  # partial_fit's y may hold fewer
            what = "classes" if classes is not None else "y (warm_start)"
            raise ValueError(f"{what} must have the same classes as before, {self.classes_.tolist()}: not {labels}")
        self.classes_ = labels if fresh else self.classes_
        unseen = np.setdiff1d(y, self.classes_)
        if unseen.size:
            raise ValueError(f"y holds labels not in classes_ ({unseen[:5].tolist()}): pass every label in classes")
        compute = given if fresh else model.backend
        if fresh and (given is None or self.device is not None or self.backend is not None):
            # NumPy input goes where device and backend say; an array of another library must be there already
            wanted = self.device or ("cpu" if given is None or given.device_name == "cpu" else "auto")
            compute = resolve_backend(wanted, self.backend)
        if given is not None and given != compute:
            raise ValueError(
                f"X is on {given}, but this model trains on {compute} (device={self.device!r}, backend="
                f"{self.backend!r}): move X there, or leave device and backend as None and refit"
            )
        x = compute.asarray(x) if given is None else x
        # Each label's output: classes_ is sorted after fit, but a loaded model keeps its outputs' order.
        order = np.argsort(self.classes_, kind="stable")
        codes = compute.asarray(order[np.searchsorted(self.classes_[order], y)])
        if fresh:
            dtype = self.dtype or ("float32" if x.dtype == compute.dtype("float32") else "float64")
            self.t_, state, seed = 0, None, _seed(self.random_state)
        else:  # from the weights the model has (after early stopping, the best epoch's)
            dtype, seed = model.config.dtype, model.config.random_state
            state = dataclasses.replace(model.state, restored=False, last_params=None)
        done, validate, rows = 0 if fresh else state.epoch, self.early_stopping and not incremental, (None, None)
        if validate:
            held, at = self.validation_fraction, seed % 2**32
            rows = tuple(map(np.sort, train_test_split(np.arange(len(y)), test_size=held, random_state=at, stratify=y)))
            if rows[1].size < 2:
                raise ValueError("The validation set is too small. Increase 'validation_fraction' or the size of X")
        n_train = len(y) if rows[0] is None else rows[0].size
        if self.batch_size != "auto" and self.batch_size > n_train:
            warnings.warn("Got `batch_size` larger than the sample size. It is going to be clipped", stacklevel=3)
        h = self.hidden_layer_sizes  # an int is one layer; NumPy's integers become Python's
        hidden = tuple(int(v) if isinstance(v, numbers.Integral) else v for v in ([h] if np.isscalar(h) else h))
        settings = {k: float(getattr(self, k)) for k in REALS} | {k: bool(getattr(self, k)) for k in BOOLS}
        settings["momentum"] = float(self.momentum) if self.solver == "sgd" else 0.0
        stop = None if incremental or self.n_iter_no_change == np.inf else int(self.n_iter_no_change)
        settings |= {"early_stopping": validate, "n_iter_no_change": stop, "dtype": dtype, "random_state": seed}
        settings["batch_size"] = min(200 if self.batch_size == "auto" else self.batch_size, n_train)
        epochs = done + (1 if incremental else self.max_iter)
        config = TrainConfig(hidden, self.activation, self.solver, max_iter=epochs, **settings)  # each checked
        if not fresh and model.config.optimizer != config.optimizer:
            state.opt_state = nn.OPTIMIZERS[config.optimizer].init(compute.xp, state.params)
        names = tuple(str(c) for c in self.classes_.tolist())
        rows = [r if r is None else compute.asarray(r) for r in rows]
        (xt, yt), (xv, yv) = ([a if r is None else compute.xp.take(a, r, axis=0) for a in (x, codes)] for r in rows)
        data = Dataset(FITTED_ON_ARRAYS, xt, yt, None, None, (1, x.shape[1]), x_val=xv, y_val=yv, classes=names)

        class Report(Callback):
            def on_epoch_end(self, s: TrainState) -> bool:
                print(f"Iteration {s.history[-1].epoch}, loss = {s.history[-1].loss:.8f}")
                if s.history[-1].val_accuracy is not None:
                    print(f"Validation score: {s.history[-1].val_accuracy:f}")
                return False

        with np.errstate(over="ignore", invalid="ignore", divide="ignore", under="ignore"):
            state = train(compute, data, config, state=state, callbacks=[Report()] if self.verbose else [])
        where = {"n_train": n_train, "val_split": len(y) - n_train, "trained_on": str(compute)}
        self.model_ = Model(config, state, compute, self.classes_, **where)
        self._input = NUMPY if given is None else (given.name, given.device_name)
        self._set_fitted()
        self.t_ += (len(state.history) - done) * n_train
        if not incremental and not state.stopped_early and len(state.history) - done == self.max_iter:
            message = f"Stochastic Optimizer: Maximum iterations ({self.max_iter}) reached and the optimization "
            warnings.warn(message + "hasn't converged yet.", ConvergenceWarning, stacklevel=3)
        return self

    def _set_fitted(self) -> None:
        """scikit-learn's fitted attributes, read from the model's history."""
        model = self.model_
        history, validated = model.state.history, model.config.early_stopping
        self.classes_, self.n_features_in_ = model.classes, model.n_features
        self.n_iter_, self.loss_curve_ = len(history), [s.loss for s in history]
        self.loss_ = self.loss_curve_[-1] if history else None
        scores = [s.val_accuracy for s in history if s.val_accuracy is not None]
        self.validation_scores_ = scores if validated else None
        self.best_validation_score_ = max(scores) if validated and scores else None
        self.best_loss_ = None if validated or not history else min(self.loss_curve_)
        self.n_layers_, self.n_outputs_, self.out_activation_ = len(model.sizes), model.sizes[-1], "softmax"

    def _check(self, X: Any, y: Any = NO_Y, *, reset: bool = False, dtype: str | None = None) -> tuple[Any, Any, Any]:
        """(X in ``dtype`` or its own float dtype, y as host labels, X's backend or None) as scikit-learn checks."""
        given = _array_backend(X)
        if given is None:
            checked = validate_data(self, X, y, reset=reset, dtype=dtype or (np.float64, np.float32))
            return (*(checked if y is not NO_Y else (checked, y)), None)
        xp = given.xp
        if X.ndim != 2 or X.shape[0] < 1 or X.shape[1] < 1:
            raise ValueError(f"Expected a 2D array of at least one sample and one feature, got shape {tuple(X.shape)}")
        if xp.isdtype(X.dtype, "complex floating"):
            raise ValueError("Complex data not supported")
        own = X.dtype if X.dtype in (xp.float32, xp.float64) else xp.float64
        X = xp.astype(X, given.dtype(dtype) if dtype else own, copy=False)
        if not bool(given.to_numpy(xp.all(xp.isfinite(X)))):
            raise ValueError("Input X contains NaN or infinity.")
        validation._check_feature_names(self, X, reset=reset)  # scikit-learn's own checks of X's columns
        validation._check_n_features(self, X, reset=reset)
        if y is not NO_Y:
            y = column_or_1d(_host(y), warn=True)
            check_consistent_length(X, y)
        return X, y, given

    def _answer(self, X: Any, method: str, compute: Callable[[Any], Any]) -> Any:
        """``compute`` of X (checked, on the model's device and in its dtype) in X's namespace, NumPy for NumPy."""
        check_is_fitted(self)
        model = self.model_
        x, _, given = self._check(X, dtype=model.config.dtype)
        where = NUMPY if given is None else (given.name, given.device_name)
        if where != self._input and (given is None or given != model.backend):
            fitted, got = ("NumPy" if w == NUMPY else " on ".join(w) for w in (self._input, where))
            raise ValueError(
                f"{type(self).__name__}.{method}(): X must use the same namespace and device as the arrays the "
                f"model was fitted with ({fitted}) or the model ({model.backend}); got {got}. Move X there, or refit"
            )
        a = compute(model.backend.asarray(x) if given is None else x)
        return model.backend.to_numpy(a) if given is None and not isinstance(a, np.ndarray) else a

    def predict_log_proba(self, X: Any) -> Any:
        """The log of each class's probability for each row of X, in X's namespace and on its device."""
        return self._answer(X, "predict_log_proba", lambda x: self.model_.outputs(x)[1])

    def predict_proba(self, X: Any) -> Any:
        """Each class's probability (softmax) for each row of X, in X's namespace and on its device."""
        return self._answer(X, "predict_proba", lambda x: self.model_.backend.xp.exp(self.model_.outputs(x)[1]))

    def predict(self, X: Any) -> Any:
        """The likeliest class (of ``classes_``) of each row of X, in X's namespace for numbers, else NumPy."""
        return self._answer(X, "predict", lambda x: self.model_.labels(self.model_.outputs(x)[0]))

    def score(self, X: Any, y: Any, sample_weight: Any = None) -> float:
        """Mean accuracy of `predict` on X against y (optionally weighted), a Python float."""
        right = (_host(self.predict(X)) == column_or_1d(_host(y))).astype(np.float64)
        w = None if sample_weight is None else np.asarray(_host(sample_weight), dtype=np.float64)
        return float(np.average(right, weights=w))

    # Each layer's weights, (inputs, outputs), and biases, where the model was trained (unfitted: none, as theirs)
    coefs_ = property(lambda self: list(self.model_.params[0::2]))
    intercepts_ = property(lambda self: list(self.model_.params[1::2]))

    def save(self, path: str | Path) -> Path:
        """Write the fitted model as an xpnet checkpoint (`xpnet.load`, and every command, read it)."""
        check_is_fitted(self)
        return record.save(self.model_, path)

    def to_onnx(self, path: str | Path) -> Path:
        """Write the model as an ONNX graph for other runtimes (`export.write_onnx`)."""
        check_is_fitted(self)
        return write_onnx(self.model_, path)

    @classmethod
    def from_model(cls, model: Model) -> "MLPClassifier":
        """The fitted estimator of ``model``, for NumPy input (and arrays of the model's backend)."""
        c, backend, n, held = model.config, model.backend, model.n_train, model.val_split
        params = {k: v for k, v in vars(c).items() if k in cls._parameter_constraints}
        params |= {"batch_size": c.batch_size or n, "learning_rate_init": c.learning_rate}
        params["validation_fraction"] = held / (n + held) if held else 0.1
        params["n_iter_no_change"] = np.inf if c.n_iter_no_change is None else max(c.n_iter_no_change, 1)
        params["device"] = None if (backend.name, backend.device_name) == NUMPY else backend.device_name
        est = cls(**params, backend=None if backend.name == "numpy" else backend.name)
        est.model_, est._input = model, NUMPY
        est._set_fitted()
        est.t_ = model.n_train * len(model.state.history)
        return est


def load(path: str | Path, device: str = "cpu", backend: str | None = None) -> MLPClassifier:
    """A fitted `MLPClassifier` from a checkpoint, its weights where ``device``/``backend`` say (`record.load`)."""
    compute = make_backend(backend, device) if backend else resolve_backend(device)
    return MLPClassifier.from_model(record.load(path, compute))


def _array_backend(X: Any) -> Backend | None:
    """X's backend if X is an array of a library xpnet computes with other than NumPy; else None (X becomes NumPy)."""
    try:
        found = None if isinstance(X, np.ndarray) else backend_of(X)
    except BackendError:
        return None
    return None if found is None or found.name == "numpy" else found


def _host(a: Any) -> np.ndarray:
    """Labels (or weights) from any namespace or device as a host NumPy array."""
    return np.asarray(a if (found := _array_backend(a)) is None else found.to_numpy(a))


def _seed(random_state: Any) -> int:
    """xpnet's seed: an int random_state as it is (1 trains as ``--seed 1``), else drawn by ``check_random_state``."""
    if isinstance(random_state, numbers.Integral) and not isinstance(random_state, bool):
        return int(random_state) % SEED_LIMIT
    return int(check_random_state(random_state).randint(0, 2**31 - 1))
