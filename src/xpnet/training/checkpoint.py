"""Checkpoints: save a `TrainState` to an ``.npz`` file and load it back on any backend, never via pickle.

A checkpoint is a plain ``.npz`` (a zip of ``.npy`` files) holding host NumPy arrays: the weights
``param_000...``, the optimizer state ``opt_000...``, the unfinished epoch's partial sums, and ``meta``, a
uint8 array of UTF-8 JSON: format, xpnet version, the backend it was trained on (and ``workers``, what Dask
workers computed its gradients with), the data set's folder, the config, counters, host RNG state, history,
class names and (a picture-folder model) the picture layout; a run with --patience adds ``best_000...`` (the
best epoch's weights) and, once those are put back, ``last_000...`` (the last epoch's, to resume from). It
is read with ``allow_pickle=False`` and every array is checked against the metadata, so a file from
someone else can only fail to load.

Writes are atomic: a temporary file in the same folder, flushed and fsynced, then renamed over the old
checkpoint, then the folder fsynced; a crash at any point leaves the previous checkpoint whole.
"""

from __future__ import annotations

import json
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from .. import __version__
from ..backend import Backend
from ..data import npy
from ..data.datasets import class_names
from ..data.images import Layout
from ..errors import CheckpointError, XpnetError, one_line, printable, printable_list
from ..files import atomic_write
from ..nn import model
from ..nn.optim import OPTIMIZERS
from .checkpoint_checks import check_counters, read_classes, read_history, read_layout, read_rng
from .config import TrainConfig, is_count
from .loop import TrainState, best_epoch

