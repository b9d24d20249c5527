"""The rules a checkpoint's counters, random-generator state and history must keep, checked before use.

`TrainConfig` checks the config itself; this checks the rest of the metadata the same way, by a table of
tests, so that a number out of range (10**400 seconds, a negative generator state, ``true`` for an epoch)
or counters that contradict each other (an offset past the end of the training set) are one-line
`CheckpointError`s, never an OverflowError from NumPy or an epoch that trains nothing.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import fields
from pathlib import Path
from typing import Any

import numpy as np

from ..data.datasets import class_names
from ..data.images import Layout
from ..errors import CheckpointError, printable
from .config import TrainConfig, is_count, is_real
from .loop import EpochStats

BIT_GENERATORS = ("PCG64", "PCG64DXSM")  # the generators whose state is plain JSON (numbers), as saved
COUNT_LIMIT = 2**63  # steps, rows: int64 everywhere downstream
SECONDS_LIMIT = 1e9  # about 31 years of training

Rule = Callable[[Any, dict[str, Any]], bool]  # (value, the whole metadata) -> allowed


def _count(limit: int = COUNT_LIMIT) -> Rule:
    return lambda v, meta: is_count(v) and 0 <= v < limit


# key -> (test, what it must be). Checked in this order, so a rule may rely on the keys before it.
COUNTERS: dict[str, tuple[Rule, str]] = {
    "n_train": (lambda v, meta: is_count(v) and 0 < v < COUNT_LIMIT, "a positive integer"),
    "val_split": (_count(), "a non-negative integer"),
    "n_params": (_count(1000), "a non-negative integer below 1000"),
    "n_opt": (_count(1000), "a non-negative integer below 1000"),
    "epoch": (lambda v, meta: is_count(v) and 0 <= v <= meta["config"].epochs, "0 to the config's epochs"),
    "step": (lambda v, meta: is_count(v) and meta["epoch"] <= v < COUNT_LIMIT, "at least one step per epoch"),
    "offset": (lambda v, meta: is_count(v) and 0 <= v < meta["n_train"], "a row index below n_train"),
    "correct": (lambda v, meta: is_count(v) and 0 <= v <= meta["offset"], "at most the offset (rows trained)"),
    "seconds": (lambda v, meta: is_real(v) and 0 <= v < SECONDS_LIMIT, f"from 0 to {SECONDS_LIMIT:g} seconds"),
}


# Written since --patience; a checkpoint from before has none, which means the defaults.
OPTIONAL: dict[str, tuple[Any, Rule, str]] = {
    "n_best": (0, lambda v, meta: is_count(v) and v in (0, meta["n_params"]), "0 or n_params"),
    "restored": (False, lambda v, meta: isinstance(v, bool) and (not v or meta["n_best"] > 0), "true or false"),
    "workers": (None, lambda v, meta: v is None or isinstance(v, str), "a text or null"),  # written since Dask
}


def check_counters(path: Path, meta: dict[str, Any], config: TrainConfig) -> None:
    """Refuse a checkpoint whose counters are missing, of the wrong type, out of range or contradictory."""
    seen: dict[str, Any] = {"config": config}
    rules = [(key, test, rule, key in meta) for key, (test, rule) in COUNTERS.items()]
    rules += [(key, test, rule, True) for key, (_, test, rule) in OPTIONAL.items()]
    for key, test, rule, present in rules:
        value = meta.get(key, OPTIONAL[key][0] if key in OPTIONAL else None)
        if not present or not test(value, seen):
            shown = repr(value) if len(repr(value)) < 40 else repr(value)[:37] + "..."
            raise CheckpointError(
                f"{printable(path)} has an invalid {key} in its metadata: it must be {rule}, got {shown}"
            )
        seen[key] = value


def _uint(v: Any, bits: int) -> bool:
    return is_count(v) and 0 <= v < 2**bits


def read_rng(path: Path, saved: Any) -> np.random.Generator:
    """The host generator from its saved state, after checking every field's type and range: NumPy would
    raise OverflowError or accept nonsense."""
    ok = (
        isinstance(saved, dict)
        and saved.get("bit_generator") in BIT_GENERATORS
        and set(saved) == {"bit_generator", "state", "has_uint32", "uinteger"}
        and isinstance(saved["state"], dict)
        and set(saved["state"]) == {"state", "inc"}
        and _uint(saved["state"]["state"], 128)
        and _uint(saved["state"]["inc"], 128)
        and saved["has_uint32"] in (0, 1)
        and is_count(saved["has_uint32"])
        and _uint(saved["uinteger"], 32)
    )
    if not ok:
        raise CheckpointError(
            f"{printable(path)} has an invalid random-generator state: expected a {' or '.join(BIT_GENERATORS)} state "
            "of 128-bit integers; the file is damaged or not written by xpnet"
        )
    rng = np.random.Generator(getattr(np.random, saved["bit_generator"])())
    try:
        rng.bit_generator.state = saved
    except (TypeError, ValueError, OverflowError) as e:
        raise CheckpointError(f"{printable(path)} has an invalid random-generator state ({e})") from None
    return rng


def _fraction(v: Any) -> bool:
    return v is None or (is_real(v) and 0 <= v <= 1)


HISTORY: dict[str, Callable[[Any], bool]] = {
    "loss": lambda v: is_real(v) and v >= 0,
    "train_accuracy": lambda v: is_real(v) and 0 <= v <= 1,
    "test_accuracy": _fraction,
    "val_accuracy": _fraction,
    "seconds": lambda v: is_real(v) and 0 <= v < SECONDS_LIMIT,
    "samples_per_second": lambda v: isinstance(v, (int, float)) and not isinstance(v, bool) and v >= 0,
    "lr": lambda v: v is None or (is_real(v) and v > 0),
}


def read_history(path: Path, saved: Any, epochs_done: int) -> list[EpochStats]:
    """The per-epoch statistics, each entry checked: epochs 1.. in order, numbers in range."""
    known = {f.name for f in fields(EpochStats)}
    if not isinstance(saved, list) or len(saved) > epochs_done:
        raise CheckpointError(
            f"{printable(path)} has an invalid history: expected a list of at most {epochs_done} epochs"
        )
    history = []
    for i, entry in enumerate(saved):
        bad = "not an object" if not isinstance(entry, dict) else ""
        if not bad and not (is_count(entry.get("epoch")) and 1 <= entry["epoch"] <= epochs_done):
            bad = "epoch"
        if not bad:
            bad = next((k for k, test in HISTORY.items() if not test(entry.get(k))), "")
        if bad:
            raise CheckpointError(f"{printable(path)} has an invalid history: entry {i + 1} has a bad {bad}")
        history.append(EpochStats(**{k: v for k, v in entry.items() if k in known}))
    return history


def read_classes(path: Path, meta: dict[str, Any], sizes: list[int]) -> tuple[str, ...]:
    """The class names stored with the model, or the named data set's (checkpoints from before names)."""
    names = meta.get("classes", list(class_names(str(meta["dataset"]))))
    if not (isinstance(names, list) and len(names) == sizes[-1] and all(isinstance(n, str) for n in names)):
        raise CheckpointError(f"{printable(path)} names its classes inconsistently with its {sizes[-1]} outputs")
    return tuple(names)


def read_layout(path: Path, meta: dict[str, Any], sizes: list[int]) -> Layout | None:
    """The stored picture layout (picture-folder models), or None: predict then goes by the set's name."""
    if "layout" not in meta:
        return None
    try:
        d = meta["layout"]
        layout = Layout(side=d["side"], box=d["box"], work=d["work"], by_mass=d["by_mass"])
        if not (all(is_count(v) for v in (layout.side, layout.box, layout.work)) and isinstance(layout.by_mass, bool)):
            raise ValueError("not positive integers")
        if not 0 < layout.box <= layout.work or layout.work % layout.side or layout.n_features != sizes[0]:
            raise ValueError(f"does not fit {sizes[0]} inputs")
    except (KeyError, TypeError, ValueError) as e:
        raise CheckpointError(f"{printable(path)} has an invalid picture layout ({e})") from None
    return layout
