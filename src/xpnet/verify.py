"""One backend beside the NumPy float64 reference: how far apart they are, and whether that is within the one
table of tolerances (`TOLERANCES`; why each is what it is: docs/agreement.md).

Used by the agreement tests and by ``python -m xpnet.check``. The reference computes in float64 from the very
inputs the backend gets (rounded to its dtype first), so a difference measures the backend's arithmetic alone.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import array_api_compat
import numpy as np

from . import nn
from .backend import Backend, fast_step, make_backend

N_CLASSES = 10  # the synthetic problem is MNIST-shaped
FAST_OPTIMIZER = "adam"  # the fast step is checked with the optimizer training uses by default
TRAJECTORY_STEPS = 20  # optimizer steps taken from the same initial weights before the parameters are compared
# One epoch on `digits` must give the same test accuracy to within this many percentage points (its 359 test
# images: one image on the other side of a decision boundary).
ACCURACY_POINTS = 0.5


@dataclass(frozen=True)
class Tolerance:
    """Largest relative difference (`rel_diff`) from the reference that still counts as agreement."""

    forward: float  # logits and loss of one batch
    gradients: float  # every gradient of one batch
    trajectory: float  # every parameter after TRAJECTORY_STEPS steps of SGD or momentum
    adam_trajectory: float  # the same for Adam, which amplifies rounding noise in near-zero gradients

    def for_optimizer(self, name: str) -> float:
        return self.adam_trajectory if name == "adam" else self.trajectory


# float64: reduction orders differ by a few ulps, and nothing else may; float32 against float64: rounding,
# yet TF32 matmuls (errors near 1e-3) fail. Measured maxima and the reasoning: docs/agreement.md.
TOLERANCES: dict[str, Tolerance] = {
    "float64": Tolerance(forward=1e-12, gradients=1e-12, trajectory=1e-12, adam_trajectory=1e-10),
    "float32": Tolerance(forward=1e-5, gradients=1e-5, trajectory=1e-5, adam_trajectory=2e-3),
}


@dataclass(frozen=True)
class Problem:
    """A batch of images (n, features) in [0, 1], labels (n,) and initial weights, as float64 host arrays."""

    x: np.ndarray
    labels: np.ndarray
    params: list[np.ndarray]
    activation: str = "relu"

    def inputs(self, dtype: str) -> tuple[np.ndarray, list[np.ndarray]]:
        """The images and weights rounded to ``dtype``: what a backend computing in ``dtype`` is given."""
        return self.x.astype(dtype), [p.astype(dtype) for p in self.params]


def make_problem(seed: int = 0, n: int = 128, features: int = 784) -> Problem:
    """A synthetic MNIST-shaped batch: seeded, no data set needed, small enough to run in milliseconds."""
    rng = np.random.default_rng(seed)
    # Sparse bright strokes on a dark background, like digit images; scaled from uint8 like the real data.
    x = np.where(rng.random((n, features)) < 0.2, rng.integers(0, 256, (n, features)), 0) / 255.0
    labels = rng.integers(0, N_CLASSES, n).astype(np.int64)
    return Problem(x, labels, nn.init_params(rng, nn.layer_sizes(features, (32,), N_CLASSES), "relu", "float64"))


@dataclass
class Run:
    """What one backend computed, copied to the host, and which arrays left its device or dtype."""

    initial: list[np.ndarray]  # the weights as they arrived on the device, copied back
    logits: np.ndarray
    loss: np.ndarray
    grads: list[np.ndarray]
    trajectories: dict[str, list[np.ndarray]]  # optimizer name (or "fast") -> parameters after the steps
    misplaced: list[str] = field(default_factory=list)


def run(backend: Backend, dtype: str, problem: Problem, fast: bool = True) -> Run:
    """Forward, loss, backward and `TRAJECTORY_STEPS` updates of every optimizer on ``backend`` in ``dtype``;
    with ``fast``, also of the backend's fast step (the one `train` runs) with `FAST_OPTIMIZER`, as ``"fast"``."""
    xp, want = backend.xp, backend.dtype(dtype)
    misplaced: list[str] = []

    def check(name: str, arrays: Sequence[Any]) -> None:
        # A silent fall back to another device or a promotion to another dtype is a bug, even when the
        # numbers agree: on a GPU it means host copies or float64 arithmetic on every step.
        for i, a in enumerate(arrays):
            if (where := array_api_compat.device(a)) != backend.device:
                misplaced.append(f"{name}[{i}] on {where}")
            if a.dtype != want:
                misplaced.append(f"{name}[{i}] is {a.dtype}")

    x_host, params_host = problem.inputs(dtype)
    x = backend.asarray(x_host)
    params = [backend.asarray(p) for p in params_host]
    targets = nn.one_hot(xp, backend.asarray(problem.labels), N_CLASSES, want)
    logits, cache = nn.forward(xp, params, x, problem.activation)
    loss, dlogits = nn.softmax_cross_entropy(xp, logits, targets)
    grads = nn.backward(xp, params, cache, dlogits, problem.activation)
    for name, arrays in (("weights", params), ("logits", [logits]), ("loss", [loss]), ("grads", grads)):
        check(name, arrays)

    step_fns = {name: nn.train_step(xp, nn.Recipe(problem.activation, name)) for name in nn.OPTIMIZERS}
    recipe = nn.Recipe(problem.activation, FAST_OPTIMIZER)
    if fast and (fast_fn := fast_step(backend, nn.sizes_of(params), recipe, want)) is not None:
        if hasattr(fast_fn, "as_in_long_runs"):  # NumPy's compiles its update partway through a long run
            fast_fn.as_in_long_runs()
        step_fns["fast"] = fast_fn
    finals = {}
    for name, step_fn in step_fns.items():
        opt = nn.OPTIMIZERS[_optimizer(name)]
        p = [xp.asarray(a, copy=True) for a in params]  # a fast step may donate or overwrite what it is given
        state = opt.init(xp, p)
        for count in range(1, TRAJECTORY_STEPS + 1):
            p, state, _, _ = step_fn(p, state, x, targets, count, opt.default_lr)
        check(f"{name} params", p)
        check(f"{name} state", state)
        finals[name] = [backend.to_numpy(a).copy() for a in p]  # a fast step may reuse its buffers

    host = backend.to_numpy
    return Run([host(p) for p in params], host(logits), host(loss), [host(g) for g in grads], finals, misplaced)


