"""xpnet's estimators beside scikit-learn's on the same real data: scores over seeds, epochs and seconds per epoch.

The same script for both, only the class changes (the drop-in promise). Each case fits both estimators with the
same parameters for each seed, back to back, so a burst of load on a shared machine hits both alike (after one
untimed two-epoch fit of each, which pays for imports and compiled kernels), and reports each side's scores, their
spread (min..max over the seeds), whether xpnet's mean lies within scikit-learn's spread, the epochs (lbfgs:
iterations) and the seconds per epoch (per iteration) side by side. The cases:

- ``adam-early``, ``adam``: ``MLPClassifier`` on the float32 pixels in [0, 1] of the first ``--n-train``
  Fashion-MNIST training images (Debian's package; else scikit-learn's digits), accuracy on the whole test set,
  with early stopping and for 30 epochs; ``lbfgs``: the same with ``solver="lbfgs"``;
- ``reg-squared``, ``reg-poisson``, ``reg-lbfgs``: ``MLPRegressor`` on scikit-learn's diabetes data (442
  patients, 10 measurements, a positive disease-progression target, so the Poisson loss makes sense), a fixed
  quarter held out, R² on it: squared error and Poisson with Adam (rate 0.01, 1000 epochs at most), squared
  error with lbfgs;
- ``reg-ink``: ``MLPRegressor`` on the pictures: the mean ink of each picture's lower half from its upper half,
  R² on the test set, 30 epochs.

Run from the repository root: ``PYTHONPATH=src python scripts/compare_sklearn.py [--n-train 4000] [--seeds 3]
[--cases adam,lbfgs,...]``.
"""

from __future__ import annotations

import argparse
import math
import statistics
import sys
import time
import warnings
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
from sklearn.exceptions import ConvergenceWarning

sys.path.insert(0, str(Path(__file__).resolve().parent))  # benchlib sits beside this script

from benchlib import machine, peers
from xpnet.data import Dataset
from xpnet.data.load import SYSTEM_DIRS, find_idx_files, load_dataset

Arrays = tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]  # X, y, X_test, y_test


@dataclass(frozen=True)
class Case:
    """One comparison: which estimator and solver, on which data, with which parameters."""

    title: str
    fit: str  # the row of `peers.FITS`: "fit", "fit-reg", "lbfgs", "lbfgs-reg"
    data: str  # "pictures", "ink" (the pictures' lower-half ink) or "diabetes"
    params: dict[str, Any] = field(default_factory=dict)

    @property
    def unit(self) -> str:
        return "iteration" if peers.FITS[self.fit][1] == "lbfgs" else "epoch"


def make_cases(hidden: tuple[int, ...], lbfgs_iterations: int) -> dict[str, Case]:
    adam = {"hidden_layer_sizes": hidden, "batch_size": 128}
    diabetes = {"hidden_layer_sizes": (32,), "learning_rate_init": 0.01, "max_iter": 1000}  # Adam's 1e-3 barely moves
    return {
        "adam-early": Case("classifier, adam, early_stopping", "fit", "pictures", adam | {"early_stopping": True}),
        "adam": Case("classifier, adam, 30 epochs", "fit", "pictures", adam | {"max_iter": 30}),
        "lbfgs": Case(
            f"classifier, lbfgs, {lbfgs_iterations} iterations at most",
            "lbfgs",
            "pictures",
            {"hidden_layer_sizes": hidden, "solver": "lbfgs", "max_iter": lbfgs_iterations},
        ),
        "reg-squared": Case("regressor, squared_error, adam", "fit-reg", "diabetes", diabetes),
        "reg-poisson": Case("regressor, poisson, adam", "fit-reg", "diabetes", diabetes | {"loss": "poisson"}),
        "reg-lbfgs": Case(
            "regressor, squared_error, lbfgs", "lbfgs-reg", "diabetes", {"hidden_layer_sizes": (32,), "solver": "lbfgs"}
        ),
        "reg-ink": Case(
            "regressor, squared_error, adam, 30 epochs: lower-half ink from the upper half",
            "fit-reg",
            "ink",
            adam | {"max_iter": 30},
        ),
    }


def pictures(n_train: int) -> Dataset:
    d = load_dataset("fashion-mnist" if find_idx_files(SYSTEM_DIRS["fashion-mnist"]) is not None else "digits")
    return Dataset(d.name, d.x_train[:n_train], d.y_train[:n_train], d.x_test, d.y_test, d.image_shape, d.source)


def diabetes() -> Arrays:
    """scikit-learn's bundled diabetes data as it ships (features centred and scaled), a fixed quarter to test."""
    from sklearn.datasets import load_diabetes
    from sklearn.model_selection import train_test_split

    x, y = load_diabetes(return_X_y=True)
    x_train, x_test, y_train, y_test = train_test_split(x, y, test_size=0.25, random_state=0)
    return x_train, y_train, x_test, y_test


