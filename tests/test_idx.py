"""The IDX reader: good files round-trip, and every kind of damage raises IdxError naming the file."""

from __future__ import annotations

import gzip
import io
import re
from pathlib import Path

import numpy as np
import pytest

from xpnet.data import IdxError, read_idx
from xpnet.data.datasets import IDX_FILES
from xpnet.data.idx import encode_idx, read_stream, write_idx
from xpnet.data.load import load_idx_dataset

DEBIAN = Path("/usr/share/datasets/fashion-mnist")


def images(n: int = 5, h: int = 3, w: int = 4, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, size=(n, h, w), dtype=np.uint8)


@pytest.mark.parametrize("suffix", ["", ".gz"])
def test_round_trip(tmp_path, suffix):
    a = images()
    path = tmp_path / f"x{suffix}"
    write_idx(path, a)
    got = read_idx(path, ndim=3, shape=(None, 3, 4))
    np.testing.assert_array_equal(got, a)
    assert got.dtype == np.uint8


def test_header_layout_matches_the_format():
    # 00 00 08 <ndim>, then big-endian uint32 sizes: the layout published with MNIST.
    raw = encode_idx(np.arange(6, dtype=np.uint8).reshape(2, 3))
    assert raw[:4] == b"\x00\x00\x08\x02"
    assert raw[4:12] == (2).to_bytes(4, "big") + (3).to_bytes(4, "big")
    assert raw[12:] == bytes(range(6))


@pytest.mark.parametrize(
    "mutate, ndim, shape, expected",
    [
        (lambda r: r[:3], 3, None, "header of at least 4 bytes"),
        (lambda r: b"\x01" + r[1:], 3, None, "magic bytes 00 00"),
        (lambda r: r[:2] + b"\x0d" + r[3:], 3, None, "element type 0x08"),
        (lambda r: r, 1, None, "expected 1 dimension(s), found 3 (an image file?)"),
        (lambda r: r[:10], 3, None, "16-byte header"),
        (lambda r: r[:-1], 3, None, "truncated"),
        (lambda r: r + b"\x00", 3, None, "trailing bytes"),
        (lambda r: r, 3, (None, 28, 28), "expected shape Nx28x28, found 5x3x4"),
        (lambda r: r[:4] + (0).to_bytes(4, "big") + r[8:16], 3, None, "at least 1"),
        (lambda r: gzip.compress(r), 3, None, "give the file a .gz name"),
    ],
)
def test_damage_names_file_and_expectation(mutate, ndim, shape, expected):
    raw = mutate(encode_idx(images()))
    with pytest.raises(IdxError, match=r"^where/x: ") as err:
        read_stream(io.BytesIO(raw), "where/x", ndim, shape)
    assert expected in str(err.value)
    assert "\n" not in str(err.value)


def test_label_file_given_as_image_file(tmp_path):
    path = tmp_path / "labels.gz"
    write_idx(path, np.arange(10, dtype=np.uint8))
    with pytest.raises(IdxError, match=r"expected 3 dimension\(s\), found 1 \(a label file\?\)"):
        read_idx(path, ndim=3)


