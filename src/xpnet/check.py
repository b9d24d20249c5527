"""``python -m xpnet.check``: does every array library installed here compute what NumPy computes in float64?
`compare` runs one backend beside that reference against the one table of tolerances (`TOLERANCES`, explained
in docs/agreement.md), for the agreement tests and for this command, which prints a row per backend and dtype."""

from __future__ import annotations

import os

if __name__ == "__main__":
    # A tiny problem: one thread answers in milliseconds where one per core may spin-wait for seconds.
    os.environ.setdefault("OMP_NUM_THREADS", "1")

import json
import math
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from typing import Any

import array_api_compat
import numpy as np

from . import backend as backends
from . import nn
from .backend import Backend, fast_step, make_backend, probe
from .cli import common as cli
from .errors import one_line
from .training.runlog import json_number

N_CLASSES = 10  # the synthetic problem is MNIST-shaped
FAST_OPTIMIZER = "adam"  # the fast step is checked with the optimizer training uses by default
TRAJECTORY_STEPS = 20  # optimizer steps taken from the same initial weights before the parameters are compared
# One epoch on `digits` must give the same test accuracy to within this many percentage points (its 359 test
# images: one image on the other side of a decision boundary).
ACCURACY_POINTS = 0.5
DTYPES = ("float64", "float32")
COLUMNS = ["backend", "device", "dtype", "init", "logits", "loss", "grads", *nn.OPTIMIZERS, "fast", "result", "seconds"]


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
    """Images (n, features) in [0, 1], labels (n,) and a ReLU network's initial weights: float64 host arrays."""

    x: np.ndarray
    labels: np.ndarray
    params: list[np.ndarray]

    def inputs(self, dtype: str) -> tuple[np.ndarray, list[np.ndarray]]:
        """The images and weights rounded to ``dtype``: what a backend computing in ``dtype`` is given."""
        return self.x.astype(dtype), [p.astype(dtype) for p in self.params]


def make_problem() -> Problem:
    """A synthetic MNIST-shaped batch: seeded, no data set needed, small enough to run in milliseconds."""
    rng, n, features = np.random.default_rng(0), 128, 784
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


def _optimizer(trajectory: str) -> str:  # the fast step runs FAST_OPTIMIZER
    return FAST_OPTIMIZER if trajectory == "fast" else trajectory


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
    x, params = backend.asarray(x_host), [backend.asarray(p) for p in params_host]
    targets = nn.one_hot(xp, backend.asarray(problem.labels), N_CLASSES, want)
    logits, cache = nn.forward(xp, params, x)  # ReLU, as every step below
    loss, dlogits = nn.softmax_cross_entropy(xp, logits, targets)
    grads = nn.backward(xp, params, cache, dlogits)
    for name, arrays in (("weights", params), ("logits", [logits]), ("loss", [loss]), ("grads", grads)):
        check(name, arrays)

    step_fns = {name: nn.train_step(xp, nn.Recipe("relu", name)) for name in nn.OPTIMIZERS}
    if fast and (fast_fn := fast_step(backend, nn.sizes_of(params), nn.Recipe("relu", FAST_OPTIMIZER), want)):
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
    widened = Problem(x.astype(np.float64), problem.labels, [p.astype(np.float64) for p in params])
    return run(make_backend("numpy", "cpu"), "float64", widened, fast=False)


def rel_diff(a: Any, ref: Any) -> float:
    """``max|a - ref| / max|ref|``: the largest difference relative to the scale of the reference array (an
    element-wise relative error means nothing at entries near zero: dead units, zero biases)."""
    a, ref = np.asarray(a, dtype=np.float64), np.asarray(ref, dtype=np.float64)
    if a.shape != ref.shape:
        return math.inf
    diff = float(np.max(np.abs(a - ref), initial=0.0))
    scale = float(np.max(np.abs(ref), initial=0.0))
    return 0.0 if diff == 0.0 else diff / scale if scale > 0.0 else math.inf


def _worst(arrays: Sequence[Any], refs: Sequence[Any]) -> float:
    return max(map(rel_diff, arrays, refs), default=0.0) if len(arrays) == len(refs) else math.inf


@dataclass(frozen=True)
class Comparison:
    """One backend, device and dtype against the reference (`rel_diff`s), or the ``error`` that stopped it."""

    backend: str
    device: str
    dtype: str
    initial_bitwise: bool = False
    logits: float = math.nan
    loss: float = math.nan
    grads: float = math.nan
    trajectories: dict[str, float] = field(default_factory=dict)  # optimizer (or "fast") -> after the steps
    misplaced: tuple[str, ...] = ()
    error: str = ""
    seconds: float = 0.0

    @property
    def failures(self) -> list[str]:
        """What disagrees, one phrase each; empty when the backend agrees."""
        if self.error:
            return [self.error]
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


def compare(backend: Backend, dtype: str, problem: Problem, ref: Run) -> Comparison:
    """Run ``problem`` on ``backend`` in ``dtype`` and measure it against ``ref``, its `reference`."""
    got = run(backend, dtype, problem)
    _, expected = problem.inputs(dtype)
    # Bit-identical: same dtype, shape and bytes (so -0.0 differs from 0.0 and NaNs compare by their bits).
    bitwise = all(
        a.dtype == b.dtype and a.shape == b.shape and a.tobytes() == b.tobytes() for a, b in zip(got.initial, expected)
    )
    diffs = rel_diff(got.logits, ref.logits), rel_diff(got.loss, ref.loss), _worst(got.grads, ref.grads)
    trajectories = {k: _worst(v, ref.trajectories[_optimizer(k)]) for k, v in got.trajectories.items()}
    return Comparison(backend.name, backend.device_name, dtype, bitwise, *diffs, trajectories, tuple(got.misplaced))


