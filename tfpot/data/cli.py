"""``tfpot convert INPUT... -o data.lmdb``: any supported data into one LMDB store."""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import Iterator

from ase import Atoms
from ase.data import chemical_symbols

from tfpot.atomic_io import remove_stale_temp_files
from tfpot.data.check import DEFAULT_MIN_DISTANCE, DataCheck, DataCheckError
from tfpot.data.demo import resolve_data_path
from tfpot.data.errors import DataFormatError
from tfpot.data.lmdb_store import write_lmdb
from tfpot.data.readers import detect_format, iter_structures


def register(subparsers) -> None:
    """Add the ``convert`` sub-command."""
    p = subparsers.add_parser(
        "convert", help="convert data files (MD17, rMD17, QM9, extxyz, ASE db, pymatgen JSON) "
                        "to a tfpot LMDB store",
        description="Read data files exactly as published, convert to eV/Å, and write one "
                    "LMDB store (atomically, streamed) with a header of counts and statistics.")
    p.add_argument("inputs", nargs="+", metavar="INPUT",
                   help="data files or QM9 directories ('tfpot:demo': the bundled demo set)")
    p.add_argument("-o", "--output", required=True, type=Path, help="output .lmdb file")
    p.add_argument("--format", default=None,
                   help="input format (md17, rmd17, qm9, extxyz, ase-db, pymatgen-json, lmdb, or an "
                        "ase.io format); detected from each file when omitted")
    p.add_argument("--cutoff", type=float, default=None,
                   help="cache neighbour lists for this cutoff (Å) in the records")
    p.add_argument("--target", default=None,
                   help="QM9 property used as the energy label (U0, U, H, G, ...; default U0)")
    p.add_argument("--float32", action="store_true",
                   help="store positions/forces/stress as float32 (energies stay float64)")
    p.add_argument("--no-statistics", action="store_true",
                   help="skip E0 / force statistics in the header")
    p.add_argument("--min-distance", type=float, default=DEFAULT_MIN_DISTANCE, metavar="Å",
                   help="data check: refuse frames with atoms closer than this (default "
                        "%(default)s Å)")
    p.add_argument("--progress", action="store_true", help="show a progress bar")
    p.set_defaults(func=run)


def _structures(args: argparse.Namespace, check: DataCheck) -> Iterator[Atoms]:
    """Every input's frames that pass the data check; at the end, the check's verdict (raised
    inside the stream, so that ``write_lmdb`` discards its temporary file)."""
    for name in args.inputs:
        path = resolve_data_path(name)
        fmt = args.format or detect_format(path)
        options = {}
        if args.target is not None:
            if fmt != "qm9":
                raise DataFormatError(f"{path}: --target applies to QM9 data only (this is {fmt}); "
                                      f"drop --target")
            options["target"] = args.target
        yield from check.filter(iter_structures(path, format=fmt, check=False, **options),
                                path.name)
    check.raise_if_problems("nothing was written; fix the frames and convert again")


def run(args: argparse.Namespace) -> int:
    """Convert; print counts. Returns 0; bad input raises a one-line TfpotError."""
    if not args.min_distance >= 0:
        raise DataFormatError(f"--min-distance must be >= 0 Å (got {args.min_distance})")
    for path in remove_stale_temp_files(args.output.parent, name=args.output.name):
        print(f"removed {path}: the temporary file of an interrupted conversion")
    t0 = time.perf_counter()
    check = DataCheck(min_distance=args.min_distance)
    try:
        header = write_lmdb(_structures(args, check), args.output, cutoff=args.cutoff,
                            statistics=not args.no_statistics,
                            float_dtype="float32" if args.float32 else "float64",
                            sources=[Path(p).name for p in args.inputs], progress=args.progress)
    except DataCheckError:
        print("\n".join(check.lines()), file=sys.stderr)
        raise
    dt = time.perf_counter() - t0

    labels = header["labels"]
    print(f"wrote {args.output}: {header['count']} structures, {header['num_atoms']} atoms, "
          f"elements {' '.join(chemical_symbols[z] for z in header['elements'])}")
    print(f"  labels: energy {labels['energy']}, forces {labels['forces']}, stress {labels['stress']}")
    print(f"  {check.summary()}")
    stats = header.get("statistics")
    if stats and stats.get("reference_energies"):
        line = f"  per-atom energy residual std {stats['energy_per_atom_std']:.4f} eV/atom"
        if stats.get("force_rms") is not None:
            line += f", force rms {stats['force_rms']:.4f} eV/Å"
        print(line)
        if stats["e0_rank"] < len(stats["elements"]):
            print(f"  note: per-element reference energies are not unique (composition rank "
                  f"{stats['e0_rank']} of {len(stats['elements'])} elements); give E0 explicitly "
                  f"when training on this set alone")
    if header["cutoff"] is not None and stats:
        print(f"  cached neighbour lists at {header['cutoff']} Å: "
              f"{stats['avg_num_neighbors']:.2f} neighbours per atom")
    print(f"  {dt:.1f} s ({header['count'] / max(dt, 1e-9):.0f} structures/s), "
          f"{args.output.stat().st_size / 2**20:.1f} MiB")
    return 0
