"""The math: pure functions of an Array API namespace ``xp`` and arrays (model, losses, optimizers, step)."""
