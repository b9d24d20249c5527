"""The layering holds: each layer imports only those below it, only ``backend/`` names the device libraries,
and the CPU path never imports them."""

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
BACKEND = PACKAGE / "backend"
# The layers, lowest first (docs/layout.md): a module may import its own layer and those before it. The math
# (``nn.py``) imports nothing else from xpnet; ``errors`` and ``files`` are the base every layer may use; the
# entry points are the modules at the top.
LAYERS = ("base", "nn", "data", "backend", "training", "library", "cli", "entry")
BASE = {"__init__", "errors", "files"}


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
        if BACKEND in path.parents:
            continue
        found = imported_device_libraries(path.read_text(encoding="utf-8"))
        if found:
            offenders[str(path.relative_to(SRC))] = sorted(found)
    assert offenders == {}, "import device libraries under backend/ only"
    named = set().union(*(imported_device_libraries(p.read_text(encoding="utf-8")) for p in BACKEND.rglob("*.py")))
    assert named >= {"cupy", "torch", "jax", "array_api_strict"}


def layer_of(path: Path) -> str:
    """The layer of a module: its first folder under xpnet/ (or ``nn.py``), or base/entry for the other
    top-level modules."""
    parts = path.relative_to(PACKAGE).with_suffix("").parts
    if len(parts) > 1 or parts[0] in LAYERS:
        return parts[0]
    return "base" if parts[0] in BASE else "entry"


def xpnet_imports(path: Path) -> set[str]:
    """The xpnet layers ``path`` imports (relative imports resolved)."""
    package = path.relative_to(SRC).with_suffix("").parts[:-1]
    found = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.ImportFrom):
            if node.level:
                base = package[: len(package) - node.level + 1]
                targets = [(*base, *(node.module or "").split(".")) if node.module else base]
                if not node.module:  # from . import a, b
                    targets = [(*base, alias.name) for alias in node.names]
            else:
                targets = [tuple((node.module or "").split("."))]
        elif isinstance(node, ast.Import):
            targets = [tuple(alias.name.split(".")) for alias in node.names]
        else:
            continue
        for t in targets:
            t = tuple(p for p in t if p)
            if t[:1] == ("xpnet",) and len(t) > 1:
                module = PACKAGE.joinpath(*t[1:])
                if module.is_dir():
                    module = module / "__init__.py"
                elif module.with_suffix(".py").is_file():
                    module = module.with_suffix(".py")
                else:  # a name defined in a package: from .. import __version__
                    module = module.parent / "__init__.py"
                found.add(layer_of(module))
    return found


def test_each_layer_imports_only_the_layers_below_it():
    offenders = []
    for path in sorted(PACKAGE.rglob("*.py")):
        if path == PACKAGE / "__init__.py":  # the public face: it names the library's classes, loaded on first use
            continue
        mine = layer_of(path)
        for theirs in xpnet_imports(path):
            if theirs == "entry" and mine != "entry":
                offenders.append(f"{path.relative_to(SRC)} imports an entry point")
            elif LAYERS.index(theirs) > LAYERS.index(mine):
                offenders.append(f"{path.relative_to(SRC)} ({mine}) imports {theirs}")
    assert offenders == []


def test_the_math_does_its_math_through_xp_only():
    """NumPy appears in ``nn.py`` only where the initial weights are drawn on the host, by design."""
    tree = ast.parse((PACKAGE / "nn.py").read_text(encoding="utf-8"))
    imported = {a.name for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names}
    imported |= {n.module for n in ast.walk(tree) if isinstance(n, ast.ImportFrom) and n.level == 0}
    assert imported <= {"__future__", "itertools", "math", "collections.abc", "typing", "numpy"}
    defined = [f for f in tree.body if isinstance(f, (ast.FunctionDef, ast.ClassDef))]
    users = {f.name for f in defined for n in ast.walk(f) if isinstance(n, ast.Name) and n.id == "np"}
    assert users == {"init_params"}


# Import every command-line module, resolve --device cpu and train one epoch on it: none of it may
# import a device library (CuPy's import alone can take seconds and print CUDA warnings).
PROBE = """
import json, sys
import xpnet.train, xpnet.check, xpnet.training.loop, xpnet.predict, xpnet.evaluate
import xpnet.training.model, xpnet.library.export
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


# Where xpnet may print other than through `errors.say` (which escapes each line): the check table of
# backend names, the estimator's scikit-learn-worded verbose lines, the signal handler (no allocation-heavy
# call there) and the xpnet command's usage and version.
PRINTS_ALLOWED = {"errors.py", "check.py", "__main__.py", "cli/common.py", "library/estimator.py"}


def test_tools_print_through_say():
    printing = set()
    for path in sorted(PACKAGE.rglob("*.py")):
        tree = ast.parse(path.read_text(encoding="utf-8"))
        calls = [n.func for n in ast.walk(tree) if isinstance(n, ast.Call)]
        if any(isinstance(f, ast.Name) and f.id == "print" for f in calls):
            printing.add(path.relative_to(PACKAGE).as_posix())
    assert printing - PRINTS_ALLOWED == set(), "print through xpnet.errors.say, which escapes names"
    assert "errors.py" in printing  # the scanner sees say's own print
