"""``xpnet`` (and ``python -m xpnet``): one command whose subcommands are the tools. ``xpnet train ARGS`` runs
``python -m xpnet.train ARGS`` (the module as ``__main__``: the same flags, output and exit statuses). Nothing
heavy is imported here, so ``xpnet --help`` is instant."""

from __future__ import annotations

import os
import runpy
import sys
from collections.abc import Sequence

from . import __version__

COMMANDS = {
    "train": "train a model on mnist, fashion-mnist, digits, IDX files or your pictures (--save keeps it)",
    "predict": "classify pictures (PNG, JPEG, .npy) with a saved model",
    "evaluate": "score a saved model on its test set; --plot draws curves, confusion matrix, worst mistakes",
    "check": "check that every array library and device here agrees with NumPy",
    "export": "write a saved model as an ONNX graph for other runtimes (needs onnx)",
    "serve": "a local web page to draw a digit (or drop a picture) and watch a saved model answer",
}


def main(argv: Sequence[str] | None = None) -> int:
    """Run the subcommand named first in ``argv`` (default: ``sys.argv[1:]``); return or exit with its status."""
    args = list(sys.argv[1:] if argv is None else argv)
    name = "python -m xpnet" if sys.argv[0].endswith("__main__.py") else "xpnet"
    if not args or args[0] in ("-h", "--help"):
        commands = "\n".join(f"  {command:<9} {what}" for command, what in COMMANDS.items())
        try:
            print(
                f"usage: {name} COMMAND [ARGS...]\n\nA handwritten-digit MLP written once against the Python "
                f"Array API.\n\ncommands:\n{commands}\n\n{name} COMMAND --help lists the command's flags and exit "
                f"statuses.\n{name} train ARGS is the same as python -m xpnet.train ARGS (and so for each command).",
                file=sys.stdout if args else sys.stderr,
                flush=True,
            )
        except BrokenPipeError:  # `xpnet --help | head -3`: the reader left; exit as cli.run does, quietly
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
            return 1
        return 0 if args else 2
    if args[0] == "--version":
        print(f"xpnet {__version__}")
        return 0
    if args[0] not in COMMANDS:
        print(
            f"{name}: error: unknown command {args[0]!r}: choose one of {', '.join(COMMANDS)} (see --help)",
            file=sys.stderr,
        )
        return 2
    sys.argv = [f"{name} {args[0]}", *args[1:]]  # the tool reads its flags there, and names itself (cli.program)
    try:
        runpy.run_module(f"xpnet.{args[0]}", run_name="__main__", alter_sys=False)
    except KeyboardInterrupt:  # while the tool still imports, before cli.run catches it: as cli.run says it
        print(f"xpnet.{args[0]}: interrupted", file=sys.stderr)
        sys.exit(130)
    return 0  # not reached: each tool ends with sys.exit


if __name__ == "__main__":
    sys.exit(main())
