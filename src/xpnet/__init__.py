"""xpnet: an MLP written once against the Python Array API, and scikit-learn's estimators (docs/api.md).
The public names load on first use, so the command line does not import scikit-learn."""

import importlib
import sys
from typing import Any

__version__ = "0.1.0"
__all__ = ["MLPClassifier", "MLPRegressor", "Model", "__version__", "from_sklearn", "load"]
HOMES = {name: ".library.estimator" for name in ("MLPClassifier", "MLPRegressor", "load")}
HOMES |= {"Model": ".training.model", "from_sklearn": ".library.convert"}


def __getattr__(name: str) -> Any:
    if name not in HOMES:
        raise AttributeError(f"module 'xpnet' has no attribute {name!r}")
    return getattr(importlib.import_module(HOMES[name], __name__), name)


def __dir__() -> list[str]:
    return sorted({*globals(), *__all__})


def _interrupted(kind: type[BaseException], error: BaseException, tb: Any, previous: Any = sys.excepthook) -> Any:
    """``python -m xpnet.TOOL``'s `sys.excepthook`: a Ctrl-C before the tool's `cli.run` can catch it (while the
    tool imports) is one line and exit status 130, as `cli.run` says it."""
    tool = getattr(getattr(sys.modules.get("__main__"), "__spec__", None), "name", "")
    if not (issubclass(kind, KeyboardInterrupt) and tool.startswith("xpnet.")):
        return previous(kind, error, tb)
    sys.stderr.write(f"{tool}: interrupted\n")
    raise SystemExit(130)


if sys.argv[:1] == ["-m"]:  # python -m xpnet.TOOL: sys.argv[0] is "-m" while the tool is found, before it imports
    sys.excepthook = _interrupted
