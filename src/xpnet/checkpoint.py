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

import contextlib
import itertools
import json
import math
import os
import tempfile
import zipfile
from collections.abc import Callable
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any, BinaryIO

import numpy as np

from . import __version__, model
from .backend import Backend
from .data.datasets import N_CLASSES
from .errors import CheckpointError
from .optim import OPTIMIZERS
from .trainer import EpochStats, TrainConfig, TrainState

FORMAT = "xpnet-checkpoint"
FORMAT_VERSION = 1
BIT_GENERATORS = ("PCG64", "PCG64DXSM", "MT19937", "Philox", "SFC64")  # numpy.random names, never a callable
# What a resumed run must share with its checkpoint; --lr, --gamma, --batch-size and --epochs may change.
FIXED_FIELDS = ("hidden", "activation", "optimizer", "dtype", "seed")


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


def n_opt_arrays(optimizer: str, n_params: int) -> int:
    """How many arrays ``optimizer``'s state holds for ``n_params`` weight arrays (from its own init)."""
    return len(OPTIMIZERS[optimizer].init(np, [np.zeros(1)] * n_params))


def check_writable(path: str | Path, flag: str = "--save", example: str = "model.npz") -> Path:
    """Fail now, before any training, if a file cannot be written at ``path`` (given as ``flag``)."""
    path = Path(path).expanduser()
    folder = path.parent
    if path.is_dir():
        raise CheckpointError(f"cannot save to {path}: it is a folder; give a file name like {path / example}")
    if not folder.is_dir():
        raise CheckpointError(f"cannot save to {path}: folder {folder} does not exist; create it first")
    try:
        with tempfile.TemporaryFile(dir=folder):
            pass
    except OSError as e:
        raise CheckpointError(f"cannot save to {path}: {e.strerror or e} in {folder}; choose another {flag}") from None
    if path.exists() and not os.access(path, os.W_OK):
        raise CheckpointError(f"cannot save to {path}: the file is read-only; choose another {flag}")
    return path


def save_checkpoint(
    path: str | Path,
    state: TrainState,
    config: TrainConfig,
    backend: Backend,
    dataset: str,
    n_train: int,
    val_split: int = 0,
) -> Path:
    """Write ``state`` to ``path`` atomically; the arrays are copied to the host with ``backend``.

    ``n_train`` is the number of training rows and ``val_split`` how many were held out for validation.
    """
    path = Path(path).expanduser()
    params = [backend.to_numpy(p) for p in state.params]
    arrays: dict[str, np.ndarray] = {f"param_{i:03d}": p for i, p in enumerate(params)}
    arrays |= {f"opt_{i:03d}": backend.to_numpy(s) for i, s in enumerate(state.opt_state)}
    arrays["loss_sum"] = np.asarray(state.loss_sum, dtype=config.dtype)
    meta = {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "xpnet_version": __version__,
        "backend": backend.name,
        "device": backend.device_name,
        "dataset": dataset,
        "n_train": n_train,
        "val_split": val_split,
        "layer_sizes": [params[0].shape[0], *config.hidden, N_CLASSES],
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
    }
    arrays["meta"] = np.frombuffer(json.dumps(meta).encode(), dtype=np.uint8)
    atomic_write(path, lambda f: np.savez(f, **arrays))
    return path


