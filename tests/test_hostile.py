"""Hostile files: checkpoint metadata out of range or contradictory, declared sizes that would
allocate gigabytes, members that are not ``.npy`` arrays, gzip and zip bombs, huge pictures. Each must be a
one-line refusal, never a traceback, an allocation of what a header declares, or an epoch that trains nothing.
Tests that a regression could turn into a memory hog run in a subprocess under a memory limit."""

from __future__ import annotations

import gzip
import io
import json
import os
import random
import struct
import subprocess
import sys
import textwrap
import zipfile
from pathlib import Path

import numpy as np
import pytest

from helpers import rewrite, run_cli, set_meta
from xpnet.data.idx import IdxError, read_idx
from xpnet.data.pictures import PictureError, read_picture
from xpnet.errors import CheckpointError
from xpnet.training.model import load

SRC = str(Path(__file__).resolve().parents[1] / "src")
MEMORY_LIMIT = 1 << 30  # address space for the subprocesses below: far less than any bomb inflates to


def run_limited(code: str, timeout: float = 60) -> subprocess.CompletedProcess:
    """Run ``code`` in a fresh Python whose address space is capped at `MEMORY_LIMIT` (plus what NumPy and
    the interpreter map at start), so that reading what a header declares fails fast instead of swapping."""
    prelude = f"import resource; resource.setrlimit(resource.RLIMIT_AS, ({MEMORY_LIMIT} + (1 << 30),) * 2)\n"
    env = {**os.environ, "PYTHONPATH": SRC, "OMP_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1"}
    argv = [sys.executable, "-c", prelude + textwrap.dedent(code)]
    return subprocess.run(argv, capture_output=True, text=True, timeout=timeout, env=env)


# --- metadata out of range or contradictory ------------------------------------------------------------

BAD_META = {
    "seconds 10**400": ({"seconds": 10**400}, "seconds"),
    "correct 10**400": ({"correct": 10**400}, "correct"),
    "offset past the data": ({"offset": 120}, "offset"),
    "correct above offset": ({"offset": 10, "correct": 11}, "correct"),
    "boolean epoch": ({"epoch": True}, "epoch"),
    "epoch past the config's": ({"epoch": 3}, "epoch"),
    "step below epochs": ({"step": 1}, "step"),
    "negative seconds": ({"seconds": -1.0}, "seconds"),
    "nan seconds": ({"seconds": float("nan")}, "seconds"),
    "n_train zero": ({"n_train": 0}, "n_train"),
    "history too long": ({"history": [{}] * 5}, "history"),
    "history entry not an object": ({"history": [1, 2]}, "history"),
    "history loss a string": ({"history": [{"epoch": 1, "loss": "x"}]}, "history"),
    "config learning_rate_init 10**400": (
        {"config_learning_rate_init": 10**400},
        r"damaged .*\(learning_rate_init: must be a positive number, got 1000",
    ),
    "config random_state -1": ({"config_random_state": -1}, r"damaged .*\(random_state: must be an integer"),
    "config max_iter true": ({"config_max_iter": True}, r"damaged .*\(max_iter: must be a positive integer"),
    "n_best a float": ({"n_best": 6.0}, "n_best"),
    "n_best not the weight count": ({"n_best": 3}, "n_best"),
    "restored without best weights": ({"restored": True}, "restored"),
    "restored a number": ({"restored": 1}, "restored"),
}
RNG_EDITS = {
    "negative state": lambda r: r["state"].__setitem__("state", -1),
    "state too large": lambda r: r["state"].__setitem__("state", 2**128),
    "inc a float": lambda r: r["state"].__setitem__("inc", 1.5),
    "has_uint32 a text": lambda r: r.__setitem__("has_uint32", "x"),
    "uinteger too large": lambda r: r.__setitem__("uinteger", 2**40),
    "MT19937 key too short": lambda r: r.update(bit_generator="MT19937", state={"key": [1, 2], "pos": 0}),
    "not an object": lambda r: r.clear(),
    "extra key": lambda r: r.__setitem__("x", 1),
}


def edit_meta(arrays: dict, changes: dict) -> None:
    meta = json.loads(arrays["meta"].tobytes())
    for key, value in changes.items():
        if key.startswith("config_"):
            meta["config"][key[len("config_") :]] = value
        else:
            meta[key] = value
    arrays["meta"] = np.frombuffer(json.dumps(meta).encode(), dtype=np.uint8)


@pytest.mark.parametrize("changes, expected", BAD_META.values(), ids=BAD_META.keys())
def test_counters_out_of_range_or_contradictory_are_one_line(saved, changes, expected):
    path, _ = saved
    rewrite(path, lambda a: edit_meta(a, changes))
    with pytest.raises(CheckpointError, match=expected) as info:
        load(path)
    assert "\n" not in str(info.value) and len(str(info.value)) < 400


