"""Checkpoints: save a `TrainState` to an ``.npz`` file and load it back on any backend, never via pickle.

A checkpoint is a plain ``.npz`` (a zip of ``.npy`` files) holding host NumPy arrays: the weights
``param_000...``, the optimizer state ``opt_000...``, the unfinished epoch's partial sums, and ``meta``, a
uint8 array of UTF-8 JSON with the format, the xpnet version, the backend it was trained on, the full
training config, the counters, the host RNG state and the history. It is read with ``allow_pickle=False``
and every array is checked against the metadata, so a file from someone else can only fail to load.

Writes are atomic: a temporary file in the same folder, flushed and fsynced, then renamed over the old
checkpoint, then the folder fsynced; a crash at any point leaves the previous checkpoint whole.
"""

from __future__ import annotations

import json
import zipfile
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

import numpy as np

from .. import __version__
from ..backend import Backend
from ..data.datasets import class_names
from ..data.images import Layout
from ..errors import CheckpointError, XpnetError
from ..files import atomic_write
from ..nn import model
from ..nn.optim import OPTIMIZERS
from . import early_stop
from .config import TrainConfig
from .state import EpochStats, TrainState

FORMAT = "xpnet-checkpoint"
FORMAT_VERSION = 1
BIT_GENERATORS = ("PCG64", "PCG64DXSM", "MT19937", "Philox", "SFC64")  # numpy.random names, never a callable


@dataclass
class Checkpoint:
    """A loaded checkpoint: its config, the data set it trained on and a state of host NumPy arrays."""

    path: Path
    config: TrainConfig
    dataset: str
    n_train: int
    val_split: int
    state: TrainState
    meta: dict[str, Any]
    classes: tuple[str, ...] = ()  # the name of each class, in label order
    layout: Layout | None = None  # how pictures are prepared for it, when not by its data set's name

    @property
    def layer_sizes(self) -> list[int]:
        return list(self.meta["layer_sizes"])

    def describe(self) -> str:
        c = self.config
        done = f"epoch {self.state.epoch}" + (f" + {self.state.offset} rows" if self.state.offset else "")
        return (
            f"{'-'.join(map(str, self.layer_sizes))} {c.activation} {c.dtype} {c.optimizer} model on "
            f"{self.dataset}, {done} of {c.epochs}, step {self.state.step}"
        )


def save_checkpoint(
    path: str | Path,
    state: TrainState,
    config: TrainConfig,
    backend: Backend,
    dataset: str,
    n_train: int,
    val_split: int = 0,
    classes: tuple[str, ...] = (),
    layout: Layout | None = None,
) -> Path:
    """Write ``state`` to ``path`` atomically; the arrays are copied to the host with ``backend``.

    ``n_train`` is the number of training rows, ``val_split`` how many were held out for validation and
    ``classes`` the name of each class (default: the named data set's), ``layout`` how a picture is
    prepared for the model (stored for a picture-folder set; predict uses it).
    """
    path = Path(path).expanduser()
    params = [backend.to_numpy(p) for p in state.params]
    arrays: dict[str, np.ndarray] = {f"param_{i:03d}": p for i, p in enumerate(params)}
    arrays |= {f"opt_{i:03d}": backend.to_numpy(s) for i, s in enumerate(state.opt_state)}
    arrays["loss_sum"] = np.asarray(state.loss_sum, dtype=config.dtype)
    # --patience: the best epoch's weights, for a resumed run to put back; once they are put back (restored),
    # ``params`` are those and the last epoch's weights, which a resumed run continues from, are ``last_``.
    best, last = state.best_params or [], state.last_params if state.restored else None
    arrays |= {f"best_{i:03d}": np.asarray(p) for i, p in enumerate(best)}
    arrays |= {f"last_{i:03d}": np.asarray(p) for i, p in enumerate(last or [])}
    meta = {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "xpnet_version": __version__,
        "backend": backend.name,
        "device": backend.device_name,
        "dataset": dataset,
        "n_train": n_train,
        "val_split": val_split,
        "layer_sizes": model.sizes_of(params),
        "classes": list(classes or class_names(dataset)),
        "config": config.to_dict(),
        "epoch": state.epoch,
        "step": state.step,
        "offset": state.offset,
        "correct": state.correct,
        "seconds": state.seconds,
        "rng": state.rng.bit_generator.state,
        "n_params": len(params),
        "n_opt": len(state.opt_state),
        "history": [vars(s) for s in state.history],
        "epochs_run": len(state.history),
        "best_epoch": early_stop.best_epoch(state.history),
        "n_best": len(best),
        "restored": state.restored,
    }
    if layout is not None:
        meta["layout"] = {"side": layout.side, "box": layout.box, "work": layout.work, "by_mass": layout.by_mass}
    arrays["meta"] = np.frombuffer(json.dumps(meta).encode(), dtype=np.uint8)
    atomic_write(path, lambda f: np.savez(f, **arrays))
    return path


