"""The default learning-rate schedule: a decay per optimizer step, whatever the data set is called.

The rate falls by `DECAY` every `REFERENCE_STEPS` optimizer steps (one epoch of 60,000 images at batch 128,
where 0.8 per epoch was measured best), applied once per epoch: a set with fewer steps per epoch decays
less per epoch, so a few thousand images are not starved of updates (see docs/benchmarks.md,
"Learning-rate schedule"). The factor depends on the steps per epoch only, never on ``--epochs``, so a run
resumed with a larger ``--epochs`` trains its earlier epochs exactly as a run that asked for it at once.
"""

from __future__ import annotations

import math

DECAY = 0.8
REFERENCE_STEPS = 469  # ceil(60000 / 128)


def steps_per_epoch(n_train: int, batch_size: int) -> int:
    """Optimizer steps in one epoch of ``n_train`` rows (``batch_size`` 0: the whole set at once)."""
    if n_train < 1:
        return 1
    return 1 if batch_size == 0 else math.ceil(n_train / min(batch_size, n_train))


def default_gamma(n_train: int, batch_size: int) -> float:
    """The per-epoch factor for ``n_train`` rows in batches of ``batch_size``, rounded to 4 decimals."""
    return round(DECAY ** (steps_per_epoch(n_train, batch_size) / REFERENCE_STEPS), 4)
