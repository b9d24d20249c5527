"""The model record `Model` (settings `TrainConfig`, checked by `RULES`; run state `TrainState`; labels, layout,
provenance), scoring, and its checkpoint (docs/checkpoints.md): `save`, and `load`, which trusts nothing."""

import json
import math
import sys
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field, fields, replace
from pathlib import Path
from typing import Any

import numpy as np

from .. import __version__, nn
from ..backend import Backend, resolve_backend
from ..data import Dataset, npy
from ..data.datasets import class_names
from ..data.images import Layout, layout_for
from ..errors import CheckpointError, XpnetError, listed, one_line, reason
from ..files import atomic_write
from ..nn import ACTIVATIONS, OPTIMIZERS, OUTPUTS, Hyper, Recipe

FITTED_ON_ARRAYS = "arrays"  # the data set of a model fitted from Python on arrays
FORMAT, FORMAT_VERSION = "xpnet-checkpoint", 2  # 2: the config in the library's names (1: the flags')
MAX_META_BYTES = 4 << 20  # a checkpoint's metadata JSON, checked before it is read: about 16,000 epochs of history
SEED_LIMIT = 2**63  # seeds, counts and batch sizes: int64 downstream, 64 bits in a checkpoint's JSON
BIT_GENERATORS = {"PCG64": np.random.PCG64, "PCG64DXSM": np.random.PCG64DXSM}  # states of plain JSON numbers
LABEL_KINDS = "iufUb"  # labels a checkpoint's JSON keeps exactly (and ONNX carries): ints, floats, strings, bools
LAYOUT_KEYS = ("side", "box", "work", "by_mass")  # what a checkpoint keeps of a picture `Layout`
EVAL_BATCH = 8192  # rows per forward pass when scoring: bounds memory, large enough to be fast
DENSE_BYTES = 256 << 20  # at most this much of sparse rows made dense at once (scoring, lbfgs): wide X, few rows
DTYPES = ("float32", "float64")
SOLVERS = ("sgd", "adam", "lbfgs")
SCHEDULES = ("constant", "invscaling", "adaptive")  # scikit-learn's learning_rate, for sgd
CLASSIFYING = ("softmax", "logistic")  # out_activation of a classifier's outputs
MAX_UNITS = 1_000_000  # per hidden layer: a 784-1,000,000 float32 layer is 3 GiB
# What a resumed run (and another run's log, `runlog.read_log`) must share with its checkpoint.
FIXED_FIELDS = ("hidden_layer_sizes", "activation", "optimizer", "dtype", "random_state", "out_activation")


class ConfigError(XpnetError):
    """A setting out of range: ``parameter`` names it, ``rule`` says what it must be."""

    def __init__(self, parameter: str, rule: str):
        super().__init__(f"{{name}}: {rule}", parameter=parameter)
        self.rule = rule


def is_count(x: object) -> bool:
    """An integer that is not a boolean (JSON's ``true`` loads as one)."""
    return isinstance(x, int) and not isinstance(x, bool)


def is_real(x: object) -> bool:
    """A finite number, not a boolean; an integer past a float's range (10**400 in JSON) is not one."""
    return isinstance(x, (int, float)) and not isinstance(x, bool) and abs(x) <= sys.float_info.max


RULES: dict[str, tuple[Callable[[Any], bool], str]] = {
    "hidden_layer_sizes": (
        lambda v: isinstance(v, tuple) and all(is_count(h) and 0 < h <= MAX_UNITS for h in v),
        f"every hidden layer needs from 1 to {MAX_UNITS:,} units (none at all: a linear model)",
    ),
    "activation": (lambda v: v in ACTIVATIONS, f"must be one of {', '.join(ACTIVATIONS)}"),
    "solver": (lambda v: v in SOLVERS, f"must be one of {', '.join(SOLVERS)}"),
    "out_activation": (lambda v: v in OUTPUTS, f"must be one of {', '.join(OUTPUTS)}"),
    "learning_rate": (lambda v: v in SCHEDULES, f"must be one of {', '.join(SCHEDULES)}"),
    "power_t": (lambda v: is_real(v) and v >= 0, "must be a number >= 0"),
    "max_fun": (lambda v: is_count(v) and v >= 1, "must be a positive integer"),
    "init": (lambda v: v in ("he", "glorot"), "must be he or glorot"),
    "learning_rate_init": (lambda v: v is None or (is_real(v) and v > 0), "must be a positive number"),
    "lr_decay": (lambda v: is_real(v) and 0 < v <= 1, "must be in (0, 1]"),
    "max_iter": (lambda v: is_count(v) and v >= 1, "must be a positive integer"),
    "batch_size": (lambda v: is_count(v) and 0 <= v < SEED_LIMIT, "must be from 0 (all rows) to 2**63 - 1"),
    "dtype": (lambda v: v in DTYPES, f"must be one of {', '.join(DTYPES)}"),
    "random_state": (lambda v: is_count(v) and 0 <= v < SEED_LIMIT, "must be an integer from 0 to 2**63 - 1"),
    "alpha": (lambda v: is_real(v) and v >= 0, "must be a number >= 0 (0: no L2 penalty)"),
    "momentum": (lambda v: is_real(v) and 0 <= v <= 1, "must be in [0, 1]"),
    "nesterovs_momentum": (lambda v: isinstance(v, bool), "must be True or False"),
    "beta_1": (lambda v: is_real(v) and 0 <= v < 1, "must be in [0, 1)"),
    "beta_2": (lambda v: is_real(v) and 0 <= v < 1, "must be in [0, 1)"),
    "epsilon": (lambda v: is_real(v) and v > 0, "must be a positive number"),
    "shuffle": (lambda v: isinstance(v, bool), "must be True or False"),
    "early_stopping": (lambda v: isinstance(v, bool), "must be True or False"),
    "n_iter_no_change": (lambda v: v is None or (is_count(v) and v >= 0), "must be None (never) or an integer >= 0"),
    "tol": (lambda v: is_real(v) and v >= 0, "must be a number >= 0"),
}


