"""Output that reads right: a named class prints without its index, install hints are commands, every error
of a tool starts with one name, --patience suggests a --val-split that fits, and --device cuda on a machine
without a GPU says so."""

from __future__ import annotations

import json
import re
import shutil
import sys

import numpy as np
import pytest

from helpers import DIGITS, rewrite, run_cli, run_module
from xpnet import backend as backends
from xpnet import predict, train
from xpnet.backend import make_backend, registry, resolve_backend
from xpnet.errors import BackendError

pytest.importorskip("sklearn", reason="the digits data set comes with scikit-learn")


def crafted(model, path, **changes):
    """A copy of ``model`` at ``path`` with its metadata changed."""
    shutil.copy(model, path)

    def change(arrays: dict) -> None:
        meta = json.loads(arrays["meta"].tobytes()) | changes
        arrays["meta"] = np.frombuffer(json.dumps(meta).encode(), dtype=np.uint8)

    return rewrite(path, change)


def test_a_class_with_a_name_of_its_own_prints_without_its_index(digits, tmp_path, capsys):
    data, model = digits
    picture = tmp_path / "d.npy"
    np.save(picture, data.x_test[0].reshape(8, 8))
    argv = ["--model", str(model), "--device", "cpu", "--top", "2", str(picture)]
    status, out, err = run_cli(capsys, predict.main, "xpnet.predict", argv)
    assert status == 0, err
    assert re.fullmatch(r"\S+: \d \(\d+\.\d%\); then \d \(\d+\.\d%\)\n", out), out  # a digit's name is its index
    # Folder classes: index k is the folder digit-(k+3), so an index printed first would read as another digit.
    named = crafted(model, tmp_path / "named.npz", classes=[f"digit-{(k + 3) % 10}" for k in range(10)])
    status, out, err = run_cli(capsys, predict.main, "xpnet.predict", [*argv[:-1], "--model", str(named), argv[-1]])
    assert status == 0, err
    assert re.fullmatch(r"\S+: digit-\d \(\d+\.\d%\); then digit-\d \(\d+\.\d%\)\n", out), out


def test_every_install_hint_is_a_command():
    for spec in registry().values():
        assert spec.install_hint.startswith("pip install "), spec


def test_a_missing_library_says_what_to_install(monkeypatch):
    monkeypatch.setitem(sys.modules, "torch", None)  # what a missing package looks like to import
    with pytest.raises(BackendError) as missing:
        make_backend("torch", "cpu")
    assert "install it with pip install torch" in str(missing.value)
    assert "with see" not in str(missing.value)


def test_flag_and_run_time_errors_of_a_tool_start_with_one_name():
    flag = ["train", "--epochs", "0"]
    run_time = ["train", "--dataset", "idx", "--device", "cpu"]  # an idx set needs --data-dir: found at run time
    for how in (["xpnet"], ["xpnet.train"]):
        for argv in (flag, run_time):
            done = run_module(*how, *argv[1:]) if how == ["xpnet.train"] else run_module("xpnet", *argv)
            assert done.returncode == 2 and done.stderr.startswith("xpnet.train: error: "), (how, argv, done.stderr)


def test_patience_without_validation_suggests_a_split_that_fits(capsys):
    status, _, err = run_cli(capsys, train.main, "xpnet.train", [*DIGITS, "--patience", "2"])
    assert status == 2
    suggested = re.search(r"e\.g\. --val-split (\d+)\)", err)
    assert suggested, err
    argv = [*DIGITS, "--patience", "2", "--val-split", suggested.group(1), "--epochs", "1", "--quiet"]
    status, _, err = run_cli(capsys, train.main, "xpnet.train", argv)
    assert status == 0, err


def test_cuda_on_a_machine_without_a_gpu_says_none_was_found(monkeypatch):
    monkeypatch.setitem(sys.modules, "cupy", None)
    monkeypatch.setattr(backends, "gpu_present", lambda: False)
    with pytest.raises(BackendError) as none:
        resolve_backend("cuda")
    message = str(none.value)
    assert message.startswith("no GPU found on this machine") and 'pip install "xpnet[cuda12]"' in message
    monkeypatch.setattr(backends, "gpu_present", lambda: True)  # a GPU without CuPy: installing CuPy is the fix
    with pytest.raises(BackendError) as missing:
        resolve_backend("cuda")
    assert "no GPU found" not in str(missing.value) and "cupy is not installed" in str(missing.value)
