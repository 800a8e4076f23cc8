"""The ``tfpot`` command line: one sub-command per job.

Each sub-command lives in its own module with ``register(subparsers)`` that adds its parser and
sets ``func`` (called with the parsed arguments, returns an exit code).

Exit codes, for every sub-command: 0 success, 1 error (bad input or a bad file: one line
``tfpot COMMAND: error: MESSAGE``; ``--debug`` shows the traceback), 2 usage, 130 interrupted
(Ctrl-C or SIGTERM; training writes its checkpoint first).
"""

from __future__ import annotations

import argparse
import importlib
import sys
from typing import List, Optional

from tfpot._version import __version__
from tfpot.errors import TfpotError

# (sub-command, module that registers it)
SUBCOMMANDS = [
    ("train", "tfpot.training.cli"),
    ("eval", "tfpot.training.eval_cli"),
    ("export", "tfpot.export_cli"),
    ("convert", "tfpot.data.cli"),
    ("lammps", "tfpot.calculators.lammps_cli"),
    ("md", "tfpot.calculators.md_cli"),
    ("relax", "tfpot.calculators.relax_cli"),
]

EXIT_OK, EXIT_ERROR, EXIT_USAGE, EXIT_INTERRUPTED = 0, 1, 2, 130


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="tfpot", description="Tensor-frame interatomic potentials: train, evaluate, export, run MD.",
        epilog="exit codes: 0 success, 1 error, 2 usage, 130 interrupted")
    parser.add_argument("--version", action="version", version=f"tfpot {__version__}")
    parser.add_argument("--debug", action="store_true",
                        help="show the full traceback of an error instead of its one-line message")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for _name, module_name in SUBCOMMANDS:
        importlib.import_module(module_name).register(sub)
    return parser


def error_message(exc: BaseException) -> str:
    """The one-line message of a user-facing error (``OSError``: ``FILE: reason``)."""
    if isinstance(exc, OSError) and exc.filename is not None:
        return f"{exc.filename}: {exc.strerror or exc}"
    return str(exc).strip().replace("\n", "; ")


def main(argv: Optional[List[str]] = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return EXIT_USAGE
    command = args.command
    try:
        return int(args.func(args) or 0)
    except KeyboardInterrupt:
        print(f"tfpot {command}: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
    except (TfpotError, FileNotFoundError, IsADirectoryError, NotADirectoryError,
            PermissionError) as e:
        if args.debug:
            raise
        print(f"tfpot {command}: error: {error_message(e)}", file=sys.stderr)
        return EXIT_ERROR


if __name__ == "__main__":
    sys.exit(main())
