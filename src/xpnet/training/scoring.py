"""Scoring a model: host images to the device, the one batched forward loop behind accuracy and predictions,
and the host-side confusion matrix with its precision and recall.

Training and the model object (``library.model.Model``, behind ``predict``, ``evaluate`` and the estimator) all
classify through `batched_logits`, so the classes ``predict`` prints are exactly those the training accuracy
counts as right or wrong.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any

import numpy as np

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


# On the host: label arrays already read back from the device.


def confusion_matrix(y_true: np.ndarray, y_pred: np.ndarray, n_classes: int) -> np.ndarray:
    """(n_classes, n_classes) int64 counts: row = true class, column = predicted class."""
    y_true, y_pred = np.asarray(y_true, dtype=np.int64), np.asarray(y_pred, dtype=np.int64)
    if y_true.shape != y_pred.shape:
        raise ValueError(f"{y_true.shape[0]} true labels but {y_pred.shape[0]} predictions")
    for name, y in (("true labels", y_true), ("predictions", y_pred)):
        if y.size and (y.min() < 0 or y.max() >= n_classes):
            raise ValueError(f"{name} must lie in 0..{n_classes - 1}, found {y.min()}..{y.max()}")
    counts = np.bincount(y_true * n_classes + y_pred, minlength=n_classes * n_classes)
    return counts.reshape(n_classes, n_classes)


def cm_accuracy(cm: np.ndarray) -> float:
    """Share of all examples on the diagonal (0.0 for an empty matrix)."""
    total = int(cm.sum())
    return float(np.trace(cm)) / total if total else 0.0


def precision_recall(cm: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per-class precision (right / predicted as the class) and recall (right / truly the class).

    A class never predicted has no precision, and a class absent from the data no recall: NaN, not a
    made-up 0 or 1.
    """
    right = np.diag(cm).astype(np.float64)
    predicted, actual = cm.sum(axis=0), cm.sum(axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        precision = np.where(predicted > 0, right / predicted, np.nan)
        recall = np.where(actual > 0, right / actual, np.nan)
    return precision, recall
