"""``tfpot relax STRUCTURE MODEL``: geometry (and cell) optimisation in ASE with a tfpot model.

Positions are relaxed until the largest force is below ``--fmax`` (eV/Å). With ``--cell`` the
cell relaxes too, through ``ase.filters.FrechetCellFilter`` (stress times volume enters the
``fmax`` criterion; the target is ``--pressure`` in GPa). The result is written as extxyz with
its energy, forces (and stress). Exit code 0 when converged, 1 when not (or on bad input).
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path
from typing import Optional

import ase.io
import numpy as np
from ase import optimize, units
from ase.calculators.singlepoint import SinglePointCalculator
from ase.filters import FrechetCellFilter

from tfpot.calculators.md_cli import (_positive, add_engine_parser, first_evaluation,
                                      load_structure_and_calculator)
from tfpot.errors import InputError, TfpotError

OPTIMIZERS = ("BFGS", "FIRE", "LBFGS")


def relax(atoms, fmax: float = 0.05, steps: int = 1000, optimizer: str = "BFGS",
          cell: bool = False, pressure_GPa: float = 0.0, trajectory: Optional[str] = None,
          logfile: Optional[str] = None):
    """Relax ``atoms`` (with a calculator attached) in place.

    Returns:
        (converged, n_steps, fmax_reached): whether max |F| < ``fmax`` (eV/Å), the optimiser
        steps taken, and the final max force of the optimised object (with ``cell``: the
        filter's generalised forces, which include stress x volume).
    """
    if optimizer not in OPTIMIZERS:
        raise InputError(f"optimizer must be one of {OPTIMIZERS} (got {optimizer!r})")
    target = atoms
    if cell:
        if not np.all(atoms.pbc):
            raise InputError(f"--cell needs a cell periodic in 3D (pbc={atoms.pbc.tolist()}); "
                             f"relax the positions of a molecule without --cell")

        target = FrechetCellFilter(atoms, scalar_pressure=pressure_GPa * units.GPa)
    opt = getattr(optimize, optimizer)(target, trajectory=trajectory, logfile=logfile)
    converged = bool(opt.run(fmax=fmax, steps=steps))
    f = target.get_forces()
    fmax_reached = float(np.sqrt((f * f).sum(axis=1)).max()) if len(f) else 0.0
    return converged, int(opt.nsteps), fmax_reached


def run_relax(args: argparse.Namespace) -> int:
    atoms, calc = load_structure_and_calculator(args)
    first_evaluation(atoms, Path(args.structure))
    e0 = atoms.get_potential_energy()
    t0 = time.perf_counter()
    try:
        converged, nsteps, fmax = relax(atoms, fmax=args.fmax, steps=args.steps,
                                        optimizer=args.optimizer, cell=args.cell,
                                        pressure_GPa=args.pressure, trajectory=args.traj,
                                        logfile="-" if args.verbose else None)
    except ValueError as e:  # e.g. atoms overlapping during the relaxation
        if isinstance(e, TfpotError):
            raise
        raise TfpotError(f"{args.structure}: relaxation stopped: {e}") from e
    wall = time.perf_counter() - t0
    e1 = atoms.get_potential_energy()
    out = Path(args.output)
    out.parent.mkdir(parents=True, exist_ok=True)
    frame = atoms.copy()
    results = {k: calc.results[k] for k in ("energy", "forces", "stress") if k in calc.results}
    frame.calc = SinglePointCalculator(frame, **results)
    ase.io.write(str(out), frame, format="extxyz")
    status = "converged" if converged else "NOT converged"
    print(f"tfpot relax: {status} in {nsteps} {args.optimizer} steps ({wall:.2f} s): "
          f"max force {fmax:.4g} (target {args.fmax}) eV/Å")
    print(f"  energy {e0:.6f} -> {e1:.6f} eV ({(e1 - e0) / len(atoms):+.6f} eV/atom)")
    if args.cell:
        print(f"  volume {atoms.get_volume():.4f} Å^3; cell lengths "
              f"{np.round(atoms.cell.lengths(), 5).tolist()} Å, angles "
              f"{np.round(atoms.cell.angles(), 3).tolist()} deg")
    print(f"  wrote {out}")
    return 0 if converged else 1


def register(subparsers) -> None:
    """Add ``tfpot relax STRUCTURE MODEL [--fmax] [--cell] [--optimizer] [-o out.xyz]``."""
    p = add_engine_parser(subparsers, "relax",
                          "geometry / cell optimisation in ASE with a tfpot model", __doc__)
    p.add_argument("--fmax", type=_positive(float), default=0.05,
                   help="force convergence threshold, eV/Å (default: 0.05)")
    p.add_argument("--cell", action="store_true",
                   help="relax the cell too (FrechetCellFilter; needs 3D periodicity)")
    p.add_argument("--pressure", type=float, default=0.0,
                   help="target pressure with --cell, GPa (default: 0; same unit as tfpot md)")
    p.add_argument("--optimizer", default="BFGS", choices=OPTIMIZERS, help="default: BFGS")
    p.add_argument("--steps", type=_positive(int), default=1000, help="maximum steps (default: 1000)")
    p.add_argument("-o", "--output", default="relaxed.xyz", help="output extxyz (default: relaxed.xyz)")
    p.add_argument("--traj", default=None, help="optimisation trajectory (.traj)")
    p.add_argument("--verbose", "-v", action="store_true", help="print the optimiser log")
    p.set_defaults(func=run_relax)