@pytest.mark.parametrize("entry", ["train", "predict", "evaluate"])
def test_every_entry_point_refuses_a_bad_counter_in_one_line(saved, capsys, entry):
    from xpnet import evaluate, predict, train

    path, _ = saved
    rewrite(path, lambda a: edit_meta(a, {"seconds": 10**400}))
    main, argv = {
        "train": (train.main, ["--resume", str(path), "--epochs", "3"]),
        "predict": (predict.main, ["--model", str(path), str(path)]),
        "evaluate": (evaluate.main, ["--model", str(path)]),
    }[entry]
    status, _, err = run_cli(capsys, main, f"xpnet.{entry}", argv)
    assert status == 2 and err.count("\n") == 1 and "damaged" in err and "seconds" in err, err


@pytest.mark.parametrize("edit", RNG_EDITS.values(), ids=RNG_EDITS.keys())
def test_random_generator_states_are_checked_before_numpy_sees_them(saved, edit):
    path, _ = saved

    def change(arrays):
        meta = json.loads(arrays["meta"].tobytes())
        edit(meta["rng"])
        set_meta(arrays, rng=meta["rng"])

    rewrite(path, change)
    with pytest.raises(CheckpointError, match="random-generator state"):
        load(path)


def test_nan_weights_are_refused_with_exit_1(saved):
    path, _ = saved
    rewrite(path, lambda a: a["param_000"].__setitem__((0, 0), np.nan))
    with pytest.raises(CheckpointError, match="NaN or infinite") as info:
        load(path)
    assert info.value.exit_status == 1


# --- members: not .npy, declaring more than the model, zip bombs -------------------------------------


def replace_member(path: Path, name: str, data: bytes, declared_size: int | None = None) -> None:
    """Rewrite the zip with member ``name`` holding ``data`` (its directory entry may declare another size)."""
    with zipfile.ZipFile(path) as z:
        members = {i.filename: z.read(i) for i in z.infolist()}
    members[name] = data
    with zipfile.ZipFile(path, "w") as z:
        for member, content in members.items():
            z.writestr(member, content)
    if declared_size is not None:  # patch the uncompressed size in the central directory entry
        raw = bytearray(path.read_bytes())
        entry = raw.find(b"PK\x01\x02")
        while entry >= 0:
            n = struct.unpack_from("<H", raw, entry + 28)[0]
            if raw[entry + 46 : entry + 46 + n].decode() == name:
                struct.pack_into("<I", raw, entry + 24, declared_size)
            entry = raw.find(b"PK\x01\x02", entry + 4)
        path.write_bytes(bytes(raw))


def npy_header(shape: tuple[int, ...], dtype: str = "<f8") -> bytes:
    buf = io.BytesIO()
    np.lib.format.write_array_header_1_0(buf, {"descr": dtype, "fortran_order": False, "shape": shape})
    return buf.getvalue()


def test_a_member_without_npy_magic_is_refused(saved):
    path, _ = saved
    replace_member(path, "param_000.npy", b"raw bytes, no header at all" * 10)
    with pytest.raises(CheckpointError, match=r"param_000.*not a NumPy \.npy array"):
        load(path)


def test_a_member_that_is_not_npy_by_name_is_refused(saved):
    path, _ = saved
    replace_member(path, "notes.txt", b"hello")
    with pytest.raises(CheckpointError, match=r"notes\.txt.*not a \.npy array"):
        load(path)


def load_limited(path: Path):
    """Load the checkpoint in a memory-limited subprocess that prints the one-line refusal."""
    return run_limited(
        f"""
        from xpnet.training.model import load
        from xpnet.errors import CheckpointError
        try:
            load({str(path)!r})
        except CheckpointError as e:
            print(e)
        """
    )


def test_a_header_declaring_10_to_the_10_elements_is_refused_before_reading(saved):
    path, _ = saved
    replace_member(path, "param_000.npy", npy_header((10**10,)) + b"\0" * 64)
    result = load_limited(path)
    assert result.returncode == 0, result.stderr
    assert "param_000" in result.stdout and "expected float64[16, 12]" in result.stdout


def test_a_zip_member_that_declares_gigabytes_is_refused_before_inflating(saved):
    path, _ = saved
    header = npy_header((16, 12))
    replace_member(path, "param_000.npy", header + bytes(16 * 12 * 8), declared_size=3 << 30)
    result = load_limited(path)
    assert result.returncode == 0, result.stderr
    assert "declares 3.00 GiB of arrays" in result.stdout


