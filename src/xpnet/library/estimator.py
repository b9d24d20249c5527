"""`MLPClassifier` and `MLPRegressor`: scikit-learn's estimators on xpnet's trainers (`training.loop.train`, and
`training.lbfgs` for ``solver="lbfgs"``), in the namespace and on the device of X ("everything follows X"). The
fitted network is a `Model`, ``model_``; ``coefs_`` and ``intercepts_`` are views of its weights."""

import dataclasses
import inspect
import numbers
import warnings
from collections.abc import Callable
from pathlib import Path
from types import SimpleNamespace
from typing import Any, ClassVar

import numpy as np
from sklearn.base import BaseEstimator, ClassifierMixin, RegressorMixin
from sklearn.exceptions import ConvergenceWarning
from sklearn.metrics import accuracy_score, r2_score
from sklearn.model_selection import train_test_split
from sklearn.neural_network import MLPClassifier as ScikitLearnClassifier
from sklearn.neural_network import MLPRegressor as ScikitLearnRegressor
from sklearn.utils import check_random_state, validation
from sklearn.utils._param_validation import Interval, StrOptions
from sklearn.utils.class_weight import compute_sample_weight
from sklearn.utils.metaestimators import available_if
from sklearn.utils.multiclass import type_of_target, unique_labels
from sklearn.utils.optimize import _check_optimize_result
from sklearn.utils.validation import _check_sample_weight, check_consistent_length, check_is_fitted, validate_data

from ..backend import Backend, backend_of, make_backend, resolve_backend
from ..data import Dataset
from ..errors import BackendError
from ..training import model as record
from ..training.lbfgs import fit_lbfgs, objective, scikit_learn_order
from ..training.loop import Callback, progress, train
from ..training.model import CLASSIFYING, FITTED_ON_ARRAYS, SEED_LIMIT, Model, TrainConfig, TrainState

NUMPY = ("numpy", "cpu")
REALS = ("learning_rate_init", "lr_decay", "alpha", "beta_1", "beta_2", "epsilon", "tol", "power_t")
BOOLS = ("nesterovs_momentum", "shuffle")
NO_Y = "no_validation"  # scikit-learn's `validate_data` default: X alone
NON_FINITE = (
    "Solver produced non-finite parameter weights. The input data may contain large values and need to be preprocessed."
)
OWN_DEFAULTS = {"lr_decay": 1.0, "device": None, "backend": None, "dtype": None}
OWN = {  # xpnet's own parameters, beside scikit-learn's
    "lr_decay": [Interval(numbers.Real, 0, 1, closed="right")],
    "device": [None, str],
    "backend": [None, str],
    "dtype": [None, StrOptions({"float32", "float64"})],
}


def _init_of(theirs: type, **own: Any) -> Callable[..., None]:
    """An ``__init__`` taking the parameters of scikit-learn's estimator ``theirs`` (its signature: names, order,
    defaults), then xpnet's own (`OWN_DEFAULTS`, and ``own``) by keyword; scikit-learn reads them from it."""
    theirs_signature = inspect.signature(theirs.__init__)
    extra = [inspect.Parameter(k, inspect.Parameter.KEYWORD_ONLY, default=v) for k, v in (OWN_DEFAULTS | own).items()]
    signature = theirs_signature.replace(parameters=[*theirs_signature.parameters.values(), *extra])

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        bound = signature.bind(self, *args, **kwargs)
        bound.apply_defaults()
        vars(self).update(list(bound.arguments.items())[1:])  # each parameter as given, as scikit-learn asks

    __init__.__signature__ = signature
    return __init__


