"""Small trained models for the predict and evaluate tests, each saved with the checkpoint API.

``digits``: scikit-learn's 8x8 digits. ``mnist``: an MNIST-shaped data set made from the same digits,
each prepared the way MNIST was (fitted into 20x20, centred by mass in 28x28) and written as IDX files,
so the 28x28 code paths run without downloading MNIST.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from xpnet.backend import resolve_backend
from xpnet.data import Dataset, images, load_dataset
from xpnet.data.datasets import IDX_FILES
from xpnet.data.idx import write_idx
from xpnet.training.loop import train
from xpnet.training.model import Model, TrainConfig, save

CONFIG = TrainConfig(hidden_layer_sizes=(64,), max_iter=12, random_state=3)


def save_model(data: Dataset, path: Path, dataset: str | None = None, epochs: int = CONFIG.max_iter) -> Path:
    """Train `CONFIG` on ``data`` and save it as a model of ``dataset`` (default: the data's own name)."""
    backend = resolve_backend("cpu")
    config = TrainConfig(**{**vars(CONFIG), "max_iter": epochs})
    model = Model.of_data(config, train(backend, data, config), backend, data)
    model.dataset = dataset or data.name
    return save(model, path)


def write_mnist_like(folder: Path) -> Path:
    """The digits data set upscaled to MNIST's 28x28 layout, as the four IDX files in ``folder``."""
    digits = load_dataset("digits")
    layout = images.LAYOUTS["mnist"]

    def upscale(rows: np.ndarray) -> np.ndarray:
        # 4x4 blocks make a 32x32 bitmap, as the digits were drawn; `prepare` fits it into 20x20.
        return np.stack([images.prepare(np.kron(r.reshape(8, 8), np.ones((4, 4), np.uint8)), layout) for r in rows])

    folder.mkdir(parents=True, exist_ok=True)
    arrays = {
        "train_images": upscale(digits.x_train),
        "train_labels": digits.y_train,
        "test_images": upscale(digits.x_test),
        "test_labels": digits.y_test,
    }
    for key, name in IDX_FILES.items():
        write_idx(folder / name, arrays[key])
    return folder
