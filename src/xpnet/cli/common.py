"""What every command-line tool shares: one-line errors with exit status 2, and flag parsers."""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Callable, Sequence
from typing import Any, NoReturn

from ..backend import registry
from ..errors import XpnetError
from ..training.config import ConfigError, check_field
from ..training.interrupt import Terminated, TerminateLoudly

EXIT_USAGE = 2
EXIT_INTERRUPTED = 130  # 128 + SIGINT, what shells report for a Ctrl-C
EXIT_TERMINATED = 143  # 128 + SIGTERM


class ArgumentParser(argparse.ArgumentParser):
    """argparse, but a bad flag is one line on stderr (no usage dump) and exit status 2."""

    def error(self, message: str) -> NoReturn:
        fail(f"{self.prog}: error: {message} (see --help)")


def fail(message: str, status: int = EXIT_USAGE) -> NoReturn:
    print(message, file=sys.stderr)
    sys.exit(status)


def run(main: Callable[[Sequence[str] | None], int], argv: Sequence[str] | None = None, prog: str = "xpnet") -> int:
    """Call ``main``; an `XpnetError` becomes its message on one line and its exit status (2 unless it says).

    Output piped into a reader that stops early (``| head``) ends the run quietly with status 1.
    """
    try:
        with TerminateLoudly():
            return main(argv)
    except XpnetError as e:
        fail(f"{prog}: error: {e}", e.exit_status)
    except Terminated:  # SIGTERM before training starts or after its last save
        fail(f"{prog}: terminated (SIGTERM)", EXIT_TERMINATED)
    except KeyboardInterrupt:  # Ctrl-C outside training (a download, evaluate, predict): no traceback
        fail(f"{prog}: interrupted", EXIT_INTERRUPTED)
    except BrokenPipeError:
        # As the Python docs advise: point stdout at devnull so that flushing it at exit cannot fail again.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        sys.exit(1)


def positive_int(text: str) -> int:
    value = _parse(int, text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be a positive integer, got {text}")
    return value


def non_negative_int(text: str) -> int:
    value = _parse(int, text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be 0 or a positive integer, got {text}")
    return value


def setting(name: str, kind: Callable[[str], Any]) -> Callable[[str], Any]:
    """An argparse ``type`` for the `TrainConfig` field ``name``: parse the text with ``kind`` (``int``,
    ``float`` or `hidden_sizes`), then apply the config's own rule, whose message a checkpoint holding the
    same value gets too."""

    def convert(text: str) -> Any:
        value = kind(text) if kind is hidden_sizes else _parse(kind, text)
        try:
            check_field(name, value)
        except ConfigError as e:
            raise argparse.ArgumentTypeError(e.rule) from None
        return value

    return convert


def hidden_sizes(text: str) -> tuple[int, ...]:
    """``"256,128"`` -> (256, 128); whether each size is allowed is `TrainConfig`'s to say."""
    try:
        return tuple(int(part) for part in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"must be comma-separated positive integers like 256,128, got {text!r}"
        ) from None


def _parse(kind: type, text: str):
    try:
        return kind(text)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"expected {'an integer' if kind is int else 'a number'}, got {text!r}"
        ) from None


def add_device_flags(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--device",
        default="auto",
        metavar="{auto,cpu,cuda,cuda:N}",
        help="where to compute: auto takes the first CUDA GPU when CuPy can use it, else the CPU (default: auto)",
    )
    parser.add_argument(
        "--backend",
        choices=tuple(registry()),
        default=None,
        help="array library: "
        + ", ".join(f"{s.name} ({'/'.join(s.kinds)})" for s in registry().values())
        + " (default: "
        + ", ".join(f"{s.name} on {kind}" for s in registry().values() for kind in s.default_for)
        + ")",
    )