class _MLP(BaseEstimator):
    """What both estimators share: checking X, training, answering in X's namespace, the fitted attributes."""

    _parameter_constraints: ClassVar[dict] = {}

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.input_tags.sparse = True
        return dataclasses.replace(tags, array_api_support=True)

    def fit(self, X: Any, y: Any, sample_weight: Any = None) -> "_MLP":
        """Train on X (rows of features) and y for ``max_iter`` epochs (lbfgs: iterations), fewer once it stops
        improving; ``sample_weight`` weighs each row's loss (None: each counts once)."""
        return self._fit(X, y, sample_weight, incremental=False)

    def _partial_fit(self, X: Any, y: Any, sample_weight: Any = None, classes: Any = None) -> "_MLP":
        if self.early_stopping:
            raise ValueError("partial_fit does not support early_stopping=True")
        return self._fit(X, y, sample_weight, incremental=True, classes=classes)

    def _stochastic(self) -> bool:
        if self.solver == "lbfgs":
            raise AttributeError(
                f"partial_fit is only available for stochastic optimizers. {self.solver} is not stochastic."
            )
        return True

    def _fit(self, X: Any, y: Any, sample_weight: Any, incremental: bool, classes: Any = None) -> "_MLP":
        self._validate_params()
        fresh = not self._has_weights() or not (incremental or self.warm_start)
        model = None if fresh else self._model()  # a model trains on with its dtype and seed
        x, y, given = self._check(X, y, reset=fresh, dtype=self.dtype if fresh else model.config.dtype)
        targets, kind = self._targets(y, fresh, incremental, classes)
        if not fresh and kind != "softmax" and targets.shape[1] != model.sizes[-1]:
            raise ValueError(
                f"y has {targets.shape[1]} outputs but the model was fitted with n_outputs_={model.sizes[-1]}: "
                "give y of that shape, or fit anew (warm_start=False)"
            )
        weights = None if sample_weight is None else _check_sample_weight(_host(sample_weight), np.empty((len(y), 0)))
        weights = self._weigh(y, weights)
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
        x = _on(compute, x, given)
        if fresh:
            single = x.dtype == (
                np.float32 if isinstance(x, np.ndarray) or hasattr(x, "toarray") else compute.dtype("float32")
            )
            dtype = self.dtype or ("float32" if single else "float64")
            state, seed = None, _seed(self.random_state)
        else:  # from the weights the model has (after early stopping, the best epoch's)
            dtype, seed = model.config.dtype, model.config.random_state
            state = dataclasses.replace(model.state, restored=False, last_params=None)
        validate = self.early_stopping and not incremental and self.solver != "lbfgs"  # scikit-learn's lbfgs: none
        done, rows = 0 if fresh else state.epoch, (None, None)
        if validate:  # scikit-learn stratifies a single output's split alone
            strata = targets.astype(bool) if kind == "logistic" and targets.shape[1] == 1 else None
            split = train_test_split(
                np.arange(len(y)), test_size=self.validation_fraction, random_state=seed % 2**32, stratify=strata
            )
            rows = tuple(map(np.sort, split))
            if rows[1].size < 2:
                raise ValueError("The validation set is too small. Increase 'validation_fraction' or the size of X")
        n_train = len(y) if rows[0] is None else rows[0].size
        if self.batch_size != "auto" and self.batch_size > n_train and self.solver != "lbfgs":
            warnings.warn("Got `batch_size` larger than the sample size. It is going to be clipped", stacklevel=3)
        config = self._config(kind, dtype, seed, n_train, done + (1 if incremental else self.max_iter), validate)
        if not fresh:  # the layers are the model's, as scikit-learn keeps its first fit's
            config = dataclasses.replace(config, hidden_layer_sizes=model.config.hidden_layer_sizes)
        if not fresh and model.config.optimizer != config.optimizer:
            state.opt_state = config.rule.init(compute.xp, [compute.asarray(p) for p in state.params])
        n_classes = len(self.classes_) if kind == "softmax" else 1
        data = self._data(compute, x, targets, weights, rows, dtype, kind, n_classes)
        with np.errstate(over="ignore", invalid="ignore", divide="ignore", under="ignore"):
            if self.solver == "lbfgs":
                state, result = fit_lbfgs(compute, data, config, state)
            else:
                report = [_Report(self.tol, self.n_iter_no_change, config)] if self.verbose else []
                state = train(compute, data, config, state=state, callbacks=report, guard=False)
        names = () if kind not in CLASSIFYING else tuple(str(c) for c in self.classes_.tolist())
        where = {"n_train": n_train, "val_split": len(y) - n_train, "trained_on": str(compute)}
        labels = self.classes_ if kind in CLASSIFYING else np.zeros(0)
        self.model_ = Model(config, state, compute, labels, names, **where)
        vars(self).pop("_assigned", None)
        self._input = NUMPY if given is None else (given.name, given.device_name)
        self._set_fitted()
        if not all(bool(compute.to_numpy(compute.xp.all(compute.xp.isfinite(p)))) for p in state.params):
            raise ValueError(NON_FINITE)
        if self.solver == "lbfgs":
            self.n_iter_, self.loss_ = _check_optimize_result("lbfgs", result, self.max_iter), float(result.fun)
            return self
        self.n_iter_ = len(state.history) - done
        if not incremental and not state.stopped_early and self.n_iter_ == self.max_iter:
            message = f"Stochastic Optimizer: Maximum iterations ({self.max_iter}) reached and the optimization "
            warnings.warn(message + "hasn't converged yet.", ConvergenceWarning, stacklevel=3)
        return self

    def _config(self, kind: str, dtype: str, seed: int, n_train: int, epochs: int, validate: bool) -> TrainConfig:
        h = self.hidden_layer_sizes  # an int is one layer; NumPy's integers become Python's
        hidden = tuple(int(v) if isinstance(v, numbers.Integral) else v for v in ([h] if np.isscalar(h) else h))
        settings = {k: float(getattr(self, k)) for k in REALS} | {k: bool(getattr(self, k)) for k in BOOLS}
        settings["momentum"] = float(self.momentum) if self.solver == "sgd" else 0.0
        stop = None if self.n_iter_no_change == np.inf else int(self.n_iter_no_change)
        settings |= {"early_stopping": validate, "n_iter_no_change": stop, "dtype": dtype, "random_state": seed}
        settings["batch_size"] = min(200 if self.batch_size == "auto" else self.batch_size, n_train)
        settings |= {"learning_rate": self.learning_rate, "max_fun": int(self.max_fun), "out_activation": kind}
        return TrainConfig(hidden, self.activation, self.solver, max_iter=epochs, init="glorot", **settings)

    @staticmethod
    def _data(compute: Backend, x: Any, targets: np.ndarray, weights: Any, rows: tuple, dtype: str, kind: str, k: int):
        """The `Dataset` of the training (and validation) rows: X where it is, targets and weights moved there."""
        xp = compute.xp
        t = compute.asarray(targets if kind == "softmax" else targets.astype(dtype))
        w = None if weights is None else compute.asarray(weights.astype(dtype))
        (xt, yt, wt), (xv, yv, wv) = (x, t, w), (None, None, None)  # all rows train, unless rows says which
        if rows[0] is not None:
            (xt, yt, wt), (xv, yv, wv) = ([_take(xp, a, r) for a in (x, t, w)] for r in rows)
        names = tuple(map(str, range(k)))
        return Dataset(
            FITTED_ON_ARRAYS,
            xt,
            yt,
            None,
            None,
            (1, x.shape[1]),
            x_val=xv,
            y_val=yv,
            classes=names,
            w_train=wt,
            w_val=wv,
        )

    def _weigh(self, y: np.ndarray, weights: np.ndarray | None) -> np.ndarray | None:
        return weights

    def _has_weights(self) -> bool:
        return "model_" in vars(self) or "_assigned" in vars(self)

    def _model(self) -> Model:
        """The fitted model, or one made from weights assigned to ``coefs_`` and ``intercepts_`` before any fit."""
        if "model_" in vars(self):
            return self.model_
        given = vars(self)["_assigned"]
        if not given["coefs_"] or len(given["coefs_"]) != len(given["intercepts_"]):
            raise ValueError("assign both coefs_ and intercepts_, one array per layer each, before using them")
        params = [np.asarray(a) for pair in zip(given["coefs_"], given["intercepts_"]) for a in pair]
        params = [p.reshape(-1) if i % 2 else p.reshape(p.shape[0], -1) for i, p in enumerate(params)]
        dtype = "float32" if all(p.dtype == np.float32 for p in params) else "float64"
        kind = vars(self).get("out_activation_") or self._kind(params[-1].shape[0])
        config = self._config(kind, dtype, _seed(self.random_state), 1, 1, False)
        config = dataclasses.replace(config, hidden_layer_sizes=tuple(p.shape[1] for p in params[0:-2:2]))
        device = self.device or "cpu"
        compute = make_backend(self.backend, device) if self.backend else resolve_backend(device)
        params = [compute.asarray(p.astype(dtype)) for p in params]
        state = TrainState(params, config.rule.init(compute.xp, params), np.random.default_rng(config.random_state))
        labels = getattr(self, "classes_", np.arange(2)) if kind in CLASSIFYING else np.zeros(0)
        names = tuple(str(c) for c in np.asarray(labels).tolist())
        self.model_, self._input = Model(config, state, compute, np.asarray(labels), names, n_train=1), NUMPY
        vars(self).pop("_assigned")
        return self.model_

    def _set_fitted(self) -> None:
        """scikit-learn's fitted attributes, read from the model's history."""
        model = self.model_
        history, validated = model.state.history, model.config.early_stopping
        self.n_features_in_, self.t_ = model.n_features, model.state.seen
        self.n_iter_, self.loss_curve_ = len(history), [s.loss for s in history]
        self.loss_ = self.loss_curve_[-1] if history else None
        scores = [s.val_accuracy for s in history if s.val_accuracy is not None]
        self.validation_scores_ = scores if validated else None
        self.best_validation_score_ = max(scores, default=None) if validated else None
        self.best_loss_ = None if validated or not history else min(self.loss_curve_)
        self.n_layers_, self.n_outputs_ = len(model.sizes), model.sizes[-1]
        self.out_activation_ = model.config.out_activation
        # scikit-learn's private progress, replayed from the history (`loop.progress`): read by its own tests
        count, cuts, _ = progress(history, model.config)
        rate = model.config.lr_at(model.state.epoch + 1, model.state.seen, cuts)
        self._no_improvement_count, self._optimizer = count, SimpleNamespace(learning_rate=rate)

    def _check(self, X: Any, y: Any = NO_Y, *, reset: bool = False, dtype: str | None = None) -> tuple[Any, Any, Any]:
        """(X in ``dtype`` or its own float dtype, y as host array, X's backend or None) as scikit-learn checks."""
        given = _array_backend(X)
        if given is None:
            kw = {"accept_sparse": ["csr", "csc"], "dtype": dtype or (np.float64, np.float32), "reset": reset}
            if y is NO_Y:
                return _rows(validate_data(self, X, **kw)), y, None
            X, y = validate_data(self, X, y, multi_output=True, y_numeric=not isinstance(self, ClassifierMixin), **kw)
            return _rows(X), _one_column(y), None
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
            y = _one_column(np.asarray(_host(y)))
            check_consistent_length(X, y)
            if not isinstance(self, ClassifierMixin):
                y = y.astype(np.float64) if y.dtype.kind not in "f" else y
                if not np.isfinite(y).all():  # as validate_data checks NumPy's y
                    raise ValueError("Input y contains NaN or infinity.")
        return X, y, given

    def _answer(self, X: Any, method: str, compute: Any) -> Any:
        """``compute`` of X (checked, on the model's device and in its dtype) in X's namespace, NumPy for NumPy."""
        check_is_fitted(self)
        model = self._model()
        x, _, given = self._check(X, dtype=model.config.dtype)
        where = NUMPY if given is None else (given.name, given.device_name)
        if where != self._input and (given is None or given != model.backend):
            fitted, got = ("NumPy" if w == NUMPY else " on ".join(w) for w in (self._input, where))
            raise ValueError(
                f"{type(self).__name__}.{method}(): X must use the same namespace and device as the arrays the "
                f"model was fitted with ({fitted}) or the model ({model.backend}); got {got}. Move X there, or refit"
            )
        a = compute(model, _on(model.backend, x, given))
        return model.backend.to_numpy(a) if given is None and not isinstance(a, np.ndarray) else a

    def __sklearn_is_fitted__(self) -> bool:
        return self._has_weights()

    def _weights(self, start: int) -> list[Any]:
        if "model_" in vars(self):
            return _Layers(self.model_, start)
        if "_assigned" in vars(self):
            return vars(self)["_assigned"]["intercepts_" if start else "coefs_"]
        raise AttributeError(f"'{type(self).__name__}' has no {'intercepts_' if start else 'coefs_'} before fit")

    def _assign(self, start: int, value: list[Any]) -> None:
        if "model_" in vars(self):
            self.model_.state.params[start::2] = [self.model_.backend.asarray(v) for v in value]
        else:
            vars(self).setdefault("_assigned", {"coefs_": [], "intercepts_": []})[
                "intercepts_" if start else "coefs_"
            ] = value

    # Each layer's weights, (inputs, outputs), and biases, where the model is; assignable, as scikit-learn's
    coefs_ = property(lambda self: self._weights(0), lambda self, v: self._assign(0, v))
    intercepts_ = property(lambda self: self._weights(1), lambda self, v: self._assign(1, v))

    def _loss_grad_lbfgs(self, packed: Any, X: Any, y: Any, sample_weight: Any = None, *buffers: Any):
        """scikit-learn's loss and packed gradient at the packed weights ``packed`` (its order: the layers'
        weights, then their biases), for rows X and binarised targets y: what ``solver="lbfgs"`` minimises."""
        model = self._model()
        xp = model.backend.xp
        x, _, given = self._check(X, dtype=model.config.dtype)
        x = _on(model.backend, x, given)
        t = model.backend.asarray(np.asarray(y, dtype=model.config.dtype).reshape(x.shape[0], -1))
        w = (
            None
            if sample_weight is None
            else xp.asarray(model.backend.asarray(np.asarray(sample_weight)), dtype=t.dtype)
        )
        theirs, ours = scikit_learn_order(model.sizes), np.empty(len(packed))
        ours[theirs] = np.asarray(packed, dtype=np.float64)
        loss, grad = objective(model.backend, x, t, w, model.sizes, model.config)[0](ours)
        return loss, grad[theirs]

    def save(self, path: str | Path) -> Path:
        """Write the fitted model as an xpnet checkpoint (`xpnet.load` reads it)."""
        check_is_fitted(self)
        return record.save(self._model(), path)

    def to_sklearn(self) -> BaseEstimator:
        """scikit-learn's own estimator with these weights and predictions (`convert.to_sklearn`)."""
        from .convert import to_sklearn

        return to_sklearn(self)

    def to_onnx(self, path: str | Path) -> Path:
        """Write the model as an ONNX graph for other runtimes (`export.write_onnx`)."""
        from .export import write_onnx

        check_is_fitted(self)
        return write_onnx(self._model(), path)

    @classmethod
    def from_model(cls, model: Model) -> "_MLP":
        """The fitted estimator of ``model``, for NumPy input (and arrays of the model's backend)."""
        c, backend, n, held = model.config, model.backend, model.n_train, model.val_split
        kind = MLPClassifier if c.out_activation in CLASSIFYING else MLPRegressor
        kind = cls if issubclass(cls, kind) else kind
        params = {k: v for k, v in vars(c).items() if k in kind._parameter_constraints}
        params |= {"batch_size": c.batch_size or n, "learning_rate_init": c.lr}
        params["validation_fraction"] = held / (n + held) if held else 0.1
        params["n_iter_no_change"] = np.inf if c.n_iter_no_change is None else max(c.n_iter_no_change, 1)
        params["device"] = None if (backend.name, backend.device_name) == NUMPY else backend.device_name
        if kind is MLPRegressor:
            params["loss"] = "poisson" if c.out_activation == "exp" else "squared_error"
        est = kind(**params, backend=None if backend.name == "numpy" else backend.name)
        est.model_, est._input = model, NUMPY
        if c.out_activation in CLASSIFYING:
            est.classes_ = model.classes
            est._labels_kind = "multilabel-indicator" if model.sizes[-1] > 1 and c.out_activation == "logistic" else ""
        est._set_fitted()
        return est


