"""Checkpoint files: round trip, loading on another backend, atomic replacement, and refusing bad files."""

from __future__ import annotations

import io
import json
import os
import zipfile
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from conftest import backend_or_skip, yield_backend_devices
from helpers import CHECKPOINT_CONFIG as CONFIG
from helpers import rewrite, set_meta, tiny_data
from xpnet import __version__, files
from xpnet.backend import resolve_backend
from xpnet.errors import CheckpointError, XpnetError
from xpnet.files import check_writable
from xpnet.train import check_resumable
from xpnet.training.loop import train
from xpnet.training.model import Model, load, save


def pairs() -> list:
    """Every (backend, device) a checkpoint should travel to, from the registry; CUDA ones skip with a reason."""
    return [pytest.param(p.values, id=p.id) for p in yield_backend_devices()]


def test_round_trip_keeps_every_array_and_counter(saved):
    path, state = saved
    ckpt = load(path)
    # the default rate is recorded as a number
    assert ckpt.config == replace(CONFIG, learning_rate_init=CONFIG.lr)
    assert (ckpt.dataset, ckpt.n_train, ckpt.state.epoch, ckpt.state.step) == ("tiny", 120, 2, 8)
    for a, b in zip(ckpt.state.params, state.params):
        assert a.dtype == np.float64 and np.array_equal(a, b)
    for a, b in zip(ckpt.state.opt_state, state.opt_state):
        assert np.array_equal(a, b)
    assert len(ckpt.state.opt_state) == 2 * len(state.params)  # adam: m and v per weight array
    assert ckpt.state.rng.bit_generator.state == state.rng.bit_generator.state
    assert ckpt.state.history == state.history
    assert ckpt.trained_on == str(resolve_backend("cpu", "numpy")) and ckpt.path == path
    with np.load(path, allow_pickle=False) as npz:
        assert json.loads(npz["meta"].tobytes())["xpnet_version"] == __version__


def test_file_is_a_plain_npz_without_pickles(saved):
    path, _ = saved
    with zipfile.ZipFile(path) as z:
        for name in z.namelist():
            header = z.read(name)[:128]
            assert b"'descr': '|O'" not in header and b"'descr': 'O'" not in header, name
    with np.load(path, allow_pickle=False) as npz:
        meta = json.loads(npz["meta"].tobytes())
    assert meta["format"] == "xpnet-checkpoint" and meta["config"]["hidden_layer_sizes"] == [12]


@pytest.mark.parametrize("dst", pairs())
@pytest.mark.parametrize("src", pairs())
def test_checkpoint_moves_between_backends(tmp_path, src, dst):
    """Saved on one backend after 1 epoch, resumed on another to 2: the NumPy 2-epoch run, to float64 noise."""
    source, target = backend_or_skip(*src), backend_or_skip(*dst)
    data = tiny_data()
    one = train(source, data, replace(CONFIG, max_iter=1))
    path = save(Model.of_data(CONFIG, one, source, data), tmp_path / "c.npz")
    ckpt = load(path)
    assert ckpt.trained_on == str(source) and ckpt.backend.name == "numpy"  # weights on NumPy unless asked
    resumed = train(target, data, CONFIG, state=ckpt.state)
    reference = train(resolve_backend("cpu", "numpy"), data, CONFIG)
    assert [s.epoch for s in resumed.history] == [1, 2]
    for got, want in zip(resumed.params, reference.params):
        np.testing.assert_allclose(target.to_numpy(got), want, rtol=1e-10, atol=1e-12)
    assert resumed.history[-1].loss == pytest.approx(reference.history[-1].loss, rel=1e-10)


def test_crash_between_write_and_rename_keeps_the_old_checkpoint(saved, monkeypatch):
    path, _ = saved
    before = path.read_bytes()
    numpy = resolve_backend("cpu", "numpy")
    data = tiny_data()
    later = train(numpy, data, replace(CONFIG, max_iter=3))
    written = []

    def crash(src, dst):
        written.append(Path(src))
        raise KeyboardInterrupt  # what a second Ctrl-C between the write and the rename looks like

    monkeypatch.setattr(files.os, "replace", crash)
    with pytest.raises(KeyboardInterrupt):
        save(Model.of_data(replace(CONFIG, max_iter=3), later, numpy, data), path)
    monkeypatch.undo()
    assert path.read_bytes() == before and load(path).state.epoch == 2
    assert sorted(p.name for p in path.parent.iterdir()) == ["model.npz"]  # the partial file is gone
    # A temporary file a killed process left (no cleanup ran) does not stop the next save.
    written[0].write_bytes(b"partial")
    save(Model.of_data(replace(CONFIG, max_iter=3), later, numpy, data), path)
    assert load(path).state.epoch == 3


