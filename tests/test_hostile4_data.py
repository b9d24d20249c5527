"""Issues 31/33 leftovers for the data sets: the library's errors name its own parameters (``data_dir``,
``image_size``, ``mirrors``; the command line shows its flags for them through ``cli.common.FLAGS``), and a data
folder that may not be looked at is one error naming it, never a traceback.

The tests run as root, whom no permission stops: `deny_stat` makes looking at a folder fail as it fails for
another user.
"""

from __future__ import annotations

import errno
import os
import socket
from pathlib import Path

import numpy as np
import pytest

from xpnet.data import Dataset, load_dataset
from xpnet.data import load as load_module
from xpnet.data.download import DownloadError, MissingData, Source, download, source_for
from xpnet.errors import DataError

NAME = "train-labels-idx1-ubyte.gz"


def closed_port_url() -> str:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return f"http://127.0.0.1:{s.getsockname()[1]}/"


def mirrors_unreachable(tmp_path: Path) -> None:
    load_dataset("mnist", tmp_path / "data", download=True, mirrors=[closed_port_url()])


def not_writable(tmp_path: Path, monkeypatch) -> None:
    def refuse(*args, **kwargs):  # root may write anywhere
        raise PermissionError(errno.EACCES, "Permission denied")

    monkeypatch.setattr("xpnet.files.open", refuse, raising=False)  # atomic_write's temporary file
    download(Source("mnist", (closed_port_url(),), {NAME: ("md5:" + "0" * 32,)}), tmp_path)


CALLS = {
    "idx without data_dir": ("data_dir", lambda tmp_path, mp: load_dataset("idx")),
    "folder without data_dir": ("data_dir", lambda tmp_path, mp: load_dataset("folder")),
    "named set missing": (None, lambda tmp_path, mp: load_dataset("mnist", tmp_path)),
    "data_dir not writable": ("data_dir", not_writable),
    "image_size of digits": ("image_size", lambda tmp_path, mp: load_dataset("digits", image_size=16)),
    "malformed mirror": ("mirrors", lambda tmp_path, mp: source_for("mnist", ["ftp://example.org/"])),
    "no mirror delivers": ("mirrors", lambda tmp_path, mp: mirrors_unreachable(tmp_path)),
}


@pytest.mark.parametrize("case", list(CALLS))
def test_library_errors_name_the_parameter_not_a_flag(case, tmp_path, monkeypatch):
    parameter, call = CALLS[case]
    with pytest.raises(DataError) as info:
        call(tmp_path, monkeypatch)
    e = info.value
    assert e.parameter == parameter and (parameter or "") in e.message, e.message
    assert "--" not in e.message and "\n" not in e.message, e.message
    for flag in ("pass --data-dir", "--image-size", "--mirror"):
        assert flag not in str(e), str(e)
    assert parameter is None or "--flag" in e.naming("--flag")  # what the command line shows, through its table


@pytest.fixture
def deny_stat(monkeypatch):
    """``deny_stat(folder)``: looking at ``folder`` or anything in it fails with ``Permission denied``, as for a
    user who may not enter its parent."""

    def install(folder: Path) -> None:
        top, real = os.path.abspath(folder), os.stat

        def stat(path, *args, **kwargs):
            where = "" if isinstance(path, int) else os.path.abspath(os.fsdecode(path))
            if where == top or where.startswith(top + os.sep):
                raise PermissionError(errno.EACCES, "Permission denied", where)
            return real(path, *args, **kwargs)

        monkeypatch.setattr(os, "stat", stat)

    return install


def test_a_source_folder_one_may_not_look_at_is_no_error(tmp_path, deny_stat):
    data = Dataset("idx", np.zeros((2, 4), np.uint8), np.arange(2), np.zeros((2, 4), np.uint8), np.arange(2), (2, 2))
    deny_stat(tmp_path)
    assert Dataset(**{**vars(data), "source": str(tmp_path)}).folder is None


def test_an_unreadable_system_copy_is_passed_over(tmp_path, monkeypatch, deny_stat):
    system = tmp_path / "system"
    system.mkdir()
    monkeypatch.setitem(load_module.SYSTEM_DIRS, "fashion-mnist", system)
    monkeypatch.setenv("XPNET_DATA", str(tmp_path / "cache"))
    deny_stat(system)
    with pytest.raises(MissingData, match=f"not found in {tmp_path / 'cache' / 'fashion-mnist'}") as info:
        load_dataset("fashion-mnist")
    assert str(system) not in str(info.value)


def test_xpnet_data_in_a_folder_one_may_not_enter_is_one_error(tmp_path, monkeypatch, deny_stat):
    monkeypatch.setenv("XPNET_DATA", str(tmp_path / "locked" / "data"))
    deny_stat(tmp_path / "locked")
    with pytest.raises(DataError, match="Permission denied") as info:
        load_dataset("mnist", download=True, mirrors=[closed_port_url()])
    assert str(tmp_path / "locked" / "data" / "mnist") in info.value.message and "\n" not in info.value.message


def test_a_download_below_a_folder_one_may_not_enter_is_one_error(tmp_path, deny_stat):
    deny_stat(tmp_path / "locked")
    with pytest.raises(DownloadError, match="Permission denied") as info:
        download(Source("mnist", (closed_port_url(),), {NAME: ("md5:" + "0" * 32,)}), tmp_path / "locked" / "d")
    assert str(tmp_path / "locked" / "d") in info.value.message and "\n" not in info.value.message
