"""``python -m xpnet.predict``: pictures in, the model's classes out, bad files reported one by one."""

from __future__ import annotations

import dataclasses
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from xpnet import predict
from xpnet.backend import resolve_backend
from xpnet.data.datasets import CLASS_NAMES
from xpnet.training.model import load

Image = pytest.importorskip("PIL.Image", reason="predict reads PNG files with Pillow")
pytest.importorskip("sklearn", reason="the test models train on scikit-learn's digits")

from helpers import run_cli  # noqa: E402 (after the skips)
from trained_models import save_model  # noqa: E402

N = 40  # test images rendered to PNG per model


def run(capsys, *argv: str) -> tuple[int, str, str]:
    return run_cli(capsys, predict.main, predict.PROG, argv)


def model_classes(model: Path, rows: np.ndarray) -> np.ndarray:
    return load(model, resolve_backend("cpu")).classify(rows)[0]


def write_pngs(folder: Path, pictures: np.ndarray, prefix: str) -> list[str]:
    folder.mkdir(exist_ok=True)
    paths = []
    for i, p in enumerate(pictures):
        paths.append(str(folder / f"{prefix}{i:02d}.png"))
        Image.fromarray(p).save(paths[-1])
    return paths


def predicted(out: str) -> list[int]:
    return [json.loads(line)["class"] for line in out.splitlines()]


@pytest.mark.parametrize("name", ["mnist", "digits"])
def test_pngs_of_test_images_get_the_models_own_predictions(name, request, tmp_path, capsys):
    data, model = request.getfixturevalue(name)
    rows = data.x_test[:N]
    side = int(np.sqrt(rows.shape[1]))
    # MNIST-style images are already centred: rendered as they are. The 8x8 digits are shown enlarged.
    pictures = rows.reshape(N, side, side)
    if side == 8:
        pictures = np.kron(pictures, np.ones((1, 8, 8), np.uint8))
    light = write_pngs(tmp_path, pictures, "light")
    dark = write_pngs(tmp_path, 255 - pictures, "dark")  # black ink on white paper
    status, out, err = run(capsys, "--model", str(model), "--device", "cpu", "--json", *light, *dark)
    assert status == 0, err
    got = predicted(out)
    assert len(got) == 2 * N
    assert got[:N] == got[N:], "white-on-black and black-on-white must give the same class"
    agree = np.mean(np.array(got[:N]) == model_classes(model, rows))
    # A data set's own image is a fixed point of the preparation, so the pictures get the arrays' classes.
    assert agree >= 0.99, f"{name}: only {agree:.0%} agree"


def test_unreadable_files_are_reported_and_the_others_still_predicted(mnist, tmp_path, capsys):
    data, model = mnist
    good = write_pngs(tmp_path, data.x_test[:2].reshape(2, 28, 28), "good")
    corrupt = tmp_path / "corrupt.png"
    corrupt.write_bytes(Path(good[0]).read_bytes()[:80])  # a PNG cut short
    text = tmp_path / "notes.txt"
    text.write_text("not a picture\n")
    fake = tmp_path / "fake.npy"
    fake.write_text("not an array either\n")  # np.load would try to unpickle it
    status, out, err = run(
        capsys, "--model", str(model), "--device", "cpu", good[0], str(corrupt), str(text), str(fake), good[1]
    )
    assert status == 1
    lines = err.strip().splitlines()
    assert len(lines) == 3
    assert "corrupt.png" in lines[0] and "notes.txt" in lines[1] and "fake.npy: not a NumPy .npy array" in lines[2]
    assert all("Traceback" not in line and "PNG or JPEG" in line for line in lines[:2])
    printed = out.strip().splitlines()
    assert [line.split(":")[0] for line in printed] == [good[0], good[1]]


def test_json_is_one_object_per_file_in_order(mnist, tmp_path, capsys):
    data, model = mnist
    good = write_pngs(tmp_path, data.x_test[:1].reshape(1, 28, 28), "good")
    missing = str(tmp_path / "missing.png")
    status, out, _ = run(capsys, "--model", str(model), "--device", "cpu", "--json", "--top", "3", good[0], missing)
    assert status == 1
    first, second = (json.loads(line) for line in out.splitlines())
    assert first["file"] == good[0] and first["class"] == first["top"][0]["class"]
    probs = [t["probability"] for t in first["top"]]
    assert len(probs) == 3 and probs == sorted(probs, reverse=True) and sum(probs) <= 1 + 1e-9
    assert second == {"file": missing, "error": "no such file"}


def test_npy_arrays_need_no_pillow_and_pngs_name_the_extra(mnist, tmp_path, capsys, monkeypatch):
    data, model = mnist
    npy = tmp_path / "row.npy"
    np.save(npy, data.x_test[0])  # a flattened data-set row
    png = write_pngs(tmp_path, data.x_test[:1].reshape(1, 28, 28), "p")[0]
    monkeypatch.setitem(sys.modules, "PIL", None)  # `import PIL` now fails, as without Pillow
    status, out, err = run(capsys, "--model", str(model), "--device", "cpu", "--json", str(npy))
    assert status == 0, err
    assert json.loads(out)["class"] == model_classes(model, data.x_test[:1])[0]
    status, out, err = run(capsys, "--model", str(model), "--device", "cpu", str(npy), png)
    assert status == 2 and out == ""
    assert err.count("\n") == 1 and 'pip install "xpnet[images]"' in err