def load_checkpoint(path: str | Path) -> Checkpoint:
    """Read and check a checkpoint; its arrays stay host NumPy arrays, ready for any backend.

    Raises `CheckpointError` (one line) for a missing, truncated or foreign file, pickled or object
    arrays, and arrays missing or shaped unlike the model the metadata describes.
    """
    path = Path(path).expanduser()
    if not path.is_file():
        raise CheckpointError(f"checkpoint {path} does not exist")
    if not zipfile.is_zipfile(path):
        raise CheckpointError(f"{path} is not an xpnet checkpoint (not an .npz file, or truncated)")
    try:
        with np.load(path, allow_pickle=False) as npz:
            arrays = {name: npz[name] for name in npz.files}
    except ValueError as e:
        if "pickle" in str(e) or "Object arrays" in str(e):
            raise CheckpointError(f"{path} holds pickled or object arrays; xpnet never loads pickles") from None
        raise CheckpointError(f"{path} is damaged ({e}); use another checkpoint") from None
    except (OSError, EOFError, zipfile.BadZipFile, KeyError) as e:  # zlib.error is not here: savez stores
        raise CheckpointError(f"{path} is damaged or truncated ({e}); use another checkpoint") from None
    meta = _read_meta(path, arrays)
    config, sizes = _read_config(path, meta)
    state = _read_state(path, meta, arrays, config, sizes)
    classes = _read_classes(path, meta, config, sizes)
    layout = _read_layout(path, meta, sizes)
    return Checkpoint(
        path, config, str(meta["dataset"]), meta["n_train"], meta["val_split"], state, meta, classes, layout
    )


def _read_layout(path: Path, meta: dict[str, Any], sizes: list[int]) -> Layout | None:
    """The stored picture layout (picture-folder models), or None: predict then goes by the set's name."""
    if "layout" not in meta:
        return None
    try:
        d = meta["layout"]
        layout = Layout(side=d["side"], box=d["box"], work=d["work"], by_mass=d["by_mass"])
        ints = all(isinstance(v, int) and not isinstance(v, bool) for v in (layout.side, layout.box, layout.work))
        if not (ints and isinstance(layout.by_mass, bool) and 0 < layout.box <= layout.work):
            raise ValueError("not positive integers")
        if layout.work % layout.side or layout.n_features != sizes[0]:
            raise ValueError(f"does not fit {sizes[0]} inputs")
    except (KeyError, TypeError, ValueError) as e:
        raise CheckpointError(f"{path} has an invalid picture layout ({e})") from None
    return layout


def _read_meta(path: Path, arrays: dict[str, np.ndarray]) -> dict[str, Any]:
    raw = arrays.get("meta")
    if raw is None or raw.dtype != np.uint8 or raw.ndim != 1:
        raise CheckpointError(f"{path} is not an xpnet checkpoint (no xpnet metadata in it)")
    try:
        meta = json.loads(raw.tobytes().decode())
    except (UnicodeDecodeError, ValueError):
        raise CheckpointError(f"{path} is not an xpnet checkpoint (its metadata is not JSON)") from None
    if not isinstance(meta, dict) or meta.get("format") != FORMAT:
        raise CheckpointError(f"{path} is not an xpnet checkpoint (its metadata names no xpnet format)")
    version = meta.get("format_version")
    if not isinstance(version, int) or version > FORMAT_VERSION:
        raise CheckpointError(
            f"{path} has checkpoint format {version}, newer than this xpnet {__version__} reads "
            f"({FORMAT_VERSION}): upgrade xpnet"
        )
    return meta


