"""What each array library offers on this machine, for ``python -m xpnet.check``.

Probing imports CUDA libraries and talks to the driver, so nothing in training calls it. Each library's
own probe lives in its backend module (``SPEC.probe``); this module runs them and turns failures into a
`Probe` that says why.
"""

from __future__ import annotations

from dataclasses import dataclass

from ..errors import BackendError, one_line
from . import spec


@dataclass(frozen=True)
class Probe:
    """What one array library offers here: its version and devices, or why it offers none."""

    name: str
    installed: bool
    version: str = ""  # library version, plus CUDA runtime/driver and TF32 settings where they matter
    devices: tuple[str, ...] = ()  # device names `make_backend` accepts
    problem: str = ""  # why an installed library has no usable device, with the fix


def probe(name: str) -> Probe:
    """Find out whether ``name`` is installed and which devices it can use, importing it only if installed."""
    s = spec(name)
    if not s.installed:
        return Probe(name, installed=False, problem=f"not installed: {s.install_hint}")
    try:
        return s.probe()
    except BackendError as e:
        return Probe(name, installed=True, problem=str(e))
    except Exception as e:  # a broken install: the library is there but fails to import or to start
        return Probe(name, installed=True, problem=f"installed but unusable: {one_line(e)}")
