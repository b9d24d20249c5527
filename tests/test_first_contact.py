"""What a new user meets first (issue 17): the ``xpnet`` command, the help texts, outputs whose folders are
made, a quiet CPU fallback, readable missing-data errors and the install extras the README promises."""

from __future__ import annotations

import importlib.util
import sys
import tempfile
from pathlib import Path

import pytest

import xpnet.backend as backend_package
from xpnet import __main__ as dispatcher
from xpnet import check, evaluate, predict, train
from xpnet.backend import registry
from xpnet.data.download import MissingData
from xpnet.errors import XpnetError
from xpnet.files import check_writable

pytest.importorskip("sklearn", reason="the digits data set comes with scikit-learn")

from helpers import run_cli, run_module, run_python, run_train

ROOT = Path(__file__).resolve().parents[1]
TINY = ["--dataset", "digits", "--epochs", "1", "--hidden", "8"]


def test_save_and_log_create_their_folders(capsys, tmp_path):
    model, log = tmp_path / "a" / "b" / "model.npz", tmp_path / "c" / "train.jsonl"
    status, _, err = run_train(capsys, *TINY, "--device", "cpu", "--save", str(model), "--log", str(log))
    assert status == 0, err
    assert model.is_file() and log.is_file()


def test_a_refused_path_leaves_no_folder_behind(tmp_path, monkeypatch):
    def unwritable(*args, **kwargs):
        raise PermissionError(13, "Permission denied")

    monkeypatch.setattr(tempfile, "TemporaryFile", unwritable)
    with pytest.raises(XpnetError, match="Permission denied"):
        check_writable(tmp_path / "x" / "y" / "m.npz")
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("gpu", [False, True], ids=["no-gpu", "unusable-gpu"])
def test_auto_on_the_cpu_is_quiet_unless_a_gpu_is_here_or_verbose_is_asked(gpu, capsys, monkeypatch):
    monkeypatch.setitem(sys.modules, "cupy", None)  # as if CuPy were not installed
    monkeypatch.setattr(backend_package, "gpu_present", lambda: gpu)
    status, out, err = run_train(capsys, *TINY)
    assert status == 0, err
    assert out.splitlines()[0].endswith("; numpy on cpu")
    if gpu:
        assert err.startswith("a GPU is present but unusable: using numpy on cpu (cupy is not installed")
    else:
        assert err == ""  # no warning-like line on a machine without a GPU
    status, _, err = run_train(capsys, *TINY, "--quiet", "--verbose")
    assert status == 0 and "using numpy on cpu" in err and 'pip install "xpnet[cuda12]"' in err
    status, _, err = run_train(capsys, *TINY, "--device", "cuda")
    assert status == 2 and "cupy is not installed" in err  # --device cuda still says why


needs_pillow = pytest.mark.skipif(
    importlib.util.find_spec("PIL") is None, reason="scripts/make_pictures.py writes pictures with Pillow"
)


def test_gpu_present_looks_for_device_nodes_or_nvidia_smi(monkeypatch):
    monkeypatch.setattr(backend_package.glob, "glob", lambda pattern: [])
    monkeypatch.setattr(backend_package.shutil, "which", lambda name: None)
    assert backend_package.gpu_present() is False
    monkeypatch.setattr(backend_package.glob, "glob", lambda pattern: ["/dev/nvidia0"])
    assert backend_package.gpu_present() is True
    monkeypatch.setattr(backend_package.glob, "glob", lambda pattern: [])
    monkeypatch.setattr(backend_package.shutil, "which", lambda name: "/usr/bin/nvidia-smi")
    assert backend_package.gpu_present() is True


def test_an_error_is_one_line_unless_it_has_details(capsys):
    def fails(error: Exception):
        return lambda argv: (_ for _ in ()).throw(error)

    status, _, err = run_cli(capsys, fails(XpnetError("first\nsecond")), "xpnet.x", [])
    assert status == 2 and err == "xpnet.x: error: first\\nsecond\n"  # a newline in a name stays visible
    status, _, err = run_cli(capsys, fails(MissingData("short", details=["detail one", "detail two"])), "xpnet.x", [])
    assert status == 2 and err == "xpnet.x: error: short\n  detail one\n  detail two\n"


