"""Adding an array library is one new module: the registry finds it, and everything else reads the registry."""

from __future__ import annotations

import textwrap

import pytest

from helpers import run_train
from xpnet import backend, check
from xpnet.backend import registry, resolve_backend
from xpnet.errors import BackendError

# A new library, written as a contributor would: one module defining SPEC. It reuses NumPy's namespace so
# that it runs anywhere; a real one would import its own library inside make().
PLUGIN = """
import numpy as np
from xpnet.backend import Backend, BackendSpec, Probe


def make(device):
    import array_api_compat.numpy as xp

    return Backend("mirror", xp, "cpu", "cpu", np.asarray)


def probe():
    return Probe("mirror", True, "mirror 1.0", ("cpu",))


SPEC = BackendSpec(
    name="mirror", module="numpy", kinds=("cpu",), make=make, probe=probe, install_hint="nothing", order=9
)
"""


@pytest.fixture
def mirror(tmp_path, monkeypatch):
    """The package with one more backend module in it, as if the file had been added to xpnet/backend/."""
    (tmp_path / "mirror.py").write_text(textwrap.dedent(PLUGIN))
    monkeypatch.setattr(backend, "__path__", [*backend.__path__, str(tmp_path)])
    registry.cache_clear()
    yield
    registry.cache_clear()


def test_the_registry_lists_the_five_libraries_from_their_own_modules():
    assert list(registry()) == ["numpy", "cupy", "torch", "jax", "array-api-strict"]
    assert {s.name: s.default_for for s in registry().values() if s.default_for} == {
        "numpy": ("cpu",),
        "cupy": ("cuda",),
    }


def test_a_new_module_is_a_new_backend_everywhere(mirror, capsys):
    assert "mirror" in registry()
    assert resolve_backend("cpu", "mirror").name == "mirror"
    with pytest.raises(BackendError, match="mirror runs only on the CPU"):
        resolve_backend("cuda", "mirror")
    # The training command accepts it and trains on it, with no edit anywhere else.
    status, out, err = run_train(capsys, "--dataset", "digits", "--backend", "mirror", "--epochs", "1")
    assert status == 0, err
    assert "mirror on cpu" in out
    # The agreement check finds it and compares it with NumPy float64.
    assert check.main(["--backend", "mirror", "--dtype", "float64"]) == 0
    assert "mirror" in capsys.readouterr().out


def test_an_unknown_backend_names_the_known_ones():
    with pytest.raises(BackendError, match="choose one of numpy, cupy, torch, jax, array-api-strict"):
        resolve_backend("cpu", "tensorflow")
