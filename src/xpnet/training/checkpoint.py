"""Checkpoints: save a `TrainState` to an ``.npz`` file and load it back on any backend, never via pickle.

A checkpoint is a plain ``.npz`` (a zip of ``.npy`` files) holding host NumPy arrays: the weights
``param_000...``, the optimizer state ``opt_000...``, the unfinished epoch's partial sums, and ``meta``, a
uint8 array of UTF-8 JSON: format, xpnet version, the backend it was trained on (and ``workers``, what Dask
workers computed its gradients with), the data set's folder, the config, counters, host RNG state, history,
class names and (a picture-folder model) the picture layout; a run with --patience adds ``best_000...`` (the
best epoch's weights) and, once those are put back, ``last_000...`` (the last epoch's, to resume from).

Loading trusts nothing in the file: every array's header is checked against the model the metadata
describes before its payload is read, and the rest of the metadata is parsed into the objects it stands
for, so a file from someone else can only fail to load, in one line.
"""

from __future__ import annotations

import json
import math
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from .. import __version__, nn
from ..backend import Backend
from ..data import npy
from ..data.datasets import class_names
from ..data.images import Layout
from ..errors import CheckpointError, listed, one_line, reason
from ..files import atomic_write
from ..nn import OPTIMIZERS
from .config import ConfigError, TrainConfig, is_count, is_real
from .loop import EpochStats, TrainState, best_epoch