class MLPClassifier(ClassifierMixin, _MLP):
    """A multilayer perceptron classifier, scikit-learn's, trained by xpnet on the arrays it is given (docs/api.md).

    Parameters mean what they mean in scikit-learn's ``MLPClassifier``. xpnet's own: ``device`` (None: where X
    is), ``backend`` (the library for NumPy input), ``dtype`` (None: X's), ``lr_decay`` (per epoch) and
    ``class_weight`` ("balanced", or a dict of each class's weight, multiplying ``sample_weight``)."""

    _parameter_constraints: ClassVar[dict] = {
        **ScikitLearnClassifier._parameter_constraints,
        **OWN,
        "class_weight": [None, dict, StrOptions({"balanced"})],
    }

    __init__ = _init_of(ScikitLearnClassifier, class_weight=None)

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.classifier_tags.multi_label = True
        return tags

    @available_if(_MLP._stochastic)
    def partial_fit(self, X: Any, y: Any, sample_weight: Any = None, classes: Any = None) -> "MLPClassifier":
        """One epoch over X and y; the first call needs ``classes``, every label there will be."""
        return self._partial_fit(X, y, sample_weight, classes)

    def _kind(self, n_out: int) -> str:
        return (
            "softmax"
            if n_out > 1 and len(getattr(self, "classes_", ())) == n_out and not self._multilabel
            else "logistic"
        )

    _multilabel = property(lambda self: getattr(self, "_labels_kind", "") == "multilabel-indicator")

    def _targets(self, y: np.ndarray, fresh: bool, incremental: bool, classes: Any) -> tuple[np.ndarray, str]:
        """y as the network's targets, scikit-learn's way: class indices for a softmax over three or more classes,
        else one 0/1 column per logistic output (one for two classes, one per label of a multilabel y)."""
        kind = type_of_target(y)
        if kind not in ("binary", "multiclass", "multilabel-indicator"):
            raise ValueError(f"Unknown label type: {kind}. MLPClassifier needs class labels or a 0/1 label matrix")
        if incremental and (classes is not None or fresh):
            if classes is None and getattr(self, "classes_", None) is None:
                raise ValueError("classes must be passed on the first call to partial_fit.")
            given = None if classes is None else unique_labels(_host(classes))
            if getattr(self, "classes_", None) is None:
                self.classes_ = np.arange(y.shape[1]) if kind == "multilabel-indicator" else given
            elif given is not None and set(given.tolist()) != set(self.classes_.tolist()):
                raise ValueError(
                    f"`classes={classes!r}` is not the same as on last call to partial_fit, was: {self.classes_!r}"
                )
        elif fresh:
            self.classes_ = np.arange(y.shape[1]) if kind == "multilabel-indicator" else unique_labels(y)
        else:
            seen = unique_labels(y) if kind != "multilabel-indicator" else np.arange(y.shape[1])
            if self.warm_start and not incremental and set(seen.tolist()) != set(self.classes_.tolist()):
                raise ValueError(
                    "warm_start can only be used where `y` has the same classes as in the previous call to fit."
                    f" Previously got {self.classes_}, `y` has {seen}"
                )
            if len(np.setdiff1d(seen, self.classes_)):
                raise ValueError(
                    f"`y` has classes not in `self.classes_`. `self.classes_` has {self.classes_}. 'y' has {seen}."
                )
        if not fresh and hasattr(self, "_labels_kind") and self._multilabel != (kind == "multilabel-indicator"):
            fitted = "was" if self._multilabel else "was not"
            raise ValueError(
                f"The object {fitted} fitted with multilabel input: y must be of the same kind, or fit anew"
            )
        if fresh or not hasattr(self, "_labels_kind"):
            self._labels_kind = kind
        self.classes_ = np.asarray(self.classes_)
        if self._multilabel:
            return np.asarray(y, dtype=np.float64), "logistic"
        if len(np.setdiff1d(y, self.classes_)):
            raise ValueError(f"y holds labels not in classes_ ({np.setdiff1d(y, self.classes_)[:5].tolist()})")
        order = np.argsort(self.classes_, kind="stable")  # a loaded model's outputs may be in another order
        index = order[np.searchsorted(self.classes_[order], y)]
        if len(self.classes_) > 2:
            return index, "softmax"
        return (index == 1).astype(np.float64)[:, None], "logistic"  # the larger class is the positive one

    def _weigh(self, y: np.ndarray, weights: np.ndarray | None) -> np.ndarray | None:
        if self.class_weight is None:
            return weights
        balance = compute_sample_weight(self.class_weight, y)
        return balance if weights is None else weights * balance

    def _labels(self, model: Model, x: Any) -> Any:
        """Each row's class (or, multilabel, its 0/1 row of labels), on the model's device where numeric."""
        xp, p = model.backend.xp, model.values(x)
        if model.config.out_activation == "softmax":
            return model.labels(xp.argmax(p, axis=1))
        if p.shape[1] > 1:
            return xp.astype(p > 0.5, xp.int64)
        one = xp.zeros(p.shape[0], dtype=xp.int64, device=p.device)  # one class: every row is it
        index = xp.astype(p[:, 0] > 0.5, xp.int64) if model.classes.shape[0] > 1 else one
        return model.labels(index)

    @staticmethod
    def _proba(model: Model, x: Any) -> Any:
        xp, p = model.backend.xp, model.values(x)
        return xp.concat([1.0 - p, p], axis=1) if model.config.out_activation == "logistic" and p.shape[1] == 1 else p

    def predict(self, X: Any) -> Any:
        """The likeliest class (of ``classes_``) of each row of X, in X's namespace for numbers, else NumPy."""
        return self._answer(X, "predict", self._labels)

    def predict_proba(self, X: Any) -> Any:
        """Each class's probability for each row of X, in X's namespace and on its device."""
        return self._answer(X, "predict_proba", self._proba)

    def predict_log_proba(self, X: Any) -> Any:
        """The log of `predict_proba`, in X's namespace and on its device."""

        def log(model: Model, x: Any) -> Any:
            if model.config.out_activation == "softmax":
                return model.outputs(x)[1]
            return model.backend.xp.log(self._proba(model, x))

        return self._answer(X, "predict_log_proba", log)

    def score(self, X: Any, y: Any, sample_weight: Any = None) -> float:
        """Mean accuracy of `predict` on X against y (optionally weighted), a Python float."""
        w = None if sample_weight is None else _host(sample_weight)
        return float(accuracy_score(_one_column(np.asarray(_host(y))), _host(self.predict(X)), sample_weight=w))


