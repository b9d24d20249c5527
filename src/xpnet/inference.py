"""Run a trained model on host images: predicted classes and their probabilities, read back per batch.

Shared by ``xpnet.predict`` and ``xpnet.evaluate``. The forward pass is `model.forward` on the backend, in
the checkpoint's dtype and in batches of `trainer.EVAL_BATCH` rows, so the classes are exactly those
`trainer.accuracy` counts as right or wrong.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from . import losses, model
from .backend import Backend
from .checkpoint import Checkpoint
from .trainer import EVAL_BATCH, images_to_device


def device_params(backend: Backend, ckpt: Checkpoint) -> list[Any]:
    """The checkpoint's weights, copied onto ``backend``'s device."""
    return [backend.asarray(p) for p in ckpt.state.params]


def classify(
    backend: Backend, params: list[Any], images: np.ndarray, activation: str, dtype: str
) -> tuple[np.ndarray, np.ndarray]:
    """Host uint8 image rows -> (predicted class per row, (rows, classes) softmax probabilities), on the host.

    The class is the largest logit, not the largest rounded probability, so two nearly tied classes are
    decided as in training.
    """
    xp = backend.xp
    classes, probs = [], []
    for i in range(0, images.shape[0], EVAL_BATCH):
        x = images_to_device(backend, images[i : i + EVAL_BATCH], backend.dtype(dtype))
        logits, _ = model.forward(xp, params, x, activation)
        classes.append(backend.to_numpy(xp.argmax(logits, axis=1)))
        probs.append(backend.to_numpy(xp.exp(losses.log_softmax(xp, logits))))
    if not classes:
        return np.zeros(0, dtype=np.int64), np.zeros((0, params[-1].shape[0]))
    return np.concatenate(classes).astype(np.int64), np.concatenate(probs).astype(np.float64)
