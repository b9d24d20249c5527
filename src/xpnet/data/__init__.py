"""Data: files and bundled sets -> host NumPy uint8 arrays. Nothing here touches a device."""

from .datasets import DATASETS, Dataset, hold_out
from .download import DownloadError
from .idx import IdxError, read_idx
from .load import load_dataset

__all__ = ["DATASETS", "Dataset", "DownloadError", "IdxError", "hold_out", "load_dataset", "read_idx"]
