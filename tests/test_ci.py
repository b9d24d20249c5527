""".ci/run runs the README's two commands exactly as written, first, before it installs anything else; and
what those commands install is all the fast tests need (an optional extra's tests skip, saying which)."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
CI = (ROOT / ".ci" / "run").read_text(encoding="utf-8")
README = (ROOT / "README.md").read_text(encoding="utf-8")


def readme_block() -> list[str]:
    """The lines of the README's set-up block: the first bash block after its "Set up and run" heading."""
    section = README[README.index("\n## Set up and run") :]
    return re.search(r"^```bash\n(.*?)^```$", section, flags=re.S | re.M).group(1).splitlines()


def test_the_readme_block_is_the_two_commands():
    lines = readme_block()
    assert len(lines) == 2
    assert 'pip install -e ".[test]"' in lines[0] and lines[1] == "python -m pytest -q"


def test_ci_reads_the_readme_block_and_runs_it_before_anything_else_is_installed():
    function = re.search(r"^readme_commands\(\) \{\n.*?^\}$", CI, flags=re.S | re.M)
    assert function is not None, ".ci/run has no readme_commands"
    found = subprocess.run(
        ["bash", "-c", f"{function.group(0)}\nreadme_commands"], cwd=ROOT, capture_output=True, text=True, timeout=30
    )
    assert found.returncode == 0 and found.stdout.splitlines() == readme_block()
    steps = [line for line in CI.splitlines() if line.strip() and not line.lstrip().startswith("#")]
    runs = next(i for i, line in enumerate(steps) if "$(readme_commands" in line)
    installs = [i for i, line in enumerate(steps) if re.search(r"\bpip install\b|-m venv\b", line)]
    assert installs and min(installs) > runs, "something is installed before the README's commands run"
    # Its pytest runs follow the README's: the fast suite is the README's own; the optional extras come after.
    assert 'pip install -q -e ".[dev,dask]"' in "\n".join(steps[runs:])


def test_torch_is_never_a_dependency():
    """No requirement of pyproject.toml (its dependencies and every extra) names PyTorch; the one PyTorch
    requirement is CI's pinned CPU build."""
    pyproject = (ROOT / "pyproject.toml").read_text(encoding="utf-8")
    requirements = re.findall(r'"([A-Za-z][\w.-]*(?:\[[\w,]+\])?[^"]*)"', pyproject)
    assert "numpy>=2.0" in requirements and "pytest>=8" in requirements  # they are found
    assert not [r for r in requirements if re.match(r"torch\b", r)]
    assert re.findall(r'"(torch\b[^"]*)"', CI) == ["torch==2.13.0"]