class MLPRegressor(RegressorMixin, _MLP):
    """A multilayer perceptron regressor, scikit-learn's, trained by xpnet on the arrays it is given (docs/api.md).

    Parameters mean what they mean in scikit-learn's ``MLPRegressor`` (``loss``: "squared_error" or "poisson").
    xpnet's own: ``device``, ``backend``, ``dtype`` and ``lr_decay``, as for `MLPClassifier`."""

    _parameter_constraints: ClassVar[dict] = {**ScikitLearnRegressor._parameter_constraints, **OWN}

    __init__ = _init_of(ScikitLearnRegressor)

    @available_if(_MLP._stochastic)
    def partial_fit(self, X: Any, y: Any, sample_weight: Any = None) -> "MLPRegressor":
        """One epoch over X and y."""
        return self._partial_fit(X, y, sample_weight)

    def _kind(self, n_out: int) -> str:
        return "exp" if self.loss == "poisson" else "identity"

    def _targets(self, y: np.ndarray, fresh: bool, incremental: bool, classes: Any) -> tuple[np.ndarray, str]:
        if self.loss == "poisson" and (y < 0).any():
            raise ValueError("loss='poisson' needs y >= 0 (counts or rates)")
        return y.reshape(len(y), -1), self._kind(0)

    def predict(self, X: Any) -> Any:
        """The predicted value(s) of each row of X, in X's namespace and on its device."""

        def values(model: Model, x: Any) -> Any:
            v = model.values(x)
            return v[:, 0] if v.shape[1] == 1 else v

        return self._answer(X, "predict", values)

    def score(self, X: Any, y: Any, sample_weight: Any = None) -> float:
        """R² of `predict` on X against y (optionally weighted), a Python float."""
        w = None if sample_weight is None else _host(sample_weight)
        return float(r2_score(_one_column(np.asarray(_host(y))), _host(self.predict(X)), sample_weight=w))


