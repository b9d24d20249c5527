"""xpnet: a handwritten-digit MLP written once against the Python Array API.

The math layer (`model`, `losses`, `optim`) takes an array namespace ``xp`` and arrays, so the same
trainer runs on NumPy, CuPy, PyTorch or array-api-strict, chosen at run time through `backend`.
"""

__version__ = "0.1.0"
