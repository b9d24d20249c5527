"""The layering holds: only the backend modules name the device libraries, and the CPU path never imports them."""

from __future__ import annotations

import ast
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[1] / "src"
PACKAGE = SRC / "xpnet"
DEVICE_LIBRARIES = {"cupy", "torch", "jax", "jaxlib", "array_api_strict"}
# Where a device library may be named: backend.py, and the per-library fast paths behind it (each one
# overrides the reference step for one library).
FAST_PATHS = PACKAGE / "backend_fast"


def imported_device_libraries(source: str) -> set[str]:
    """Device libraries that ``source`` imports by name: ``import torch``, ``from jax import numpy``,
    ``import array_api_compat.cupy`` (which imports CuPy) or ``importlib.import_module("cupy")``."""
    found = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            modules = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            modules = [node.module] + [f"{node.module}.{alias.name}" for alias in node.names]
        elif (
            isinstance(node, ast.Call)
            and isinstance(node.func, (ast.Attribute, ast.Name))
            and (node.func.attr if isinstance(node.func, ast.Attribute) else node.func.id)
            in ("import_module", "__import__", "find_spec")
            and node.args
            and isinstance(node.args[0], ast.Constant)
            and isinstance(node.args[0].value, str)
        ):
            modules = [node.args[0].value]
        else:
            continue
        found |= {part for m in modules for part in m.split(".")} & DEVICE_LIBRARIES
    return found


def test_the_scanner_sees_every_spelling():
    source = "import torch\nfrom jax import numpy\nimport array_api_compat.cupy as cp\nimport importlib\n"
    source += "importlib.import_module('array_api_strict')\nfrom array_api_compat import numpy\n"
    assert imported_device_libraries(source) == {"torch", "jax", "cupy", "array_api_strict"}


def test_only_backend_modules_import_device_libraries_by_name():
    offenders = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        if path == PACKAGE / "backend.py" or path.parent == FAST_PATHS:
            continue
        found = imported_device_libraries(path.read_text(encoding="utf-8"))
        if found:
            offenders[str(path.relative_to(SRC))] = sorted(found)
    assert offenders == {}, "import device libraries in backend.py or backend_fast/ only"
    assert imported_device_libraries((PACKAGE / "backend.py").read_text(encoding="utf-8")) >= {"cupy", "torch", "jax"}


# Import every command-line module, resolve --device cpu and train one epoch on it: none of it may
# import a device library (CuPy's import alone can take seconds and print CUDA warnings).
PROBE = """
import json, sys
import xpnet.train, xpnet.check, xpnet.trainer, xpnet.agreement, xpnet.predict, xpnet.evaluate
from xpnet.backend import resolve_backend
assert resolve_backend("cpu").name == "numpy"
assert xpnet.train.main(["--device", "cpu", "--dataset", "digits", "--epochs", "1", "--hidden", "8"]) == 0
print(json.dumps(sorted(m for m in ("cupy", "torch", "jax", "array_api_strict") if m in sys.modules)))
"""


def test_cpu_training_never_imports_device_libraries():
    pytest.importorskip("sklearn", reason="the digits data set comes with scikit-learn")
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(SRC), os.environ.get("PYTHONPATH", "")])}
    out = subprocess.run([sys.executable, "-c", PROBE], capture_output=True, text=True, env=env, timeout=120)
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout.splitlines()[-1]) == []
