"""Issue 33: no output of any command may be one of its inputs, another of its outputs or its own redirected
standard output. Each is refused (one line naming both flags, exit 2) before anything is written."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys

import numpy as np
import pytest

from helpers import DIGITS, SRC, run_cli
from xpnet import evaluate, export, predict
from xpnet.errors import XpnetError
from xpnet.files import refuse_shared

TOOLS = {  # flag: (main, prog, extra argv, the output file, relative to OUT)
    "--onnx": (export.main, "xpnet.export", ["--onnx", "OUT/m.onnx"], "m.onnx"),
    "--save-input": (predict.main, "xpnet.predict", ["PICTURE", "--save-input", "OUT"], "d.seen.png"),
    "--plot": (evaluate.main, "xpnet.evaluate", ["--plot", "OUT"], "confusion-matrix.png"),
}
MAKE = {  # how the output file comes to be the model
    "same path": lambda out, model: shutil.move(model, out),
    "symlink": lambda out, model: out.symlink_to(model),
    "hard link": lambda out, model: os.link(model, out),
}


def setup(tmp_path, digits, flag):
    data, trained = digits
    model, picture, out = tmp_path / "m.npz", tmp_path / "d.npy", tmp_path / "out"
    shutil.copy(trained, model)
    np.save(picture, data.x_test[0].reshape(8, 8))
    out.mkdir()
    main, prog, argv, name = TOOLS[flag]
    argv = [a.replace("OUT", str(out)).replace("PICTURE", str(picture)) for a in argv]
    return main, prog, argv, out / name, model, picture


def refused(status: int, err: str, *words: str) -> None:
    assert status == 2 and err.count("\n") == 1 and "Traceback" not in err, err
    for w in words:
        assert w in err, err


@pytest.mark.parametrize("how", MAKE)
@pytest.mark.parametrize("flag", TOOLS)
def test_an_output_that_is_the_model_is_refused_and_the_model_kept(digits, tmp_path, capsys, flag, how):
    main, prog, argv, out, model, _ = setup(tmp_path, digits, flag)
    before = model.read_bytes()
    MAKE[how](out, model)
    model = out if how == "same path" else model
    status, stdout, err = run_cli(capsys, main, prog, ["--model", str(model), *argv])
    refused(status, err, flag, "the --model file", "one file cannot be both")
    assert model.read_bytes() == before and stdout == ""
    assert out.is_symlink() == (how == "symlink")


def test_a_save_input_picture_that_is_an_input_picture_is_refused(digits, tmp_path, capsys):
    main, prog, argv, out, model, picture = setup(tmp_path, digits, "--save-input")
    before = picture.read_bytes()
    out.symlink_to(picture)
    status, _, err = run_cli(capsys, main, prog, ["--model", str(model), *argv])
    refused(status, err, "--save-input", "the IMAGE file")
    assert picture.read_bytes() == before


def test_two_plots_that_are_one_file_are_refused(digits, tmp_path, capsys):
    main, prog, argv, out, model, _ = setup(tmp_path, digits, "--plot")
    (out.parent / "worst-misclassified.png").symlink_to(out)  # neither exists yet
    status, _, err = run_cli(capsys, main, prog, ["--model", str(model), *argv])
    refused(status, err, "--plot", "the --plot file")
    assert sorted(p.name for p in out.parent.iterdir()) == ["worst-misclassified.png"]


def test_the_same_picture_twice_is_no_clash(digits, tmp_path, capsys):
    main, prog, argv, out, model, picture = setup(tmp_path, digits, "--save-input")
    status, stdout, err = run_cli(capsys, main, prog, ["--model", str(model), str(picture), *argv])
    assert status == 0 and len(stdout.splitlines()) == 2, err
    assert sorted(p.name for p in out.parent.iterdir()) == ["d-2.seen.png", "d.seen.png"]


def test_the_library_rule_compares_by_identity_and_allows_what_it_is_told(tmp_path):
    a = tmp_path / "a"
    a.write_bytes(b"a")
    os.link(a, tmp_path / "b")
    with pytest.raises(XpnetError, match=r"--log .* is also the --save file"):
        refuse_shared({"--save": a, "--log": tmp_path / "b"})
    refuse_shared({"--save": a, "--resume": tmp_path / "b"}, allowed={frozenset(("--save", "--resume"))})
    refuse_shared([("IMAGE", a), ("IMAGE", a), ("--model", tmp_path / "b")])  # inputs may share
    with pytest.raises(XpnetError, match=r"--save-input .* is also the --save-input file"):
        refuse_shared([("--save-input", tmp_path / "x/n"), ("--save-input", tmp_path / "x/../x/n")])


def stdout_cases(tmp_path, digits):
    """(command line, the file it must not write) for every output that can name the standard output."""
    data, trained = digits
    model, picture, out = tmp_path / "m.npz", tmp_path / "d.npy", tmp_path / "out"
    shutil.copy(trained, model)
    np.save(picture, data.x_test[0].reshape(8, 8))
    out.mkdir()
    fd1 = "/proc/self/fd/1"
    (out / "d.seen.png").symlink_to(fd1)
    (out / "confusion-matrix.png").symlink_to(fd1)
    m = ["--model", str(model)]
    return {
        "--onnx": ["xpnet.export", *m, "--onnx", fd1],
        "--save-input": ["xpnet.predict", *m, str(picture), "--save-input", str(out)],
        "--plot": ["xpnet.evaluate", *m, "--plot", str(out)],
        "--log": ["xpnet.train", *DIGITS, "--epochs", "1", "--quiet", "--log", fd1],
    }


@pytest.mark.skipif(not os.path.exists("/proc/self/fd/1"), reason="needs /proc")
@pytest.mark.parametrize("flag", ["--onnx", "--save-input", "--plot", "--log"])
def test_an_output_that_is_the_redirected_stdout_is_refused(digits, tmp_path, flag):
    argv = stdout_cases(tmp_path, digits)[flag]
    stdout = tmp_path / "stdout.txt"
    stdout.write_text("kept\n")
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(SRC), os.environ.get("PYTHONPATH", "")])}
    with stdout.open("a") as f:
        done = subprocess.run(
            [sys.executable, "-m", *argv], stdout=f, stderr=subprocess.PIPE, text=True, env=env, timeout=300
        )
    refused(done.returncode, done.stderr, flag, "this command's standard output")
    assert stdout.read_text() == "kept\n"


@pytest.mark.skipif(not os.path.exists("/proc/self/fd/1"), reason="needs /proc")
def test_evaluate_reading_its_own_stdout_as_the_log_writes_nothing_there(digits, tmp_path):
    argv = stdout_cases(tmp_path, digits)["--plot"]
    shutil.rmtree(tmp_path / "out")
    stdout = tmp_path / "stdout.txt"
    stdout.write_text("kept\n")
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(SRC), os.environ.get("PYTHONPATH", "")])}
    with stdout.open("a") as f:
        done = subprocess.run(
            [sys.executable, "-m", *argv, "--log", "/proc/self/fd/1"],
            stdout=f,
            stderr=subprocess.PIPE,
            text=True,
            env=env,
            timeout=300,
        )
    refused(done.returncode, done.stderr, "training log")
    assert stdout.read_text() == "kept\n" and not (tmp_path / "out").exists()


def test_a_stream_that_is_a_device_is_left_to_the_device_rule(digits, tmp_path):
    """stdin on /dev/null (as under CI): ``--onnx /dev/null`` is refused as a device, not as the standard input."""
    model = tmp_path / "m.npz"
    shutil.copy(digits[1], model)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(SRC), os.environ.get("PYTHONPATH", "")])}
    done = subprocess.run(
        [sys.executable, "-m", "xpnet.export", "--model", str(model), "--onnx", os.devnull],
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
    )
    refused(done.returncode, done.stderr, "not a regular file")
