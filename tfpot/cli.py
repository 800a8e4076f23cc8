"""The ``tfpot`` command line: one sub-command per job.

Each sub-command lives in its own module with ``register(subparsers)`` that adds its parser and
sets ``func`` (called with the parsed arguments, returns an exit code). Modules are imported only
when listed here, so a broken optional dependency breaks only its own sub-command.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from typing import List, Optional

from tfpot import __version__

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


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="tfpot", description="Tensor-frame interatomic potentials: train, evaluate, export, run MD."
    )
    parser.add_argument("--version", action="version", version=f"tfpot {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name, module_name in SUBCOMMANDS:
        try:
            module = importlib.import_module(module_name)
        except ModuleNotFoundError as e:
            if e.name is not None and e.name.startswith("tfpot"):
                continue  # sub-command not part of this build yet
            raise
        module.register(sub)
    return parser


def main(argv: Optional[List[str]] = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    return int(args.func(args) or 0)


if __name__ == "__main__":
    sys.exit(main())
