"""Backend-specific fast paths, each overriding one reference computation of the math layer.

A fast training step takes ``(params, state, x, targets, step, lr)`` and returns
``(params, state, loss, logits)``, like `xpnet.trainer.reference_step`, and must agree with it (the tests
compare them). The reference math stays the definition; these only make it cheaper on one library.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

StepFn = Callable[[Sequence[Any], Sequence[Any], Any, Any, int, float], tuple[list[Any], list[Any], Any, Any]]


def make_fast_step(
    backend_name: str, sizes: Sequence[int], activation: str, optimizer: str, dtype: Any
) -> StepFn | None:
    """A fast step for this backend and model, or None where there is none."""
    if backend_name == "numpy":
        from .numpy_inplace import make_step

        return make_step(sizes, activation, optimizer, dtype)
    return None
