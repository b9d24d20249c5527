"""``python -m xpnet.check``: does every array library installed here compute what NumPy computes?

For someone who has just installed CuPy (or PyTorch, or JAX) and wants to know it works: finds each backend
and device, runs the agreement checks of `xpnet.verify` against NumPy in float64 on a small synthetic
MNIST-shaped problem, and prints one row per backend, device and dtype. Exit status 0 when every one agrees,
1 when any disagrees or an installed library cannot run, 2 on bad usage.
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
from dataclasses import dataclass, field
from typing import Any

from . import backend as backends
from .backend import make_backend, probe
from .cli import common as cli
from .errors import one_line
from .nn import OPTIMIZERS
from .training.runlog import json_number
from .verify import TOLERANCES, TRAJECTORY_STEPS, Comparison, compare, make_problem, reference

DTYPES = ("float64", "float32")
EXIT_DISAGREE = 1


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

    @property
    def passed(self) -> bool:
        return not self.failures


@dataclass
class Report:
    libraries: list[dict[str, Any]] = field(default_factory=list)
    rows: list[Row] = field(default_factory=list)

    @property
    def passed(self) -> bool:
        return all(r.passed for r in self.rows) and not any(lib["problem"] for lib in self.libraries)


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


def run_checks(backends: Sequence[str], dtypes: Sequence[str], asked: bool = False) -> Report:
    """Probe each library, then compare each (device, dtype) it offers against the NumPy reference.

    ``asked``: the libraries were named one by one (``--backend``), so one that is absent is a failure.
    """
    problem = make_problem()
    refs = {dtype: reference(problem, dtype) for dtype in dtypes}
    report = Report()
    for name in backends:
        found = probe(name)
        # A library that is absent is no failure, unless asked for by name; one that is installed yet cannot
        # run is (the user who installed it expects it to work).
        if found.installed:
            trouble, note = found.problem, ""
        else:
            trouble, note = (f"asked for with --backend, but {found.problem}" if asked else ""), found.problem
        report.libraries.append(
            {"name": name, "installed": found.installed, "version": found.version, "problem": trouble, "note": note}
        )
        for device in found.devices:
            try:
                backend = make_backend(name, device)
            except Exception as e:
                report.rows += [Row(name, device, dtype, error=one_line(e, named=True)) for dtype in dtypes]
                continue
            for dtype in dtypes:
                start = time.perf_counter()
                try:
                    row = Row(name, device, dtype, compare(backend, dtype, problem, refs[dtype]))
                except Exception as e:  # a backend that crashes in the math disagrees, loudly
                    row = Row(name, device, dtype, error=one_line(e, named=True))
                row.seconds = time.perf_counter() - start
                report.rows.append(row)
    return report


def to_json(report: Report) -> dict[str, Any]:
    rows = []
    for r in report.rows:
        c = r.comparison
        rows.append(
            {
                "backend": r.backend,
                "device": r.device,
                "dtype": r.dtype,
                "passed": r.passed,
                "failures": r.failures,
                "seconds": round(r.seconds, 4),
                "initial_bitwise": c.initial_bitwise if c else None,
                "max_rel_diff": {
                    "logits": json_number(c.logits),
                    "loss": json_number(c.loss),
                    "gradients": json_number(c.grads),
                    **{f"{k}_{TRAJECTORY_STEPS}_steps": json_number(v) for k, v in c.trajectories.items()},
                }
                if c
                else None,
            }
        )
    return {
        "passed": report.passed,
        "reference": "numpy float64",
        "tolerances": {k: vars(v) for k, v in TOLERANCES.items()},
        "libraries": report.libraries,
        "results": rows,
    }


COLUMNS = ["backend", "device", "dtype", "init", "logits", "loss", "grads", *OPTIMIZERS, "fast", "result", "seconds"]


def format_table(report: Report) -> str:
    lines = []
    for lib in report.libraries:
        if lib["installed"]:
            problem = f"  PROBLEM: {lib['problem']}" if lib["problem"] else ""
            lines.append(f"{lib['name']}: {lib['version']}{problem}")
        else:
            lines.append(f"{lib['name']}: {'PROBLEM: ' + lib['problem'] if lib['problem'] else lib['note']}")
    lines.append("")
    table = [COLUMNS]
    for r in report.rows:
        c = r.comparison
        if c is None:
            cells = ["-"] * (len(COLUMNS) - 5)
        else:
            diffs = [c.logits, c.loss, c.grads, *(c.trajectories[k] for k in OPTIMIZERS)]
            cells = ["same" if c.initial_bitwise else "DIFF", *(f"{d:.1e}" for d in diffs)]
            cells.append(f"{c.trajectories['fast']:.1e}" if "fast" in c.trajectories else "-")
        table.append([r.backend, r.device, r.dtype, *cells, "pass" if r.passed else "FAIL", f"{r.seconds:.2f}"])
    widths = [max(len(row[i]) for row in table) for i in range(len(COLUMNS))]
    lines += ["  ".join(cell.ljust(w) for cell, w in zip(row, widths)).rstrip() for row in table]
    for r in report.rows:
        for failure in r.failures:
            lines.append(f"FAIL {r.backend} {r.device} {r.dtype}: {failure}")
    lines.append("")
    lines.append(
        "Max relative differences from NumPy float64 (max|a - ref| / max|ref|): logits, loss and gradients of "
        f"one batch, parameters after {TRAJECTORY_STEPS} steps of each optimizer, and of the backend's fast "
        f"training step (adam; - where it has none); init: initial weights bit-identical. Tolerances: "
        "docs/agreement.md. Seconds include first-call kernel compilation."
    )
    verdict = "every backend agrees" if report.passed else "SOME BACKEND DISAGREES OR CANNOT RUN"
    lines.append(f"{verdict} ({sum(r.passed for r in report.rows)}/{len(report.rows)} rows pass)")
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    chosen = list(dict.fromkeys(args.backend or backends.names()))
    dtypes = list(dict.fromkeys(args.dtype or DTYPES))
    report = run_checks(chosen, dtypes, asked=bool(args.backend))
    print(json.dumps(to_json(report)) if args.json else format_table(report))
    return 0 if report.passed else EXIT_DISAGREE


if __name__ == "__main__":
    sys.exit(cli.run(main, prog="xpnet.check"))