def _read_config(path: Path, meta: dict[str, Any]) -> tuple[TrainConfig, list[int]]:
    try:
        saved = {"gamma": 1.0, **meta["config"]}  # written before --gamma existed: a constant rate
        if not isinstance(saved, dict):
            raise TypeError("config is not an object")
        config = TrainConfig.from_dict(saved)
        sizes = meta["layer_sizes"]
        if not (isinstance(sizes, list) and all(isinstance(s, int) and not isinstance(s, bool) for s in sizes)):
            raise ValueError("layer_sizes must be a list of integers")
        for key in ("epoch", "step", "offset", "correct", "n_train", "val_split", "n_params", "n_opt"):
            if not isinstance(meta[key], int) or meta[key] < 0:
                raise ValueError(f"{key} must be a non-negative integer")
        str(meta["dataset"])
    except XpnetError as e:  # the config's own rules (TrainConfig checks itself)
        raise CheckpointError(f"{path} has an invalid config ({e})") from None
    except (KeyError, TypeError, ValueError) as e:
        raise CheckpointError(f"{path} has incomplete or invalid xpnet metadata ({e})") from None
    if len(sizes) < 2 or sizes[1:-1] != list(config.hidden) or min(sizes) < 1:
        raise CheckpointError(f"{path} has inconsistent metadata: layers {sizes} but config {config}")
    return config, sizes


def _read_classes(path: Path, meta: dict[str, Any], config: TrainConfig, sizes: list[int]) -> tuple[str, ...]:
    """The class names stored with the model, or the named data set's (checkpoints from before names)."""
    names = meta.get("classes", list(class_names(str(meta["dataset"]))))
    if not (isinstance(names, list) and len(names) == sizes[-1] and all(isinstance(n, str) for n in names)):
        raise CheckpointError(f"{path} names its classes inconsistently with its {sizes[-1]} outputs")
    return tuple(names)


def _read_state(
    path: Path, meta: dict[str, Any], arrays: dict[str, np.ndarray], config: TrainConfig, sizes: list[int]
) -> TrainState:
    shapes = model.param_shapes(sizes)
    opt_shapes = OPTIMIZERS[config.optimizer].state_shapes(shapes)
    n_opt = len(opt_shapes)
    if meta["n_params"] != len(shapes) or meta["n_opt"] != n_opt:
        raise CheckpointError(
            f"{path} lists {meta['n_params']} weight and {meta['n_opt']} optimizer arrays; "
            f"a {'-'.join(map(str, sizes))} {config.optimizer} model has {len(shapes)} and {n_opt}"
        )
    expected = {f"param_{i:03d}": s for i, s in enumerate(shapes)}
    expected |= {f"opt_{i:03d}": s for i, s in enumerate(opt_shapes)}
    expected["loss_sum"] = ()
    n_best = meta.get("n_best", 0)  # written before --patience: none
    restored = meta.get("restored") is True
    if n_best not in (0, len(shapes)) or (restored and not n_best):
        raise CheckpointError(f"{path} lists {n_best} best-epoch weight arrays; the model has {len(shapes)}")
    expected |= {f"best_{i:03d}": s for i, s in enumerate(shapes[:n_best])}
    expected |= {f"last_{i:03d}": s for i, s in enumerate(shapes)} if restored else {}
    for name, shape in expected.items():
        a = arrays.get(name)
        if a is None:
            raise CheckpointError(f"{path} is missing the array {name!r}; the file is incomplete")
        if a.shape != shape or a.dtype != np.dtype(config.dtype):
            raise CheckpointError(
                f"{path}: array {name!r} is {a.dtype}{list(a.shape)}, expected {config.dtype}{list(shape)}"
            )
    extra = sorted(set(arrays) - set(expected) - {"meta"})
    if extra:
        raise CheckpointError(f"{path} holds arrays xpnet does not write ({', '.join(extra[:3])}); refusing it")
    try:
        kind = meta["rng"]["bit_generator"]
        if kind not in BIT_GENERATORS:
            raise ValueError(f"unknown bit generator {kind!r}")
        rng = np.random.Generator(getattr(np.random, kind)())
        rng.bit_generator.state = meta["rng"]
        known = {f.name for f in fields(EpochStats)}
        history = [EpochStats(**{k: v for k, v in h.items() if k in known}) for h in meta["history"]]
        seconds = float(meta["seconds"])
    except (AttributeError, KeyError, TypeError, ValueError) as e:
        raise CheckpointError(f"{path} has an invalid random-generator state or history ({e})") from None
    return TrainState(
        params=[arrays[f"param_{i:03d}"] for i in range(len(shapes))],
        opt_state=[arrays[f"opt_{i:03d}"] for i in range(n_opt)],
        rng=rng,
        epoch=meta["epoch"],
        step=meta["step"],
        offset=meta["offset"],
        loss_sum=arrays["loss_sum"],
        correct=meta["correct"],
        seconds=seconds,
        history=history,
        best_params=[arrays[f"best_{i:03d}"] for i in range(n_best)] or None,
        restored=restored,
        last_params=[arrays[f"last_{i:03d}"] for i in range(len(shapes))] if restored else None,
    )
