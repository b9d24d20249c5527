"""Issues 31/33 leftovers for the data sets: a large picture is prepared in about one float64 copy of itself, the
hold-out's error names the library's ``val_split``, and a picture's error is a `ValueError` that keeps its words."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from helpers import tiny_data
from xpnet.data import hold_out
from xpnet.data.pictures import PictureError, read_picture
from xpnet.errors import DataError

PEAK = """
import sys
import numpy as np
from pathlib import Path
from xpnet.data import images, pictures

def peak_mib():
    with open("/proc/self/status") as f:
        return next(int(line.split()[1]) >> 10 for line in f if line.startswith("VmHWM"))

a = np.zeros((3240, 3240), np.uint8)  # 10 MiB
a[600:2600, 1500:1700] = 255
path = Path(sys.argv[1]) / "big.npy"
np.save(path, a)
del a
before = peak_mib()
image = pictures.prepare_file(path, None, images.LAYOUTS["mnist"])
assert image.shape == (28, 28) and image.max() == 255
print(peak_mib() - before)
"""


@pytest.mark.skipif(not Path("/proc/self/status").exists(), reason="peak memory is read from /proc")
def test_a_10_mib_npy_picture_is_prepared_in_about_one_float64_copy(tmp_path):
    run = subprocess.run([sys.executable, "-c", PEAK, str(tmp_path)], capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stderr
    grown = int(run.stdout)
    assert grown < 150, f"preparing a 10 MiB picture raised the peak by {grown} MiB (one float64 copy: 80 MiB)"


@pytest.mark.parametrize("n_val", [120, 500])
def test_the_hold_out_error_names_val_split(n_val):
    with pytest.raises(DataError, match=f"^val_split {n_val} is out of range: .* has 120 training images") as info:
        hold_out(tiny_data(), n_val)
    assert info.value.parameter == "val_split"
    assert info.value.naming("--val-split").startswith(f"--val-split {n_val} is out of range")


def test_a_picture_error_is_a_value_error_that_keeps_its_words(tmp_path):
    pil = pytest.importorskip("PIL.Image")
    assert issubclass(PictureError, ValueError)
    path = tmp_path / "wide.png"
    pil.new("1", (12_000, 6_000)).save(path)
    with pytest.raises(PictureError, match=r"^12000x6000 pixels, more than xpnet reads"):
        read_picture(path, pil)
