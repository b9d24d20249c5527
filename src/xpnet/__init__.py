"""xpnet: a handwritten-digit MLP written once against the Python Array API.

The math layer (`nn`) takes an array namespace ``xp`` and arrays, so the same trainer runs on NumPy, CuPy,
PyTorch, JAX or array-api-strict, chosen at run time through `backend` (docs/layout.md says where things live).
"""

__version__ = "0.1.0"