@pytest.mark.parametrize("tool", [train, predict, evaluate, check], ids=lambda m: m.__name__)
def test_every_help_lists_its_exit_statuses(tool):
    text = tool.build_parser().format_help()
    assert "Exit status:" in text
    statuses = text.split("Exit status:")[1].split()
    assert {"0", "2", "130"} <= set(statuses)


def test_train_help_names_every_library_and_what_save_does_with_folders():
    text = " ".join(train.build_parser().format_help().split())
    assert all(name in text for name in registry())  # generated from the registry: jax included
    assert "missing folders in PATH are created" in text


# In this process the tool's module is already imported, which runpy warns about; `xpnet train` never has it.
@pytest.mark.filterwarnings("ignore:'xpnet.train' found in sys.modules:RuntimeWarning")
def test_the_xpnet_command_runs_each_tool(capsys):
    out = run_module("xpnet", "--help")
    assert out.returncode == 0
    assert all(f"  {name} " in out.stdout for name in ("train", "predict", "evaluate", "check"))
    done = run_module("xpnet", "train", "--epochs", "0")
    assert done.returncode == 2
    assert done.stderr.startswith("xpnet.train: error: argument --epochs")  # as its run-time errors
    done = run_module("xpnet", "nope")
    assert done.returncode == 2 and "choose one of train, predict, evaluate, check" in done.stderr
    with pytest.raises(SystemExit) as stop:
        dispatcher.main(["train", *TINY, "--device", "cpu", "--quiet", "--json"])
    assert stop.value.code == 0
    assert '"dataset": "digits"' in capsys.readouterr().out


def test_pyproject_installs_what_the_readme_promises():
    tomllib = pytest.importorskip("tomllib", reason="Python 3.11 reads TOML")
    project = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    assert project["scripts"] == {"xpnet": "xpnet.__main__:main"}
    test_extra = " ".join(project["optional-dependencies"]["test"])
    assert "pillow" in test_extra and "matplotlib" in test_extra  # the picture and plot tests must not skip


@needs_pillow
def test_make_pictures_writes_a_picture_folder_capped_per_class(tmp_path):
    script = str(ROOT / "scripts" / "make_pictures.py")
    done = run_python(script, "--folder", "--per-class", "3,1", "--dataset", "digits", str(tmp_path / "d"))
    assert done.returncode == 0, done.stderr
    assert done.stdout == f"{tmp_path / 'd'}: 30 training and 10 test pictures of digits\n"
    for split, n in (("train", 3), ("test", 1)):
        folders = sorted((tmp_path / "d" / split).iterdir())
        assert [f.name for f in folders] == [f"digit-{k}" for k in range(10)]
        assert all(len(list(f.iterdir())) == n for f in folders)
    done = run_python(script, "--per-class", "3,1", "--dataset", "digits", str(tmp_path / "e"))
    assert done.returncode == 2 and "add --folder" in done.stderr and not (tmp_path / "e").exists()


@needs_pillow
@pytest.mark.parametrize("folder", [False, True], ids=["pictures", "folder"])
def test_make_pictures_refuses_a_symlink_loop_as_every_output_does(tmp_path, folder):
    (tmp_path / "loop").symlink_to("loop")
    argv = ["--folder"] * folder + ["--dataset", "digits", str(tmp_path / "loop")]
    done = run_python(str(ROOT / "scripts" / "make_pictures.py"), *argv)
    assert done.returncode == 2 and done.stderr.count("\n") == 1 and "go round in a loop" in done.stderr, done.stderr
    assert (tmp_path / "loop").readlink() == Path("loop")


@needs_pillow
def test_make_pictures_writes_the_walk_through_pictures(tmp_path):
    done = run_python(str(ROOT / "scripts" / "make_pictures.py"), "--dataset", "digits", str(tmp_path / "new" / "p"))
    assert done.returncode == 0, done.stderr
    names = sorted(p.name for p in (tmp_path / "new" / "p").iterdir())
    assert names == ["catalogue.jpg", "notes.txt", "test-1.png", "test-2.npy"]
    assert done.stdout.count("true class") == 3
