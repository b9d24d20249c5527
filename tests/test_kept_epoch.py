"""A model that --patience stopped early reports the epoch whose weights it holds: train's checkpoint line,
evaluate's "epoch N of M" and a mark on the training curves; a resumed run's seconds say they add both runs."""

from __future__ import annotations

import contextlib
import io
import re

import pytest

from helpers import DIGITS, run_cli
from xpnet import evaluate, train
from xpnet.cli import plots
from xpnet.training.model import load

pytest.importorskip("sklearn", reason="the digits data set comes with scikit-learn")

# The run of test_patience: stops early on digits, well before 60 epochs.
STOPPING = [*DIGITS, "--val-split", "300", "--lr", "0.003", "--seed", "4", "--epochs", "60", "--patience", "3"]


@pytest.fixture(scope="module")
def stopped(tmp_path_factory):
    """(model, what train printed, best epoch, last epoch) of a run --patience stopped."""
    model = tmp_path_factory.mktemp("kept") / "m.npz"
    out = io.StringIO()  # a module fixture has no capsys
    with contextlib.redirect_stdout(out):
        assert train.main([*STOPPING, "--quiet", "--save", str(model)]) == 0
    ckpt = load(model)
    assert ckpt.state.restored and ckpt.kept_epoch < ckpt.state.epoch  # else this test could not tell
    return model, out.getvalue(), ckpt.kept_epoch, ckpt.state.epoch


def test_train_names_the_kept_epoch_in_its_checkpoint_line(stopped):
    model, out, best, last = stopped
    line = next(line for line in out.splitlines() if line.startswith("checkpoint: "))
    assert line == (
        f"checkpoint: {model} (the weights of epoch {best}, the best on validation; trained to epoch {last}); "
        f"continue it with --resume {model}"
    )


def test_evaluate_says_the_kept_epoch(stopped, capsys):
    model, _, best, last = stopped
    status, out, err = run_cli(capsys, evaluate.main, "xpnet.evaluate", ["--model", str(model), "--device", "cpu"])
    assert status == 0, err
    kept = rf"on digits, epoch {best} of 60 \(the best on validation; stopped after epoch {last} of 60, step \d+\)"
    assert re.search(rf"{kept}; numpy on cpu$", out.splitlines()[0]), out


def test_the_curves_mark_the_kept_epoch(stopped, tmp_path, capsys, monkeypatch):
    pytest.importorskip("matplotlib", reason="the plots are drawn with matplotlib")
    model, _, best, _ = stopped
    drawn = []
    monkeypatch.setattr(plots, "curves", lambda *a, **k: drawn.append(plots_curves(*a, **k)) or drawn[-1])
    argv = ["--model", str(model), "--device", "cpu", "--plot", str(tmp_path / "p")]
    status, _, err = run_cli(capsys, evaluate.main, "xpnet.evaluate", argv)
    assert status == 0, err
    (fig,) = drawn
    for ax in fig.axes:
        marks = [line for line in ax.get_lines() if line.get_label() == f"kept: epoch {best}"]
        assert len(marks) == 1 and list(marks[0].get_xdata()) == [best, best]
    assert f"epoch {best}" in fig.get_suptitle()


plots_curves = plots.curves  # the real one, which the test above wraps


def test_a_model_that_kept_its_last_epoch_has_no_mark():
    pytest.importorskip("matplotlib", reason="the plots are drawn with matplotlib")
    epochs = [{"epoch": k, "loss": 1.0 / k, "train_accuracy": 0.5, "test_accuracy": 0.5} for k in (1, 2, 3)]
    fig = plots.curves(epochs, "t")
    assert not [line for ax in fig.axes for line in ax.get_lines() if line.get_label().startswith("kept")]


def test_a_resumed_run_says_its_seconds_add_both_runs(tmp_path, capsys):
    model = tmp_path / "m.npz"
    status, out, err = run_cli(capsys, train.main, "xpnet.train", [*DIGITS, "--epochs", "2", "--save", str(model)])
    assert status == 0, err
    first = float(re.search(r"after ([\d.]+) s of training\n", out).group(1))
    argv = ["--resume", str(model), "--epochs", "4", "--quiet", "--save", str(model)]
    status, out, err = run_cli(capsys, train.main, "xpnet.train", argv)
    assert status == 0, err
    both = r"after ([\d.]+) s of training, both runs together \(([\d.]+) s before --resume, ([\d.]+) s now\)\n"
    found = re.search(both, out)
    assert found, out
    total, before, now = map(float, found.groups())
    assert before == first and abs(total - before - now) <= 0.011
    assert abs(total - sum(s.seconds for s in load(model).state.history)) <= 0.005