def atomic_write(path: Path, write: Callable[[BinaryIO], object]) -> None:
    """Create or replace ``path`` with what ``write`` writes to a binary file, all or nothing.

    A crash or an exception at any point leaves the previous file (or none) and no temporary file.
    """
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        if hasattr(os, "fchmod"):  # mkstemp makes the file private (0600); give it the mode open() would
            umask = os.umask(0)
            os.umask(umask)
            os.fchmod(fd, 0o666 & ~umask)
        with os.fdopen(fd, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:  # an error or a second Ctrl-C: drop the partial file, keep the old one
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    _fsync_dir(path.parent)


def _fsync_dir(folder: Path) -> None:
    # Makes the rename itself durable; some platforms (Windows) cannot open a folder, and need not.
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


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
    return Checkpoint(path, config, str(meta["dataset"]), meta["n_train"], meta["val_split"], state, meta)


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
        known = {f.name for f in fields(TrainConfig)}
        config = TrainConfig(**{k: v for k, v in saved.items() if k in known})
        config = TrainConfig(**{**vars(config), "hidden": tuple(int(h) for h in config.hidden)})
        sizes = [int(s) for s in meta["layer_sizes"]]
        for key in ("epoch", "step", "offset", "correct", "n_train", "val_split", "n_params", "n_opt"):
            if not isinstance(meta[key], int) or meta[key] < 0:
                raise ValueError(f"{key} must be a non-negative integer")
        str(meta["dataset"])
    except (KeyError, TypeError, ValueError) as e:
        raise CheckpointError(f"{path} has incomplete or invalid xpnet metadata ({e})") from None
    if sizes[1:] != [*config.hidden, N_CLASSES] or config.optimizer not in OPTIMIZERS:
        raise CheckpointError(f"{path} has inconsistent metadata: layers {sizes} but config {config}")
    if config.activation not in model.ACTIVATIONS or config.dtype not in ("float32", "float64"):
        raise CheckpointError(f"{path} has an unknown activation or dtype in its config")
    if not _valid_numbers(config):
        raise CheckpointError(f"{path} has an invalid lr, gamma, batch size, epochs or seed in its config")
    return config, sizes


def _valid_numbers(c: TrainConfig) -> bool:
    """The config's numbers are what the train flags accept: a foreign file cannot smuggle in others."""

    def real(x: object) -> bool:
        return isinstance(x, (int, float)) and not isinstance(x, bool) and math.isfinite(x)

    def count(x: object) -> bool:
        return isinstance(x, int) and not isinstance(x, bool)

    return (
        real(c.lr)
        and c.lr > 0
        and real(c.gamma)
        and 0 < c.gamma <= 1
        and count(c.batch_size)
        and c.batch_size >= 0
        and count(c.epochs)
        and c.epochs >= 1
        and count(c.seed)
        and all(count(h) and h > 0 for h in c.hidden)
    )


def _read_state(
    path: Path, meta: dict[str, Any], arrays: dict[str, np.ndarray], config: TrainConfig, sizes: list[int]
) -> TrainState:
    shapes = []
    for n_in, n_out in itertools.pairwise(sizes):
        shapes += [(n_in, n_out), (n_out,)]
    n_opt = n_opt_arrays(config.optimizer, len(shapes))
    if meta["n_params"] != len(shapes) or meta["n_opt"] != n_opt:
        raise CheckpointError(
            f"{path} lists {meta['n_params']} weight and {meta['n_opt']} optimizer arrays; "
            f"a {'-'.join(map(str, sizes))} {config.optimizer} model has {len(shapes)} and {n_opt}"
        )
    expected = {f"param_{i:03d}": s for i, s in enumerate(shapes)}
    # Every optimizer here keeps per-weight arrays shaped like the weights, in weight order, repeated.
    expected |= {f"opt_{i:03d}": shapes[i % len(shapes)] for i in range(n_opt)}
    expected["loss_sum"] = ()
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
    )


def check_resumable(ckpt: Checkpoint, config: TrainConfig, dataset: str, n_features: int, n_train: int) -> None:
    """Refuse to resume ``ckpt`` into a run whose model or data differ from the checkpoint's."""
    wanted = {f: getattr(config, f) for f in FIXED_FIELDS} | {"dataset": dataset, "inputs": n_features}
    saved = {f: getattr(ckpt.config, f) for f in FIXED_FIELDS} | {
        "dataset": ckpt.dataset,
        "inputs": ckpt.layer_sizes[0],
    }
    diff = [f"{k} {_fmt(saved[k])} (you asked for {_fmt(wanted[k])})" for k in wanted if wanted[k] != saved[k]]
    if diff:
        raise CheckpointError(
            f"{ckpt.path} cannot be resumed as asked: it holds {'; '.join(diff)}; "
            "drop those flags to continue it, or start a new run without --resume"
        )
    if n_train != ckpt.n_train:
        raise CheckpointError(
            f"{ckpt.path} trained on {ckpt.n_train} images of {ckpt.dataset} but this run has {n_train} "
            f"(the checkpoint used --val-split {ckpt.val_split}): resume with the same data"
        )
    if ckpt.state.epoch >= config.epochs:
        raise CheckpointError(
            f"{ckpt.path} has already trained {ckpt.state.epoch} epochs: --epochs counts all epochs, "
            f"pass --epochs N with N > {ckpt.state.epoch} to train more"
        )


def _fmt(value: Any) -> str:
    return ",".join(map(str, value)) if isinstance(value, tuple) else str(value)
