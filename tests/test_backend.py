"""Resolving --device/--backend, including what happens when CuPy is missing."""

import subprocess
import sys
import warnings

import numpy as np
import pytest

import xpnet.backend as backend_package
from xpnet.backend import parse_device, resolve_backend
from xpnet.errors import BackendError


@pytest.fixture
def no_cupy(monkeypatch):
    # A None entry in sys.modules makes `import cupy` raise ImportError, whatever is installed.
    monkeypatch.setitem(sys.modules, "cupy", None)


def test_cpu_defaults_to_numpy():
    b = resolve_backend("cpu")
    assert (b.name, b.device_name, b.note) == ("numpy", "cpu", "")
    x = b.asarray(np.arange(3.0))
    np.testing.assert_array_equal(b.to_numpy(x * 2), [0.0, 2.0, 4.0])


def test_auto_without_cupy_or_gpu_falls_back_to_numpy_quietly(no_cupy, monkeypatch):
    monkeypatch.setattr(backend_package, "gpu_present", lambda: False)
    b = resolve_backend("auto")
    assert (b.name, b.device_name, b.note) == ("numpy", "cpu", "")  # a laptop's CPU run is no news
    assert b.fallback_reason.startswith("no GPU found: using numpy on cpu")  # for --verbose
    assert "xpnet[cuda12]" in b.fallback_reason


def test_auto_with_an_unusable_gpu_says_why(no_cupy, monkeypatch):
    monkeypatch.setattr(backend_package, "gpu_present", lambda: True)
    b = resolve_backend("auto")
    assert (b.name, b.device_name) == ("numpy", "cpu")
    assert b.note.startswith("a GPU is present but unusable: using numpy on cpu")
    assert "xpnet[cuda12]" in b.note and b.fallback_reason == b.note


@pytest.mark.parametrize("device", ["cuda", "cuda:1"])
def test_cuda_without_cupy_names_the_extra(no_cupy, device):
    with pytest.raises(BackendError, match=r'pip install "xpnet\[cuda12\]"'):
        resolve_backend(device)


def test_array_api_strict_on_cpu():
    b = resolve_backend("cpu", "array-api-strict")
    assert b.name == "array-api-strict" and b.device_name == "cpu"
    np.testing.assert_array_equal(b.to_numpy(b.asarray(np.ones(2))), [1.0, 1.0])


@pytest.mark.parametrize(
    ("device", "backend", "message"),
    [
        ("gpu", None, "unknown device 'gpu'"),
        ("cpu:1", None, "unknown device"),
        ("cpu", "cupy", "cupy runs only on CUDA devices"),
        ("cuda", "numpy", "numpy runs only on the CPU"),
        ("cpu", "tensorflow", "unknown backend"),
    ],
)
def test_impossible_requests_are_one_line_errors(device, backend, message):
    with pytest.raises(BackendError, match=message) as info:
        resolve_backend(device, backend)
    assert "\n" not in str(info.value)


def test_parse_device():
    assert parse_device("CUDA:2") == ("cuda", 2)
    assert parse_device("cpu") == ("cpu", 0)


def test_torch_on_cpu():
    pytest.importorskip("torch", reason="torch is not installed")
    b = resolve_backend("cpu", "torch")
    assert b.name == "torch" and b.device_name == "cpu"
    np.testing.assert_array_equal(b.to_numpy(b.asarray(np.arange(2.0)) + 1), [1.0, 2.0])


def test_cli_device_cuda_without_cupy_exits_2_with_one_line():
    code = (
        "import sys; sys.modules['cupy'] = None\n"
        "from xpnet import train\nfrom xpnet.cli import common as cli\n"
        "sys.exit(cli.run(train.main, ['--device', 'cuda', '--dataset', 'digits'], prog='xpnet.train'))\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1, proc.stderr
    assert 'pip install "xpnet[cuda12]"' in lines[0] and "Traceback" not in proc.stderr


def test_torch_gets_its_own_copy_of_read_only_host_data():
    pytest.importorskip("torch")
    host = np.arange(6, dtype=np.uint8)
    host.flags.writeable = False  # as the IDX reader returns its data
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # PyTorch warns when it shares a read-only buffer
        t = resolve_backend("cpu", "torch").asarray(host)
    assert t.tolist() == list(range(6))
    assert t.data_ptr() != host.ctypes.data  # a copy (the warning fires only once per process)
