"""Data: files and bundled sets -> host NumPy uint8 arrays. Nothing here touches a device."""

from .datasets import DATASETS, Dataset, default_data_dir, load_dataset
from .idx import IdxError, read_idx

__all__ = ["DATASETS", "Dataset", "IdxError", "default_data_dir", "load_dataset", "read_idx"]
