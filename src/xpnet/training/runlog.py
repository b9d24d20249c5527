"""The training log written by ``xpnet.train --log PATH`` and read by ``xpnet.evaluate --plot``: JSON Lines.

Each run (and each resumed continuation, appended to the same file) starts with a header (`header`:
``"type": "run"``, when, the version, the data, backend, device, ``workers`` (what Dask workers computed
with, null in one process; on a cluster written once the workers are known), seed, config and
``resumed_from_epoch``), then one `epoch_record` per finished epoch (``val_accuracy`` null without
``--val-split``, ``test_accuracy`` null with it: the test set is then scored once, at the end). Reading keeps
the last record of each epoch number (an epoch redone after a crash replaces the one logged before it) and
ignores an unfinished last line; `LineFile` only ever leaves whole lines.
"""

from __future__ import annotations

import contextlib
import json
import math
import mmap
import os
from dataclasses import fields
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from .. import __version__
from ..errors import XpnetError, reason
from ..files import atomic_write, write_failed
from .model import FIXED_FIELDS, EpochStats, Model, spelled

# An epoch's figures that tell one run from another: the same run logs them exactly as its checkpoint keeps them.
SCORES = ("loss", "train_accuracy", "val_accuracy", "test_accuracy")
EPOCH_KEYS = tuple(f.name for f in fields(EpochStats))
MAX_LOG_BYTES = 256 << 20  # about a million epochs of records


def json_number(value: float | None) -> float | None:
    """``value``, or None where it is NaN or infinite: JSON has neither."""
    return value if value is None or math.isfinite(value) else None


def header(**fields: Any) -> dict[str, Any]:
    """The first line of a run: when it started, the xpnet version, then ``fields``."""
    started = datetime.now(timezone.utc).isoformat(timespec="seconds")
    return {"type": "run", "started": started, "xpnet_version": __version__, **fields}


def epoch_record(stats: EpochStats) -> dict[str, Any]:
    return {"type": "epoch"} | {k: json_number(getattr(stats, k)) for k in EPOCH_KEYS}


class LineFile:
    """A text file that only ever ends with a whole line: each `write` is one ``os.write`` of one JSON line,
    and one that fails (a full disk) is cut back to where it started before `WriteError` is raised.

    ``append``: keep what is there (a last line torn by a crash is cut off first: ``repaired`` bytes);
    otherwise the file is replaced. A new or replaced file is made by the first `write`, through
    `atomic_write`: a first line that cannot be written leaves no file, or the previous one whole.
    """

    def __init__(self, path: Path, append: bool):
        self.path, self.fd, self.repaired = path, None, 0
        if append and path.exists():
            self._open(cut=True)

    def _open(self, cut: bool = False) -> None:
        try:
            self.fd = os.open(self.path, os.O_RDWR | os.O_APPEND)  # read: to find a torn line
            size = end = os.fstat(self.fd).st_size
            if cut and size:  # cut after the last newline
                with mmap.mmap(self.fd, 0, access=mmap.ACCESS_READ) as m:  # closed before truncating (Windows)
                    end = m.rfind(b"\n") + 1
                os.ftruncate(self.fd, end)
            self.repaired = size - end
        except OSError as e:
            raise write_failed(self.path, e) from None

    def write(self, record: dict[str, Any]) -> None:
        """``record`` as one line, on disk when this returns: a run killed at any moment leaves every epoch."""
        data = (json.dumps(record) + "\n").encode("utf-8")
        if self.fd is None:
            atomic_write(self.path, lambda f: f.write(data))
            self._open()
            return
        start = os.fstat(self.fd).st_size
        try:
            if os.write(self.fd, data) != len(data):  # a short write: the disk filled up mid-line
                raise OSError(28, os.strerror(28))
        except OSError as e:
            with contextlib.suppress(OSError):
                os.ftruncate(self.fd, start)
            raise write_failed(self.path, e) from None

    def close(self) -> None:
        if self.fd is not None:
            os.close(self.fd)


def read_log(path: str | Path, model: Model | None = None) -> list[dict[str, Any]]:
    """The epoch records of a training log, by epoch number; `XpnetError` (one line) for a foreign file, and
    for the log of another run than ``model``'s when it is given: a header naming other data or a setting
    no resume changes (`config.FIXED_FIELDS`), or an epoch whose figures are not its checkpoint's."""
    path = Path(path).expanduser()
    try:
        if not path.is_file():  # a device such as /dev/zero would be read for ever
            raise XpnetError(f"{path} is not a file: give the training log of xpnet.train --log")
        if path.stat().st_size > MAX_LOG_BYTES:
            raise XpnetError(f"{path} is larger than a training log gets ({MAX_LOG_BYTES >> 20} MiB): give another")
        text = path.read_text(encoding="utf-8")
    except OSError as e:
        raise XpnetError(f"cannot read the training log {path}: {reason(e)}") from None
    except UnicodeDecodeError:
        raise XpnetError(
            f"{path} is not an xpnet training log (not text); give the file of xpnet.train --log"
        ) from None
    epochs: dict[int, dict[str, Any]] = {}
    headers: list[dict[str, Any]] = []
    lines = text.split("\n")  # the last is "" or a line a crash cut short
    for number, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
            if record.get("type") == "epoch":
                epochs[int(record["epoch"])] = {k: record.get(k) for k in EPOCH_KEYS}
                float(record["loss"])
            elif record.get("type") == "run":
                headers.append(record)
        except (ValueError, TypeError, KeyError, AttributeError):
            if number == len(lines):  # unfinished: skipped, as a resumed run cuts it off
                break
            raise XpnetError(
                f"{path}, line {number}: not an xpnet training log (write one with python -m xpnet.train --log)"
            ) from None
    if not epochs:
        raise XpnetError(f"{path} holds no epochs: not an xpnet training log, or the run logged none yet")
    other = model is not None and (_other_header(headers, model) or _other_epoch(epochs, model))
    if other:
        raise XpnetError(
            f"--log {path} is the log of another run ({other}): give the log of this model's run, or "
            "leave --log out to draw the curves from the checkpoint's own history"
        )
    return [epochs[e] for e in sorted(epochs)]


def _other_header(headers: list[dict[str, Any]], model: Model) -> str:
    """How the first header that names another run differs from ``model``, or ``""``; what a header does not
    say is not held against it."""
    config = model.config.to_dict()
    want = {"dataset": model.dataset, "n_train": model.n_train, "n_val": model.val_split}
    want |= {f: config[f] for f in FIXED_FIELDS}
    for header in headers:
        said = header | (header["config"] if isinstance(header.get("config"), dict) else {})
        key = next((k for k in want if k in said and said[k] != want[k]), None)
        if key is not None:
            return f"its header has {key} {spelled(said[key])} where {model.path} has {spelled(want[key])}"
    return ""


def _other_epoch(epochs: dict[int, dict[str, Any]], model: Model) -> str:
    """How the first logged epoch that the checkpoint's history holds otherwise differs from it, or ``""``."""
    for stats in model.state.history:
        logged = epochs.get(stats.epoch, {})
        key = next((k for k in SCORES if k in logged and logged[k] != getattr(stats, k)), None)
        if key is not None:
            return (
                f"its epoch {stats.epoch} has {key} {json.dumps(logged[key])} where the history of "
                f"{model.path} has {json.dumps(getattr(stats, key))}"
            )
    return ""
