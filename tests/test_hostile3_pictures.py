"""Hostile input, round three (issue 33), for pictures: a JPEG of endless scans, pictures whose few bytes
decode to hundreds of megabytes, formats that decode inside ``Image.open``, picture folders one may not
read, and a picture-folder cache with the right key and the wrong labels.

Each picture is prepared in a fresh process, which reports its peak resident memory past what the
interpreter, Pillow and SciPy held before (Linux: ``/proc/self/clear_refs`` resets the peak, ``VmHWM``
reads it: ``ru_maxrss`` would also count the parent's size at the fork)."""

from __future__ import annotations

import json
import os
import struct
import subprocess
import sys
import zlib
from pathlib import Path

import numpy as np
import pytest

from helpers import SRC, run_cli
from xpnet import evaluate, train
from xpnet.data import cache, load_dataset
from xpnet.errors import DataError

pil = pytest.importorskip("PIL.Image")
needs_proc = pytest.mark.skipif(not os.path.exists("/proc/self/clear_refs"), reason="measures memory through /proc")

MAKE = """
import sys
from pathlib import Path
from PIL import Image, ImageDraw

out = Path(sys.argv[1])

def digit(size, mode="L"):
    im = Image.new("L", size, 255)
    w, h = size
    seven = [(w // 3, h // 5), (2 * w // 3, h // 5), (w // 2, 4 * h // 5)]
    ImageDraw.Draw(im).line(seven, fill=0, width=max(2, w // 12))
    return im.convert(mode)

digit((64, 64)).save(out / "warm.png")
digit((64, 64)).save(out / "warm.jpg")
Image.new("L", (8000, 8000), 255).save(out / "lossless.webp", lossless=True, quality=0, method=0)
digit((2048, 2048), "RGBA").save(out / "largest.webp", lossless=True, quality=0, method=0)
digit((2048, 2048), "RGBA").save(out / "largest.png", compress_level=1)
digit((4096, 4096), "RGB").save(out / "largest.jpg", quality=90)
digit((2048, 2048), "RGB").save(out / "progressive.jpg", quality=90, progressive=True, subsampling=0)
digit((256, 256)).save(out / "scans.jpg", quality=90, progressive=True)
"""

MEASURE = """
import json, resource, sys, time
from pathlib import Path
from xpnet.data import images, pictures

pil, layout, folder = pictures.import_pillow(), images.LAYOUTS["mnist"], Path(sys.argv[1])
for warm in ("warm.png", "warm.jpg"):  # codecs, NumPy and SciPy loaded before the measure
    pictures.prepare_file(folder / warm, pil, layout)
def peak_kb():  # ru_maxrss, less what the parent held when it forked us (getrusage counts that too)
    with open("/proc/self/status") as f:
        return int(next(line for line in f if line.startswith("VmHWM:")).split()[1])


with open("/proc/self/clear_refs", "w") as f:  # the imports' peak forgotten
    f.write("5")
with open("/proc/self/statm") as f:  # resident now, in kB
    before = int(f.read().split()[1]) * resource.getpagesize() // 1024
start = time.monotonic()
try:
    pictures.prepare_file(folder / sys.argv[2], pil, layout)
    outcome = "prepared"
except (pictures.PictureError, ValueError) as e:
    outcome = str(e)
grown = (peak_kb() - before) / 1024
print(json.dumps({"outcome": outcome, "MB": grown, "s": time.monotonic() - start}))
"""


def png(width: int, height: int) -> bytes:
    """A 1-bit grey PNG of ``width`` x ``height`` black pixels, written by hand (a few kilobytes)."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    rows = zlib.compress(bytes(height * (1 + -(-width // 8))), 9)
    ihdr = struct.pack(">IIBBBBB", width, height, 1, 0, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", rows) + chunk(b"IEND", b"")


def many_scans(jpeg: bytes, scans: int) -> bytes:
    """``jpeg`` (progressive) with its last scan repeated until it has ``scans`` scans: each repeat is one
    more pass over the picture's coefficients for the decoder, a few bytes in the file."""
    last = jpeg.rindex(b"\xff\xda")
    have = jpeg.count(b"\xff\xda")
    return jpeg[:last] + jpeg[last:-2] * (scans - have + 1) + b"\xff\xd9"


