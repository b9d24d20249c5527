"""The README and docs/usage.md run as written: every command of their ``bash`` blocks, and every ``$`` line of
their ``console`` blocks, run in a temporary folder, in order, as one shell script per document.

A few commands cannot run here as written, and each rule below says why and what runs instead: installing
(the test runs in the installed environment), the test suite itself, a GPU, and the 60,000-image sets, which
become scikit-learn's ``digits`` (real data, no download, a second to train). Where a document shows an exit
status (``$ echo $?`` and the number), the command before it must end with that status; every other command
must succeed.
"""

from __future__ import annotations

import importlib.util
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from xpnet.backend import registry

pytest.importorskip("sklearn", reason="the walk-throughs run on scikit-learn's digits")
pytest.importorskip("PIL", reason="the walk-throughs read pictures with Pillow")
pytest.importorskip("matplotlib", reason="the walk-throughs draw plots with matplotlib")

ROOT = Path(__file__).resolve().parents[1]
DOCS = ("README.md", "docs/usage.md")

# Commands left out, with the reason: they set up what the test already has, or need what CI lacks.
SKIP = {
    r"^python3 -m venv\b": "the test runs in the environment already made",
    r"^\. \.venv/bin/activate$": "the test runs in the environment already made",
    r"^pip install\b": "the test runs in the installed environment (and may not use the network)",
    r"^ruff\b": "the lint runs in CI on its own",
    r"-m pytest\b": "the test suite is what runs this test",
    r"--device cuda\b": "needs a CUDA GPU",
    r"^python -m xpnet\.check$": "CI runs it right after the tests (.ci/run), and tests/test_check.py tests it",
    r"^python -m xpnet[. ]serve\b": "serves until Ctrl-C: tests/test_serve.py runs it, and parses each documented one",
}
# An optional library the docs name may be missing here (CI installs PyTorch and JAX when it can).
SKIP.update({rf"--backend {s.name}\b": f"{s.name} is not installed" for s in registry().values() if not s.installed})
# Dask is an optional extra too (the README installs it with pip install -e ".[dask]", left out above).
if importlib.util.find_spec("distributed") is None:
    SKIP[r"--(workers|scheduler)\b"] = 'Dask is not installed (pip install -e ".[dask]")'
ENV = {
    **os.environ,
    "PYTHONPATH": os.pathsep.join([str(ROOT / "src"), os.environ.get("PYTHONPATH", "")]),
    "PATH": os.pathsep.join([str(Path(sys.executable).parent), os.environ.get("PATH", "")]),  # `python`: this one
}
# Each data set the docs train on becomes digits; the training commands that name none (MNIST) get it too.
DATASET = (r"--dataset (mnist|fashion-mnist)\b", "--dataset digits")


def commands(markdown: str) -> list[tuple[str, int]]:
    """The commands of ``markdown``'s bash and console blocks, in order, with the exit status each must end
    with (0 unless a console block shows ``$ echo $?`` after it)."""
    found: list[tuple[str, int]] = []
    for lang, body in re.findall(r"^```(bash|console)\n(.*?)^```", markdown, flags=re.S | re.M):
        lines = body.splitlines()
        for i, line in enumerate(lines):
            if lang == "bash":
                command = re.sub(r"\s+#.*$", "", line).strip()
            elif line.startswith("$ "):
                command = line[2:].strip()
            else:
                continue
            if command == "echo $?":
                found[-1] = (found[-1][0], int(lines[i + 1]))
            elif command:
                # A chain of set-up steps: keep the steps that can run here.
                steps = [s.strip() for s in command.split(" && ")]
                found += [(s, 0) for s in steps if not any(re.search(p, s) for p in SKIP)]
    return found


def adapt(command: str, folder: Path) -> str:
    """``command`` as it runs here: on digits, in ``folder`` instead of /tmp, with scripts/ from this clone."""
    command = re.sub(DATASET[0], DATASET[1], command)
    if re.match(r"python -m xpnet[. ]train\b", command) and "--dataset" not in command and "--resume" not in command:
        command += " " + DATASET[1]
    command = command.replace("/tmp/", f"{folder}/")
    return re.sub(r"(?<![\w/])scripts/", f"{ROOT}/scripts/", command)


