"""Hostile checkpoints and labels (issue 33): limits per file, checked before a byte is inflated or parsed;
an encrypted zip; labels past int64 in ONNX; training on after a change of solver."""

from __future__ import annotations

import io
import json
import struct
import subprocess
import sys
import textwrap
import zlib
from pathlib import Path

import numpy as np
import pytest

from helpers import SRC, run_cli
from xpnet import MLPClassifier, predict
from xpnet.errors import CheckpointError
from xpnet.training.model import MAX_META_BYTES, load

pytestmark = pytest.mark.skipif(not Path("/proc/self/status").exists(), reason="peak memory read from /proc")
PEAK_MB = 300  # the most a refused checkpoint may cost: far below what any of these inflates to


def npy(shape: tuple[int, ...], dtype: str, payload: bytes) -> bytes:
    buf = io.BytesIO()
    np.lib.format.write_array_header_1_0(buf, {"descr": dtype, "fortran_order": False, "shape": shape})
    return buf.getvalue() + payload


def deflated(head: bytes, payload: int, chunk: int = 4_000_000) -> bytes:
    """A raw deflate stream of ``head`` and ``payload`` zero bytes, made in a moment: once the window holds
    only zeros, every flushed block of ``chunk`` zeros is the same bytes."""
    c = zlib.compressobj(9, zlib.DEFLATED, -15)
    if payload % chunk:
        return c.compress(head + bytes(payload)) + c.flush()
    first = c.compress(head + bytes(chunk)) + c.flush(zlib.Z_SYNC_FLUSH)
    block = c.compress(bytes(chunk)) + c.flush(zlib.Z_SYNC_FLUSH)
    return first + block * (payload // chunk - 1) + c.flush()


def write_zip(path: Path, members: dict[str, tuple[bytes, int, int]]) -> Path:
    """A zip of deflated members, name -> (stream, inflated size, CRC: 0 for the arrays, never read whole)."""
    out, central = bytearray(), bytearray()
    for name, (data, size, crc) in members.items():
        n = name.encode()
        sizes = (crc, len(data), size, len(n), 0)
        central += struct.pack("<4s6H3I5H2I", b"PK\x01\x02", 20, 20, 0, 8, 0, 0, *sizes, 0, 0, 0, 0, len(out)) + n
        out += struct.pack("<4s5H3I2H", b"PK\x03\x04", 20, 0, 8, 0, 0, *sizes) + n + data
    end = struct.pack("<4s4H2IH", b"PK\x05\x06", 0, 0, len(members), len(members), len(central), len(out), 0)
    path.write_bytes(bytes(out + central + end))
    return path


def meta_of(saved_path: Path, **changes) -> dict:
    with np.load(saved_path) as npz:
        return json.loads(npz["meta"].tobytes()) | changes


def peak_of_loading(path: Path) -> tuple[str, int]:
    """(the refusal's line, the peak resident memory in MB) of loading ``path`` in a fresh process: its
    VmHWM, as ``ru_maxrss`` keeps the peak of the process that forked it."""
    code = f"""
        import re
        from xpnet.training.model import load
        from xpnet.errors import CheckpointError
        try:
            load({str(path)!r})
            print("loaded")
        except CheckpointError as e:
            print(e)
        print(int(re.search(r"VmHWM:\\s*(\\d+)", open("/proc/self/status").read())[1]) // 1024)
    """
    env = {"PYTHONPATH": str(SRC), "OMP_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1"}
    argv = [sys.executable, "-c", textwrap.dedent(code)]
    done = subprocess.run(argv, capture_output=True, text=True, timeout=120, env=env)
    assert done.returncode == 0, done.stderr[-2000:]
    line, peak = done.stdout.strip().splitlines()
    return line, int(peak)


def big_adam_checkpoint(saved_path: Path, path: Path) -> Path:
    """A 10 MB checkpoint of a 784-1,000,000-10 Adam model that inflates to three 3.1 GB arrays of zeros."""
    sizes = [784, 1_000_000, 10]
    meta = meta_of(saved_path, layer_sizes=sizes, classes=list("0123456789"), labels=list(range(10)))
    meta["config"] |= {"hidden_layer_sizes": [1_000_000], "dtype": "float32"}
    shapes = [(784, 1_000_000), (1_000_000,), (1_000_000, 10), (10,)]
    text = json.dumps(meta).encode()
    data = npy((len(text),), "|u1", text)
    members = {"meta.npy": (deflated(data, 0), len(data), zlib.crc32(data))}
    names = [f"param_{i:03d}" for i in range(4)] + [f"opt_{i:03d}" for i in range(8)]
    for name, shape in zip(names, shapes * 3):
        head, payload = npy(shape, "<f4", b""), 4 * int(np.prod(shape))
        members[f"{name}.npy"] = (deflated(head, payload), len(head) + payload, 0)
    data = npy((), "<f4", bytes(4))
    members["loss_sum.npy"] = (deflated(data, 0), len(data), zlib.crc32(data))
    return write_zip(path, members)


def test_a_checkpoint_declaring_gigabytes_is_refused_by_its_sum_before_inflating(saved, tmp_path, capsys):
    path = big_adam_checkpoint(saved[0], tmp_path / "big.npz")
    assert path.stat().st_size < 12 << 20
    line, peak = peak_of_loading(path)
    assert "declares" in line and "GiB" in line and peak < PEAK_MB, (line, peak)
    status, _, err = run_cli(capsys, predict.main, "xpnet.predict", ["--model", str(path), str(path)])
    assert status == 2 and len(err.strip().splitlines()) == 1 and "Traceback" not in err, err


def test_metadata_that_inflates_or_parses_to_gigabytes_is_refused_before_parsing(saved, tmp_path):
    bomb = b'{"format": "xpnet-checkpoint", "history": [' + b"{}," * (20 << 20) + b"{}]}"  # 60 MiB
    data = npy((len(bomb),), "|u1", bomb)
    path = write_zip(tmp_path / "meta.npz", {"meta.npy": (deflated(data, 0), len(data), zlib.crc32(data))})
    assert path.stat().st_size < 1 << 20
    line, peak = peak_of_loading(path)
    assert "declares" in line and peak < PEAK_MB, (line, peak)
    # Stored, not deflated, at the largest size read: parsed, refused, and still cheap.
    head = json.dumps(meta_of(saved[0], history=[])).encode()[:-1] + b', "junk": ['
    meta = head + b"{}," * ((MAX_META_BYTES - len(head)) // 3 - 2) + b"{}]}"
    assert MAX_META_BYTES - 6 <= len(meta) <= MAX_META_BYTES
    arrays = {"meta": np.frombuffer(meta, dtype=np.uint8)}
    np.savez(tmp_path / "stored.npz", **arrays)
    line, peak = peak_of_loading(tmp_path / "stored.npz")
    assert line != "loaded" and peak < PEAK_MB, (line, peak)


def test_predicting_needs_no_optimizer_state(saved):
    path, state = saved
    model = load(path, optimizer=False)
    assert model.state.opt_state == [] and len(model.params) == len(state.params)
    assert len(load(path).state.opt_state) == len(state.opt_state)


def test_an_encrypted_zip_is_one_line(saved, tmp_path, capsys):
    path, _ = saved
    raw = bytearray(path.read_bytes())
    for signature, flags_at in ((b"PK\x03\x04", 6), (b"PK\x01\x02", 8)):
        at = raw.find(signature)
        while at >= 0:
            raw[at + flags_at] |= 1  # "encrypted"
            at = raw.find(signature, at + 4)
    path.write_bytes(bytes(raw))
    with pytest.raises(CheckpointError, match="encrypted"):
        load(path)
    status, _, err = run_cli(capsys, predict.main, "xpnet.predict", ["--model", str(path), str(path)])
    assert status == 2 and len(err.strip().splitlines()) == 1 and "Traceback" not in err, err


@pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")
def test_labels_past_int64_come_out_of_onnx_exact(tmp_path):
    pytest.importorskip("onnx")
    ort = pytest.importorskip("onnxruntime")
    rng = np.random.default_rng(0)
    X = rng.normal(size=(60, 4))
    labels = np.array([2**63, 2**64 - 1], dtype=np.uint64)
    y = labels[(X[:, 0] > 0).astype(int)]
    clf = MLPClassifier(hidden_layer_sizes=(8,), max_iter=5, random_state=0).fit(X, y)
    session = ort.InferenceSession(str(clf.to_onnx(tmp_path / "m.onnx")), providers=["CPUExecutionProvider"])
    (label,) = session.run(["label"], {"input": X.astype(np.float32)})
    assert label.dtype == np.uint64
    np.testing.assert_array_equal(label, clf.predict(X))


@pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")
@pytest.mark.parametrize("change", [{"solver": "sgd"}, {"solver": "sgd", "momentum": 0.0}, {"momentum": 0.0}], ids=str)
def test_training_on_after_a_change_of_solver(change):
    """warm_start and partial_fit after set_params changed the update rule (they once raised ``zip() argument 2
    is longer than argument 1``): the optimizer starts afresh, the weights go on."""
    rng = np.random.default_rng(1)
    X = rng.normal(size=(80, 5))
    y = (X[:, 0] > 0).astype(int)
    warm = MLPClassifier(hidden_layer_sizes=(6,), max_iter=2, random_state=0, warm_start=True).fit(X, y)
    warm.set_params(**change)
    warm.fit(X, y)
    assert warm.n_iter_ == 2 and len(warm.loss_curve_) == 4  # n_iter_: this call's epochs, as scikit-learn's
    inc = MLPClassifier(hidden_layer_sizes=(6,), solver="sgd", random_state=0).partial_fit(X, y, classes=[0, 1])
    inc.set_params(**{"solver": "adam", **change})
    inc.partial_fit(X, y)
    assert inc.n_iter_ == 1 and len(inc.loss_curve_) == 2 and np.isfinite(inc.coefs_[0]).all()
