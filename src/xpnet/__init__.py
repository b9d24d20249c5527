"""xpnet: an MLP written once against the Python Array API, and a scikit-learn estimator.

The public surface (docs/api.md): `MLPClassifier`, `load` (a checkpoint back as a fitted estimator), `Model`
and `__version__`. They load on first use, so the command line does not import scikit-learn.
"""

from __future__ import annotations

from typing import Any

__version__ = "0.1.0"
__all__ = ["MLPClassifier", "Model", "__version__", "load"]


def __getattr__(name: str) -> Any:
    if name in ("MLPClassifier", "load"):
        from .library import estimator

        return getattr(estimator, name)
    if name == "Model":
        from .training.model import Model

        return Model
    raise AttributeError(f"module 'xpnet' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted({*globals(), *__all__})
