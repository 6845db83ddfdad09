"""`python -m backend`: one subcommand per module in `backend.commands`.

Each command module defines `register(subparsers)`, which adds its parser and sets `run=func`
(func takes the parsed args and returns an exit code). Errors of the `BackendError` family are
printed as one clear line and exit with code 2; anything else is a bug and keeps its traceback.
"""

import argparse
import importlib
import math
import sys

from backend.errors import BackendError

COMMAND_MODULES = (
    "backend.commands.info",
    "backend.commands.score",
    "backend.commands.animate",
)


def _number_at_least(text: str, minimum: float, kind):
    try:
        value = kind(text)
    except ValueError:
        value = None
    if value is None or not math.isfinite(value):
        raise argparse.ArgumentTypeError(f"expected a {'whole ' if kind is int else ''}number >= {minimum:g}; "
                                         f"got {text!r}") from None
    if value < minimum:
        raise argparse.ArgumentTypeError(f"expected a {'whole ' if kind is int else ''}number >= {minimum:g}; "
                                         f"got {value:g}")
    return value


def positive_int(text: str) -> int:
    """argparse type: a whole number >= 1 (threads, workers, steps)."""
    return _number_at_least(text, 1, int)


def non_negative_int(text: str) -> int:
    """argparse type: a whole number >= 0 (a seed: what numpy and torch accept; a count where 0 means none)."""
    return _number_at_least(text, 0, int)


def positive_float(text: str) -> float:
    """argparse type: a finite number > 0 (a frame rate)."""
    value = _number_at_least(text, 0.0, float)
    if value == 0:
        raise argparse.ArgumentTypeError(f"expected a number > 0; got {text!r}")
    return value


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m backend",
        description="Speech-driven FLAME talking heads: inspect files, animate, and score lip sync.",
    )
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in COMMAND_MODULES:
        importlib.import_module(name).register(subparsers)
    return parser


def dispatch(parser: argparse.ArgumentParser, argv=None, before_run=None) -> int:
    """Parse `argv`, run the chosen subcommand's `run(args)`, and turn a BackendError into one line + exit 2.

    Shared by every command line of the project (`backend`, `training`, `training.corpus`);
    `before_run(args)` is an optional hook (e.g. setting torch threads) called once arguments parse.
    """
    args = parser.parse_args(argv)
    if not getattr(args, "run", None):
        parser.print_help()
        return 1
    if before_run is not None:
        before_run(args)
    try:
        return int(args.run(args) or 0)
    except BackendError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2


def main(argv=None) -> int:
    return dispatch(build_parser(), argv)
