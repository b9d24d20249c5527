"""Classification metrics on the host: confusion matrix, accuracy, per-class precision and recall.

Plain NumPy on label arrays already read back from the device; no device work happens here.
"""

from __future__ import annotations

import numpy as np


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


def accuracy(cm: np.ndarray) -> float:
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
