"""The pictures of ``xpnet.evaluate --plot``: training curves, confusion matrix, worst mistakes, drawn with
matplotlib's object API on its Agg canvas (no pyplot state, no display) and each written atomically."""

from __future__ import annotations

import functools
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import XpnetError
from ..files import atomic_write

DPI = 110


def require_matplotlib() -> None:
    """Fail with one line (exit 2) when matplotlib is missing, before any work is done."""
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        raise XpnetError('--plot needs matplotlib: pip install "xpnet[plot]" (matplotlib)') from None


def _figure(width: float, height: float) -> Any:
    from matplotlib.figure import Figure  # savefig draws it on the Agg canvas

    return Figure(figsize=(width, height), dpi=DPI, layout="constrained")


def save(fig: Any, path: Path) -> Path:
    atomic_write(path, functools.partial(fig.savefig, format="png", dpi=DPI))
    return path


def curves(epochs: Sequence[dict[str, Any]], title: str, kept: int | None = None) -> Any:
    """Loss and accuracy per epoch, from training-log records (`xpnet.training.runlog`); ``kept``, the epoch
    whose weights the model holds when it is not the last (--patience), is marked on both."""
    fig = _figure(9.0, 3.6)
    loss_ax, acc_ax = axes = fig.subplots(1, 2)
    marker = "o" if len(epochs) <= 30 else None
    loss_ax.plot([e["epoch"] for e in epochs], [e["loss"] for e in epochs], marker=marker, color="tab:red")
    loss_ax.set(title="training loss (mean cross-entropy)", xlabel="epoch", ylabel="loss")
    for split, color in (("train", "tab:blue"), ("val", "tab:green"), ("test", "tab:orange")):
        points = [(e["epoch"], 100 * e[f"{split}_accuracy"]) for e in epochs if e.get(f"{split}_accuracy") is not None]
        if points:
            acc_ax.plot(*zip(*points), marker=marker, label="validation" if split == "val" else split, color=color)
    acc_ax.set(title="accuracy", xlabel="epoch", ylabel="%")
    for ax in axes:
        if kept is not None:
            ax.axvline(kept, color="0.35", linestyle="--", linewidth=1, label=f"kept: epoch {kept}")
        ax.grid(alpha=0.3)
        ax.xaxis.get_major_locator().set_params(integer=True)
    if kept is not None:
        loss_ax.legend(loc="upper right")
    acc_ax.legend(loc="lower right")
    fig.suptitle(title)
    return fig


def confusion(cm: np.ndarray, labels: Sequence[str], title: str) -> Any:
    """Counts in each cell, coloured by the share of the true class (row) so that errors stand out."""
    long_names = max(len(s) for s in labels) > 2
    fig = _figure(7.4 if long_names else 6.4, 6.6 if long_names else 5.8)
    ax = fig.subplots()
    # A square root stretches the small off-diagonal shares, where the interesting mistakes are.
    shade = np.sqrt(cm / np.maximum(cm.sum(axis=1, keepdims=True), 1))
    image = ax.imshow(shade, cmap="Blues", vmin=0.0, vmax=1.0)
    for (i, j), count in np.ndenumerate(cm):
        if count:
            ax.text(j, i, count, ha="center", va="center", fontsize=8, color="white" if shade[i, j] > 0.6 else "black")
    ax.set_xticks(range(len(labels)), labels, rotation=45 if long_names else 0, ha="right" if long_names else "center")
    ax.set_yticks(range(len(labels)), labels)
    ax.set(xlabel="predicted class", ylabel="true class", title=title)
    ticks = [0.0, 0.01, 0.05, 0.2, 0.5, 1.0]
    bar = fig.colorbar(image, ax=ax, shrink=0.8, label="share of the true class")
    bar.set_ticks(np.sqrt(ticks), labels=[f"{100 * t:g}%" for t in ticks])
    return fig


def worst(images, shape, y_true, y_pred, p_true, labels: Sequence[str], title: str, columns: int = 6) -> Any:
    """A grid of ``images`` (rows of pixels of ``shape``) titled true -> predicted and the probability the
    model gave the true class."""
    rows = max(1, -(-len(images) // columns))
    fig = _figure(1.5 * columns, 1.75 * rows + 0.5)
    axes = np.atleast_1d(fig.subplots(rows, columns)).ravel()
    for ax in axes:
        ax.set_axis_off()
    for ax, image, t, p, q in zip(axes, images, y_true, y_pred, p_true):
        ax.imshow(image.reshape(shape), cmap="gray_r", vmin=0, vmax=255, interpolation="nearest")
        chance = f"{100 * q:.2f}%" if q >= 5e-5 else "< 0.01%"
        ax.set_title(f"{labels[t]} → {labels[p]}\np({labels[t]}) {chance}", fontsize=8)
    fig.suptitle(title)
    return fig