@dataclass
class Side:
    """One estimator's fits of a case, a seed each."""

    scores: list[float] = field(default_factory=list)  # NaN where the fit failed
    iterations: list[int] = field(default_factory=list)
    seconds: list[float] = field(default_factory=list)  # per epoch, or per lbfgs iteration

    @property
    def finite(self) -> list[float]:
        return [s for s in self.scores if math.isfinite(s)]

    @property
    def mean(self) -> float:
        return statistics.fmean(self.finite) if self.finite else math.nan


def fit_once(which: str, case: Case, data: Arrays, seed: int) -> tuple[float, int, float]:
    """(test score, epochs or iterations, seconds per epoch or iteration) of one fit; a failed fit scores NaN."""
    x, y, x_test, y_test = data
    est = peers.estimator_class(which, case.fit)(random_state=seed, **case.params)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        start = time.perf_counter()
        try:
            est.fit(x, y)
        except ValueError as e:  # scikit-learn's "Solver produced non-finite parameter weights", or xpnet's kin
            print(f"  {which} seed {seed}: fit failed: {e}")
            return math.nan, 0, math.nan
        seconds = time.perf_counter() - start
    return float(est.score(x_test, y_test)), int(est.n_iter_), seconds / max(int(est.n_iter_), 1)


def spread(values: list[float]) -> str:
    return f"{min(values):.4f}..{max(values):.4f}" if values else "-"


def run_case(case: Case, data: Arrays, seeds: int) -> dict[str, Side]:
    """Both estimators for every seed, back to back; prints one line per side and the verdict."""
    sides = {"xpnet": Side(), "sklearn": Side()}
    warm = replace(case, params=case.params | {"max_iter": 2})
    for which in sides:  # untimed: the first fit of a kind pays for imports and compiled kernels
        fit_once(which, warm, data, 0)
    for seed in range(seeds):
        for which, side in sides.items():
            score, iterations, seconds = fit_once(which, case, data, seed)
            side.scores.append(score)
            side.iterations.append(iterations)
            side.seconds.append(seconds)
    ours, theirs = sides["xpnet"], sides["sklearn"]
    per = "s/iter" if case.unit == "iteration" else "s/epoch"
    seed_cols = "".join(f"{f'seed {s}':>9}" for s in range(seeds))
    print(f"{'impl':<9}{seed_cols}{'mean':>9}  {'min..max':<15}{case.unit + 's':>16}{per:>10}")
    for which, side in sides.items():
        scores = "".join(f"{s:>9.4f}" for s in side.scores)
        its = ",".join(map(str, side.iterations))
        seconds = statistics.median(s for s in side.seconds if math.isfinite(s)) if side.finite else math.nan
        print(f"{which:<9}{scores}{side.mean:>9.4f}  {spread(side.finite):<15}{its:>16}{seconds:>10.4f}")
    if not theirs.finite or not math.isfinite(ours.mean):
        verdict = "cannot be placed against scikit-learn's spread (no finite score on one side)"
    elif ours.mean < min(theirs.finite) or ours.mean > max(theirs.finite):
        where = "below" if ours.mean < min(theirs.finite) else "above"
        verdict = f"does NOT lie within scikit-learn's spread ({where} it)"
    else:
        verdict = "lies within scikit-learn's spread"
    ratios = [a / b for a, b in zip(ours.seconds, theirs.seconds) if math.isfinite(a / b)]
    ratio = f"median {statistics.median(ratios):.2f} ({min(ratios):.2f} to {max(ratios):.2f})" if ratios else "-"
    print(f"xpnet's mean {verdict}; xpnet / sklearn {per}: {ratio}")
    return sides


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--n-train", type=int, default=4000, help="training pictures (default: 4000)")
    p.add_argument("--seeds", type=int, default=3)
    p.add_argument("--hidden", type=lambda t: tuple(int(h) for h in t.split(",")), default=(256, 128))
    p.add_argument("--lbfgs-iterations", type=int, default=100, help="the lbfgs classifier's max_iter (default: 100)")
    p.add_argument("--cases", type=lambda t: t.split(","), default=None, help="a comma list (default: every case)")
    args = p.parse_args(argv)
    cases = make_cases(args.hidden, args.lbfgs_iterations)
    chosen = args.cases or list(cases)
    if unknown := [c for c in chosen if c not in cases]:
        p.error(f"unknown case {','.join(unknown)}: choose from {','.join(cases)}")
    d = pictures(args.n_train)
    print("\n".join(machine.format_setup(machine.describe_setup(d, argv or sys.argv[1:])).splitlines()[:2]))
    data = {
        "pictures": lambda: peers.fit_data(d, "fit"),
        "ink": lambda: peers.fit_data(d, "fit-reg"),
        "diabetes": diabetes,
    }
    described = {
        "pictures": f"{d.name}: {len(d.y_train)} training images, accuracy on {len(d.y_test)} test images",
        "ink": f"{d.name}: {len(d.y_train)} training images, R² on {len(d.y_test)} test images",
        "diabetes": "diabetes: 331 patients to train, R² on 111",
    }
    for name in chosen:
        case = cases[name]
        print(f"\n{name}: {case.title}; {described[case.data]}; {case.params}")
        run_case(case, data[case.data](), args.seeds)
    return 0


if __name__ == "__main__":
    sys.exit(main())
