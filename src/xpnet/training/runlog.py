"""The training log of ``xpnet.train --log`` (JSON Lines), read by ``xpnet.evaluate --plot``: each run, or resumed
run appended, writes a `header` then one `epoch_record` per epoch. Reading keeps the last record of each epoch
(one redone after a crash replaces the one before) and skips an unfinished last line."""

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
    """A text file that only ever ends with a whole line: each `write` is one ``os.write``, cut back if it fails.
    ``append`` keeps what is there but a torn last line (``repaired`` bytes); else the first line is `atomic_write`n."""

    def __init__(self, path: Path, append: bool):
        self.path, self.fd, self.repaired = path, None, 0
        if append and path.exists():
            self._open()

    def _open(self) -> None:
        try:
            self.fd = os.open(self.path, os.O_RDWR | os.O_APPEND)  # read: to find a torn line
            size = os.fstat(self.fd).st_size
            with mmap.mmap(self.fd, 0, access=mmap.ACCESS_READ) if size else contextlib.nullcontext(b"") as m:
                end = m.rfind(b"\n") + 1  # closed before truncating (Windows)
            os.ftruncate(self.fd, end)
            self.repaired = size - end
        except OSError as e:
            raise write_failed(self.path, e) from None

    def write(self, record: dict[str, Any]) -> None:
        """``record`` as one line, in the file when this returns: a run killed at any moment leaves every epoch."""
        data = (json.dumps(record) + "\n").encode("utf-8")
        if self.fd is None:
            atomic_write(self.path, lambda f: f.write(data))
            return self._open()
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


def read_log(log: str | Path, model: Model | None = None) -> list[dict[str, Any]]:
    """The epoch records of a training log, by epoch; `XpnetError` for a foreign file or another run's log."""
    path = Path(log).expanduser()
    try:
        if not path.is_file():  # a device such as /dev/zero would be read for ever
            raise XpnetError(f"{path} is not a file: give the training log of a run")
        if path.stat().st_size > MAX_LOG_BYTES:
            raise XpnetError(f"{path} is larger than a training log gets ({MAX_LOG_BYTES >> 20} MiB): give another")
        lines = path.read_bytes().split(b"\n")  # the last is empty or a line a crash cut short
    except OSError as e:
        raise XpnetError(f"cannot read the training log {path}: {reason(e)}") from None
    epochs, headers = {}, []
    for number, line in enumerate(lines, 1):
        try:
            record = json.loads(line) if line.strip() else {}  # bytes that are not UTF-8: a ValueError
            if record.get("type") == "epoch":
                epochs[int(record["epoch"])] = {k: record.get(k) for k in EPOCH_KEYS}
                float(record["loss"])
            elif record.get("type") == "run":
                headers.append(record)
        except (ValueError, TypeError, KeyError, AttributeError):
            if number == len(lines):  # unfinished: skipped, as a resumed run cuts it off
                break
            raise XpnetError(f"{path}, line {number}: not an xpnet training log (as xpnet train writes)") from None
    if not epochs:
        raise XpnetError(f"{path} holds no epochs: not an xpnet training log, or the run logged none yet")
    # Another run's: a header with other data or `FIXED_FIELDS`, or an epoch of the history logged with other figures.
    checks = []
    if model is not None:
        want = {"dataset": model.dataset, "n_train": model.n_train, "n_val": model.val_split}
        want |= {f: model.config.to_dict()[f] for f in FIXED_FIELDS}
        checks = [("its header", h | (h["config"] if isinstance(h.get("config"), dict) else {}), want) for h in headers]
        for s in model.state.history:
            checks.append((f"its epoch {s.epoch}", epochs.get(s.epoch, {}), {k: getattr(s, k) for k in SCORES}))
    for what, said, wanted in checks:
        key = next((k for k in wanted if k in said and said[k] != wanted[k]), None)
        if key is not None:
            raise XpnetError(
                f"{{name}} {path} is the log of another run ({what} has {key} {spelled(said[key])} where "
                f"{model.path or 'the model'} has {spelled(wanted[key])}): give the log of this model's run, or leave "
                "{name} out to draw the curves from the checkpoint's own history",
                parameter="log",
            )
    return [epochs[e] for e in sorted(epochs)]