def script(markdown: str, folder: Path) -> str:
    """One bash script running every command of ``markdown``, stopping at the first that ends unexpectedly."""
    lines = ["set -u"]
    for command, status in commands(markdown):
        adapted = adapt(command, folder)
        lines += [
            f"echo {_quote('$ ' + adapted)} >&2",
            f"{adapted} && s=0 || s=$?",
            f'if [ "$s" != {status} ]; then echo "exit status $s, expected {status}" >&2; exit 99; fi',
        ]
    return "\n".join(lines) + "\n"


def _quote(text: str) -> str:
    return "'" + text.replace("'", "'\\''") + "'"


def test_the_commands_are_found_and_adapted():
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    found = [c for c, _ in commands(text)]
    assert "python -m xpnet.train --dataset digits" in found  # the set-up command, less its install steps
    assert not any("pip install" in c or "pytest" in c or "cuda" in c for c in found)
    assert adapt("python -m xpnet.train --epochs 20 --save run.npz", Path("/w")).endswith("--dataset digits")
    assert adapt("python -m xpnet.train --resume run.npz", Path("/w")) == "python -m xpnet.train --resume run.npz"
    assert adapt("x --save /tmp/fm/m.npz", Path("/w")) == "x --save /w/fm/m.npz"
    usage = (ROOT / "docs/usage.md").read_text(encoding="utf-8")
    statuses = dict(commands(usage))
    assert any(c.startswith("python -m xpnet.predict") and s == 1 for c, s in statuses.items())


def run_script(text: str, cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run(["bash", "-c", text], cwd=cwd, capture_output=True, text=True, env=ENV, timeout=600)


def test_a_command_that_stops_working_fails_the_script(tmp_path):
    ok = "```console\n$ false\n$ echo $?\n1\n$ true\n```\n"
    assert run_script(script(ok, tmp_path), tmp_path).returncode == 0
    broken = "```bash\ntrue\nfalse      # a walk-through that stopped working\ntrue\n```\n"
    done = run_script(script(broken, tmp_path), tmp_path)
    assert done.returncode == 99 and "exit status 1, expected 0" in done.stderr
    wrong_status = "```console\n$ true\n$ echo $?\n1\n```\n"
    assert run_script(script(wrong_status, tmp_path), tmp_path).returncode == 99


@pytest.mark.slow  # a dozen short runs of the tools, each a fresh Python: 10-30 s
@pytest.mark.parametrize("doc", DOCS)
def test_the_walk_through_runs_as_written(doc, tmp_path):
    work = tmp_path / "work"
    work.mkdir()
    env = {**ENV, "XPNET_DATA": str(tmp_path / "data")}  # nothing is read from, or downloaded to, the user's cache
    text = script((ROOT / doc).read_text(encoding="utf-8"), tmp_path)
    done = subprocess.run(["bash", "-c", text], cwd=work, capture_output=True, text=True, env=env, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "Traceback" not in done.stderr, done.stderr[-3000:]


# What a Python block needs beyond xpnet's own dependencies: an optional library it imports or calls.
NEEDS = {r"^import torch\b|^from torch\b": "torch", r"\.to_onnx\(": "onnx"}


def python_blocks(markdown: str) -> list[tuple[str, str]]:
    """The ``python`` blocks of ``markdown``, each with the optional library it needs that is missing here
    (an empty string when it can run)."""
    found = []
    for body in re.findall(r"^```python\n(.*?)^```", markdown, flags=re.S | re.M):
        missing = [lib for pattern, lib in NEEDS.items() if re.search(pattern, body, flags=re.M)]
        found.append((body, next((m for m in missing if importlib.util.find_spec(m) is None), "")))
    return found


@pytest.mark.slow  # fits a few small models: about 10 s
def test_the_python_blocks_run_as_written(tmp_path):
    """The README's "Use from Python" blocks, in order, in one fresh Python, in a temporary folder; a block
    whose optional library is missing here is left out (those blocks stand alone: nothing after needs them)."""
    blocks = python_blocks((ROOT / "README.md").read_text(encoding="utf-8"))
    assert len(blocks) >= 4 and any("MLPClassifier" in body for body, _ in blocks)
    runnable = [body for body, missing in blocks if not missing]
    done = subprocess.run([sys.executable, "-c", "\n".join(runnable)], cwd=tmp_path, capture_output=True, text=True,
                          env={**ENV, "OMP_NUM_THREADS": "1"}, timeout=600)  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    assert "test accuracy" in done.stdout and "Warning" not in done.stderr, done.stderr[-3000:]
    assert (tmp_path / "digits-model.npz").is_file()
    assert (tmp_path / "digits-model.onnx").is_file() == (importlib.util.find_spec("onnx") is not None)