def reference(problem: Problem, dtype: str) -> Run:
    """The NumPy float64 run on the inputs a ``dtype`` backend gets (rounded to ``dtype``, then widened)."""
    x, params = problem.inputs(dtype)
    widened = Problem(x.astype(np.float64), problem.labels, [p.astype(np.float64) for p in params], problem.activation)
    return run(make_backend("numpy", "cpu"), "float64", widened, fast=False)


def rel_diff(a: Any, ref: Any) -> float:
    """``max|a - ref| / max|ref|``: the largest difference relative to the scale of the reference array (an
    element-wise relative error means nothing at entries near zero: dead units, zero biases)."""
    a, ref = np.asarray(a, dtype=np.float64), np.asarray(ref, dtype=np.float64)
    if a.shape != ref.shape:
        return float("inf")
    diff = float(np.max(np.abs(a - ref), initial=0.0))
    scale = float(np.max(np.abs(ref), initial=0.0))
    return 0.0 if diff == 0.0 else diff / scale if scale > 0.0 else float("inf")


def max_rel_diff(arrays: Sequence[Any], refs: Sequence[Any]) -> float:
    if len(arrays) != len(refs):
        return float("inf")
    return max((rel_diff(a, r) for a, r in zip(arrays, refs)), default=0.0)


def _optimizer(trajectory: str) -> str:
    """The optimizer a trajectory ran: its name, or `FAST_OPTIMIZER` for the fast step's."""
    return FAST_OPTIMIZER if trajectory == "fast" else trajectory


@dataclass(frozen=True)
class Comparison:
    """One backend, device and dtype against the reference; differences are `rel_diff`s."""

    backend: str
    device: str
    dtype: str
    initial_bitwise: bool
    logits: float
    loss: float
    grads: float
    trajectories: dict[str, float]  # optimizer name (or "fast": the fast step) -> parameters after the steps
    misplaced: tuple[str, ...]

    @property
    def failures(self) -> list[str]:
        """What disagrees, one phrase each; empty when the backend agrees."""
        tol = TOLERANCES[self.dtype]
        out = [] if self.initial_bitwise else ["initial weights are not bit-identical"]
        checks = [("logits", self.logits, tol.forward), ("loss", self.loss, tol.forward)]
        checks.append(("gradients", self.grads, tol.gradients))
        for name, value in self.trajectories.items():
            label = f"the fast step ({FAST_OPTIMIZER})" if name == "fast" else name
            checks.append((f"{label} after {TRAJECTORY_STEPS} steps", value, tol.for_optimizer(_optimizer(name))))
        out += [f"{name} off by {v:.1e} (tolerance {limit:.0e})" for name, v, limit in checks if not v <= limit]
        if self.misplaced:  # `not <=` above so that NaN fails too
            out.append(f"{len(self.misplaced)} array(s) left the device or dtype, e.g. {self.misplaced[0]}")
        return out

    @property
    def passed(self) -> bool:
        return not self.failures


def compare(backend: Backend, dtype: str, problem: Problem, ref: Run | None = None) -> Comparison:
    """Run ``problem`` on ``backend`` in ``dtype`` and measure it against ``ref`` (computed if not given)."""
    ref = reference(problem, dtype) if ref is None else ref
    got = run(backend, dtype, problem)
    _, expected = problem.inputs(dtype)
    # Bit-identical: same dtype, shape and bytes (so -0.0 differs from 0.0 and NaNs compare by their bits).
    bitwise = all(
        a.dtype == b.dtype and a.shape == b.shape and a.tobytes() == b.tobytes() for a, b in zip(got.initial, expected)
    )
    return Comparison(
        backend.name,
        backend.device_name,
        dtype,
        bitwise,
        rel_diff(got.logits, ref.logits),
        rel_diff(got.loss, ref.loss),
        max_rel_diff(got.grads, ref.grads),
        {k: max_rel_diff(v, ref.trajectories[_optimizer(k)]) for k, v in got.trajectories.items()},
        tuple(got.misplaced),
    )
