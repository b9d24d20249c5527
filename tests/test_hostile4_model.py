"""Issue 31's leftovers for the model record: every xpnet error is a ValueError naming what is wrong, and
every .npz xpnet reads (a checkpoint, a picture folder's cache) is refused encrypted or oversized, once,
before a byte is inflated."""

from __future__ import annotations

import struct
from pathlib import Path

import numpy as np
import pytest

import folder_sets
import xpnet
from helpers import rewrite, set_meta
from xpnet.data import cache, load_dataset, npy
from xpnet.errors import BackendError, CheckpointError, DataError, OutOfMemory, TrainingDiverged, XpnetError
from xpnet.training.model import ConfigError, TrainConfig, load


def test_every_xpnet_error_is_a_value_error_and_a_setting_names_its_parameter(tmp_path):
    for cls in (XpnetError, BackendError, CheckpointError, DataError, ConfigError, TrainingDiverged, OutOfMemory):
        assert issubclass(cls, ValueError), cls
    assert issubclass(OutOfMemory, MemoryError)  # out of memory is both: a caller may catch either
    with pytest.raises(ValueError, match="does not exist"):  # a CheckpointError, caught as scikit-learn's users do
        xpnet.load(tmp_path / "missing.npz")
    with pytest.raises(ValueError, match="lr_decay: must be in") as info:
        TrainConfig(lr_decay=2.0)
    assert info.value.parameter == "lr_decay"
    with pytest.raises(ValueError):  # a BackendError: no such device
        xpnet.MLPClassifier(device="no-such-device").fit(np.eye(4), [0, 1, 0, 1])


def test_a_checkpoint_error_raised_inside_load_is_not_rewrapped_as_damage(saved):
    """CheckpointError is a ValueError now: load's catch-all for malformed metadata must let its own through."""
    path, _ = saved
    rewrite(path, lambda a: a.pop("param_001"))
    with pytest.raises(CheckpointError) as info:
        load(path)
    assert str(info.value).startswith(f"{path} is missing the array 'param_001'"), info.value
    rewrite(path, lambda a: set_meta(a, format_version=99))
    with pytest.raises(CheckpointError, match=r"newer than xpnet") as info:
        load(path)
    assert "damaged" not in str(info.value)


def set_encrypted(path: Path) -> None:
    """Set the "encrypted" flag of every member, in the local headers and the central directory."""
    raw = bytearray(path.read_bytes())
    for signature, flags_at in ((b"PK\x03\x04", 6), (b"PK\x01\x02", 8)):
        at = raw.find(signature)
        while at >= 0:
            raw[at + flags_at] |= 1
            at = raw.find(signature, at + 4)
    path.write_bytes(bytes(raw))


def declare_huge(path: Path) -> None:
    """Make the central directory declare 3 GiB for the first member: the file stays a few kB."""
    raw = bytearray(path.read_bytes())
    struct.pack_into("<I", raw, raw.find(b"PK\x01\x02") + 24, 3 << 30)
    path.write_bytes(bytes(raw))


@pytest.mark.parametrize("spoil", [set_encrypted, declare_huge], ids=["encrypted", "declares-gigabytes"])
def test_open_npz_refuses_an_encrypted_or_oversized_zip_before_inflating(tmp_path, spoil):
    path = tmp_path / "a.npz"
    np.savez(path, x=np.arange(10))
    spoil(path)
    with pytest.raises(npy.NpyError, match=r"encrypted|declares 3\.00 GiB"), npy.open_npz(path):
        pass


@pytest.mark.parametrize("spoil", [set_encrypted, declare_huge], ids=["encrypted", "declares-gigabytes"])
def test_a_hostile_picture_folder_cache_costs_a_rebuild(tmp_path, spoil):
    """The cache is an .npz too: one encrypted or declaring gigabytes is read through the same bounded door,
    said to be unusable, and rebuilt from the pictures."""
    pytest.importorskip("PIL")
    root = folder_sets.write_digits(tmp_path / "pictures", per_class=(3, 1))
    first = load_dataset("folder", root)
    where = cache.cache_path(root, 28)
    spoil(where)
    notes: list[str] = []
    again = load_dataset("folder", root, notify=notes.append)
    np.testing.assert_array_equal(again.x_train, first.x_train)
    assert any("unusable" in n and ("encrypted" in n or "declares" in n) for n in notes), notes
    with npy.open_npz(where) as (_, members):  # rebuilt, plain
        assert set(members) == set(cache.KEYS)
