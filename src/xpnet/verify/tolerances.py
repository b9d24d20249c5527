"""How close every backend must come to the NumPy float64 reference: the one table of tolerances.

The agreement tests and ``python -m xpnet.check`` both read it. A difference is *relative to the array*:
``max|a - ref| / max|ref|`` (see `agreement.rel_diff`). Entries near zero (dead ReLU units, zero biases,
cancelling gradient sums) would make an element-wise relative error meaningless, while the scale of the
whole array is what a rounding error is made against.

The reference is always computed in float64 from the very inputs the backend gets (weights and images
rounded to the backend's dtype first), so a difference measures the backend's arithmetic alone, not the
rounding of its inputs.
"""

from __future__ import annotations

from dataclasses import dataclass

# Optimizer steps taken from the same initial weights before the parameters are compared.
TRAJECTORY_STEPS = 20
# One epoch on `digits` must give the same test accuracy to within this many percentage points. Its test
# set has 359 images, so 0.5 points allows one image to fall on the other side of a decision boundary.
ACCURACY_POINTS = 0.5


@dataclass(frozen=True)
class Tolerance:
    """Largest relative difference from the reference that still counts as agreement."""

    forward: float  # logits and loss of one batch
    gradients: float  # every gradient of one batch
    trajectory: float  # every parameter after TRAJECTORY_STEPS steps of SGD or momentum
    adam_trajectory: float  # the same for Adam, which amplifies rounding noise (see below)

    def for_optimizer(self, name: str) -> float:
        return self.adam_trajectory if name == "adam" else self.trajectory


# Measured on CPU (NumPy, array-api-strict, PyTorch, JAX) over 36 seeded problems (3 activations, 6 seeds,
# one and two hidden layers); the problem the tests and `check` use is `agreement.make_problem()`.
TOLERANCES: dict[str, Tolerance] = {
    # float64: the same formulas evaluated in another order (BLAS blocking, pairwise or tree sums, fused
    # multiply-adds) differ by a few ulps per operation: at most about n * 1.1e-16 for a dot product of
    # length n (9e-14 for n = 784), and at most 1.2e-15 measured. 1e-12 leaves room for other reduction
    # orders (GPU libraries split long sums differently) and nothing else: a real difference in the math (a
    # float32 intermediate, TF32) is orders of magnitude larger. SGD and momentum are linear in the
    # gradients, so twenty steps add up twenty such errors (measured 1.3e-15): 1e-12 again. Adam is
    # explained with float32; scaled by float64's 5e8 times smaller ulp it measured 1.3e-13: 1e-10.
    "float64": Tolerance(forward=1e-12, gradients=1e-12, trajectory=1e-12, adam_trajectory=1e-10),
    # float32 against float64: each rounding costs up to 6e-8 (half an ulp) and a length-784 dot product
    # gathers a few of those in practice: logits, loss and gradients measured at most 7.2e-7. 1e-5 holds
    # that with room for GPU reduction orders, yet catches TF32 matmuls (10-bit mantissa, errors near
    # 1e-3), which CuPy and PyTorch leave off by default and the JAX backend turns off. SGD and momentum
    # after twenty steps measured at most 7.3e-7: 1e-5 again.
    # Adam divides every gradient entry by its own running RMS, so an entry whose true value is as small as
    # float32's rounding noise (a weight fed by a pixel that only one image lights) takes a step of about
    # lr whose direction the noise decides. One such weight differed by up to 6.9e-4 of the array's scale
    # (6e-7 on the problem the tests and check use); 2e-3 allows for that, while a wrong bias correction or
    # learning rate moves every weight and shows near 1e-1.
    "float32": Tolerance(forward=1e-5, gradients=1e-5, trajectory=1e-5, adam_trajectory=2e-3),
}


def tolerance(dtype: str) -> Tolerance:
    """The tolerances for ``"float32"`` or ``"float64"``."""
    return TOLERANCES[dtype]
