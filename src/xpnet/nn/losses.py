"""Softmax cross-entropy, computed stably through log-sum-exp, with its gradient."""

from __future__ import annotations

from typing import Any


def one_hot(xp: Any, labels: Any, n_classes: int, dtype: Any) -> Any:
    """Rows of ``labels`` (integer class indices) as one-hot vectors, without fancy indexing."""
    classes = xp.arange(n_classes, dtype=labels.dtype, device=labels.device)
    return xp.astype(labels[:, None] == classes, dtype)


def log_softmax(xp: Any, logits: Any) -> Any:
    # Subtracting the row maximum keeps exp() from overflowing; the result is mathematically unchanged.
    shifted = logits - xp.max(logits, axis=1, keepdims=True)
    return shifted - xp.log(xp.sum(xp.exp(shifted), axis=1, keepdims=True))


def softmax_cross_entropy(xp: Any, logits: Any, targets: Any) -> tuple[Any, Any]:
    """Mean cross-entropy over the batch and its gradient with respect to ``logits``.

    ``targets`` is one-hot (see `one_hot`), in the dtype of ``logits``. The loss is a 0-d array on the
    device: reading it is left to the caller, so a training step never waits for the device.
    """
    n = logits.shape[0]
    logp = log_softmax(xp, logits)
    loss = -xp.sum(targets * logp) / n
    dlogits = (xp.exp(logp) - targets) / n
    return loss, dlogits