def spelled(value: Any) -> str:
    """A setting as people write it: ``256,128`` for hidden layers (a tuple, or a list from JSON)."""
    return ",".join(map(str, value)) if isinstance(value, (tuple, list)) else str(value)


def check_field(name: str, value: Any) -> None:
    """Raise `ConfigError` naming ``name`` when ``value`` breaks its rule."""
    test, rule = RULES[name]
    if not test(value):
        shown = repr(spelled(value) if isinstance(value, tuple) else value)
        shown = shown if len(shown) <= 40 else shown[:37] + "..."  # 10**400 from a foreign checkpoint
        raise ConfigError(name, f"{rule}, got {shown}")


def default_decay(n_train: int, batch_size: int) -> float:
    """``lr_decay``'s default: 0.8 per 60,000 examples or 469 steps, whichever later; not of ``max_iter`` (resumes)."""
    steps = 1 if batch_size == 0 or n_train < 1 else math.ceil(n_train / min(batch_size, n_train))
    return round(0.8 ** min(max(n_train, 0) / 60000, steps / 469), 4)


@dataclass(frozen=True)
class TrainConfig:
    """The settings of a training run (defaults: the command line's; the estimator passes scikit-learn's)."""

    hidden_layer_sizes: tuple[int, ...] = (256, 128)
    activation: str = "relu"
    solver: str = "adam"  # "sgd" with momentum 0 is plain gradient descent, with momentum > 0 heavy-ball
    learning_rate_init: float | None = None  # None: the optimizer's default (`nn.Optimizer.default_lr`)
    lr_decay: float = 1.0  # the rate of epoch e is learning_rate_init * lr_decay ** (e - 1), times `learning_rate`'s
    learning_rate: str = "constant"  # sgd's schedule (`lr_at`): invscaling, by power_t; adaptive, / 5 when stalled
    power_t: float = 0.5
    out_activation: str = "softmax"  # the output layer and its loss (`nn.OUTPUTS`)
    init: str = "he"  # initial weights (`nn.init_params`): the command line's; the estimators use "glorot"
    max_fun: int = 15000  # lbfgs: loss evaluations at most
    max_iter: int = 10  # epochs in all, counting those of the run resumed
    batch_size: int = 128  # 0: the whole training set in every step (full-batch gradient descent)
    dtype: str = "float32"
    random_state: int = 1  # seeds the weights and the shuffling
    alpha: float = 0.0  # L2 penalty (`nn.penalty`)
    momentum: float = 0.0
    nesterovs_momentum: bool = False
    beta_1: float = 0.9
    beta_2: float = 0.999
    epsilon: float = 1e-8
    shuffle: bool = True  # a new order of the training rows every epoch; False: always their own order
    # Stopping (`loop.should_stop`): with early_stopping on the validation accuracy, keeping the best epoch's
    # weights; else on the training loss. n_iter_no_change None: never stop before max_iter.
    early_stopping: bool = False
    n_iter_no_change: int | None = None
    tol: float = 1e-4

    def __post_init__(self) -> None:
        for f in fields(self):
            check_field(f.name, getattr(self, f.name))

    # The update rule (`nn.OPTIMIZERS`) that solver and momentum name, and its rate (None: the rule's default).
    optimizer = property(lambda self: "momentum" if self.solver == "sgd" and self.momentum > 0 else self.solver)
    rule = property(lambda self: OPTIMIZERS.get(self.optimizer, nn.FULL_BATCH))
    lr = property(lambda self: self.learning_rate_init or self.rule.default_lr)

    @property
    def recipe(self) -> Recipe:
        """What each training step computes (``nn.train_step``)."""
        hyper = Hyper(self.momentum, self.nesterovs_momentum, self.beta_1, self.beta_2, self.epsilon)
        return Recipe(self.activation, self.optimizer, self.alpha, hyper, self.out_activation)

    def lr_at(self, epoch: int, seen: int = 0, cuts: int = 0) -> float:
        """The rate of epoch ``epoch`` (from 1), after ``seen`` rows and ``cuts`` adaptive cuts (`loop.progress`).
        scikit-learn's schedules apply to sgd alone. A Python float: NumPy computes with an ``np.float64`` rate in
        float64, with a Python one in the weights' dtype (NEP 50)."""
        rate = self.lr * self.lr_decay ** (epoch - 1)
        try:  # a divisor past a float's range (a file's power_t of 1000, hundreds of cuts) leaves no rate
            if self.solver == "sgd" and self.learning_rate == "invscaling":
                rate /= (seen + 1) ** self.power_t
            return float(rate / 5.0**cuts if self.solver == "sgd" and self.learning_rate == "adaptive" else rate)
        except OverflowError:
            return 0.0

    def to_dict(self) -> dict[str, Any]:
        """The fields as JSON values, with the rate resolved and the update rule named (``optimizer``)."""
        resolved = {"learning_rate_init": self.lr, "optimizer": self.optimizer}
        return asdict(self) | {"hidden_layer_sizes": list(self.hidden_layer_sizes)} | resolved