class _Layers(list):
    """``coefs_`` or ``intercepts_``: the model's own weight arrays; setting an item sets the model's (moved
    where the model is)."""

    def __init__(self, model: Model, start: int):
        super().__init__(model.state.params[start::2])
        self._model, self._start = model, start

    def __setitem__(self, i: Any, value: Any) -> None:
        super().__setitem__(i, value)
        self._model.state.params[self._start :: 2] = [self._model.backend.asarray(v) for v in self]


class _Report(Callback):
    """scikit-learn's ``verbose`` lines: each epoch's loss and validation score, and why a run stops."""

    def __init__(self, tol: float, patience: Any, config: TrainConfig):
        self.tol, self.patience, self.config, self.cuts = tol, patience, config, 0

    def on_epoch_end(self, s: TrainState) -> bool:
        print(f"Iteration {s.history[-1].epoch}, loss = {s.history[-1].loss:.8f}")
        if s.history[-1].val_accuracy is not None:
            print(f"Validation score: {s.history[-1].val_accuracy:f}")
        _, cuts, stop = progress(s.history, self.config)
        what = "Validation score" if self.config.early_stopping else "Training loss"
        why = f"{what} did not improve more than tol={self.tol:f} for {self.patience} consecutive epochs."
        if cuts > self.cuts:
            print(f"{why} Setting learning rate to {self.config.lr_at(s.epoch + 1, s.seen, cuts):f}")
        elif stop:
            print(f"{why} {'Learning rate too small. ' if self.cuts else ''}Stopping.")
        self.cuts = cuts
        return False