def test_seeded_fuzz_of_metadata_and_member_headers_raises_only_checkpoint_errors(saved):
    """200 random edits of the metadata values and the .npy headers: each loads or is refused in one line."""
    path, _ = saved
    original = path.read_bytes()
    with np.load(path) as npz:
        meta = json.loads(npz["meta"].tobytes())
    rng = random.Random(16)
    values = [None, True, False, -1, 0, 1, 2, 119, 120, 2**64, 10**400, -(10**400), 1.5, float("inf"), "x", [], {}]
    keys = [k for k in meta if k not in ("format", "format_version")]
    refused = 0
    for trial in range(200):
        path.write_bytes(original)
        if trial % 2:
            key = rng.choice(keys)
            value = rng.choice(values)
            target = meta[key]
            if isinstance(target, dict) and target and rng.random() < 0.7:  # config, rng: one field inside
                inner = rng.choice(sorted(target))
                value = {**target, inner: value}
            rewrite(path, lambda a, kv={key: value}: set_meta(a, **kv))
        else:
            name = rng.choice(["param_000", "param_001", "opt_000", "loss_sum", "meta"])
            shape = tuple(rng.choice([0, 1, 12, 16, 2**31, 10**10]) for _ in range(rng.randint(0, 3)))
            dtype = rng.choice(["<f8", "<f4", "|u1", "|O", "<i8"])
            body = npy_header(shape, dtype) + bytes(rng.randrange(0, 400))
            replace_member(path, f"{name}.npy", body)
        try:
            load(path)
        except CheckpointError as e:
            assert "\n" not in str(e), str(e)
            refused += 1
    assert refused > 100  # most edits break a rule


# --- IDX and pictures: declared sizes ------------------------------------------------------------------


def test_a_gzip_bomb_idx_file_costs_only_its_declared_length(tmp_path):
    """A file declaring 10 images of 28x28 followed by 200 MB of zeros (200 kB gzipped) is refused as
    trailing data without inflating the rest."""
    path = tmp_path / "train-images-idx3-ubyte.gz"
    header = bytes([0, 0, 8, 3]) + struct.pack(">III", 10, 28, 28)
    with gzip.open(path, "wb", compresslevel=9) as f:
        f.write(header + bytes(10 * 28 * 28))
        for _ in range(200):
            f.write(bytes(1 << 20))
    result = run_limited(
        f"""
        import resource
        from xpnet.data.idx import read_idx, IdxError
        before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        try:
            read_idx({str(path)!r}, 3)
        except IdxError as e:
            print(e)
        print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before)  # kB more at the peak
        """
    )
    assert result.returncode == 0, result.stderr
    message, grown = result.stdout.splitlines()
    assert "trailing bytes" in message
    assert int(grown) < 50_000  # inflating it all would take 200 MB


def test_an_idx_header_declaring_gigabytes_is_refused_before_reading(tmp_path):
    path = tmp_path / "images.gz"
    path.write_bytes(gzip.compress(bytes([0, 0, 8, 3]) + struct.pack(">III", 10**9, 28, 28) + bytes(100)))
    with pytest.raises(IdxError, match="more than xpnet reads"):
        read_idx(path, 3)


def test_an_80_byte_npy_picture_declaring_80_gb_is_refused_from_its_header(tmp_path):
    path = tmp_path / "huge.npy"
    path.write_bytes(npy_header((100_000, 100_000)))
    assert path.stat().st_size < 200
    with pytest.raises(PictureError, match="more than xpnet reads as a picture"):
        read_picture(path, None)


def test_an_npy_picture_shorter_than_its_header_says_is_refused(tmp_path):
    path = tmp_path / "short.npy"
    path.write_bytes(npy_header((28, 28)) + bytes(100))
    with pytest.raises(PictureError, match="header declares 6272 bytes"):
        read_picture(path, None)


def test_a_huge_png_is_refused_without_pillows_warning(tmp_path, recwarn):
    pil = pytest.importorskip("PIL.Image")
    path = tmp_path / "wide.png"
    pil.new("1", (12_000, 6_000)).save(path)  # 72 megapixels, 1 bit each: a small file
    with pytest.raises(PictureError, match="12000x6000 pixels, more than xpnet reads"):
        read_picture(path, pil)
    assert not [w for w in recwarn if "DecompressionBomb" in type(w.message).__name__]


def test_one_bad_picture_does_not_lose_the_others(mnist, tmp_path, capsys):
    from xpnet import predict

    data, model = mnist
    good = tmp_path / "good.npy"
    np.save(good, data.x_test[0].reshape(28, 28))
    bomb = tmp_path / "bomb.npy"
    bomb.write_bytes(npy_header((100_000, 100_000)))
    status, out, err = run_cli(capsys, predict.main, "xpnet.predict", ["--model", str(model), str(bomb), str(good)])
    assert status == 1 and out.startswith(f"{good}: ") and "bomb.npy" in err and "Traceback" not in err
