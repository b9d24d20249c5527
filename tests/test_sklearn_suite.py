"""scikit-learn's own tests of its neural networks, run against xpnet's estimators with only the import changed.

The file is read from the installed scikit-learn at test time (never a copy in this repository), its one import
of `MLPClassifier, MLPRegressor` is pointed at xpnet, and pytest runs it in a fresh process as scikit-learn's CI
does (deprecation and future warnings are errors). Only a test that reads or sets attributes private to
scikit-learn's implementation (`PRIVATE`) may be left out (`LEFT_OUT`, repeated in docs/api.md); xpnet offers
the private names those tests use, so none is. A red run names each scikit-learn test that failed, with the
first lines of its failure.

While working on the harness, ``XPNET_SKLEARN_SUITE=sklearn`` runs the same file against scikit-learn's own
classes (the import left as it is), which must pass.
"""

from __future__ import annotations

import ast
import os
import re
import subprocess
from pathlib import Path
from xml.etree import ElementTree

import pytest
import sklearn

from helpers import run_module

SUITE = Path(sklearn.__file__).parent / "neural_network" / "tests" / "test_mlp.py"
THEIRS = "from sklearn.neural_network import MLPClassifier, MLPRegressor"
OURS = "from xpnet import MLPClassifier, MLPRegressor"

# The tests that read or set names private to scikit-learn's implementation, each with those names.
PRIVATE = {
    "test_fit": ("_coef_grads", "_coef_velocity", "_intercept_grads", "_intercept_velocity", "_no_improvement_count"),
    "test_gradient": ("_loss_grad_lbfgs",),
    "test_learning_rate_warmstart": ("_optimizer",),
    "test_adaptive_learning_rate": ("_optimizer",),
    "test_n_iter_no_change": ("_no_improvement_count",),
    "test_n_iter_no_change_inf": ("_no_improvement_count",),
}
# The tests left out, each with why: only tests of PRIVATE may be. None: xpnet's estimators have the private
# names these tests use (`_optimizer.learning_rate`, `_no_improvement_count`, `_loss_grad_lbfgs`) and train from
# the attributes test_fit sets.
LEFT_OUT: dict[str, str] = {}
TIMEOUT = 900  # seconds for the whole file; scikit-learn's own classes take about 10


def rewritten(source: str, against: str = "xpnet") -> str:
    """``source`` with its one import of scikit-learn's MLPs pointed at xpnet (``against="sklearn"``: unchanged)."""
    lines = source.splitlines(keepends=True)
    where = [i for i, line in enumerate(lines) if line.rstrip("\r\n") == THEIRS]
    if len(where) != 1:
        raise AssertionError(f"{SUITE}: expected the line {THEIRS!r} exactly once, found it {len(where)} times")
    if against == "xpnet":
        lines[where[0]] = OURS + "\n"
    return "".join(lines)


def private_names(source: str) -> dict[str, tuple[str, ...]]:
    """Each test function of ``source`` that reads or sets a private attribute (``obj._name``), with those names."""
    found = {}
    for node in ast.parse(source).body:
        if isinstance(node, ast.FunctionDef) and node.name.startswith("test"):
            names = {
                a.attr
                for a in ast.walk(node)
                if isinstance(a, ast.Attribute) and a.attr.startswith("_") and not a.attr.startswith("__")
            }
            if names:
                found[node.name] = tuple(sorted(names))
    return found


def failures(report: Path) -> list[str]:
    """``name: first lines of the failure`` for each failed or erroring test of a JUnit XML report."""
    found = []
    for case in ElementTree.parse(report).iter("testcase"):
        for kind in ("failure", "error"):
            for problem in case.iter(kind):
                text = (problem.get("message") or "") + "\n" + (problem.text or "")
                first = [line for line in text.strip().splitlines() if line.strip()][:4]
                found.append(f"{case.get('name')} ({kind}): " + " | ".join(first))
    return found


def skips(report: Path) -> list[str]:
    """The reason of each skipped test of a JUnit XML report."""
    return [s.get("message") or "" for case in ElementTree.parse(report).iter("testcase") for s in case.iter("skipped")]