@dataclass(frozen=True)
class EpochStats:
    epoch: int
    loss: float  # mean training loss over the epoch's steps, with the L2 term
    train_accuracy: float | None  # of the epoch's batches, each scored just before its update (None: a regressor)
    test_accuracy: float | None  # None when a validation set is scored instead (test set kept for the end)
    seconds: float  # training time of this epoch, scoring excluded
    samples_per_second: float
    val_accuracy: float | None = None  # the validation rows' `score` (R² for a regressor), when there are some
    lr: float | None = None  # the epoch's learning rate


@dataclass
class TrainState:
    """All a run needs to continue exactly where it stopped, and how it ended. ``rng`` is the host generator at
    the unfinished epoch's start: a resumed run redraws its order and skips the ``offset`` rows trained."""

    params: list[Any]  # the weights kept: on the model's device, or host arrays as read from a file
    opt_state: list[Any]
    rng: np.random.Generator
    epoch: int = 0  # epochs completed
    step: int = 0  # optimizer updates done
    offset: int = 0  # rows of epoch ``epoch + 1`` already trained
    loss_sum: Any = 0.0  # host 0-d array in the training dtype, so a resumed sum is bitwise the same
    correct: int = 0
    seconds: float = 0.0
    history: list[EpochStats] = field(default_factory=list)
    seen: int = 0  # rows trained in the epochs completed (scikit-learn's t_)
    best_params: list[Any] | None = None  # host copies of the best validation epoch's weights (early stopping)
    restored: bool = False  # ``params`` are the best epoch's, put back when the run ended ...
    last_params: list[Any] | None = None  # ... and these the last epoch's, from which a resumed run continues
    # How it ended (not saved): paused (Ctrl-C, or a step failed: ``failure``), or stopped early; kept weights' score
    stopped: bool = False
    failure: Exception | None = None
    stopped_early: bool = False
    test_accuracy: float | None = None

    @property
    def kept(self) -> EpochStats | None:
        """The statistics of the epoch whose weights are held (`Model.kept_epoch`); None before the first."""
        best = best_epoch(self.history) if self.restored else None
        return next((s for s in self.history if s.epoch == best), self.history[-1] if self.history else None)

    train_seconds = property(lambda self: sum(s.seconds for s in self.history))


def best_epoch(history: Sequence[EpochStats]) -> int | None:
    """The first epoch with the highest validation score (NaN never is), or None when none was validated."""
    best, top = None, -math.inf
    for s in history:
        if s.val_accuracy is not None and s.val_accuracy > top:
            best, top = s.epoch, s.val_accuracy
    return best


def initial_state(backend: Backend, sizes: Sequence[int], config: TrainConfig) -> TrainState:
    """Freshly initialised weights for layers of ``sizes`` and optimizer state, from ``config.random_state``."""
    rng = np.random.default_rng(config.random_state)
    # scikit-learn's draws for its init: a legacy RandomState of the seed, as its check_random_state makes one
    draws = np.random.RandomState(config.random_state % 2**32) if config.init == "glorot" else rng
    params = nn.init_params(draws, list(sizes), config.activation, config.dtype, config.init)
    params = [backend.asarray(p) for p in params]
    return TrainState(params, config.rule.init(backend.xp, params), rng)


def images_to_device(backend: Backend, images: Any, dtype: Any) -> Any:
    """Rows -> device rows in ``dtype``, uint8 pixels scaled to [0, 1] there (a quarter of the bytes to move)."""
    x, xp = backend.asarray(images), backend.xp
    return xp.astype(x, dtype) / 255.0 if x.dtype == xp.uint8 else xp.astype(x, dtype, copy=False)


