"""`Model`: a trained network and what it takes to use it, the same object whichever door it came through.

The estimator fits one, a checkpoint holds one (`from_checkpoint`), and ``predict``, ``evaluate`` and the
ONNX export read one. It classifies through `scoring.batched_logits`, the one batched forward pass that
training's accuracy uses too, so every door gives the same classes.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from .. import nn
from ..backend import Backend
from ..data.images import Layout, layout_for
from ..errors import CheckpointError
from ..training.checkpoint import Checkpoint
from ..training.scoring import batched_logits, images_to_device

FITTED_ON_ARRAYS = "arrays"  # the data set a checkpoint names when the model was fitted from Python on arrays
# The kinds of label a checkpoint's JSON keeps exactly (and ONNX can carry): integers, floats, strings, booleans.
LABEL_KINDS = "iufUb"


@dataclass(frozen=True, eq=False)
class Model:
    """Weights ``[W1, b1, W2, b2, ...]`` on ``backend``'s device, the hidden layers' ``activation``, the label
    of each output (``classes``) and, for a model that reads pictures, their ``layout`` (each pixel becomes
    an input in [0, 1]). ``names`` are the classes as reports print them."""

    params: tuple[Any, ...]
    activation: str
    classes: np.ndarray
    backend: Backend
    layout: Layout | None = None
    names: tuple[str, ...] = field(default=())

    def __post_init__(self) -> None:
        if not self.names:
            object.__setattr__(self, "names", tuple(str(c) for c in self.classes.tolist()))

    @property
    def sizes(self) -> list[int]:
        """Layer sizes ``[inputs, hidden..., classes]``."""
        return nn.sizes_of(self.params)

    @property
    def n_features(self) -> int:
        return self.sizes[0]

    @property
    def dtype(self) -> str:
        """The weights' dtype name, ``"float32"`` or ``"float64"``."""
        return "float64" if self.params[0].dtype == self.backend.dtype("float64") else "float32"

    def outputs(self, x: Any) -> tuple[Any, Any]:
        """(class index, log-probabilities) of each row of ``x``, device arrays on this model's device.

        ``x`` holds rows of inputs on that device, in the model's dtype. The class is the largest logit, not
        the largest rounded probability, so two nearly tied classes are decided as in training.
        """
        xp = self.backend.xp
        if x.shape[0] == 0:
            dev, dt = self.backend.device, self.backend.dtype(self.dtype)
            return xp.zeros(0, dtype=xp.int64, device=dev), xp.zeros((0, len(self.classes)), dtype=dt, device=dev)
        index, logp = [], []
        for _, _, logits in batched_logits(xp, self.params, x, self.activation):
            index.append(xp.argmax(logits, axis=1))
            logp.append(nn.log_softmax(xp, logits))
        if len(index) == 1:
            return index[0], logp[0]
        return xp.concat(index), xp.concat(logp, axis=0)

    def labels(self, index: Any) -> Any:
        """The labels of class indices ``index`` (a device array): a device array for numeric labels, NumPy
        for strings, which no array library but NumPy holds."""
        if self.classes.dtype.kind in "iufb":
            xp = self.backend.xp
            return xp.take(self.backend.asarray(self.classes), index)
        return self.classes[self.backend.to_numpy(index)]

    def classify(self, images: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Host uint8 picture rows -> (class index per row, (rows, classes) probabilities), on the host."""
        index, logp = self.outputs(images_to_device(self.backend, images, self.backend.dtype(self.dtype)))
        xp, host = self.backend.xp, self.backend.to_numpy
        return host(index).astype(np.int64), host(xp.exp(logp)).astype(np.float64)

    @classmethod
    def from_checkpoint(cls, ckpt: Checkpoint, backend: Backend) -> Model:
        """The model a checkpoint holds, its weights moved to ``backend``.

        Its labels are those the estimator saved, else (a command-line model) the class numbers where the
        classes have no names of their own ("0".."9"), else the class names.
        """
        names = tuple(ckpt.classes)
        saved = ckpt.meta.get("labels")
        labels = _saved_labels(saved, len(names))
        if labels is not None:
            classes = labels
        elif names == tuple(str(k) for k in range(len(names))):
            classes = np.arange(len(names))
        else:
            classes = np.asarray(names)
        try:
            layout = picture_layout(ckpt)
        except CheckpointError:  # inputs of a size no picture layout has: a model of other features
            layout = None
        params = tuple(backend.asarray(p) for p in ckpt.state.params)
        return cls(params, ckpt.config.activation, classes, backend, layout, names)


def picture_layout(ckpt: Checkpoint) -> Layout:
    """How a picture is prepared for the checkpoint's model: its own layout (a picture-folder model), else its
    data set's or its input size's; `CheckpointError` when no picture fits its inputs."""
    try:
        return ckpt.layout or layout_for(ckpt.dataset, ckpt.layer_sizes[0])
    except ValueError as e:
        raise CheckpointError(f"{ckpt.path}: {e}") from None


def _saved_labels(saved: Any, n: int) -> np.ndarray | None:
    """The estimator's labels from a checkpoint's metadata, or None unless they are ``n`` distinct values of
    one kind (all integers in int64, all finite floats, all strings or all booleans): a crafted file's mix
    would give duplicate or object classes."""
    if not isinstance(saved, list) or len(saved) != n or not saved:
        return None
    kinds = {type(v) for v in saved}
    if len(kinds) != 1 or kinds.pop() not in (int, float, str, bool):
        return None
    try:
        labels = np.asarray(saved)
    except (OverflowError, ValueError):
        return None
    if labels.dtype.kind not in LABEL_KINDS or len(np.unique(labels)) != n:
        return None
    if labels.dtype.kind == "f" and not np.isfinite(labels).all():
        return None
    return labels


def as_labels(classes: Sequence[Any] | np.ndarray) -> np.ndarray:
    """``classes`` as a NumPy array of a kind a checkpoint and ONNX keep exactly: strings held as Python
    objects (pandas' way) become a string array; other objects stay objects."""
    classes = np.asarray(classes)
    if classes.dtype.kind == "O" and all(isinstance(c, str) for c in classes.tolist()):
        return classes.astype(str)
    return classes


def label_list(classes: Sequence[Any] | np.ndarray) -> list[Any]:
    """``classes`` as JSON values, or `ValueError` for labels a checkpoint cannot keep exactly (objects)."""
    classes = as_labels(classes)
    if classes.dtype.kind not in LABEL_KINDS:
        raise ValueError(
            f"labels of dtype {classes.dtype} that are not all strings cannot be saved: use integers, floats or strings"
        )
    return classes.tolist()
