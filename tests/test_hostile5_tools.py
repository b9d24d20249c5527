"""The tools under issue 31's leftovers: a model that reads no pictures is the server's error, never one
picture's, and a served model's picture layout is worked out once."""

from __future__ import annotations

import pytest

from helpers import tiny_data
from test_serve import Image, drawn_seven
from trained_models import save_model
from xpnet import serve
from xpnet.errors import CheckpointError
from xpnet.training import model as records


def test_a_model_that_reads_no_pictures_is_not_answered_as_the_pictures_error(tmp_path):
    model = records.load(save_model(tiny_data(), tmp_path / "tiny.npz", epochs=1))  # 16 inputs: no layout
    with pytest.raises(CheckpointError, match="16 inputs"):
        serve.picture_record(model, drawn_seven(), "seven.png", 1, pil=Image)


def test_a_served_model_works_out_its_picture_layout_once(mnist, monkeypatch):
    layouts, layout_for = [], records.layout_for
    monkeypatch.setattr(records, "layout_for", lambda *a: layouts.append(a) or layout_for(*a))
    model = serve.load_model(str(mnist[1]), "cpu")  # a named set's model: its layout is the set's, by name
    for _ in range(3):
        assert serve.picture_record(model, drawn_seven(), "seven.png", 1, pil=Image)["class"] == 7
    assert len(layouts) == 1