FORMAT = "xpnet-checkpoint"
FORMAT_VERSION = 1
MAX_META_BYTES = 64 << 20  # the metadata JSON; its history grows by about 250 bytes an epoch
MAX_MEMBER_BYTES = 4 << 30  # the largest weight or optimizer array read (a 784-1,000,000 float32 layer: 3 GiB)
COUNT_LIMIT = 2**63  # steps, rows: int64 everywhere downstream
BIT_GENERATORS = {"PCG64": np.random.PCG64, "PCG64DXSM": np.random.PCG64DXSM}  # states of plain JSON numbers


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
        """The folder the data set was read from, as recorded (None: digits, or a checkpoint that has none)."""
        folder = self.meta.get("data_dir")
        return folder if isinstance(folder, str) and folder else None

    def describe(self) -> str:
        c, s = self.config, self.state
        done = f"epoch {s.epoch}" + (f" + {s.offset} rows" if s.offset else "")
        where = f"{done} of {c.epochs}, step {s.step}"
        if self.kept_epoch != s.epoch:  # --patience put the best epoch's weights back
            where = f"epoch {self.kept_epoch} of {c.epochs} (the best on validation; stopped after {where})"
        layers = nn.layer_text(self.layer_sizes)
        return f"{layers} {c.activation} {c.dtype} {c.optimizer} model on {self.dataset}, {where}"

    def origin(self) -> str:
        """What trained it, for a message: ``numpy on cpu; gradients from 2 Dask workers``. Unchecked text
        from the file (escaped where it is printed); a crafted file may leave it out."""
        shown = [str(self.meta.get(key, "unknown")) for key in ("backend", "device")]
        workers = self.meta.get("workers")
        return " on ".join(shown) + (f"; gradients from {workers}" if workers else "")


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
    gradients besides ``backend`` (Dask workers), or None; ``data_dir`` `Dataset.folder`.
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
        "layer_sizes": nn.sizes_of(params),
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

    Raises `CheckpointError` (one line) for a missing, unreadable, truncated or foreign file, pickled or
    object arrays, members that are not ``.npy`` arrays, arrays missing or shaped unlike the model the
    metadata describes, NaN or infinite values (exit status 1), and metadata that does not parse.
    """
    path = Path(path).expanduser()
    name = "meta"
    try:
        with npy.open_npz(path) as (z, members):
            if name not in members:
                raise CheckpointError(f"{path} is not an xpnet checkpoint (no xpnet metadata in it)")
            meta = _read_meta(path, npy.read_member(z, members[name], _meta_check))
            config = TrainConfig.from_dict({"gamma": 1.0, **meta["config"]})  # no gamma: a constant rate
            expected = _expected_arrays(meta, config, len(members))
            extra = sorted(set(members) - set(expected) - {"meta"})
            if extra:
                raise CheckpointError(f"{path} holds arrays xpnet does not write ({listed(extra, 3)}); refusing it")
            arrays = {}
            for name, shape in expected.items():
                if name not in members:
                    raise CheckpointError(f"{path} is missing the array {name!r}; the file is incomplete")
                arrays[name] = npy.read_member(z, members[name], npy.expect(shape, config.dtype))
        bad = next((name for name, a in arrays.items() if not np.isfinite(a).all()), None)
        if bad is not None:  # a diverged model would predict "0 (nan%)" for everything, and resume to NaN
            raise CheckpointError(
                f"{path}: array {bad!r} holds NaN or infinite values (a diverged or damaged model); "
                "retrain it, with a lower --lr if it diverged",
                exit_status=1,
            )
        state = _read_state(meta, arrays, config)
        classes, layout = _read_classes(meta), _read_layout(meta)
    except FileNotFoundError:
        raise CheckpointError(f"checkpoint {path} does not exist") from None
    except npy.NotNpz:
        raise CheckpointError(f"{path} is not an xpnet checkpoint (not an .npz file, or truncated)") from None
    except npy.NpyError as e:
        raise CheckpointError(f"{path}: array {name!r} {e}; use another checkpoint") from None
    except OSError as e:  # permission denied, a folder, a FIFO or a device
        raise CheckpointError(f"cannot read checkpoint {path}: {reason(e)}; give a readable file") from None
    except ConfigError as e:  # the config's own rules (TrainConfig checks itself)
        raise CheckpointError(f"{path} has an invalid config ({e})") from None
    except (EOFError, zipfile.BadZipFile, KeyError, TypeError, ValueError, OverflowError) as e:
        why = f"no {e.args[0]!r} in its metadata" if isinstance(e, KeyError) else one_line(e)
        raise CheckpointError(f"{path} is damaged or not written by xpnet ({why}); use another checkpoint") from None
    return Checkpoint(path, config, meta["dataset"], meta["n_train"], meta["val_split"], state, meta, classes, layout)


def _meta_check(shape: tuple[int, ...], dtype: np.dtype) -> None:
    if dtype != np.uint8 or len(shape) != 1:
        raise npy.NpyError("is not xpnet metadata (UTF-8 JSON as uint8)")
    if shape[0] > MAX_META_BYTES:
        raise npy.NpyError(f"declares {shape[0]} bytes of metadata, more than xpnet writes ({MAX_META_BYTES})")


def _read_meta(path: Path, raw: np.ndarray) -> dict[str, Any]:
    try:
        meta = json.loads(raw.tobytes().decode())
    except (UnicodeDecodeError, ValueError):
        raise CheckpointError(f"{path} is not an xpnet checkpoint (its metadata is not JSON)") from None
    except RecursionError:  # [[[[... nested past Python's limit; xpnet writes four levels
        raise CheckpointError(f"{path} is not an xpnet checkpoint (its metadata nests too deep)") from None
    if not isinstance(meta, dict) or meta.get("format") != FORMAT:
        raise CheckpointError(f"{path} is not an xpnet checkpoint (its metadata names no xpnet format)")
    version = meta.get("format_version")
    if not isinstance(version, int) or version > FORMAT_VERSION:
        raise CheckpointError(
            f"{path} has checkpoint format {version}, newer than this xpnet "
            f"{__version__} reads ({FORMAT_VERSION}): upgrade xpnet"
        )
    return meta


def _expected_arrays(meta: dict[str, Any], config: TrainConfig, n_members: int) -> dict[str, tuple[int, ...]]:
    """The name and shape of every array of the model the metadata describes, checked before any is read:
    the layers fit the config and the file, and no array is larger than xpnet reads."""
    sizes = meta["layer_sizes"]
    if not (
        isinstance(sizes, list) and all(is_count(s) and s > 0 for s in sizes) and sizes[1:-1] == list(config.hidden)
    ):
        raise ValueError(f"its layer_sizes are inconsistent with the config's hidden layers {list(config.hidden)}")
    if not 2 <= len(sizes) <= n_members:  # each layer has its arrays: nothing listed for layers the file lacks
        raise ValueError(f"it lists {len(sizes) - 1} layers")
    shapes = nn.param_shapes(sizes)
    n_best, restored = meta.get("n_best", 0), meta.get("restored", False)  # none without --patience
    if not (is_count(n_best) and n_best in (0, len(shapes)) and isinstance(restored, bool) and n_best >= restored):
        raise ValueError(f"its n_best and restored must be 0 and false, or {len(shapes)} best-epoch arrays")
    expected = {f"param_{i:03d}": s for i, s in enumerate(shapes)}
    expected |= {f"opt_{i:03d}": s for i, s in enumerate(OPTIMIZERS[config.optimizer].state_shapes(shapes))}
    expected["loss_sum"] = ()
    expected |= {f"best_{i:03d}": s for i, s in enumerate(shapes[:n_best])}
    expected |= {f"last_{i:03d}": s for i, s in enumerate(shapes)} if restored else {}
    biggest = max(npy.nbytes(s, np.dtype(config.dtype)) for s in expected.values())
    if biggest > MAX_MEMBER_BYTES:
        raise ValueError(
            f"it describes a {nn.layer_text(sizes)} model with a {biggest / 2**30:.1f} GiB weight array; "
            f"xpnet reads arrays up to {MAX_MEMBER_BYTES // 2**30} GiB"
        )
    return expected


def _count(meta: dict[str, Any], key: str, low: int, high: int = COUNT_LIMIT - 1) -> int:
    """The integer ``meta[key]``, refused outside ``low..high``: a counter out of range would train nothing."""
    value = meta.get(key)
    if not (is_count(value) and low <= value <= high):
        raise ValueError(f"its {key} must be an integer from {low} to {high}")
    return value


def _read_state(meta: dict[str, Any], arrays: dict[str, np.ndarray], config: TrainConfig) -> TrainState:
    """The run's state from its checked arrays and its metadata (`ValueError` for a counter out of range)."""
    n_train = _count(meta, "n_train", 1)
    _count(meta, "val_split", 0)
    epoch, offset = _count(meta, "epoch", 0, config.epochs), _count(meta, "offset", 0, n_train - 1)
    seconds = meta.get("seconds")
    if not (is_real(seconds) and seconds >= 0):
        raise ValueError("its seconds must be a number >= 0")

    def group(prefix: str) -> list[np.ndarray]:
        return [a for name, a in arrays.items() if name.startswith(prefix)]

    return TrainState(
        params=group("param_"),
        opt_state=group("opt_"),
        rng=_read_rng(meta["rng"]),
        epoch=epoch,
        step=_count(meta, "step", epoch),
        offset=offset,
        loss_sum=arrays["loss_sum"],
        correct=_count(meta, "correct", 0, offset),
        seconds=float(seconds),
        history=_read_history(meta["history"], epoch),
        best_params=group("best_") or None,
        restored=bool(group("last_")),
        last_params=group("last_") or None,
    )