def run_suite(path: Path, deselect: tuple[str, ...] = ()) -> tuple[subprocess.CompletedProcess, Path]:
    """pytest on ``path`` in a fresh Python with this checkout's xpnet, scikit-learn's `global_random_seed`
    fixture (its conftest as a plugin: besides that seed, it skips the tests that download, limits BLAS threads
    to the cores, selects matplotlib's agg and, asked by the environment, makes warnings errors), and no
    configuration of this repository."""
    report = path.parent / "report.xml"
    args = ["-q", "-rfEs", "-p", "no:cacheprovider", "-p", "sklearn.conftest", "-c", os.devnull]
    args += ["--rootdir", str(path.parent), f"--junitxml={report}", "-o", "junit_family=xunit2"]
    args += [a for name in deselect for a in ("--deselect", f"{path.name}::{name}")]
    env = {
        "SKLEARN_SKIP_NETWORK_TESTS": "1",
        "SKLEARN_TESTS_GLOBAL_RANDOM_SEED": "42",
        "SKLEARN_WARNINGS_AS_ERRORS": "1",
    }
    return run_module("pytest", *args, str(path), env=env, timeout=TIMEOUT), report


def test_only_tests_that_use_private_names_may_be_left_out():
    """`PRIVATE` matches the installed scikit-learn's file (a test that starts or stops using a private name
    shows up here), and every test left out is one of them."""
    assert private_names(SUITE.read_text(encoding="utf-8")) == {k: tuple(sorted(v)) for k, v in PRIVATE.items()}
    assert set(LEFT_OUT) <= set(PRIVATE)


def test_docs_api_repeats_the_lists():
    """docs/api.md's table of the tests that use private names, and its line of the tests left out, are these."""
    text = (Path(__file__).resolve().parents[1] / "docs" / "api.md").read_text(encoding="utf-8")
    rows = re.findall(r"^\| `(test_\w+)` \| (.+) \|$", text, flags=re.M)
    assert {name: tuple(re.findall(r"`(_\w+)`", names)) for name, names in rows} == PRIVATE
    left_out = re.search(r"^Tests left out: (.+?)\.", text, flags=re.M).group(1)
    assert left_out == ("none" if not LEFT_OUT else ", ".join(f"`{name}`" for name in LEFT_OUT))


def test_the_import_is_changed_once_or_not_at_all(tmp_path):
    source = SUITE.read_text(encoding="utf-8")
    changed = rewritten(source)
    assert OURS in changed and THEIRS not in changed
    assert changed.count("\n") == source.count("\n") and rewritten(source, against="sklearn") == source
    for broken in (source.replace(THEIRS, "import sklearn"), source + THEIRS + "\n"):
        with pytest.raises(AssertionError, match="exactly once"):
            rewritten(broken)


def test_a_red_run_names_each_failed_test_and_why(tmp_path):
    """The harness itself: a failing and an erroring test are reported by name with their first lines."""
    path = tmp_path / "test_tiny.py"
    path.write_text(
        "import pytest\n\n"
        "def test_good(global_random_seed):\n    assert global_random_seed == 42\n\n"
        "def test_bad():\n    assert 1 + 1 == 3, 'arithmetic'\n\n"
        "@pytest.fixture\ndef broken():\n    raise RuntimeError('fixture broke')\n\n"
        "def test_broken(broken):\n    pass\n\n"
        "def test_left_out():\n    assert False\n",
        encoding="utf-8",
    )
    done, report = run_suite(path, deselect=("test_left_out",))
    assert done.returncode == 1, done.stdout + done.stderr
    found = failures(report)
    assert len(found) == 2, found
    assert found[0].startswith("test_bad (failure): ") and "arithmetic" in found[0]
    assert found[1].startswith("test_broken (error): ") and "fixture broke" in found[1]


def test_scikit_learns_own_mlp_tests_pass_against_xpnet(tmp_path):
    against = os.environ.get("XPNET_SKLEARN_SUITE", "xpnet")  # "sklearn": the harness on scikit-learn's classes
    path = tmp_path / "test_mlp.py"
    path.write_text(rewritten(SUITE.read_text(encoding="utf-8"), against), encoding="utf-8")
    try:
        done, report = run_suite(path, deselect=tuple(LEFT_OUT))
    except subprocess.TimeoutExpired as e:
        tail = e.stdout.decode(errors="replace") if isinstance(e.stdout, bytes) else e.stdout or ""
        pytest.fail(f"scikit-learn's MLP tests ran past {TIMEOUT} s; their output so far:\n{tail[-3000:]}")
    assert report.is_file(), done.stdout[-3000:] + done.stderr[-3000:]
    failed = failures(report)
    summary = done.stdout.strip().splitlines()[-1] if done.stdout.strip() else done.stderr[-2000:]
    assert not failed, f"{len(failed)} of scikit-learn's MLP tests failed against {against} ({summary}):\n" + "\n".join(
        failed
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert " passed" in summary and (f"{len(LEFT_OUT)} deselected" in summary or not LEFT_OUT), summary
    skipped = skips(report)  # only for an optional library missing here (pandas)
    assert all("could not import" in why for why in skipped), skipped