@pytest.mark.parametrize(
    "damage, expected",
    [
        (lambda z: z[: len(z) // 2], "truncated"),
        (lambda z: z[:5], "truncated"),
        (lambda z: b"", "an empty file"),
        (lambda z: b"PK\x03\x04" + z, "expected gzip data"),
        (lambda z: z[:-8] + bytes(b ^ 0xFF for b in z[-8:-4]) + z[-4:], "CRC"),  # checksum trailer damaged
        (lambda z: z + b"garbage!", "expected valid gzip data"),
    ],
)
def test_gzip_damage(tmp_path, damage, expected):
    path = tmp_path / "x.gz"
    path.write_bytes(damage(gzip.compress(encode_idx(images()), mtime=0)))
    with pytest.raises(IdxError, match=re.escape(str(path))) as err:
        read_idx(path, ndim=3)
    assert expected in str(err.value)


def test_missing_file_is_an_idx_error(tmp_path):
    with pytest.raises(IdxError, match="cannot read"):
        read_idx(tmp_path / "absent.gz", ndim=1)


def write_set(directory: Path, n_train=12, n_test=6, labels_max=9, test_labels_n=None) -> None:
    rng = np.random.default_rng(1)
    write_idx(directory / f"{IDX_FILES['train_images']}.gz", rng.integers(0, 256, (n_train, 28, 28), dtype=np.uint8))
    write_idx(directory / f"{IDX_FILES['train_labels']}.gz", (np.arange(n_train) % (labels_max + 1)).astype(np.uint8))
    write_idx(directory / IDX_FILES["test_images"], rng.integers(0, 256, (n_test, 28, 28), dtype=np.uint8))
    test_labels = np.arange(test_labels_n or n_test) % 10
    write_idx(directory / IDX_FILES["test_labels"], test_labels.astype(np.uint8))


def test_dataset_from_mixed_gz_and_plain_files(tmp_path):
    write_set(tmp_path)
    data = load_idx_dataset("mnist", tmp_path)
    assert data.x_train.shape == (12, 784) and data.x_test.shape == (6, 784)
    assert data.image_shape == (28, 28)


def test_labels_outside_0_to_9_are_rejected(tmp_path):
    write_set(tmp_path, labels_max=10)
    with pytest.raises(IdxError, match=r"train-labels-idx1-ubyte\.gz: labels must lie in 0\.\.9, found 10"):
        load_idx_dataset("mnist", tmp_path)


def test_image_and_label_counts_must_agree(tmp_path):
    write_set(tmp_path, test_labels_n=5)
    with pytest.raises(IdxError, match=r"6 images but .*t10k-labels-idx1-ubyte has 5 labels"):
        load_idx_dataset("mnist", tmp_path)


# Damage that a byte-flip in the payload cannot reveal is harmless (the file still parses to the same
# shape); anything else must be IdxError. Any other exception type is a bug in the reader.
FUZZ_CASES = 600


def corruptions(rng: np.random.Generator, raw: bytes, gz: bytes):
    """Yield (description, file bytes, gzip name?) for one seeded random corruption of each kind."""
    header = 16
    kind = rng.integers(0, 8)
    if kind == 0:
        cut = int(rng.integers(0, len(raw)))
        yield f"raw truncated to {cut}", raw[:cut], False
    elif kind == 1:
        cut = int(rng.integers(0, len(gz)))
        yield f"gz truncated to {cut}", gz[:cut], True
    elif kind == 2:
        i, bit = int(rng.integers(0, header)), int(rng.integers(0, 8))
        bad = bytearray(raw)
        bad[i] ^= 1 << bit
        compressed = bool(rng.integers(0, 2))
        yield f"header byte {i} bit {bit} flipped", gzip.compress(bad) if compressed else bytes(bad), compressed
    elif kind == 3:
        extra = rng.integers(0, 256, size=int(rng.integers(1, 40)), dtype=np.uint8).tobytes()
        yield f"{len(extra)} bytes of trailing garbage", raw + extra, False
    elif kind == 4:
        extra = rng.integers(0, 256, size=int(rng.integers(1, 40)), dtype=np.uint8).tobytes()
        yield f"{len(extra)} bytes after the gzip stream", gz + extra, True
    elif kind == 5:
        bad = bytearray(gz)
        for _ in range(int(rng.integers(1, 4))):
            bad[int(rng.integers(0, len(bad)))] = int(rng.integers(0, 256))
        yield "gzip bytes overwritten", bytes(bad), True
    elif kind == 6:
        bad = bytearray(raw)
        bad[int(rng.integers(header, len(raw)))] ^= 0xFF
        compressed = bool(rng.integers(0, 2))
        yield "payload byte flipped", gzip.compress(bad) if compressed else bytes(bad), compressed
    else:
        n = int(rng.integers(0, 64))
        yield f"{n} random bytes", rng.integers(0, 256, size=n, dtype=np.uint8).tobytes(), bool(rng.integers(0, 2))


def test_fuzzed_idx_files_raise_only_idx_error(tmp_path):
    rng = np.random.default_rng(20240601)
    good = images(n=7, h=5, w=6, seed=3)
    raw = encode_idx(good)
    gz = gzip.compress(raw, mtime=0)
    outcomes = {"rejected": 0, "harmless": 0}
    for case in range(FUZZ_CASES):
        for what, data, compressed in corruptions(rng, raw, gz):
            path = tmp_path / f"case{case}{'.gz' if compressed else ''}"
            path.write_bytes(data)
            try:
                got = read_idx(path, ndim=3, shape=(None, 5, 6))
            except IdxError as e:
                assert str(path) in str(e) and "\n" not in str(e), what
                outcomes["rejected"] += 1
            except Exception as e:  # the point: any other kind is a bug
                pytest.fail(f"case {case} ({what}): {type(e).__name__}: {e}")
            else:
                # Only payload damage may go unnoticed: the header read back must be the true one.
                assert got.shape == good.shape, what
                outcomes["harmless"] += 1
            path.unlink()
    # The corruptions must mostly be caught, and the run must have exercised both outcomes.
    assert outcomes["rejected"] > FUZZ_CASES * 0.6, outcomes
    assert outcomes["harmless"] > 0, outcomes


@pytest.mark.skipif(not DEBIAN.is_dir(), reason="Debian's dataset-fashion-mnist is not installed")
def test_reads_the_real_fashion_mnist_training_file():
    a = read_idx(DEBIAN / "train-images-idx3-ubyte.gz", ndim=3, shape=(None, 28, 28))
    labels = read_idx(DEBIAN / "train-labels-idx1-ubyte.gz", ndim=1)
    assert a.shape == (60000, 28, 28) and labels.shape == (60000,)
    assert np.bincount(labels).tolist() == [6000] * 10
