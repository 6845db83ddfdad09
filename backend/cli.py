"""`python -m backend`: one subcommand per module in `backend.commands`.

Each command module defines `register(subparsers)`, which adds its parser and sets `run=func`
(func takes the parsed args and returns an exit code). Errors of the `BackendError` family are
printed as one clear line and exit with code 2; anything else is a bug and keeps its traceback.
"""

import argparse
import importlib
import sys

from backend.errors import BackendError

COMMAND_MODULES = (
    "backend.commands.info",
    "backend.commands.score",
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m backend",
        description="Speech-driven FLAME talking heads: inspect files, animate, and score lip sync.",
    )
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in COMMAND_MODULES:
        importlib.import_module(name).register(subparsers)
    return parser


def main(argv=None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "run", None):
        parser.print_help()
        return 1
    try:
        return int(args.run(args) or 0)
    except BackendError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