FORMAT = "xpnet-checkpoint"
FORMAT_VERSION = 1
MAX_META_BYTES = 64 << 20  # the metadata JSON; its history grows by about 250 bytes an epoch
MAX_MEMBER_BYTES = 4 << 30  # the largest weight or optimizer array read (a 784-1,000,000 float32 layer: 3 GiB)


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

    @property
    def kept_epoch(self) -> int:
        """The epoch of the weights held: the best on validation once --patience put them back, else the last."""
        return (self.state.restored and best_epoch(self.state.history)) or self.state.epoch

    @property
    def data_dir(self) -> str | None:
        """The folder the data set was read from, as recorded (None: digits, or an older checkpoint)."""
        folder = self.meta.get("data_dir")
        return folder if isinstance(folder, str) and folder else None

    def describe(self) -> str:
        c, s = self.config, self.state
        done = f"epoch {s.epoch}" + (f" + {s.offset} rows" if s.offset else "")
        where = f"{done} of {c.epochs}, step {s.step}"
        if self.kept_epoch != s.epoch:  # --patience put the best epoch's weights back
            where = f"epoch {self.kept_epoch} of {c.epochs} (the best on validation; stopped after {where})"
        layers = "-".join(map(str, self.layer_sizes))
        return f"{layers} {c.activation} {c.dtype} {c.optimizer} model on {printable(self.dataset)}, {where}"

    def origin(self) -> str:
        """What trained it, for a message: ``numpy on cpu; gradients from 2 Dask workers``. Unchecked text
        from the file, so each part is `printable`; a crafted file may leave it out."""
        shown = [printable(str(self.meta.get(key, "unknown"))) for key in ("backend", "device")]
        workers = self.meta.get("workers")
        return " on ".join(shown) + (f"; gradients from {printable(workers)}" if workers else "")


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
    workers: str | None = None,
    labels: list[Any] | None = None,
    data_dir: str | None = None,
) -> Path:
    """Write ``state`` to ``path`` atomically; the arrays are copied to the host with ``backend``.

    ``n_train`` is the number of training rows, ``val_split`` how many were held out for validation and
    ``classes`` the name of each class (default: the named data set's), ``layout`` how a picture is
    prepared for the model (stored for a picture-folder set; predict uses it), ``workers`` what computed the
    gradients besides ``backend`` (`loop.workers_of`: Dask workers), or None; ``data_dir`` `Dataset.folder`.
    ``labels`` are the estimator's class labels (JSON numbers or strings, in output order), which
    ``xpnet.load`` gives back as they were.
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
        "workers": workers,
        "dataset": dataset,
        "data_dir": data_dir,
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
        "best_epoch": best_epoch(state.history),
        "n_best": len(best),
        "restored": state.restored,
    }
    if labels is not None:
        meta["labels"] = labels
    if layout is not None:
        meta["layout"] = {"side": layout.side, "box": layout.box, "work": layout.work, "by_mass": layout.by_mass}
    arrays["meta"] = np.frombuffer(json.dumps(meta).encode(), dtype=np.uint8)
    atomic_write(path, lambda f: np.savez(f, **arrays))
    return path


def load_checkpoint(path: str | Path) -> Checkpoint:
    """Read and check a checkpoint; its arrays stay host NumPy arrays, ready for any backend.

    Raises `CheckpointError` (one line) for a missing, truncated or foreign file, pickled or object
    arrays, members that are not ``.npy`` arrays, arrays missing or shaped unlike the model the metadata
    describes, and counters out of range. Every header is checked before its payload is read, so no
    declared size is allocated before it is known to be the model's (`xpnet.data.npy`).
    """
    path = Path(path).expanduser()
    name = "meta"
    try:
        with npy.open_npz(path) as (z, members):
            if name not in members:
                raise CheckpointError(f"{printable(path)} is not an xpnet checkpoint (no xpnet metadata in it)")
            meta = _read_meta(path, npy.read_member(z, members[name], _meta_check))
            config, sizes = _read_config(path, meta)
            expected = _expected_arrays(path, meta, config, sizes)
            extra = sorted(set(members) - set(expected) - {"meta"})
            if extra:
                raise CheckpointError(
                    f"{printable(path)} holds arrays xpnet does not write ({printable_list(extra, 3)}); refusing it"
                )
            arrays = {}
            for name, shape in expected.items():
                if name not in members:
                    raise CheckpointError(f"{printable(path)} is missing the array {name!r}; the file is incomplete")
                arrays[name] = npy.read_member(z, members[name], npy.expect(shape, config.dtype))
    except FileNotFoundError:
        raise CheckpointError(f"checkpoint {printable(path)} does not exist") from None
    except npy.NotNpz:
        why = "not an .npz file, or truncated"
        raise CheckpointError(f"{printable(path)} is not an xpnet checkpoint ({why})") from None
    except npy.NpyError as e:
        raise CheckpointError(f"{printable(path)}: array {name!r} {e}; use another checkpoint") from None
    except OSError as e:  # permission denied, a folder, a FIFO or a device
        why = e.strerror or e
        raise CheckpointError(f"cannot read checkpoint {printable(path)}: {why}; give a readable file") from None
    except (EOFError, zipfile.BadZipFile, KeyError) as e:
        why = one_line(e)
        raise CheckpointError(f"{printable(path)} is damaged or truncated ({why}); use another checkpoint") from None
    state = _read_state(path, meta, arrays, config, sizes)
    classes, layout = read_classes(path, meta, sizes), read_layout(path, meta, sizes)
    return Checkpoint(
        path, config, str(meta["dataset"]), meta["n_train"], meta["val_split"], state, meta, classes, layout
    )


def _meta_check(shape: tuple[int, ...], dtype: np.dtype) -> None:
    if dtype != np.uint8 or len(shape) != 1:
        raise npy.NpyError("is not xpnet metadata (UTF-8 JSON as uint8)")
    if shape[0] > MAX_META_BYTES:
        raise npy.NpyError(f"declares {shape[0]} bytes of metadata, more than xpnet writes ({MAX_META_BYTES})")


def _read_meta(path: Path, raw: np.ndarray) -> dict[str, Any]:
    try:
        meta = json.loads(raw.tobytes().decode())
    except (UnicodeDecodeError, ValueError):
        raise CheckpointError(f"{printable(path)} is not an xpnet checkpoint (its metadata is not JSON)") from None
    except RecursionError:  # [[[[... nested past Python's limit; xpnet writes four levels
        raise CheckpointError(f"{printable(path)} is not an xpnet checkpoint (its metadata nests too deep)") from None
    if not isinstance(meta, dict) or meta.get("format") != FORMAT:
        raise CheckpointError(f"{printable(path)} is not an xpnet checkpoint (its metadata names no xpnet format)")
    version = meta.get("format_version")
    if not isinstance(version, int) or version > FORMAT_VERSION:
        raise CheckpointError(
            f"{printable(path)} has checkpoint format {version}, newer than this xpnet {__version__} reads "
            f"({FORMAT_VERSION}): upgrade xpnet"
        )
    return meta


def _read_config(path: Path, meta: dict[str, Any]) -> tuple[TrainConfig, list[int]]:
    try:
        saved = meta["config"]
        if not isinstance(saved, dict):
            raise TypeError("config is not an object")
        config = TrainConfig.from_dict({"gamma": 1.0, **saved})  # written before --gamma: a constant rate
        sizes = meta["layer_sizes"]
        if not (isinstance(sizes, list) and all(is_count(s) for s in sizes)):
            raise ValueError("layer_sizes must be a list of integers")
        if not isinstance(meta["dataset"], str):
            raise ValueError("dataset must be a name")
    except XpnetError as e:  # the config's own rules (TrainConfig checks itself)
        raise CheckpointError(f"{printable(path)} has an invalid config ({e})") from None
    except (KeyError, TypeError, ValueError) as e:
        raise CheckpointError(f"{printable(path)} has incomplete or invalid xpnet metadata ({one_line(e)})") from None
    if len(sizes) < 2 or sizes[1:-1] != list(config.hidden) or min(sizes) < 1:
        raise CheckpointError(f"{printable(path)} has inconsistent metadata: layers {sizes} but config {config}")
    check_counters(path, meta, config)
    return config, sizes


def _expected_arrays(
    path: Path, meta: dict[str, Any], config: TrainConfig, sizes: list[int]
) -> dict[str, tuple[int, ...]]:
    """The name and shape of every array the model the metadata describes has; refused when too large."""
    if len(sizes) - 1 > meta["n_params"]:  # each layer has weights: refused before listing a million layers
        raise CheckpointError(f"{printable(path)} lists {meta['n_params']} weight arrays for {len(sizes) - 1} layers")
    shapes = model.param_shapes(sizes)
    opt_shapes = OPTIMIZERS[config.optimizer].state_shapes(shapes)
    if meta["n_params"] != len(shapes) or meta["n_opt"] != len(opt_shapes):
        raise CheckpointError(
            f"{printable(path)} lists {meta['n_params']} weight and {meta['n_opt']} optimizer arrays; "
            f"a {'-'.join(map(str, sizes))} {config.optimizer} model has {len(shapes)} and {len(opt_shapes)}"
        )
    expected = {f"param_{i:03d}": s for i, s in enumerate(shapes)}
    expected |= {f"opt_{i:03d}": s for i, s in enumerate(opt_shapes)}
    expected["loss_sum"] = ()
    n_best = meta.get("n_best", 0)  # written before --patience: none
    if n_best not in (0, len(shapes)) or (meta.get("restored") is True and not n_best):
        raise CheckpointError(f"{printable(path)} lists {n_best} best-epoch weight arrays; the model has {len(shapes)}")
    expected |= {f"best_{i:03d}": s for i, s in enumerate(shapes[:n_best])}
    expected |= {f"last_{i:03d}": s for i, s in enumerate(shapes)} if meta.get("restored") is True else {}
    biggest = max(npy.nbytes(s, np.dtype(config.dtype)) for s in expected.values())
    if biggest > MAX_MEMBER_BYTES:
        raise CheckpointError(
            f"{printable(path)} describes a {'-'.join(map(str, sizes))} model with a {biggest / 2**30:.1f} GiB weight "
            f"array; xpnet reads arrays up to {MAX_MEMBER_BYTES // 2**30} GiB"
        )
    return expected


def _read_state(
    path: Path, meta: dict[str, Any], arrays: dict[str, np.ndarray], config: TrainConfig, sizes: list[int]
) -> TrainState:
    n_params, n_opt = meta["n_params"], meta["n_opt"]
    bad = next((name for name, a in arrays.items() if not np.isfinite(a).all()), None)
    if bad is not None:  # a diverged model would predict "0 (nan%)" for everything, and resume to NaN
        raise CheckpointError(
            f"{printable(path)}: array {bad!r} holds NaN or infinite values (a diverged or damaged model); "
            "retrain it, with a lower --lr if it diverged",
            exit_status=1,
        )
    return TrainState(
        params=[arrays[f"param_{i:03d}"] for i in range(n_params)],
        opt_state=[arrays[f"opt_{i:03d}"] for i in range(n_opt)],
        rng=read_rng(path, meta.get("rng")),
        epoch=meta["epoch"],
        step=meta["step"],
        offset=meta["offset"],
        loss_sum=arrays["loss_sum"],
        correct=meta["correct"],
        seconds=float(meta["seconds"]),
        history=read_history(path, meta.get("history"), meta["epoch"]),
        best_params=[arrays[f"best_{i:03d}"] for i in range(meta.get("n_best", 0))] or None,
        restored=meta.get("restored") is True,
        last_params=[arrays[f"last_{i:03d}"] for i in range(n_params)] if meta.get("restored") is True else None,
    )
