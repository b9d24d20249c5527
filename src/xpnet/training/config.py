"""`TrainConfig`: the settings of a training run, in the library's vocabulary, each checked once.

The names are scikit-learn's (``hidden_layer_sizes``, ``learning_rate_init``, ``max_iter``...), so the
estimator passes its parameters through unchanged and a bad value is a `ConfigError`, a ``ValueError`` that
names the parameter. The command line maps its flags onto these names (its parser's ``dest``) and names the
flag when it reports one; a checkpoint stores them, and loading one applies the same rules.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import asdict, dataclass, fields
from typing import Any

from ..errors import XpnetError
from ..nn import ACTIVATIONS, OPTIMIZERS, Hyper, Recipe

DTYPES = ("float32", "float64")
SOLVERS = ("sgd", "adam")
SEED_LIMIT = 2**63  # numpy's generators take any non-negative integer; the JSON of a checkpoint keeps 64 bits
MAX_UNITS = 1_000_000  # per hidden layer: a 784-1,000,000 float32 layer is 3 GiB, the most a checkpoint holds
# What a resumed run must share with its checkpoint (``optimizer`` is derived from solver and momentum); the
# rate, decay, batch size and epochs may change. `runlog.read_log` tells another run's log by them too.
FIXED_FIELDS = ("hidden_layer_sizes", "activation", "optimizer", "dtype", "random_state")


class ConfigError(XpnetError, ValueError):
    """A setting out of range: ``parameter`` names it, ``rule`` says what it must be."""

    def __init__(self, parameter: str, rule: str):
        super().__init__(f"{{name}}: {rule}", parameter=parameter)
        self.rule = rule


def is_count(x: object) -> bool:
    """An integer that is not a boolean (JSON's ``true`` loads as one)."""
    return isinstance(x, int) and not isinstance(x, bool)


def is_real(x: object) -> bool:
    """A finite number, not a boolean; an integer too large for a float (10**400 in JSON) is not one."""
    if isinstance(x, bool) or not isinstance(x, (int, float)):
        return False
    try:
        return math.isfinite(x)
    except OverflowError:
        return False


def _unit(low_open: bool, high_open: bool) -> Callable[[Any], bool]:
    return lambda v: is_real(v) and (v > 0 if low_open else v >= 0) and (v < 1 if high_open else v <= 1)


# field -> (test, what the value must be). Each test takes the field's value, whatever its type.
RULES: dict[str, tuple[Callable[[Any], bool], str]] = {
    "hidden_layer_sizes": (
        lambda v: isinstance(v, tuple) and len(v) > 0 and all(is_count(h) and 0 < h <= MAX_UNITS for h in v),
        f"every hidden layer needs from 1 to {MAX_UNITS:,} units",
    ),
    "activation": (lambda v: v in ACTIVATIONS, f"must be one of {', '.join(ACTIVATIONS)}"),
    "solver": (lambda v: v in SOLVERS, f"must be one of {', '.join(SOLVERS)}"),
    "learning_rate_init": (lambda v: v is None or (is_real(v) and v > 0), "must be a positive number"),
    "lr_decay": (_unit(True, False), "must be in (0, 1]"),
    "max_iter": (lambda v: is_count(v) and v >= 1, "must be a positive integer"),
    "batch_size": (
        lambda v: is_count(v) and 0 <= v < SEED_LIMIT,
        "must be 0 (all rows) or a positive integer below 2**63",
    ),
    "dtype": (lambda v: v in DTYPES, f"must be one of {', '.join(DTYPES)}"),
    "random_state": (lambda v: is_count(v) and 0 <= v < SEED_LIMIT, "must be an integer from 0 to 2**63 - 1"),
    "alpha": (lambda v: is_real(v) and v >= 0, "must be a number >= 0 (0: no L2 penalty)"),
    "momentum": (_unit(False, False), "must be in [0, 1]"),
    "nesterovs_momentum": (lambda v: isinstance(v, bool), "must be True or False"),
    "beta_1": (_unit(False, True), "must be in [0, 1)"),
    "beta_2": (_unit(False, True), "must be in [0, 1)"),
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
    """``lr_decay``'s default on the command line: 0.8 per 60,000 examples seen or per 469 optimizer steps,
    whichever comes later (both are one epoch of 60,000 images at batch 128), applied once per epoch and
    rounded to 4 decimals. Decaying by steps alone starved small batches (x0.168 an epoch at batch 16), by
    examples alone large ones (10 epochs at batch 1024 are 590 steps); a small set decays less per epoch
    (docs/benchmarks.md, "Learning-rate schedule"). It never depends on ``max_iter``, so a run resumed with
    more epochs trains its earlier epochs exactly as one that asked for them at once."""
    steps = 1 if batch_size == 0 or n_train < 1 else math.ceil(n_train / min(batch_size, n_train))
    return round(0.8 ** min(max(n_train, 0) / 60000, steps / 469), 4)


@dataclass(frozen=True)
class TrainConfig:
    """Everything that defines a training run apart from the data and the backend (defaults: the command
    line's; the estimator passes scikit-learn's)."""

    hidden_layer_sizes: tuple[int, ...] = (256, 128)
    activation: str = "relu"
    solver: str = "adam"  # "sgd" with momentum 0 is plain gradient descent, with momentum > 0 heavy-ball
    learning_rate_init: float | None = None  # None: the optimizer's default (`nn.Optimizer.default_lr`)
    lr_decay: float = 1.0  # the rate of epoch e is learning_rate_init * lr_decay ** (e - 1)
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
    # Stopping (`loop.stalled`): with early_stopping, on the validation accuracy, keeping the best epoch's
    # weights; else on the training loss. n_iter_no_change None: never stop before max_iter.
    early_stopping: bool = False
    n_iter_no_change: int | None = None
    tol: float = 1e-4

    def __post_init__(self) -> None:
        for f in fields(self):
            check_field(f.name, getattr(self, f.name))

    @classmethod
    def from_dict(cls, saved: dict[str, Any]) -> TrainConfig:
        """A config from `to_dict`'s output (a checkpoint's), ignoring keys it does not know."""
        known = {f.name for f in fields(cls)}
        values = {k: v for k, v in saved.items() if k in known}
        if isinstance(values.get("hidden_layer_sizes"), list):
            values["hidden_layer_sizes"] = tuple(values["hidden_layer_sizes"])
        return cls(**values)

    @property
    def optimizer(self) -> str:
        """The update rule (`nn.OPTIMIZERS`) that solver and momentum name."""
        return "adam" if self.solver == "adam" else "momentum" if self.momentum > 0 else "sgd"

    @property
    def recipe(self) -> Recipe:
        """What each training step computes (``nn.train_step``)."""
        hyper = Hyper(self.momentum, self.nesterovs_momentum, self.beta_1, self.beta_2, self.epsilon)
        return Recipe(self.activation, self.optimizer, self.alpha, hyper)

    @property
    def learning_rate(self) -> float:
        return OPTIMIZERS[self.optimizer].default_lr if self.learning_rate_init is None else self.learning_rate_init

    def lr_at(self, epoch: int) -> float:
        """Learning rate of epoch ``epoch`` (from 1), independent of ``max_iter`` (so resuming with a new total
        changes no earlier epoch). A Python float even when the config holds NumPy scalars: NumPy computes with
        an ``np.float64`` rate in float64 but with a Python one in the weights' dtype (NEP 50)."""
        return float(self.learning_rate * self.lr_decay ** (epoch - 1))

    def to_dict(self) -> dict[str, Any]:
        """The fields as JSON values, with the rate resolved and the update rule named (``optimizer``)."""
        hidden = list(self.hidden_layer_sizes)
        return {**asdict(self), "hidden_layer_sizes": hidden, "learning_rate_init": self.learning_rate,
                "optimizer": self.optimizer}  # fmt: skip
