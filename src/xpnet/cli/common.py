"""What every command-line tool shares: one-line errors with exit status 2, and flag parsers."""

from __future__ import annotations

import argparse
import functools
import os
import re
import signal
import sys
import textwrap
import threading
from collections.abc import Callable, Sequence
from pathlib import Path
from types import FrameType
from typing import Any, NoReturn

from ..backend import Backend, registry
from ..errors import XpnetError, say
from ..training.loop import Callback
from ..training.model import ConfigError, Model, check_field

EXIT_INTERRUPTED = 130  # 128 + SIGINT, what shells report for a Ctrl-C
EXIT_TERMINATED = 143  # 128 + SIGTERM
# The one table from the library's parameters to the flags of the train command: the parser's dests, and the
# flag a one-line error names where the library's error names the parameter.
FLAGS = {
    "hidden_layer_sizes": "--hidden",
    "activation": "--activation",
    "solver": "--optimizer",
    "momentum": "--optimizer",
    "learning_rate_init": "--lr",
    "lr_decay": "--gamma",
    "max_iter": "--epochs",
    "batch_size": "--batch-size",
    "dtype": "--dtype",
    "random_state": "--seed",
    "alpha": "--alpha",
    "early_stopping": "--patience",
    "n_iter_no_change": "--patience",
    "image_size": "--image-size",
    "data_dir": "--data-dir",
    "mirrors": "--mirror",
    "workers": "--workers",
    "scheduler": "--scheduler",
    "log": "--log",
    "val_split": "--val-split",
}


class _Formatter(argparse.HelpFormatter):
    """Wraps each line of a description or epilog apart; an indented one hangs after its first word."""

    def _fill_text(self, text: str, width: int, indent: str) -> str:
        lines = []
        for line in text.splitlines():
            lead, first = re.match(r"( *)(\S+ +)?", line).groups()
            hang = indent + " " * (len(lead) + len(first or "") if lead else 0)
            lines.append(textwrap.fill(line.strip(), width, initial_indent=indent + lead, subsequent_indent=hang))
        return "\n".join(lines)