@pytest.fixture(scope="module")
def hostile(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("hostile")
    subprocess.run([sys.executable, "-c", MAKE, str(out)], check=True, timeout=300)
    (out / "scans.jpg").write_bytes(many_scans((out / "scans.jpg").read_bytes(), 45_000))
    (out / "huge.png").write_bytes(png(12_000, 12_000))
    png_inside = png(12_000, 12_000)  # an icon whose one entry is a PNG, decoded by Pillow's ICO reader
    entry = struct.pack("<BBBBHHII", 0, 0, 0, 0, 1, 32, len(png_inside), 22)
    (out / "icon.ico").write_bytes(struct.pack("<HHH", 0, 1, 1) + entry + png_inside)
    return out


def prepare_measured(folder: Path, name: str) -> dict:
    env = {**os.environ, "PYTHONPATH": str(SRC)}
    done = subprocess.run(
        [sys.executable, "-c", MEASURE, str(folder), name], env=env, capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


# Refused from their headers or markers, before any pixel is decoded.
REFUSED = {
    "scans.jpg": "scans",  # 45,000 scans of a 256x256 picture: minutes of decoding
    "lossless.webp": "8000x8000 pixels",  # 2.5 KB, 1 GB decoded
    "huge.png": "12000x12000 pixels",
    "icon.ico": "not a picture Pillow can read",  # Pillow's ICO reader decodes its PNG inside Image.open
}


@needs_proc
@pytest.mark.parametrize("name", REFUSED)
def test_a_picture_that_would_cost_minutes_or_gigabytes_is_refused_before_decoding(hostile, name):
    result = prepare_measured(hostile, name)
    assert REFUSED[name] in result["outcome"], result
    assert result["MB"] < 20, result


@needs_proc
@pytest.mark.parametrize("name", ["largest.jpg", "progressive.jpg", "largest.png", "largest.webp"])
def test_the_largest_picture_xpnet_reads_is_prepared_well_under_150_mb(hostile, name):
    result = prepare_measured(hostile, name)
    assert result["outcome"] == "prepared", result
    assert result["MB"] < 100, result


# --- unreadable picture folders --------------------------------------------------------------------------


def npy_folder(root: Path) -> Path:
    for split in ("train", "test"):
        for k, name in enumerate("abc"):
            (root / split / name).mkdir(parents=True)
            for i in range(4):
                a = np.zeros((8, 8), np.uint8)
                a[k * 2 : k * 2 + 3, i : i + 3] = 255
                np.save(root / split / name / f"{i}.npy", a)
    return root


def refuse(locked: Path, monkeypatch):
    """Make ``locked`` a folder this process may neither list nor enter, as chmod 000 does for a user who
    is not root (the tests run as root, which chmod does not stop)."""
    real_iterdir, real_stat = Path.iterdir, Path.stat

    def denied(path: Path) -> OSError:
        return PermissionError(13, "Permission denied", str(path))

    def iterdir(self):
        if self == locked:
            raise denied(self)
        return real_iterdir(self)

    def stat(self, *, follow_symlinks=True):
        if self.parent == locked:
            raise denied(self)
        return real_stat(self, follow_symlinks=follow_symlinks)

    monkeypatch.setattr(Path, "iterdir", iterdir)
    monkeypatch.setattr(Path, "stat", stat)


@pytest.mark.parametrize("where", [".", "train", "train/b", "test"])
def test_a_picture_folder_one_may_not_read_is_one_line_naming_it(tmp_path, monkeypatch, where):
    root = npy_folder(tmp_path / "pictures")
    refuse((root / where).resolve() if where != "." else root, monkeypatch)
    with pytest.raises(DataError, match="cannot read") as e:
        load_dataset("folder", root)
    assert str(root / where if where != "." else root) in str(e.value)


def test_train_and_evaluate_name_an_unreadable_picture_folder_in_one_line(tmp_path, monkeypatch, capsys):
    root = npy_folder(tmp_path / "pictures")
    model = tmp_path / "m.npz"
    argv = ["--dataset", "folder", "--data-dir", str(root), "--epochs", "1", "--hidden", "8", "--quiet"]
    assert run_cli(capsys, train.main, "xpnet", [*argv, "--save", str(model)])[0] == 0
    refuse(root / "test", monkeypatch)
    for main, args in ((train.main, argv), (evaluate.main, ["--model", str(model), "--data-dir", str(root)])):
        status, _, err = run_cli(capsys, main, "xpnet", args)
        assert status == 2 and err.count("\n") == 1 and "Traceback" not in err, err
        assert "cannot read" in err and str(root / "test") in err, err


# --- a cache with the right key and other arrays -------------------------------------------------------


def test_a_cache_with_the_right_key_and_shuffled_labels_is_rebuilt(tmp_path):
    root = npy_folder(tmp_path / "pictures")
    honest = load_dataset("folder", root)
    where = cache.cache_path(root, 28)
    with np.load(where, allow_pickle=False) as npz:
        arrays = {k: npz[k] for k in npz.files}
    arrays["y_train"] = np.roll(arrays["y_train"], 1)
    with open(where, "wb") as f:
        np.savez(f, **arrays)
    notes: list[str] = []
    again = load_dataset("folder", root, notify=notes.append)
    np.testing.assert_array_equal(again.y_train, honest.y_train)
    assert any("reading the pictures again" in n for n in notes), notes


def test_preparing_a_picture_leaves_warning_filters_and_pillows_limit_as_they_were(hostile):
    import warnings

    from xpnet.data import images, pictures

    filters, limit = list(warnings.filters), pil.MAX_IMAGE_PIXELS
    for name in ("huge.png", "lossless.webp"):
        with pytest.raises(pictures.PictureError):
            pictures.prepare_file(hostile / name, pil, images.LAYOUTS["mnist"])
    assert list(warnings.filters) == filters and pil.MAX_IMAGE_PIXELS == limit
