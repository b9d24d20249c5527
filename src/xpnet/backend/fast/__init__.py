"""Fast steps: each overrides the reference training step (`xpnet.nn.train_step`) for one array library.

A fast step is a class made as ``Step(sizes, recipe, dtype)`` and called as an `xpnet.nn.StepFn`; a backend
names its class in ``BackendSpec.fast_step``. The reference math stays the definition: these only make it
cheaper on one library, and the tests compare them with it. The in-place steps keep every parameter and
moment as a view into one flat buffer, through the two helpers below.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any


def views(flat: Any, shapes: Sequence[tuple[int, ...]]) -> list[Any]:
    """Consecutive views of the 1-d NumPy array or PyTorch tensor ``flat``, shaped as ``shapes``."""
    out, offset = [], 0
    for shape in shapes:
        size = math.prod(shape)
        out.append(flat[offset : offset + size].reshape(shape))
        offset += size
    return out


def adopt(mine: Sequence[Any], theirs: Sequence[Any]) -> None:
    """Copy arrays from outside (initial weights, a checkpoint) into the views ``mine``; the views themselves,
    passed back in as a step returned them, are left alone."""
    for a, b in zip(mine, theirs, strict=True):
        if a is not b:
            a[...] = b