def to_device(backend: Backend, images: Any, labels: Any, dtype: Any) -> tuple[Any, Any]:
    """Rows (`images_to_device`) and labels -> device rows in ``dtype`` and int64 labels."""
    return images_to_device(backend, images, dtype), backend.xp.astype(backend.asarray(labels), backend.xp.int64)


def training_arrays(backend: Backend, x: Any, y: Any, w: Any, dtype: Any, output: str, n_out: int | None):
    """``(x, y, t, w)`` where training reads a set: its rows (on the device; host sparse rows stay, made `dense`
    a batch at a time), ``y`` (int64 class indices, else the targets' matrix in ``dtype``), ``t`` what the loss
    compares outputs with (one-hot class indices for a softmax, else ``y``; None without ``n_out``) and the row
    weights (None: each row once)."""
    xp, y = backend.xp, backend.asarray(y)
    x = x if hasattr(x, "toarray") else images_to_device(backend, x, dtype)
    y = xp.astype(y, xp.int64 if y.ndim == 1 else dtype)
    t = None if n_out is None else nn.one_hot(xp, y, n_out, dtype) if output == "softmax" else y
    return x, y, t, None if w is None else xp.astype(backend.asarray(w), dtype)


def dense(backend: Backend, x: Any, dtype: Any) -> Any:
    """Rows on the device: device rows as they are; host sparse rows (scipy.sparse) made dense there in ``dtype``."""
    return backend.xp.astype(backend.asarray(x.toarray()), dtype) if hasattr(x, "toarray") else x