def load(path: str | Path, device: str = "cpu", backend: str | None = None) -> _MLP:
    """A fitted estimator from a checkpoint, its weights where ``device``/``backend`` say (`record.load`)."""
    compute = make_backend(backend, device) if backend else resolve_backend(device)
    return _MLP.from_model(record.load(path, compute))


def _array_backend(X: Any) -> Backend | None:
    """X's backend if X is an array of a library xpnet computes with other than NumPy; else None (X becomes NumPy)."""
    try:
        found = None if isinstance(X, np.ndarray) or hasattr(X, "toarray") else backend_of(X)
    except BackendError:
        return None
    return None if found is None or found.name == "numpy" else found


def _on(backend: Backend, x: Any, given: Backend | None) -> Any:
    """Checked X where it is computed: NumPy's moved to ``backend``; another library's (``given``) and host sparse
    rows (made dense a batch at a time) as they are."""
    return x if given is not None or hasattr(x, "toarray") else backend.asarray(x)


def _take(xp: Any, a: Any, rows: np.ndarray) -> Any:
    """The rows ``rows`` of ``a`` (None stays None; host sparse rows stay on the host)."""
    if a is None or hasattr(a, "toarray"):
        return a if a is None else a[rows]
    return xp.take(a, xp.asarray(rows, device=a.device), axis=0)


def _host(a: Any) -> np.ndarray:
    """Labels (or weights) from any namespace or device as a host NumPy array."""
    return np.asarray(a if (found := _array_backend(a)) is None else found.to_numpy(a))


def _rows(X: Any) -> Any:
    """Sparse X in compressed rows (batches are rows), anything else as it is."""
    return X.tocsr() if hasattr(X, "tocsr") else X


def _one_column(y: np.ndarray) -> np.ndarray:
    """A (n, 1) y as (n,), with scikit-learn's warning."""
    return validation.column_or_1d(y, warn=True) if y.ndim == 2 and y.shape[1] == 1 else y


def _seed(random_state: Any) -> int:
    """xpnet's seed: an int random_state as it is (1 trains as ``--seed 1``), else drawn by ``check_random_state``."""
    if isinstance(random_state, numbers.Integral) and not isinstance(random_state, bool):
        return int(random_state) % SEED_LIMIT
    return int(check_random_state(random_state).randint(0, 2**31 - 1))