def test_saved_file_gets_the_usual_permissions(saved):
    path, _ = saved
    umask = os.umask(0)
    os.umask(umask)
    assert path.stat().st_mode & 0o777 == 0o666 & ~umask


# --- refusing bad files -------------------------------------------------------------------------------


class LeavesAMark:
    """Unpickling this creates a file: proof that code from the checkpoint ran."""

    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return (open, (str(self.marker), "w"))


@pytest.mark.parametrize("entry", ["param_000", "meta"])
def test_pickled_object_arrays_are_refused_and_never_run(saved, tmp_path, entry):
    path, _ = saved
    marker = tmp_path / "code-ran"
    obj = np.empty(1, dtype=object)
    obj[0] = LeavesAMark(marker)
    rewrite(path, lambda arrays: arrays.__setitem__(entry, obj))
    with zipfile.ZipFile(path) as z:  # the file really holds a pickle
        assert b"'descr': '|O'" in z.read(f"{entry}.npy")[:128]
    with pytest.raises(CheckpointError, match="pickled or object arrays; xpnet never loads pickles"):
        load(path)
    assert not marker.exists()


BAD_EDITS = {
    "no metadata": (lambda a: a.pop("meta"), "not an xpnet checkpoint"),
    "foreign metadata": (lambda a: set_meta(a, format="something-else"), "not an xpnet checkpoint"),
    "metadata not json": (lambda a: a.__setitem__("meta", np.frombuffer(b"\xff{", np.uint8)), "not JSON"),
    "newer format": (lambda a: set_meta(a, format_version=99), "newer"),
    "missing weights": (lambda a: a.pop("param_001"), "missing the array 'param_001'"),
    "missing optimizer state": (lambda a: a.pop("opt_003"), "missing the array 'opt_003'"),
    "mis-shaped weights": (lambda a: a.__setitem__("param_000", np.zeros((16, 13))), "param_000"),
    "wrong dtype": (lambda a: a.__setitem__("param_001", a["param_001"].astype(np.float32)), "float32"),
    "extra array": (lambda a: a.__setitem__("surprise", np.zeros(3)), "surprise"),
    "layers disagree with config": (lambda a: set_meta(a, layer_sizes=[16, 13, 10]), "inconsistent"),
    "missing counter": (lambda a: set_meta(a, step=None), "step"),
    "bad rng": (lambda a: set_meta(a, rng={"bit_generator": "system", "state": {}}), "random-generator"),
}


def set_config(arrays: dict, **changes) -> None:
    meta = json.loads(arrays["meta"].tobytes())
    set_meta(arrays, config=meta["config"] | changes)


# Numbers a foreign file might carry that the flags never accept: each must fail to load, not train oddly,
# with the parameter named by the config's own rule.
BAD_EDITS |= {
    f"config {key}={value!r}": (
        lambda a, kv={key: value}: set_config(a, **kv),
        rf"damaged or not written by xpnet \({key}: must be",
    )
    for key, value in [
        ("lr_decay", None),
        ("lr_decay", -2.0),
        ("lr_decay", 1.5),
        ("learning_rate_init", "x"),
        ("learning_rate_init", 0.0),
        ("learning_rate_init", float("nan")),
        ("batch_size", -3),
        ("max_iter", 0),
        ("random_state", 1.5),
    ]
}


@pytest.mark.parametrize("edit, expected", BAD_EDITS.values(), ids=BAD_EDITS.keys())
def test_malformed_checkpoints_are_refused_in_one_line(saved, edit, expected):
    path, _ = saved
    rewrite(path, edit)
    with pytest.raises(CheckpointError, match=expected) as info:
        load(path)
    assert "\n" not in str(info.value)


