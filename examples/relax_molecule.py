"""Geometry optimisation of a molecule with a tfpot model (BFGS or FIRE).

    python examples/relax_molecule.py MODEL.pt [--structure FILE] [--optimizer BFGS|FIRE]
                                      [--fmax 0.01] [--steps 500] [-o relaxed.xyz]

Without ``--structure`` the first frame of the bundled demo set (ethanol from 500 K MD) is
relaxed. The optimiser stops when the largest force is below ``--fmax`` (eV/Å).
"""

from __future__ import annotations

import argparse
import sys
from typing import List, Optional

import ase.io
import numpy as np

from tfpot.calculators import TFPotCalculator
from tfpot.calculators.relax_cli import OPTIMIZERS, relax
from tfpot.data import demo_dataset_path, read_structures


def main(argv: Optional[List[str]] = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("model", help="tfpot model file")
    p.add_argument("--structure", default=None, help="start geometry (default: demo ethanol)")
    p.add_argument("--optimizer", default="BFGS", choices=OPTIMIZERS)
    p.add_argument("--fmax", type=float, default=0.01, help="eV/Å (default: 0.01)")
    p.add_argument("--steps", type=int, default=500, help="maximum steps (default: 500)")
    p.add_argument("-o", "--output", default=None, help="write the relaxed geometry (extxyz)")
    p.add_argument("--verbose", "-v", action="store_true", help="print the optimiser log")
    args = p.parse_args(argv)

    if args.structure:
        atoms = ase.io.read(args.structure)
    else:
        atoms = read_structures(demo_dataset_path())[0]
    atoms.calc = TFPotCalculator(args.model)
    start = atoms.get_positions()
    e0 = atoms.get_potential_energy()
    converged, nsteps, fmax = relax(atoms, fmax=args.fmax, steps=args.steps,
                                    optimizer=args.optimizer, logfile="-" if args.verbose else None)
    e1 = atoms.get_potential_energy()
    rmsd = float(np.sqrt(((atoms.get_positions() - start) ** 2).sum(axis=1).mean()))
    print(f"{args.optimizer}: {'converged' if converged else 'NOT converged'} in {nsteps} steps, "
          f"max force {fmax:.4f} eV/Å (target {args.fmax}); E {e0:.5f} -> {e1:.5f} eV; "
          f"RMSD from start {rmsd:.3f} Å")
    if args.output:
        ase.io.write(args.output, atoms, format="extxyz")
    return 0 if converged else 1


if __name__ == "__main__":
    sys.exit(main())