def build_parser() -> cli.ArgumentParser:
    p = cli.ArgumentParser(
        prog=cli.program("check"),
        description="Check that every array library and device found here computes the same logits, loss, "
        "gradients and training steps as NumPy in float64, within the tolerances of docs/agreement.md.",
        epilog=cli.epilog(
            "python -m xpnet.check --backend torch --dtype float32",
            {
                0: "every backend agrees",
                1: "some backend disagrees, or an installed library cannot run (the table says why)",
                2: "bad usage",
                130: "stopped by Ctrl-C",
            },
        ),
    )
    p.add_argument("--backend", action="append", choices=backends.names(), help="only this library (repeatable)")
    p.add_argument("--dtype", action="append", choices=DTYPES, help="only this dtype (default: both)")
    p.add_argument("--json", action="store_true", help="print one JSON object instead of the table")
    return p


def to_json(libraries: list[dict], rows: list[Comparison], passed: bool) -> dict[str, Any]:
    results = []
    for r in rows:
        diffs = {"logits": r.logits, "loss": r.loss, "gradients": r.grads}
        diffs |= {f"{k}_{TRAJECTORY_STEPS}_steps": v for k, v in r.trajectories.items()}
        row = {k: getattr(r, k) for k in ("backend", "device", "dtype", "passed", "failures")}
        row |= {"seconds": round(r.seconds, 4), "initial_bitwise": None if r.error else r.initial_bitwise}
        results.append(row | {"max_rel_diff": None if r.error else {k: json_number(v) for k, v in diffs.items()}})
    tolerances = {k: vars(v) for k, v in TOLERANCES.items()}
    summary = {"passed": passed, "reference": "numpy float64", "tolerances": tolerances, "libraries": libraries}
    return summary | {"results": results}


def format_table(libraries: list[dict], rows: list[Comparison], passed: bool) -> str:
    lines = []
    for lib in libraries:
        problem = f"PROBLEM: {lib['problem']}" if lib["problem"] else lib["note"]
        lines.append(f"{lib['name']}: {lib['version'] + '  ' * bool(problem) if lib['installed'] else ''}{problem}")
    table = [COLUMNS]
    for r in rows:
        cells = ["-"] * (len(COLUMNS) - 5)
        if not r.error:
            diffs = [r.logits, r.loss, r.grads, *(r.trajectories.get(k) for k in (*nn.OPTIMIZERS, "fast"))]
            cells = ["same" if r.initial_bitwise else "DIFF", *("-" if d is None else f"{d:.1e}" for d in diffs)]
        table.append([r.backend, r.device, r.dtype, *cells, "pass" if r.passed else "FAIL", f"{r.seconds:.2f}"])
    widths = [max(len(row[i]) for row in table) for i in range(len(COLUMNS))]
    lines += ["", *("  ".join(cell.ljust(w) for cell, w in zip(row, widths)).rstrip() for row in table)]
    lines += [f"FAIL {r.backend} {r.device} {r.dtype}: {failure}" for r in rows for failure in r.failures]
    verdict = "every backend agrees" if passed else "SOME BACKEND DISAGREES OR CANNOT RUN"
    lines += [
        "",
        "Max relative differences from NumPy float64 (max|a - ref| / max|ref|): logits, loss and gradients of "
        f"one batch, parameters after {TRAJECTORY_STEPS} steps of each optimizer, and of the backend's fast "
        "training step (adam; - where it has none); init: initial weights bit-identical. Tolerances: "
        "docs/agreement.md. Seconds include first-call kernel compilation.",
        f"{verdict} ({sum(r.passed for r in rows)}/{len(rows)} rows pass)",
    ]
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    problem, dtypes = make_problem(), list(dict.fromkeys(args.dtype or DTYPES))
    refs = {dtype: reference(problem, dtype) for dtype in dtypes}
    libraries, rows = [], []
    for name in dict.fromkeys(args.backend or backends.names()):
        # Absent is no failure unless asked for by name; installed yet unable to run is (its user expects it to).
        found = probe(name)
        note = "" if found.installed else found.problem
        trouble = found.problem if found.installed else f"asked for with --backend, but {note}" * bool(args.backend)
        lib = {"name": name, "installed": found.installed, "version": found.version}
        libraries.append(lib | {"problem": trouble, "note": note})
        for device in found.devices:
            for dtype in dtypes:
                start = time.perf_counter()
                try:
                    row = compare(make_backend(name, device), dtype, problem, refs[dtype])
                except Exception as e:  # a backend that cannot start, or crashes in the math, disagrees loudly
                    row = Comparison(name, device, dtype, error=one_line(e, named=True))
                rows.append(replace(row, seconds=time.perf_counter() - start))
    passed = all(r.passed for r in rows) and not any(lib["problem"] for lib in libraries)
    print(json.dumps(to_json(libraries, rows, passed)) if args.json else format_table(libraries, rows, passed))
    return 0 if passed else 1


if __name__ == "__main__":
    sys.exit(cli.run(main, prog="xpnet.check"))
