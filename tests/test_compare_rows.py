"""scripts/compare_sklearn.py: its cases run on tiny data, and its verdicts (spread, within, ratios) are right.

Scores and timings themselves are never asserted; what is tested is that the comparison fits both sides alike
and reports what it measured.
"""

import math
import sys

import pytest

from helpers import load_script

pytest.importorskip("sklearn")


@pytest.fixture(scope="module")
def compare():
    yield load_script("compare_sklearn")  # puts scripts/ on sys.path, so benchlib imports
    sys.modules.pop("compare_sklearn", None)


def test_the_new_cases_run_on_tiny_data(compare, capsys):
    argv = "--n-train 200 --seeds 2 --hidden 8 --lbfgs-iterations 3 --cases lbfgs,reg-poisson,reg-lbfgs,reg-ink"
    assert compare.main(argv.split()) == 0
    out = capsys.readouterr().out
    assert out.startswith("cpu: ") and "kernel " in out.splitlines()[1]  # the CPU and the BLAS kernel
    blocks = out.split("\n\n")[1:]
    assert [b.split(":")[0] for b in blocks] == ["lbfgs", "reg-poisson", "reg-lbfgs", "reg-ink"]
    for block in blocks:
        lines = block.splitlines()
        per = "s/iter" if "lbfgs" in lines[0].split(":")[0] else "s/epoch"
        assert lines[1].split()[:3] == ["impl", "seed", "0"] and lines[1].endswith(per)
        assert lines[2].startswith("xpnet ") and lines[3].startswith("sklearn ")
        assert len(lines[2].split()) == 1 + 2 + 4  # two seeds, mean, min..max, epochs, seconds
        assert "within scikit-learn's spread" in lines[4] and f"xpnet / sklearn {per}: median " in lines[4]
    assert "'loss': 'poisson'" in blocks[1] and "diabetes" in blocks[1] and "R²" in blocks[3]
    assert "iterations" in blocks[0].splitlines()[1] and ",".join(["3"] * 2) in blocks[0]  # lbfgs ran 3 iterations


@pytest.mark.parametrize(
    "ours, verdict",
    [
        ([0.5, 0.7], "lies within"),
        ([0.7, 0.9], "does NOT lie within scikit-learn's spread (above it)"),
        ([0.4, 0.5], "does NOT lie within scikit-learn's spread (below it)"),
    ],
)
def test_the_verdict_reads_each_side_s_spread(compare, monkeypatch, capsys, ours, verdict):
    scores = {"xpnet": iter([9.0, *ours]), "sklearn": iter([9.0, 0.55, 0.65])}  # the first: the warm-up fit's
    seconds = {"xpnet": 2.0, "sklearn": 4.0}
    monkeypatch.setattr(compare, "fit_once", lambda which, case, data, seed: (next(scores[which]), 3, seconds[which]))
    sides = compare.run_case(compare.make_cases((4,), 2)["adam"], None, seeds=2)
    assert sides["xpnet"].scores == ours and sides["sklearn"].scores == [0.55, 0.65]
    out = capsys.readouterr().out
    assert f"{sum(ours) / 2:.4f}  {ours[0]:.4f}..{ours[1]:.4f}" in out and "0.6000  0.5500..0.6500" in out
    assert f"xpnet's mean {verdict}" in out
    assert "s/epoch: median 0.50 (0.50 to 0.50)" in out


def test_a_failed_fit_scores_nan_and_the_others_go_on(compare, monkeypatch, capsys):
    class Diverges:
        def __init__(self, **params):
            pass

        def fit(self, x, y):
            raise ValueError("Solver produced non-finite parameter weights")

    real = compare.peers.estimator_class
    monkeypatch.setattr(compare.peers, "estimator_class", lambda w, f: Diverges if w == "xpnet" else real(w, f))
    case = compare.make_cases((4,), 2)["reg-lbfgs"]
    sides = compare.run_case(case, compare.diabetes(), seeds=1)
    assert math.isnan(sides["xpnet"].scores[0]) and math.isnan(sides["xpnet"].mean)
    assert math.isfinite(sides["sklearn"].scores[0])
    out = capsys.readouterr().out
    assert "xpnet seed 0: fit failed: Solver produced non-finite" in out and "cannot be placed" in out


def test_an_unknown_case_is_refused(compare, capsys):
    with pytest.raises(SystemExit) as exc:
        compare.main(["--cases", "adam,nope"])
    assert exc.value.code == 2 and "unknown case nope" in capsys.readouterr().err
