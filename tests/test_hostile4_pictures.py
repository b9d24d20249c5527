"""Hostile use, round four (issues 31 and 33), for pictures: the library names its own parameters (the command
line maps them to flags), and preparing pictures in several threads at once (as ``serve`` does) leaves the
process's warning filters as they were, while and after, without Pillow's decompression-bomb warning."""

from __future__ import annotations

import struct
import threading
import warnings
import zlib

import numpy as np
import pytest

from helpers import seven
from xpnet.data import images, load_dataset, pictures
from xpnet.errors import DataError

MNIST = images.LAYOUTS["mnist"]


@pytest.mark.parametrize("side", [3, 257])
def test_an_image_size_out_of_range_names_the_librarys_parameter(tmp_path, side):
    with pytest.raises(DataError, match=f"^image_size {side} is out of range: give 4 to 256") as e:
        load_dataset("folder", tmp_path, image_size=side)
    assert e.value.parameter == "image_size" and "--" not in str(e.value)


def test_a_data_dir_that_is_no_folder_names_the_librarys_parameter(tmp_path):
    with pytest.raises(DataError, match="is not a folder: give data_dir the folder of train") as e:
        load_dataset("folder", tmp_path / "missing")
    assert e.value.parameter == "data_dir" and "--" not in str(e.value)


def header_png(width: int, height: int) -> bytes:
    """A grey PNG declaring ``width`` x ``height`` pixels, with one row of data: a few hundred bytes."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    header = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    rows = zlib.compress(bytes(1 + width))
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", rows) + chunk(b"IEND", b"")


def test_pictures_prepared_in_threads_leave_the_warning_filters_alone(tmp_path, monkeypatch, recwarn):
    pil = pytest.importorskip("PIL.Image")
    huge = tmp_path / "huge.png"  # 144 megapixels: past Pillow's own warning (89), under its error (179)
    huge.write_bytes(header_png(12_000, 12_000))
    drawn = tmp_path / "seven.png"
    pil.fromarray(np.rint(255 * seven()).astype(np.uint8)).save(drawn)
    filters, before = warnings.filters, list(warnings.filters)
    pil.init()
    factory, accept = pil.OPEN["PNG"]
    seen: list[bool] = []

    def watched(*args):  # Pillow reads a PNG's header here: the filters must be the caller's, untouched
        seen.append(warnings.filters is filters and warnings.filters == before)
        return factory(*args)

    monkeypatch.setitem(pil.OPEN, "PNG", (watched, accept))
    refused: list[str] = []
    prepared: list[np.ndarray] = []

    def work() -> None:
        for _ in range(5):
            for path in (huge, drawn):
                try:
                    prepared.append(pictures.prepare_file(path, pil, MNIST))
                except pictures.PictureError as e:
                    refused.append(str(e))

    threads = [threading.Thread(target=work) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    assert not any(t.is_alive() for t in threads), "preparing 40 pictures hung"
    assert len(seen) == 40 and all(seen)
    assert warnings.filters is filters and warnings.filters == before
    assert len(refused) == 20 and all("12000x12000 pixels, more than xpnet reads" in e for e in refused), refused
    assert len(prepared) == 20 and all(np.array_equal(p, prepared[0]) for p in prepared)
    assert not [w for w in recwarn if issubclass(w.category, pil.DecompressionBombWarning)]
