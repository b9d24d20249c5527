"""`TrainConfig`: everything that defines a training run apart from the data and the backend, and its rules.

A config checks itself when it is made, so the command line and the checkpoint loader share one set of
rules: a flag out of range and a checkpoint from someone else that holds one are refused alike.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import asdict, dataclass, fields
from typing import Any

from ..errors import XpnetError
from ..nn import ACTIVATIONS, OPTIMIZERS, Hyper, Recipe

DTYPES = ("float32", "float64")
SEED_LIMIT = 2**63  # numpy's generators take any non-negative integer; the JSON of a checkpoint keeps 64 bits
MAX_UNITS = 1_000_000  # per hidden layer: a 784-1,000,000 float32 layer is 3 GiB, the most a checkpoint holds
# What a resumed run must share with its checkpoint; --lr, --gamma, --batch-size and --epochs may change. A
# run and its continuations share them: `runlog.read_log` tells another run's log by them too.
FIXED_FIELDS = ("hidden", "activation", "optimizer", "dtype", "seed")


class ConfigError(XpnetError):
    """A training setting is out of range; the message names the flag, ``rule`` says what it must be."""

    def __init__(self, message: str, rule: str = ""):
        super().__init__(message)
        self.rule = rule or message


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


# field -> (test, what the flag must be). Each test takes the field's value, whatever its type.
RULES: dict[str, tuple[Callable[[Any], bool], str]] = {
    "hidden": (
        lambda v: isinstance(v, tuple) and len(v) > 0 and all(is_count(h) and 0 < h <= MAX_UNITS for h in v),
        f"every layer needs at least one unit and at most {MAX_UNITS:,} (comma-separated integers like 256,128)",
    ),
    "activation": (lambda v: v in ACTIVATIONS, f"must be one of {', '.join(ACTIVATIONS)}"),
    "optimizer": (lambda v: v in OPTIMIZERS, f"must be one of {', '.join(OPTIMIZERS)}"),
    "lr": (lambda v: v is None or (is_real(v) and v > 0), "must be a positive number"),
    "gamma": (lambda v: is_real(v) and 0 < v <= 1, "must be in (0, 1]"),
    "epochs": (lambda v: is_count(v) and v >= 1, "must be a positive integer"),
    "batch_size": (lambda v: is_count(v) and 0 <= v < SEED_LIMIT, "must be 0 or a positive integer below 2**63"),
    "dtype": (lambda v: v in DTYPES, f"must be one of {', '.join(DTYPES)}"),
    "seed": (lambda v: is_count(v) and 0 <= v < SEED_LIMIT, "must be an integer from 0 to 2**63 - 1"),
    "patience": (lambda v: is_count(v) and v >= 0, "must be 0 (no early stopping) or a positive integer"),
    "alpha": (lambda v: is_real(v) and v >= 0, "must be a number >= 0 (0: no L2 penalty)"),
    "momentum": (lambda v: is_real(v) and 0 <= v <= 1, "must be in [0, 1]"),
    "nesterov": (lambda v: isinstance(v, bool), "must be true or false"),
    "beta_1": (lambda v: is_real(v) and 0 <= v < 1, "must be in [0, 1)"),
    "beta_2": (lambda v: is_real(v) and 0 <= v < 1, "must be in [0, 1)"),
    "epsilon": (lambda v: is_real(v) and v > 0, "must be a positive number"),
    "shuffle": (lambda v: isinstance(v, bool), "must be true or false"),
}


def spelled(value: Any) -> str:
    """A setting as its flag spells it: ``256,128`` for hidden layers (a tuple, or a list from JSON)."""
    return ",".join(map(str, value)) if isinstance(value, (tuple, list)) else str(value)


def check_field(name: str, value: Any) -> None:
    """Raise `ConfigError` naming the flag (``--batch-size``) when ``value`` breaks the rule for ``name``."""
    test, rule = RULES[name]
    if not test(value):
        shown = repr(spelled(value) if isinstance(value, tuple) else value)
        shown = shown if len(shown) <= 40 else shown[:37] + "..."  # 10**400 from a foreign checkpoint
        raise ConfigError(f"--{name.replace('_', '-')}: {rule}, got {shown}", f"{rule}, got {shown}")


def default_gamma(n_train: int, batch_size: int) -> float:
    """``--gamma``'s default: 0.8 per 60,000 examples seen or per 469 optimizer steps, whichever comes later
    (both are one epoch of 60,000 images at batch 128), applied once per epoch and rounded to 4 decimals.
    Decaying by steps alone starved small batches (x0.168 an epoch at batch 16), by examples alone large ones
    (10 epochs at batch 1024 are 590 steps); a small set decays less per epoch (docs/benchmarks.md,
    "Learning-rate schedule"). It never depends on ``--epochs``, so a run resumed with a larger ``--epochs``
    trains its earlier epochs exactly as one that asked for it at once."""
    steps = 1 if batch_size == 0 or n_train < 1 else math.ceil(n_train / min(batch_size, n_train))
    return round(0.8 ** min(max(n_train, 0) / 60000, steps / 469), 4)


@dataclass(frozen=True)
class TrainConfig:
    """Everything that defines a training run, apart from the data and the backend."""

    hidden: tuple[int, ...] = (256, 128)
    activation: str = "relu"
    optimizer: str = "adam"
    lr: float | None = None  # None: the optimizer's default (see optim.OPTIMIZERS)
    gamma: float = 1.0  # the learning rate of epoch e is lr * gamma ** (e - 1): set by the epoch alone
    epochs: int = 10
    batch_size: int = 128  # 0: the whole training set in every step (full-batch gradient descent)
    dtype: str = "float32"
    seed: int = 1
    patience: int = 0  # stop after this many epochs without a better validation accuracy; 0: never
    alpha: float = 0.0  # L2 penalty (scikit-learn's alpha; nn.Recipe)
    # The optimizers' hyperparameters (nn.Hyper); the command line keeps their defaults.
    momentum: float = 0.9
    nesterov: bool = False
    beta_1: float = 0.9
    beta_2: float = 0.999
    epsilon: float = 1e-8
    shuffle: bool = True  # a new order of the training rows every epoch; False: always their own order

    def __post_init__(self) -> None:
        for f in fields(self):
            check_field(f.name, getattr(self, f.name))

    @classmethod
    def from_dict(cls, saved: dict[str, Any]) -> TrainConfig:
        """A config from `to_dict`'s output (a checkpoint's), ignoring keys it does not know."""
        known = {f.name for f in fields(cls)}
        values = {k: v for k, v in saved.items() if k in known}
        if isinstance(values.get("hidden"), list):
            values["hidden"] = tuple(values["hidden"])
        return cls(**values)

    @property
    def recipe(self) -> Recipe:
        """What each training step computes (``nn.train_step``)."""
        hyper = Hyper(self.momentum, self.nesterov, self.beta_1, self.beta_2, self.epsilon)
        return Recipe(self.activation, self.optimizer, self.alpha, hyper)

    @property
    def learning_rate(self) -> float:
        return OPTIMIZERS[self.optimizer].default_lr if self.lr is None else self.lr

    def lr_at(self, epoch: int) -> float:
        """Learning rate of epoch ``epoch`` (from 1), independent of ``epochs`` (so resuming with a new total
        changes no earlier epoch). A Python float even when the config holds NumPy scalars: NumPy computes with
        an ``np.float64`` rate in float64 but with a Python one in the weights' dtype (NEP 50)."""
        return float(self.learning_rate * self.gamma ** (epoch - 1))

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "hidden": list(self.hidden), "lr": self.learning_rate}
