"""The worker's side of data-parallel training (Dask tasks; nothing here imports Dask): a shard of the training
rows, loaded by a pure task the scheduler can rerun, and one step's sums over its rows of the global batch."""

import functools
import zlib
from dataclasses import dataclass
from typing import Any

import numpy as np

from .. import nn
from ..backend import Backend, resolve_backend
from ..data import hold_out, load_dataset
from .model import count_correct, to_device


@dataclass(frozen=True)
class DataSource:
    """Where a worker reads the training rows: data set, folder, picture size and validation rows held out."""

    name: str
    data_dir: str | None = None
    val_split: int = 0
    image_size: int | None = None


def fingerprint(x: np.ndarray, y: np.ndarray) -> int:
    """A checksum of image rows and labels, so the client can tell that a worker loaded the same rows."""
    x, y = np.ascontiguousarray(x, dtype=np.uint8), np.ascontiguousarray(y, dtype=np.int64)
    return zlib.crc32(y.tobytes(), zlib.crc32(repr(x.shape).encode() + x.tobytes()))


@dataclass(eq=False)
class Shard:
    """Training rows as host arrays, and how the worker computes with them (device and backend resolved there)."""

    x: np.ndarray
    y: np.ndarray
    device: str
    backend: str | None
    dtype: str
    n_classes: int

    def __getstate__(self) -> dict[str, Any]:
        return {k: v for k, v in self.__dict__.items() if k != "on_device"}  # the receiving process makes its own

    @functools.cached_property
    def on_device(self) -> tuple[Backend, Any, Any, Any]:
        """(backend, images, one-hot targets, labels) on the worker's device, moved there once."""
        backend = resolve_backend(self.device, self.backend)  # under dask-cuda, cuda is the worker's own GPU
        dtype = backend.dtype(self.dtype)
        x, y = to_device(backend, self.x, self.y, dtype)
        return backend, x, nn.one_hot(backend.xp, y, self.n_classes, dtype), y


def load_shard(source: DataSource, lo: int, hi: int, *how: Any) -> Shard:
    """Rows ``lo:hi`` of ``source``'s training set (a pure task: Dask may rerun it after a worker dies)."""
    data = hold_out(load_dataset(source.name, source.data_dir, image_size=source.image_size), source.val_split)
    return Shard(data.x_train[lo:hi], data.y_train[lo:hi], *how)


def shard_info(shard: Shard) -> tuple[int, str]:
    """(fingerprint, backend) of a shard; moves it to the device, so a bad device fails at the start."""
    return fingerprint(shard.x, shard.y), str(shard.on_device[0])


def shard_sums(shard: Shard, params: list[np.ndarray], rows: np.ndarray, batch_rows: int, activation: str) -> tuple:
    """Summed loss, correct count and gradients over the shard's ``rows`` of a global batch of ``batch_rows``:
    gradients of the global batch's mean loss, so their sum over shards is one process's gradient."""
    backend, x, t, y = shard.on_device
    xp, host, n, idx = backend.xp, backend.to_numpy, rows.shape[0], backend.asarray(rows)
    xb, tb, yb = (xp.take(a, idx, axis=0) for a in (x, t, y))
    weights = [backend.asarray(p) for p in params]
    logits, cache = nn.forward(xp, weights, xb, activation)
    loss, dlogits = nn.softmax_cross_entropy(xp, logits, tb)
    grads = nn.backward(xp, weights, cache, dlogits * (n / batch_rows), activation)
    return host(loss * float(n)), host(count_correct(xp, logits, yb)), [host(g) for g in grads]
