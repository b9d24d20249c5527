"""xpnet: an MLP written once against the Python Array API, and a scikit-learn estimator (docs/api.md).
`MLPClassifier`, `load` and `Model` load on first use, so the command line does not import scikit-learn."""

import importlib
from typing import Any

__version__ = "0.1.0"
__all__ = ["MLPClassifier", "Model", "__version__", "load"]
HOMES = {"MLPClassifier": ".library.estimator", "load": ".library.estimator", "Model": ".training.model"}


def __getattr__(name: str) -> Any:
    if name not in HOMES:
        raise AttributeError(f"module 'xpnet' has no attribute {name!r}")
    return getattr(importlib.import_module(HOMES[name], __name__), name)


def __dir__() -> list[str]:
    return sorted({*globals(), *__all__})
