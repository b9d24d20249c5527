"""``python -m xpnet.check``: does every array library installed here compute what NumPy computes?

For someone who has just installed CuPy (or PyTorch, or JAX): runs `xpnet.verify` on each backend, device and
dtype found against NumPy in float64 and prints one row each. Exit status 0 when every one agrees, 1 when any
disagrees or an installed library cannot run, 2 on bad usage.
"""

from __future__ import annotations

import os

if __name__ == "__main__":
    # The check's problem is tiny: one thread answers in milliseconds where one per core can spin-wait for
    # seconds on a busy machine. Set before NumPy loads; the numbers agree whatever the thread count.
    os.environ.setdefault("OMP_NUM_THREADS", "1")

import json
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from . import backend as backends
from .backend import make_backend, probe
from .cli import common as cli
from .errors import one_line
from .nn import OPTIMIZERS
from .training.runlog import json_number
from .verify import TOLERANCES, TRAJECTORY_STEPS, Comparison, compare, make_problem, reference

DTYPES = ("float64", "float32")
COLUMNS = ["backend", "device", "dtype", "init", "logits", "loss", "grads", *OPTIMIZERS, "fast", "result", "seconds"]


@dataclass
class Row:
    """One backend, device and dtype: its comparison, or the reason it could not run."""

    backend: str
    device: str
    dtype: str
    comparison: Comparison | None = None
    error: str = ""
    seconds: float = 0.0

    @property
    def failures(self) -> list[str]:
        return [self.error] if self.error else self.comparison.failures


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
    p.add_argument(
        "--backend",
        action="append",
        choices=backends.names(),
        help="check only this library (repeatable; default: every one installed)",
    )
    p.add_argument("--dtype", action="append", choices=DTYPES, help="check only this dtype (default: both)")
    p.add_argument("--json", action="store_true", help="print one JSON object instead of the table")
    return p


def run_checks(names: Sequence[str], dtypes: Sequence[str], asked: bool) -> tuple[list[dict[str, Any]], list[Row]]:
    """Probe each library, then compare each (device, dtype) it offers against the NumPy reference.

    A library that is absent is no failure, unless ``asked`` for by name (``--backend``); one that is installed
    yet cannot run is (the user who installed it expects it to work).
    """
    problem = make_problem()
    refs = {dtype: reference(problem, dtype) for dtype in dtypes}
    libraries, rows = [], []
    for name in names:
        found = probe(name)
        note = "" if found.installed else found.problem
        trouble = found.problem if found.installed else (f"asked for with --backend, but {note}" if asked else "")
        libraries.append(
            {"name": name, "installed": found.installed, "version": found.version, "problem": trouble, "note": note}
        )
        for device in found.devices:
            for dtype in dtypes:
                start = time.perf_counter()
                try:
                    row = Row(name, device, dtype, compare(make_backend(name, device), dtype, problem, refs[dtype]))
                except Exception as e:  # a backend that cannot start, or crashes in the math, disagrees loudly
                    row = Row(name, device, dtype, error=one_line(e, named=True))
                row.seconds = time.perf_counter() - start
                rows.append(row)
    return libraries, rows


def to_json(libraries: list[dict[str, Any]], rows: list[Row], passed: bool) -> dict[str, Any]:
    results = []
    for r in rows:
        c = r.comparison
        diffs = {"logits": c.logits, "loss": c.loss, "gradients": c.grads} if c else {}
        diffs.update({f"{k}_{TRAJECTORY_STEPS}_steps": v for k, v in (c.trajectories.items() if c else ())})
        results.append(
            {
                "backend": r.backend,
                "device": r.device,
                "dtype": r.dtype,
                "passed": not r.failures,
                "failures": r.failures,
                "seconds": round(r.seconds, 4),
                "initial_bitwise": c.initial_bitwise if c else None,
                "max_rel_diff": {k: json_number(v) for k, v in diffs.items()} if c else None,
            }
        )
    tolerances = {k: vars(v) for k, v in TOLERANCES.items()}
    return {
        "passed": passed,
        "reference": "numpy float64",
        "tolerances": tolerances,
        "libraries": libraries,
        "results": results,
    }


def format_table(libraries: list[dict[str, Any]], rows: list[Row], passed: bool) -> str:
    lines = []
    for lib in libraries:
        problem = f"PROBLEM: {lib['problem']}" if lib["problem"] else lib["note"]
        lines.append(f"{lib['name']}: {lib['version'] + '  ' * bool(problem) if lib['installed'] else ''}{problem}")
    table = [COLUMNS]
    for r in rows:
        cells = ["-"] * (len(COLUMNS) - 5)
        if c := r.comparison:
            diffs = [c.logits, c.loss, c.grads, *(c.trajectories[k] for k in OPTIMIZERS)]
            fast = c.trajectories.get("fast")
            cells = [
                "same" if c.initial_bitwise else "DIFF",
                *(f"{d:.1e}" for d in diffs),
                "-" if fast is None else f"{fast:.1e}",
            ]
        table.append([r.backend, r.device, r.dtype, *cells, "FAIL" if r.failures else "pass", f"{r.seconds:.2f}"])
    widths = [max(len(row[i]) for row in table) for i in range(len(COLUMNS))]
    lines += ["", *("  ".join(cell.ljust(w) for cell, w in zip(row, widths)).rstrip() for row in table)]
    lines += [f"FAIL {r.backend} {r.device} {r.dtype}: {failure}" for r in rows for failure in r.failures]
    verdict = "every backend agrees" if passed else "SOME BACKEND DISAGREES OR CANNOT RUN"
    return "\n".join(
        [
            *lines,
            "",
            "Max relative differences from NumPy float64 (max|a - ref| / max|ref|): logits, loss and gradients of "
            f"one batch, parameters after {TRAJECTORY_STEPS} steps of each optimizer, and of the backend's fast "
            "training step (adam; - where it has none); init: initial weights bit-identical. Tolerances: "
            "docs/agreement.md. Seconds include first-call kernel compilation.",
            f"{verdict} ({sum(not r.failures for r in rows)}/{len(rows)} rows pass)",
        ]
    )


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    names = list(dict.fromkeys(args.backend or backends.names()))
    libraries, rows = run_checks(names, list(dict.fromkeys(args.dtype or DTYPES)), asked=bool(args.backend))
    passed = not any(r.failures for r in rows) and not any(lib["problem"] for lib in libraries)
    print(json.dumps(to_json(libraries, rows, passed)) if args.json else format_table(libraries, rows, passed))
    return 0 if passed else 1


if __name__ == "__main__":
    sys.exit(cli.run(main, prog="xpnet.check"))