class ArgumentParser(argparse.ArgumentParser):
    """argparse, but a bad flag is one line on stderr (no usage dump) and exit status 2."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, formatter_class=_Formatter, **kwargs)

    def error(self, message: str) -> NoReturn:
        # Named as `run` names the tool (xpnet.train), whether started as xpnet train or python -m xpnet.train.
        match = re.search(r"\bxpnet[ .](\w+)$", self.prog)
        fail(f"{'xpnet.' + match.group(1) if match else self.prog}: error: {message} (see --help)")


def program(name: str) -> str:
    """``xpnet <name>`` or ``python -m xpnet.<name>``, as the user started the tool, for its usage line."""
    return sys.argv[0] if sys.argv and sys.argv[0].endswith(f"xpnet {name}") else f"python -m xpnet.{name}"


def epilog(example: str, statuses: dict[int, str]) -> str:
    """The end of a tool's --help: an example, then one line per exit status, with `run`'s 130 and 143 unless
    ``statuses`` words them."""
    statuses = {EXIT_INTERRUPTED: "stopped by Ctrl-C", EXIT_TERMINATED: "stopped by SIGTERM"} | statuses
    return f"Example: {example}\n\nExit status:\n" + "\n".join(f"  {k:>3}  {v}" for k, v in sorted(statuses.items()))


def fail(message: str, status: int = 2) -> NoReturn:
    say(message, file=sys.stderr)
    sys.exit(status)


def run(main: Callable[[Sequence[str] | None], int], argv: Sequence[str] | None = None, prog: str = "xpnet") -> int:
    """Call ``main``; an `XpnetError` becomes its message on one line (its ``details`` indented below) and its
    exit status (2 unless it says). Output piped into a reader that stops early (``| head``) ends quietly: 1."""
    try:
        with TerminateLoudly():
            return main(argv)
    except XpnetError as e:
        message = e.naming(FLAGS[e.parameter]) if e.parameter in FLAGS else e.message
        say(f"{prog}: error: {message}", *(f"  {line}" for line in e.details), file=sys.stderr)
        sys.exit(e.exit_status)
    except Terminated:  # SIGTERM before training starts or after its last save
        fail(f"{prog}: terminated (SIGTERM)", EXIT_TERMINATED)
    except KeyboardInterrupt:  # Ctrl-C outside training (a download, evaluate, predict): no traceback
        fail(f"{prog}: interrupted", EXIT_INTERRUPTED)
    except BrokenPipeError:  # as the Python docs advise: stdout to devnull, so that flushing it at exit cannot fail
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        sys.exit(1)


def _parse(kind: Callable[[str], Any], text: str) -> Any:
    try:  # hidden_sizes says itself what it expected
        return kind(text)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"expected {'an integer' if kind is int else 'a number'}, got {text!r}"
        ) from None


def _at_least(least: int, text: str) -> int:
    if (value := _parse(int, text)) < least:
        raise argparse.ArgumentTypeError(f"must be {'0 or ' if least == 0 else ''}a positive integer, got {text}")
    return value


positive_int, non_negative_int = functools.partial(_at_least, 1), functools.partial(_at_least, 0)


def setting(name: str, kind: Callable[[str], Any], text: str) -> Any:
    """``text`` as the `TrainConfig` field ``name``: parsed by ``kind``, checked by `check_field` (argparse's
    ``type``, with ``name`` and ``kind`` bound by `functools.partial`)."""
    try:
        check_field(name, value := _parse(kind, text))
    except ConfigError as e:
        raise argparse.ArgumentTypeError(e.rule) from None
    return value


def hidden_sizes(text: str) -> tuple[int, ...]:
    """``"256,128"`` -> (256, 128); whether each size is allowed is `TrainConfig`'s to say."""
    try:
        return tuple(int(part) for part in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be comma-separated integers like 256,128, got {text!r}") from None


def add_device_flags(parser: argparse.ArgumentParser) -> None:
    """--device, --backend and --verbose, shared by train, predict and evaluate."""
    parser.add_argument(
        "--device",
        default="auto",
        metavar="{auto,cpu,cuda,cuda:N}",
        help="where to compute: auto takes the first CUDA GPU when CuPy can use it, else the CPU, saying why "
        "only when this machine has a GPU it cannot use (default: auto)",
    )
    parser.add_argument("--verbose", action="store_true", help="also say why auto chose the CPU when no GPU is here")
    kinds = ", ".join(f"{s.name} ({'/'.join(s.kinds)})" for s in registry().values())
    defaults = ", ".join(f"{s.name} on {kind}" for s in registry().values() for kind in s.default_for)
    parser.add_argument("--backend", choices=tuple(registry()), help=f"array library: {kinds} (default: {defaults})")


def announce(backend: Backend, verbose: bool = False) -> None:
    """Say on stderr why --device auto fell back to the CPU: when a GPU is here but unusable, else with --verbose."""
    if message := backend.fallback_reason if verbose else backend.note:
        say(message, file=sys.stderr)


def model_data_dir(given: str | None, ckpt: Model) -> str | None:
    """Where to read the model's data set: ``--data-dir`` when given, else the folder its checkpoint records
    it was trained from (said on stderr), else None (where xpnet.train looks by default)."""
    if given is not None or ckpt.data_dir is None:
        return given
    folder = str(Path(ckpt.data_dir))
    gone = not os.path.isdir(folder)  # not Path.is_dir, which raises for a folder one may not enter
    said = f"{folder}, where {ckpt.path} was trained"
    said = f"{said}, is gone or cannot be entered; looking where xpnet.train looks" if gone else f"reading {said}"
    say(f"{ckpt.dataset}: {said} (--data-dir DIR {'names' if gone else 'reads'} another folder)", file=sys.stderr)
    return None if gone else folder


class _Handling:
    """While entered, ``_handle`` answers ``signals`` (in the main thread: Python installs handlers only there);
    the previous handlers come back after."""

    signals = (signal.SIGINT, signal.SIGTERM)

    def __enter__(self) -> Any:
        main = threading.current_thread() is threading.main_thread()
        self._previous = {s: signal.signal(s, self._handle) for s in self.signals if main}
        return self

    def __exit__(self, *exc: object) -> None:
        for s, handler in self._previous.items():
            signal.signal(s, handler)


class StopOnSignal(_Handling, Callback):
    """The first SIGINT/SIGTERM pauses the run before its next step; the next one raises `KeyboardInterrupt`."""

    signum: int | None = None

    def should_pause(self) -> bool:
        return self.signum is not None

    def _handle(self, signum: int, frame: FrameType | None) -> None:
        if self.signum is not None:
            raise KeyboardInterrupt
        self.signum = signum
        message = "stopping after the current step (press Ctrl-C again to quit at once)"
        print(f"\n{signal.Signals(signum).name}: {message}", file=sys.stderr, flush=True)


class Terminated(KeyboardInterrupt):
    """A SIGTERM outside training's graceful stop (before training, after the last save)."""


class TerminateLoudly(_Handling):
    """SIGTERM raises `Terminated`, so that the command line says why it ends (exit 143) instead of dying silently."""

    signals = (signal.SIGTERM,)

    def _handle(self, signum: int, frame: FrameType | None) -> None:
        raise Terminated
