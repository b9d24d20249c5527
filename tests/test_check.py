"""``python -m xpnet.check``: the table, the JSON, and the exit status 0 / 1 / 2."""

from __future__ import annotations

import json
from dataclasses import replace

import numpy as np
import pytest

from helpers import run_module
from xpnet import check
from xpnet.backend import Probe, registry
from xpnet.backend import probe as real_probe
from xpnet.cli import common as cli


def test_agreeing_backends_exit_0_with_a_table(capsys):
    assert check.main(["--backend", "numpy", "--backend", "array-api-strict", "--dtype", "float32"]) == 0
    out = capsys.readouterr().out
    rows = [line.split() for line in out.splitlines() if line.startswith(("numpy ", "array-api-strict "))]
    assert [r[:3] for r in rows] == [["numpy", "cpu", "float32"], ["array-api-strict", "cpu", "float32"]]
    assert all(r[3] == "same" and r[-2] == "pass" for r in rows)
    assert "every backend agrees (2/2 rows pass)" in out
    # The NumPy line says which update a long run uses, and why not Numba's where it is not.
    from xpnet.backend.fast import numpy_inplace as kernels

    assert f"numpy: numpy {np.__version__}; long runs update with {kernels.describe()}" in out.splitlines()


def test_json_reports_every_difference(capsys):
    assert check.main(["--backend", "numpy", "--dtype", "float64", "--dtype", "float32", "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["passed"] is True
    assert [(r["backend"], r["dtype"]) for r in report["results"]] == [("numpy", "float64"), ("numpy", "float32")]
    float32 = report["results"][1]["max_rel_diff"]
    steps = {"sgd_20_steps", "momentum_20_steps", "adam_20_steps", "fast_20_steps"}  # fast: NumPy's in-place step
    assert set(float32) == {"logits", "loss", "gradients", *steps}
    # float32 against float64 cannot be exact, and must be within its tolerance.
    assert 0 < float32["gradients"] <= report["tolerances"]["float32"]["gradients"]


def test_a_disagreeing_backend_exits_1(monkeypatch, capsys):
    real = check.make_backend

    def slightly_off(name, device):  # a library whose results come back perturbed by one part in a million
        b = real(name, device)
        return replace(b, to_numpy=lambda a: b.to_numpy(a) * (1 + 1e-6)) if name == "array-api-strict" else b

    monkeypatch.setattr(check, "make_backend", slightly_off)
    assert check.main(["--backend", "numpy", "--backend", "array-api-strict", "--dtype", "float64"]) == 1
    out = capsys.readouterr().out
    assert "FAIL array-api-strict cpu float64: initial weights" in out
    assert "SOME BACKEND DISAGREES" in out


def test_a_backend_that_crashes_is_a_failure_not_a_traceback(monkeypatch, capsys):
    def broken(*args, **kwargs):
        raise RuntimeError("CUDA error: an illegal memory access\nwas encountered")

    monkeypatch.setattr(check, "compare", broken)
    assert check.main(["--backend", "numpy", "--dtype", "float32", "--json"]) == 1
    row = json.loads(capsys.readouterr().out)["results"][0]
    assert row["failures"] == ["RuntimeError: CUDA error: an illegal memory access was encountered"]


def test_missing_library_is_listed_and_not_a_failure(monkeypatch, capsys):
    monkeypatch.setitem(registry(), "cupy", replace(registry()["cupy"], module="xpnet_no_such_module"))
    monkeypatch.setattr(check.backends, "names", lambda: ["numpy", "cupy"])  # the default run: every library
    assert check.main(["--dtype", "float32"]) == 0
    assert "cupy: not installed" in capsys.readouterr().out


def test_a_missing_library_asked_for_by_name_exits_1(monkeypatch, capsys):
    monkeypatch.setitem(registry(), "cupy", replace(registry()["cupy"], module="xpnet_no_such_module"))
    assert check.main(["--backend", "cupy", "--dtype", "float32"]) == 1
    out = capsys.readouterr().out
    assert "cupy: PROBLEM: asked for" in out
    assert "CANNOT RUN" in out


def test_bad_usage_exits_2_with_one_line(capsys):
    with pytest.raises(SystemExit) as e:
        cli.run(check.main, ["--dtype", "float16"], prog="xpnet.check")
    assert e.value.code == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "float16" in err


def test_module_runs_from_the_command_line():
    out = run_module("xpnet.check", "--backend", "numpy", "--dtype", "float32", "--json", timeout=120)
    assert out.returncode == 0, out.stderr
    report = json.loads(out.stdout)
    assert report["passed"] is True
    assert [r["backend"] for r in report["results"]] == ["numpy"]


def test_an_installed_library_that_cannot_run_exits_1(monkeypatch, capsys):
    def cupy_without_gpu(name):
        if name == "cupy":
            return Probe("cupy", True, "cupy 14.0 (cupy-cuda12x)", (), "CUDA reports no GPU")
        return real_probe(name)

    monkeypatch.setattr(check, "probe", cupy_without_gpu)
    assert check.main(["--backend", "numpy", "--backend", "cupy", "--dtype", "float32"]) == 1
    assert "PROBLEM: CUDA reports no GPU" in capsys.readouterr().out


def test_a_fast_step_that_strays_from_the_reference_fails_the_check(monkeypatch, capsys):
    """The check covers the step training runs, not only the reference math."""
    from xpnet.backend.fast import numpy_inplace

    real = numpy_inplace.NumpyInplaceStep

    def off_by_a_little(*how):
        step = real(*how)

        def stray(params, state, x, targets, n, lr):
            params, state, loss, logits = step(params, state, x, targets, n, lr)
            return [p * (1 + 1e-3) for p in params], state, loss, logits

        return stray

    monkeypatch.setattr(numpy_inplace, "NumpyInplaceStep", off_by_a_little)
    assert check.main(["--backend", "numpy", "--dtype", "float64"]) == 1
    assert "FAIL numpy cpu float64: the fast step" in capsys.readouterr().out


def test_the_check_runs_the_update_a_long_numpy_run_switches_to(monkeypatch, capsys):
    """NumPy's step compiles its update after many updates (fast/numpy_inplace.py); the check's 20 steps use it."""
    from xpnet.backend.fast import numpy_inplace as kernels

    monkeypatch.setattr(kernels, "load", lambda *_: lambda *arrays_and_scalars: None)  # no update
    assert check.main(["--backend", "numpy", "--dtype", "float64"]) == 1
    assert "FAIL numpy cpu float64: the fast step" in capsys.readouterr().out