def test_fashion_models_print_class_names(mnist, tmp_path, capsys):
    data, _ = mnist
    names = CLASS_NAMES["fashion-mnist"]
    # The MNIST-like images under Fashion-MNIST's name and class names: a model records its data's names.
    fashion = dataclasses.replace(data, name="fashion-mnist", classes=tuple(names))
    model = save_model(fashion, tmp_path / "fashion.npz", epochs=1)
    png = write_pngs(tmp_path, data.x_test[:3].reshape(3, 28, 28), "item")
    status, out, err = run(capsys, "--model", str(model), "--device", "cpu", "--top", "2", *png)
    assert status == 0, err
    for line, path in zip(out.splitlines(), png):
        # A class with a name of its own prints by its name alone: "9 Ankle boot" would read as two answers.
        m = re.fullmatch(rf"{re.escape(path)}: (.+) \(\d+\.\d%\); then (.+) \(\d+\.\d%\)", line)
        assert m, line
        assert m[1] in names and m[2] in names and m[1] != m[2]


def test_save_input_writes_the_image_the_model_saw(digits, tmp_path, capsys):
    data, model = digits
    png = write_pngs(tmp_path, np.kron(data.x_test[:2].reshape(2, 8, 8), np.ones((1, 8, 8), np.uint8)), "d")
    seen = tmp_path / "new" / "seen"  # missing folders are created, as for every output
    status, _, err = run(capsys, "--model", str(model), "--device", "cpu", "--save-input", str(seen), *png)
    assert status == 0, err
    assert "each pixel shown as a 14x14 square" in err
    saved = sorted(seen.iterdir())
    assert [p.name for p in saved] == ["d00.seen.png", "d01.seen.png"]
    with Image.open(saved[0]) as im:  # 8x8 enlarged 14 times, nearest neighbour: each pixel a square
        assert im.size == (112, 112) and im.mode == "L"
        big = np.asarray(im)
    small = big[::14, ::14]
    assert small.max() == 255
    np.testing.assert_array_equal(big, np.kron(small, np.ones((14, 14), np.uint8)))
    (tmp_path / "a-file").write_text("")
    status, _, err = run(capsys, "--model", str(model), "--save-input", str(tmp_path / "a-file" / "seen"), *png)
    assert status == 2 and "a-file is a file, not a folder" in err and err.count("\n") == 1


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda p: p.write_text("hello"), "not an xpnet checkpoint"),
        (lambda p: None, "does not exist"),
        (lambda p: np.savez(p, x=np.zeros(3)), "not an xpnet checkpoint"),
    ],
    ids=["text", "missing", "foreign-npz"],
)
def test_a_bad_model_file_is_one_line_and_exit_2(make, message, tmp_path, capsys):
    model = tmp_path / "model.npz"
    make(model)
    status, out, err = run(capsys, "--model", str(model), str(tmp_path / "x.png"))
    assert status == 2 and out == ""
    assert err.count("\n") == 1 and message in err


@pytest.mark.parametrize("backend", ["array-api-strict", "torch"])
def test_other_backends_predict_the_same(backend, digits, tmp_path, capsys):
    pytest.importorskip(backend.replace("-", "_"), reason=f"{backend} is not installed")
    data, model = digits
    npy = []
    for i in range(5):
        npy.append(str(tmp_path / f"d{i}.npy"))
        np.save(npy[-1], data.x_test[i].reshape(8, 8))
    _, reference, _ = run(capsys, "--model", str(model), "--device", "cpu", "--json", *npy)
    status, out, err = run(capsys, "--model", str(model), "--device", "cpu", "--backend", backend, "--json", *npy)
    assert status == 0, err
    assert predicted(out) == predicted(reference)
    for a, b in zip(out.splitlines(), reference.splitlines()):
        assert json.loads(a)["probability"] == pytest.approx(json.loads(b)["probability"], rel=1e-4)


def test_the_command_runs_as_a_module(digits, tmp_path):
    data, model = digits
    npy = tmp_path / "d.npy"
    np.save(npy, data.x_test[0].reshape(8, 8))
    src = str(Path(__file__).resolve().parents[1] / "src")
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([src, os.environ.get("PYTHONPATH", "")])}
    proc = subprocess.run(
        [sys.executable, "-m", "xpnet.predict", "--model", str(model), "--device", "cpu", str(npy)],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr
    k = model_classes(model, data.x_test[:1])[0]
    assert proc.stdout.startswith(f"{npy}: {k} (")


def test_names_of_the_saved_inputs_never_collide():
    paths = [Path("a.png"), Path("x/a.jpg"), Path("a-2.png"), Path("b.npy")]
    assert predict.unique_names(paths) == ["a.seen.png", "a-2.seen.png", "a-2-2.seen.png", "b.seen.png"]