def _read_rng(saved: Any) -> np.random.Generator:
    """The host generator from its saved state, which NumPy must give back unchanged: it truncates a float
    and ignores keys it does not know."""
    try:
        rng = np.random.Generator(BIT_GENERATORS[saved["bit_generator"]]())
        rng.bit_generator.state = saved
        ok = rng.bit_generator.state == saved
    except (KeyError, TypeError, ValueError, OverflowError):
        ok = False
    if not ok:
        raise ValueError(f"its random-generator state is not a {' or '.join(BIT_GENERATORS)} state")
    return rng


def _read_history(saved: Any, epochs_done: int) -> list[EpochStats]:
    """The per-epoch statistics, each built as an `EpochStats` and its numbers checked."""
    if not isinstance(saved, list) or len(saved) > epochs_done:
        raise ValueError(f"its history must be a list of at most {epochs_done} epochs")
    try:
        history = [EpochStats(**entry) for entry in saved]
    except TypeError:  # an entry that is not an object, or has keys EpochStats does not have
        history = None
    if history is None or not all(_plausible(s, epochs_done) for s in history):
        raise ValueError("its history holds an entry that is not an epoch's statistics")
    return history


def _plausible(s: EpochStats, epochs_done: int) -> bool:
    speed = s.samples_per_second  # infinite for an epoch too short to time
    return (
        is_count(s.epoch)
        and 1 <= s.epoch <= epochs_done
        and all(map(is_real, (s.loss, s.train_accuracy, s.seconds)))
        and all(v is None or is_real(v) for v in (s.test_accuracy, s.val_accuracy, s.lr))
        and (is_real(speed) or speed == math.inf)
    )


def _read_classes(meta: dict[str, Any]) -> tuple[str, ...]:
    """The class names stored with the model, or the named data set's (checkpoints written without them)."""
    if not isinstance(meta["dataset"], str):
        raise ValueError("its dataset must be a name")
    names = meta.get("classes", list(class_names(meta["dataset"])))
    if not (
        isinstance(names, list) and len(names) == meta["layer_sizes"][-1] and all(isinstance(n, str) for n in names)
    ):
        raise ValueError(f"its class names do not match its {meta['layer_sizes'][-1]} outputs")
    return tuple(names)


def _read_layout(meta: dict[str, Any]) -> Layout | None:
    """The stored picture layout (picture-folder models), or None: predict then goes by the set's name."""
    if "layout" not in meta:
        return None
    d = meta["layout"]
    layout = Layout(side=d["side"], box=d["box"], work=d["work"], by_mass=d["by_mass"])
    counts = all(is_count(v) and v > 0 for v in (layout.side, layout.box, layout.work))
    if not (
        counts and isinstance(layout.by_mass, bool) and layout.box <= layout.work and layout.work % layout.side == 0
    ):
        raise ValueError("its picture layout is not one of positive sizes")
    if layout.n_features != meta["layer_sizes"][0]:
        raise ValueError(f"its picture layout does not fit {meta['layer_sizes'][0]} inputs")
    return layout
