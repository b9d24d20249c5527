"""NumPy on the CPU: the default backend, with an in-place step (``fast/numpy_inplace.py``)."""

import numpy as np

from . import Backend, BackendSpec, Probe


def make(device: str) -> Backend:
    import array_api_compat.numpy as xp

    return Backend("numpy", xp, "cpu", "cpu", np.asarray)


def probe() -> Probe:
    from .fast import numpy_inplace as kernels

    # Which update a long run's in-place step uses (fast/numpy_inplace.py): the one place a user sees why not Numba.
    return Probe("numpy", True, f"numpy {np.__version__}; long runs update with {kernels.describe()}", ("cpu",))


SPEC = BackendSpec("numpy", make, probe, 0, fast="numpy_inplace.NumpyInplaceStep")
