"""Hostile input at the command line's core (issue 33): a Ctrl-C while ``xpnet train`` is still importing."""

from __future__ import annotations

import sys

import pytest

from helpers import interrupted_while_importing

pytestmark = pytest.mark.skipif(sys.platform == "win32", reason="POSIX signals")


def test_ctrl_c_while_importing_is_one_line_and_exit_130(tmp_path):
    # A stand-in for tqdm, which the train command imports on its way in.
    argv = ["-m", "xpnet", "train", "--dataset", "digits", "--epochs", "1"]
    assert interrupted_while_importing(tmp_path, "tqdm", argv) == (130, "", "xpnet.train: interrupted\n")
