"""``tfpot export MODEL -o model.pt``: TorchScript for LAMMPS and libtorch."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from tfpot.atomic_io import remove_stale_temp_files
from tfpot.export import export_model


def register(subparsers) -> None:
    p = subparsers.add_parser("export", help="export a model to TorchScript for LAMMPS",
                              description=__doc__)
    p.add_argument("model", help="model file (from tfpot train or model.save)")
    p.add_argument("-o", "--output", required=True, help="TorchScript file to write")
    p.add_argument("--dtype", choices=["float32", "float64"], default=None,
                   help="cast before export (default: the model's dtype)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    output = Path(args.output)
    for path in remove_stale_temp_files(output.parent, name=output.name):
        print(f"removed {path}: the temporary file of an interrupted export")
    meta = export_model(args.model, args.output, dtype=args.dtype)
    print(f"wrote {args.output}")
    print(json.dumps(meta, indent=2))
    print(f"LAMMPS: pair_style tfpot / pair_coeff * * {args.output} <element per type>; "
          f"{meta['num_stages']} stage(s) with a halo exchange after each but the last, so the "
          f"ghost shell is the cutoff ({meta['cutoff']:.3f} Å) + skin, LAMMPS' default")
    return 0