TRUNCATIONS = {
    "empty": lambda d: b"",
    "10-bytes": lambda d: d[:10],
    "half": lambda d: d[: len(d) // 2],
    "last-bytes-lost": lambda d: d[:-30],
}


# Version 1 named the settings as the command line's flags (and had no early stopping but --patience).
V1_NAMES = {"hidden_layer_sizes": "hidden", "learning_rate_init": "lr", "lr_decay": "gamma", "max_iter": "epochs",
            "random_state": "seed", "nesterovs_momentum": "nesterov"}  # fmt: skip


def as_version_1(arrays: dict, drop: tuple[str, ...] = ()) -> None:
    """Rewrite the metadata as a version-1 file holds it: the config in the flags' names, less ``drop``."""
    config = json.loads(arrays["meta"].tobytes())["config"]
    new_only = ("solver", "early_stopping", "n_iter_no_change", "tol", "learning_rate", "power_t", "out_activation")
    new_only += ("init", "max_fun")
    old = {V1_NAMES.get(k, k): v for k, v in config.items() if k not in new_only} | {"patience": 0}
    set_meta(arrays, format_version=1, config={k: v for k, v in old.items() if k not in drop})


def test_a_version_1_checkpoint_loads_with_its_settings_translated(saved):
    path, _ = saved
    rewrite(path, as_version_1)
    assert load(path).config == replace(CONFIG, learning_rate_init=CONFIG.lr)


def test_checkpoint_from_before_gamma_loads_with_a_constant_rate(saved):
    path, _ = saved
    rewrite(path, lambda a: set_config(a, lr_decay=0.5))  # not the default: the 1.0 below comes from the loader
    rewrite(path, lambda a: as_version_1(a, drop=("gamma",)))
    assert load(path).config.lr_decay == 1.0


@pytest.mark.parametrize("cut", TRUNCATIONS.values(), ids=TRUNCATIONS.keys())
def test_truncated_checkpoint_is_refused(saved, cut):
    path, _ = saved
    path.write_bytes(cut(path.read_bytes()))
    with pytest.raises(CheckpointError, match=r"not an xpnet checkpoint|damaged|truncated"):
        load(path)


def test_other_files_are_refused(tmp_path):
    with pytest.raises(CheckpointError, match="does not exist"):
        load(tmp_path / "nope.npz")
    npy = tmp_path / "weights.npy"
    np.save(npy, np.zeros(3))
    text = tmp_path / "notes.txt"
    text.write_text("hello")
    pickled = tmp_path / "model.pkl"
    pickled.write_bytes(b"\x80\x04K\x01.")
    other_zip = tmp_path / "other.npz"
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        z.writestr("readme.txt", "not arrays")
    other_zip.write_bytes(buf.getvalue())
    for path in (npy, text, pickled):
        with pytest.raises(CheckpointError, match="not an xpnet checkpoint"):
            load(path)
    with pytest.raises(CheckpointError):
        load(other_zip)


def test_resume_refuses_a_different_model_or_data(saved):
    path, _ = saved
    ckpt = load(path)
    ok = replace(ckpt.config, max_iter=4, learning_rate_init=0.01, lr_decay=0.9, batch_size=64)  # may change
    tiny = tiny_data()
    check_resumable(ckpt, ok, tiny)
    cases = {
        "--hidden 12 (you asked for 20)": (replace(ok, hidden_layer_sizes=(20,)), tiny),
        "--activation relu (you asked for tanh)": (replace(ok, activation="tanh"), tiny),
        "--optimizer adam (you asked for sgd)": (replace(ok, solver="sgd"), tiny),
        "--optimizer adam (you asked for momentum)": (replace(ok, solver="sgd", momentum=0.9), tiny),
        "--dtype float64 (you asked for float32)": (replace(ok, dtype="float32"), tiny),
        "--seed 3 (you asked for 4)": (replace(ok, random_state=4), tiny),
        "dataset tiny (you asked for digits)": (ok, replace(tiny, name="digits")),
        "inputs 16 (you asked for 64)": (ok, tiny_data(n_features=64)),
    }
    for message, (config, data) in cases.items():
        with pytest.raises(CheckpointError, match=message.replace("(", r"\(").replace(")", r"\)")):
            check_resumable(ckpt, config, data)
    with pytest.raises(CheckpointError, match=r"trained on 120 images of tiny but this run has 100 \(the checkpoint"):
        check_resumable(ckpt, ok, tiny_data(n_train=100))  # a different --val-split, say
    with pytest.raises(CheckpointError, match="already trained 2 epochs"):
        check_resumable(ckpt, replace(ok, max_iter=2), tiny)


def test_unwritable_save_paths_fail_early(tmp_path):
    assert check_writable(tmp_path / "ok.npz") == tmp_path / "ok.npz"
    with pytest.raises(XpnetError, match="is a folder"):
        check_writable(tmp_path)
    a_file = tmp_path / "file.txt"
    a_file.write_text("")
    with pytest.raises(XpnetError, match=r"file\.txt is a file, not a folder"):
        check_writable(a_file / "sub" / "m.npz")


def test_missing_folders_are_made_by_the_write_not_the_check(tmp_path):
    path = tmp_path / "a" / "b" / "m.npz"
    assert check_writable(path) == path and list(tmp_path.iterdir()) == []
    files.atomic_write(path, lambda f: f.write(b"x"))
    assert path.read_bytes() == b"x"


@pytest.mark.skipif(not hasattr(os, "geteuid") or os.geteuid() == 0, reason="root may write anywhere")
def test_read_only_folder_fails_early(tmp_path):
    folder = tmp_path / "ro"
    folder.mkdir()
    folder.chmod(0o500)
    try:
        with pytest.raises(XpnetError, match="cannot save"):
            check_writable(folder / "m.npz")
    finally:
        folder.chmod(0o700)
