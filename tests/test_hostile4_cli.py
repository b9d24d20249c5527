"""The train command's edges: a data error names the flag the user typed, and a Ctrl-C while
``python -m xpnet.train`` still imports is one line with exit status 130."""

from __future__ import annotations

import re
import signal
import subprocess
import time
from pathlib import Path

import pytest

from folder_sets import write_digits
from helpers import run_train, start_training

LIBRARY_NAMES = re.compile(r"\b(image_size|data_dir|mirrors)\b")  # the parameters behind those flags


def one_line_naming(capsys, flag: str, *argv: str) -> str:
    status, out, err = run_train(capsys, "--device", "cpu", "--epochs", "1", *argv)
    assert status == 2 and out == "" and err.count("\n") == 1 and "Traceback" not in err, err
    assert flag in err and not LIBRARY_NAMES.search(err), err
    return err


def test_an_image_size_out_of_range_names_the_flag(capsys, tmp_path):
    folder = write_digits(tmp_path / "pics", per_class=(2, 1))
    one_line_naming(capsys, "--image-size", "--dataset", "folder", "--data-dir", str(folder), "--image-size", "1000")


@pytest.mark.parametrize("dataset", ["folder", "idx"])
@pytest.mark.parametrize("kind", ["missing", "file"])
def test_a_data_dir_that_is_no_folder_names_the_flag(capsys, tmp_path, dataset, kind):
    path = tmp_path / "nothere"
    if kind == "file":
        path.write_text("")
    one_line_naming(capsys, "--data-dir", "--dataset", dataset, "--data-dir", str(path))


@pytest.mark.parametrize("mirror", ["not-a-url", "ftp://example.org/{dataset}/"])
def test_a_malformed_mirror_names_the_flag(capsys, tmp_path, mirror):
    data_dir = str(tmp_path / "empty")
    one_line_naming(capsys, "--mirror", "--dataset", "mnist", "--data-dir", data_dir, "--mirror", mirror)


def numpy_is_loading(pid: int) -> bool:
    """Whether process ``pid`` has mapped NumPy's core library: it is importing what xpnet.train imports."""
    try:
        return "_multiarray_umath" in Path(f"/proc/{pid}/maps").read_text()
    except OSError:
        return False


@pytest.mark.skipif(not Path("/proc/self/maps").exists(), reason="needs /proc to see the imports start")
def test_ctrl_c_while_python_m_xpnet_train_imports_is_one_line_and_130():
    for _ in range(5):  # a try whose signal comes after the imports ended proves nothing: try again
        proc = start_training("--help")
        deadline = time.monotonic() + 30
        while not numpy_is_loading(proc.pid) and proc.poll() is None and time.monotonic() < deadline:
            time.sleep(0.001)
        if proc.poll() is None:
            proc.send_signal(signal.SIGINT)
        try:
            out, err = proc.communicate(timeout=60)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.communicate()
            pytest.fail("python -m xpnet.train did not end after SIGINT")
        if proc.returncode == 0 and out.startswith("usage:"):
            continue
        assert (proc.returncode, err) == (130, "xpnet.train: interrupted\n")
        return
    pytest.skip("the imports always ended before the signal arrived")
