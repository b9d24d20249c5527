"""Scoring a model: host images to the device, and the one batched forward loop behind accuracy and predictions.

Training and the model object (``library.model.Model``, behind ``predict``, ``evaluate`` and the estimator) all
classify through `batched_logits`, so the classes ``predict`` prints are exactly those the training accuracy
counts as right or wrong.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any

from .. import nn
from ..backend import Backend

EVAL_BATCH = 8192  # rows per forward pass when scoring: bounds memory, large enough to be fast


def images_to_device(backend: Backend, images: Any, dtype: Any) -> Any:
    """Image rows -> device rows in ``dtype``: uint8 pixels are scaled to [0, 1]; features (floats, any
    namespace, as the estimator hands them over) are taken as they are."""
    x = backend.asarray(images)
    if x.dtype != backend.xp.uint8:
        return backend.xp.astype(x, dtype, copy=False)
    # Moving uint8 and scaling on the device sends a quarter of the bytes float32 would.
    return backend.xp.astype(x, dtype) / 255.0


def to_device(backend: Backend, images: Any, labels: Any, dtype: Any) -> tuple[Any, Any]:
    """Images (see `images_to_device`) and labels -> device rows in ``dtype`` and int64 labels."""
    return images_to_device(backend, images, dtype), backend.xp.astype(backend.asarray(labels), backend.xp.int64)


def batched_logits(xp: Any, params: Sequence[Any], x: Any, activation: str) -> Iterator[tuple[int, int, Any]]:
    """``(start, stop, logits)`` for consecutive slices of `EVAL_BATCH` rows of ``x`` (device or host rows)."""
    n = x.shape[0]
    for i in range(0, n, EVAL_BATCH):
        j = min(i + EVAL_BATCH, n)
        logits, _ = nn.forward(xp, params, x[i:j, ...], activation)
        yield i, j, logits


def count_correct(xp: Any, logits: Any, labels: Any) -> Any:
    """Number of rows whose largest logit is the label, as a 0-d int64 device array."""
    return xp.sum(xp.astype(xp.argmax(logits, axis=1) == labels, xp.int64))


def accuracy(backend: Backend, params: Sequence[Any], x: Any, y: Any, activation: str) -> float:
    """Fraction of rows of device arrays ``x`` classified as ``y``; one read from the device."""
    xp = backend.xp
    correct = xp.zeros((), dtype=xp.int64, device=backend.device)
    for i, j, logits in batched_logits(xp, params, x, activation):
        correct = correct + count_correct(xp, logits, y[i:j])
    return int(backend.to_numpy(correct)) / max(x.shape[0], 1)