def chunk_rows(x: Any) -> int:
    """Rows of ``x`` per forward pass that bound memory: `EVAL_BATCH`, fewer for wide sparse rows made dense."""
    return max(1, min(EVAL_BATCH, DENSE_BYTES // (8 * x.shape[1]))) if hasattr(x, "toarray") else EVAL_BATCH


def logits_of(backend: Backend, params: Sequence[Any], x: Any, activation: str) -> Any:
    """The raw outputs of rows ``x`` (device, or host sparse), `chunk_rows` at a time to bound memory."""
    xp, n, b = backend.xp, x.shape[0], chunk_rows(x)
    parts = [dense(backend, x[i : min(i + b, n), :], params[0].dtype) for i in range(0, max(n, 1), b)]
    logits = [nn.forward(xp, params, part, activation)[0] for part in parts]
    return logits[0] if len(logits) == 1 else xp.concat(logits, axis=0)


def hits(xp: Any, raw: Any, targets: Any, output: str) -> Any:
    """Which rows are classified right: the largest output is the label (softmax, ``targets`` class indices), or
    every logistic output is above one half exactly where its 0/1 target is set."""
    if output == "softmax":
        return xp.argmax(raw, axis=1) == targets
    return xp.all((nn.OUTPUTS["logistic"].forward(xp, raw) > 0.5) == (targets > 0.5), axis=1)


def count_correct(xp: Any, logits: Any, labels: Any, output: str = "softmax") -> Any:
    """Number of rows classified right (`hits`; none for a regressor), as a 0-d int64 device array."""
    right = hits(xp, logits, labels, output) if output in CLASSIFYING else xp.zeros_like(logits, dtype=xp.bool)
    return xp.sum(xp.astype(right, xp.int64))


def score(backend: Backend, params: Sequence[Any], x: Any, y: Any, config: TrainConfig, weights: Any = None) -> float:
    """scikit-learn's ``score`` of rows ``x`` against ``y``, (weighted) with one read from the device: the share of
    rows classified right, or a regressor's R² averaged over its outputs (NaN where a prediction is not finite)."""
    xp, raw = backend.xp, logits_of(backend, params, x, config.activation)
    if config.out_activation in CLASSIFYING and weights is None:  # exactly right / n
        return int(backend.to_numpy(count_correct(xp, raw, y, config.out_activation))) / max(raw.shape[0], 1)
    w = xp.ones(raw.shape[0], dtype=raw.dtype, device=raw.device) if weights is None else weights
    if config.out_activation in CLASSIFYING:
        right = xp.sum(w * xp.astype(hits(xp, raw, y, config.out_activation), raw.dtype)) / xp.sum(w)
        return float(backend.to_numpy(right))
    pred, w = nn.OUTPUTS[config.out_activation].forward(xp, raw), w[:, None]
    mean = xp.sum(w * y, axis=0) / xp.sum(w)
    sse, sst = xp.sum(w * (y - pred) ** 2, axis=0), xp.sum(w * (y - mean) ** 2, axis=0)
    r2 = xp.where(sst != 0, 1.0 - sse / xp.where(sst != 0, sst, 1.0), xp.astype(sse == 0, sse.dtype))
    r2, finite = (
        float(v) for v in backend.to_numpy(xp.stack([xp.mean(r2), xp.astype(xp.all(xp.isfinite(pred)), r2.dtype)]))
    )
    return r2 if finite else math.nan


@dataclass(eq=False)
class Model:
    """A network and all known about it; ``state.params`` live on ``backend``. ``classes`` are the outputs' labels,
    ``names`` how reports print them, ``layout`` how a picture becomes inputs (None: as the data set's)."""

    config: TrainConfig
    state: TrainState
    backend: Backend
    classes: np.ndarray
    names: tuple[str, ...] = ()
    layout: Layout | None = None
    dataset: str = FITTED_ON_ARRAYS
    data_dir: str | None = None  # the folder the data set was read from (None: digits, or arrays)
    n_train: int = 0  # training rows (the validation rows excluded)
    val_split: int = 0  # rows held out for validation
    workers: str | None = None  # what computed the gradients besides this process (Dask workers)
    trained_on: str = ""  # ``numpy on cpu``: the backend that trained it (unchecked text from a file)
    path: Path | None = None  # the file it was read from or last saved to

    def __post_init__(self) -> None:
        self.names = self.names or tuple(str(c) for c in self.classes.tolist())

    @classmethod
    def of_data(cls, config: TrainConfig, state: Any, backend: Backend, data: Dataset, val_split: int = 0) -> "Model":
        """The model of a run on ``data`` (``val_split`` rows held out); ``state`` None before the first step."""
        names, n_train = tuple(data.classes), len(data.y_train)
        where = (data.layout, data.name, data.folder, n_train, val_split)
        return cls(config, state, backend, labels_of(names), names, *where, trained_on=str(backend))

    params = property(lambda self: self.state.params)
    n_features = property(lambda self: self.sizes[0])
    activation = property(lambda self: self.config.activation)
    sizes = property(lambda self: nn.sizes_of(self.params))  # [inputs, hidden..., outputs]

    kept_epoch = property(lambda self: getattr(self.state.kept, "epoch", self.state.epoch))  # of the weights held

    def on(self, backend: Backend) -> "Model":
        """This model with its weights on ``backend``."""
        if backend == self.backend:
            return self
        params = [backend.asarray(self.backend.to_numpy(p)) for p in self.params]
        return replace(self, state=replace(self.state, params=params), backend=backend)

    def picture_layout(self) -> Layout:
        """How a picture is prepared for it (its data set's or input size's if none); else `CheckpointError`."""
        try:
            return self.layout or layout_for(self.dataset, self.n_features)
        except ValueError as e:
            raise CheckpointError(f"{self.path or 'the model'}: {e}") from None

    def describe(self) -> str:
        """``64-256-128-10 relu float32 adam model on digits, epoch 3 of 10, step 36``."""
        c, s = self.config, self.state
        where = f"epoch {s.epoch}" + (f" + {s.offset} rows" if s.offset else "") + f" of {c.max_iter}, step {s.step}"
        if self.kept_epoch != s.epoch:
            where = f"epoch {self.kept_epoch} of {c.max_iter} (the best on validation; stopped after {where})"
        return f"{nn.layer_text(self.sizes)} {c.activation} {c.dtype} {c.optimizer} model on {self.dataset}, {where}"

    def origin(self) -> str:
        """What trained it, for a message: ``numpy on cpu; gradients from 2 Dask workers``."""
        return (self.trained_on or "unknown") + (f"; gradients from {self.workers}" if self.workers else "")

    def outputs(self, x: Any) -> tuple[Any, Any]:
        """(class index, log-probabilities) of each of device rows ``x``, on the device."""
        xp = self.backend.xp
        logits = logits_of(self.backend, self.params, x, self.activation)
        return xp.argmax(logits, axis=1), nn.log_softmax(xp, logits)

    def values(self, x: Any) -> Any:
        """The output layer's values (`nn.OUTPUTS`: probabilities, or predictions) for rows ``x``, on the device."""
        return nn.OUTPUTS[self.config.out_activation].forward(
            self.backend.xp, logits_of(self.backend, self.params, x, self.activation)
        )

    def labels(self, index: Any) -> Any:
        """The labels of class indices ``index`` (a device array): on the device when numeric, else NumPy."""
        if self.classes.dtype.kind in "iufb":
            return self.backend.xp.take(self.backend.asarray(self.classes), index)
        return self.classes[self.backend.to_numpy(index)]

    def classify(self, rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Host rows (uint8 pictures) -> (class index per row, (rows, classes) probabilities), on the host."""
        index, logp = self.outputs(images_to_device(self.backend, rows, self.backend.dtype(self.config.dtype)))
        host = self.backend.to_numpy
        return host(index).astype(np.int64), host(self.backend.xp.exp(logp)).astype(np.float64)


def as_labels(classes: Sequence[Any] | np.ndarray) -> np.ndarray:
    """``classes`` as a NumPy array: strings held as Python objects (pandas' way) become a string array."""
    classes = np.asarray(classes)
    strings = classes.dtype.kind == "O" and all(isinstance(c, str) for c in classes.tolist())
    return classes.astype(str) if strings else classes


def labels_of(names: tuple[str, ...]) -> np.ndarray:
    """The labels of outputs named ``names``: their numbers where the names are "0".."k-1", else the names."""
    return np.arange(len(names)) if names == tuple(map(str, range(len(names)))) else np.asarray(names)


def save(model: Model, path: str | Path) -> Path:
    """Write ``model`` whole to ``path`` atomically; `ValueError` for labels JSON cannot keep exactly (objects)."""
    path, s, host, labels = Path(path).expanduser(), model.state, model.backend.to_numpy, as_labels(model.classes)
    if labels.dtype.kind not in LABEL_KINDS:
        raise ValueError(f"labels of dtype {labels.dtype} cannot be saved: use integers, floats or strings")
    groups = {"param": map(host, s.params), "opt": map(host, s.opt_state), "best": s.best_params or []}
    groups["last"] = s.last_params if s.restored else []
    arrays = {f"{g}_{i:03d}": np.asarray(a) for g, group in groups.items() for i, a in enumerate(group)}
    arrays["loss_sum"] = np.asarray(s.loss_sum, dtype=model.config.dtype)
    meta = {"format": FORMAT, "format_version": FORMAT_VERSION, "xpnet_version": __version__}
    meta |= {"backend": model.backend.name, "device": model.backend.device_name, "layer_sizes": model.sizes}
    meta |= {k: getattr(model, k) for k in ("workers", "dataset", "data_dir", "n_train", "val_split")}
    meta |= {"classes": list(model.names), "labels": labels.tolist(), "config": model.config.to_dict()}
    meta |= {k: getattr(s, k) for k in ("epoch", "step", "offset", "correct", "seconds", "restored", "seen")}
    meta |= {"rng": s.rng.bit_generator.state, "history": [vars(e) for e in s.history]}
    meta["n_best"] = len(s.best_params or [])
    if model.layout is not None:
        meta["layout"] = {k: getattr(model.layout, k) for k in LAYOUT_KEYS}
    arrays["meta"] = np.frombuffer(json.dumps(meta).encode(), dtype=np.uint8)
    if arrays["meta"].size > MAX_META_BYTES:
        raise CheckpointError(f"{path}: {len(s.history)} epochs of history are more than a checkpoint holds")
    atomic_write(path, lambda f: np.savez(f, **arrays))
    model.path = path
    return path


def load(path: str | Path, backend: Backend | None = None, *, optimizer: bool = True) -> Model:
    """The model a checkpoint holds, on ``backend`` (default NumPy's); `CheckpointError` for a file breaking a rule."""
    path, name, backend = Path(path).expanduser(), None, backend or resolve_backend("cpu")
    try:
        with npy.open_npz(path) as (z, members):
            if "meta" not in members:
                raise CheckpointError(f"{path} is not an xpnet checkpoint (no xpnet metadata in it)")
            name = "meta"
            meta, config = _read_meta(path, npy.read_member(z, members[name], _meta_check))
            expected = _expected_arrays(meta, config, len(members))
            extra = sorted(set(members) - set(expected) - {"meta"})
            if extra:
                raise CheckpointError(f"{path} holds arrays xpnet does not write ({listed(extra, 3)}); refusing it")
            arrays = {}
            for name, shape in expected.items():
                if name not in members:
                    raise CheckpointError(f"{path} is missing the array {name!r}; the file is incomplete")
                if optimizer or not name.startswith("opt_"):
                    arrays[name] = npy.read_member(z, members[name], npy.expect(shape, config.dtype))
        bad = [name for name, a in arrays.items() if not np.isfinite(a).all()]
        if bad:  # a diverged model would predict "0 (nan%)" for everything, and resume to NaN
            why = "holds NaN or infinite values (a diverged or damaged model); retrain it, with a lower learning rate"
            raise CheckpointError(f"{path}: array {bad[0]!r} {why} if it diverged", exit_status=1)
        model = _model(meta, arrays, config, backend, path)
    except CheckpointError:
        raise
    except FileNotFoundError:
        raise CheckpointError(f"checkpoint {path} does not exist") from None
    except npy.NotNpz:
        raise CheckpointError(f"{path} is not an xpnet checkpoint (not an .npz file, or truncated)") from None
    except npy.NpyError as e:
        raise CheckpointError(f"{path}: {f'array {name!r} ' if name else ''}{e}; use another checkpoint") from None
    except OSError as e:  # permission denied, a folder, a FIFO or a device
        raise CheckpointError(f"cannot read checkpoint {path}: {reason(e)}; give a readable file") from None
    except (KeyError, TypeError, ValueError, OverflowError, AttributeError) as e:
        why = f"no {e.args[0]!r} in its metadata" if isinstance(e, KeyError) else one_line(e)
        raise CheckpointError(f"{path} is damaged or not written by xpnet ({why}); use another checkpoint") from None
    model.state.params = [backend.asarray(p) for p in model.params]
    return model


def _meta_check(shape: tuple[int, ...], dtype: np.dtype) -> None:
    if dtype != np.uint8 or len(shape) != 1 or shape[0] > MAX_META_BYTES:
        raise npy.NpyError(f"is {dtype}{list(shape)}: not xpnet metadata, at most {MAX_META_BYTES} bytes of JSON")


V1_NAMES = {"hidden": "hidden_layer_sizes", "lr": "learning_rate_init", "gamma": "lr_decay", "epochs": "max_iter"}
V1_NAMES |= {"seed": "random_state", "nesterov": "nesterovs_momentum"}  # version 1 named them as the flags


def _upgrade_v1(config: dict[str, Any]) -> dict[str, Any]:
    """A version-1 config (the flags' names, ``optimizer``, ``patience``, ``sigmoid``) in today's terms."""
    new = {V1_NAMES.get(k, k): v for k, v in config.items() if k not in ("optimizer", "patience")}
    optimizer, patience = config.get("optimizer"), config.get("patience", 0)
    new["solver"] = "sgd" if optimizer in ("sgd", "momentum") else optimizer
    new |= {} if optimizer == "momentum" else {"momentum": 0.0}
    new["activation"] = "logistic" if new.get("activation") == "sigmoid" else new.get("activation")
    # patience N stopped after N epochs without improvement: more than N - 1, as n_iter_no_change counts
    new["early_stopping"], new["n_iter_no_change"] = bool(patience), patience - 1 if patience else None
    return {"lr_decay": 1.0, **new}


def _read_meta(path: Path, raw: np.ndarray) -> tuple[dict[str, Any], TrainConfig]:
    """The metadata and its config, checked by `RULES` (a version 1's upgraded)."""
    try:
        meta = json.loads(raw.tobytes().decode())
    except (ValueError, RecursionError) as e:  # not UTF-8 or JSON; [[[[... past Python's limit (xpnet writes four)
        why = "nests too deep" if isinstance(e, RecursionError) else "is not JSON"
        raise CheckpointError(f"{path} is not an xpnet checkpoint (its metadata {why})") from None
    if not isinstance(meta, dict) or meta.get("format") != FORMAT:
        raise CheckpointError(f"{path} is not an xpnet checkpoint (its metadata names no xpnet format)")
    version = meta.get("format_version")
    if not isinstance(version, int) or version > FORMAT_VERSION:
        raise CheckpointError(f"{path} has checkpoint format {version}, newer than xpnet {__version__} reads: upgrade")
    config = meta["config"] if version >= 2 else _upgrade_v1(meta["config"])
    return meta, TrainConfig(**{k: tuple(v) if isinstance(v, list) else v for k, v in config.items() if k in RULES})


def _check(ok: bool, what: str) -> None:
    """`ValueError` saying that the metadata's ``what``, unless ``ok``."""
    if not ok:
        raise ValueError(f"its {what}")


def _count(meta: dict[str, Any], key: str, low: int, high: int = SEED_LIMIT - 1) -> int:
    """The integer ``meta[key]``, refused outside ``low..high``: a counter out of range would train nothing."""
    _check(is_count(value := meta.get(key)) and low <= value <= high, f"{key} must be an integer from {low} to {high}")
    return value


def _expected_arrays(meta: dict[str, Any], config: TrainConfig, n_members: int) -> dict[str, tuple[int, ...]]:
    """Each array's name and shape in the model the metadata describes, checked before any is read."""
    sizes, hidden = meta["layer_sizes"], list(config.hidden_layer_sizes)
    fits = isinstance(sizes, list) and all(is_count(s) and s > 0 for s in sizes) and sizes[1:-1] == hidden
    _check(fits, f"layer_sizes are inconsistent with the config's hidden layers {hidden}")
    _check(2 <= len(sizes) <= n_members, f"{len(sizes) - 1} layers are more than its arrays hold")
    shapes = nn.param_shapes(sizes)
    n_best, restored = meta.get("n_best", 0), meta.get("restored", False)  # none without early stopping
    fits = is_count(n_best) and n_best in (0, len(shapes)) and isinstance(restored, bool) and n_best >= restored
    _check(fits, f"n_best and restored must be 0 and false, or {len(shapes)} best-epoch arrays")
    groups = {"param": shapes, "opt": config.rule.state_shapes(shapes), "best": shapes[:n_best]}
    groups["last"] = shapes if restored else []
    return {f"{g}_{i:03d}": s for g, group in groups.items() for i, s in enumerate(group)} | {"loss_sum": ()}


def _model(meta: dict[str, Any], arrays: dict[str, np.ndarray], config: TrainConfig, backend: Backend, path: Path):
    """The record the checked arrays and metadata describe; `ValueError` for a field out of range or of a wrong kind."""
    _check(isinstance(meta["dataset"], str), "dataset must be a name")
    n_train, epoch = _count(meta, "n_train", 1), _count(meta, "epoch", 0, config.max_iter)
    offset, seconds = _count(meta, "offset", 0, n_train - 1), meta.get("seconds")
    _check(is_real(seconds) and seconds >= 0, "seconds must be a number >= 0")
    step, correct = _count(meta, "step", epoch), _count(meta, "correct", 0, offset)
    g = {k: [a for name, a in arrays.items() if name.startswith(k)] for k in ("param", "opt", "best", "last")}
    rng, history = _read_rng(meta["rng"]), _read_history(meta["history"], epoch)
    state = TrainState(g["param"], g["opt"], rng, epoch, step, offset, arrays["loss_sum"], correct, float(seconds))
    state.seen = _count({"seen": meta.get("seen", epoch * n_train)}, "seen", 0)  # none before version 0.1
    state.history, state.best_params, state.last_params = history, g["best"] or None, g["last"] or None
    state.restored = bool(g["last"])  # the best epoch's weights were put back, and these are the last's
    n_in, *_, n_out = meta["layer_sizes"]
    names = meta.get("classes", list(class_names(meta["dataset"])))  # none in a file from an early version
    kind = config.out_activation  # one logistic output names two classes (or the one class of y)
    counts = (1, 2) if kind == "logistic" and n_out == 1 else (n_out,) if kind in CLASSIFYING else (0,)
    _check(kind != "softmax" or n_out >= 2, f"softmax needs two outputs or more, not {n_out}")
    fits = isinstance(names, list) and len(names) in counts and all(isinstance(x, str) for x in names)
    _check(fits, f"class names must be {' or '.join(map(str, counts))} texts for its {n_out} {kind} outputs")
    layout = None
    if "layout" in meta:  # a picture-folder model's; else predict goes by the data set's name
        layout = Layout(**{k: meta["layout"][k] for k in LAYOUT_KEYS})
        sides = all(is_count(v) and v > 0 for v in (layout.side, layout.box, layout.work))
        fits = sides and isinstance(layout.by_mass, bool) and layout.box <= layout.work
        fits = fits and layout.work % layout.side == 0 and layout.n_features == n_in
        _check(fits, f"picture layout is not one of positive sizes for {n_in} inputs")
    names = tuple(names)
    text = {k: meta[k] for k in ("data_dir", "workers") if isinstance(meta.get(k), str) and meta[k]}
    trained_on = " on ".join(str(meta.get(key, "unknown")) for key in ("backend", "device"))
    where = dict(n_train=n_train, val_split=_count(meta, "val_split", 0), trained_on=trained_on, path=path, **text)
    labels = _saved_labels(meta.get("labels"), names)
    return Model(config, state, backend, labels, names, layout, meta["dataset"], **where)


def _read_rng(saved: Any) -> np.random.Generator:
    """The host generator, whose saved state NumPy must give back unchanged (it truncates floats, drops keys)."""
    try:
        rng = np.random.Generator(BIT_GENERATORS[saved["bit_generator"]]())
        rng.bit_generator.state = saved
        if rng.bit_generator.state == saved:
            return rng
    except (KeyError, TypeError, ValueError, OverflowError):
        pass
    raise ValueError(f"its random-generator state is not a {' or '.join(BIT_GENERATORS)} state")


def _read_history(saved: Any, epochs_done: int) -> list[EpochStats]:
    """The per-epoch statistics, each built as an `EpochStats` and its numbers checked."""
    _check(isinstance(saved, list) and len(saved) <= epochs_done, f"history must list at most {epochs_done} epochs")
    try:
        history = [EpochStats(**entry) for entry in saved]  # TypeError: not an object, or not EpochStats' keys
    except TypeError:
        history = [None]
    for s in history:
        ok = s is not None and is_count(s.epoch) and 1 <= s.epoch <= epochs_done
        ok = ok and all(map(is_real, (s.loss, s.seconds)))
        ok = ok and all(v is None or is_real(v) for v in (s.train_accuracy, s.test_accuracy, s.val_accuracy, s.lr))
        ok = ok and (is_real(s.samples_per_second) or s.samples_per_second == math.inf)  # an epoch too short to time
        _check(ok, "history holds an entry that is not an epoch's statistics")
    return history


def _saved_labels(saved: Any, names: tuple[str, ...]) -> np.ndarray:
    """The labels as saved when distinct values of one kind (a mix makes objects), one per name; else `labels_of`."""
    kinds = {type(v) for v in saved} if isinstance(saved, list) and len(saved) == len(names) else None
    if kinds not in ({int}, {float}, {str}, {bool}):
        return labels_of(names)
    try:  # integers as int64, else uint64 (NumPy would make float64 of a list spanning both)
        labels = np.asarray(saved, dtype=np.int64 if kinds == {int} else None)
    except OverflowError:
        try:
            labels = np.asarray(saved, dtype=np.uint64)
        except OverflowError:  # negative and past int64 at once: no integer dtype holds both
            return labels_of(names)
    ok = labels.dtype.kind in LABEL_KINDS and len(np.unique(labels)) == len(names)
    return labels if ok and (labels.dtype.kind != "f" or np.isfinite(labels).all()) else labels_of(names)
