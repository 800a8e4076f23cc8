"""Cell relaxation of a metal with stress: train a small tfpot model on EMT labels, then relax a
strained, rattled Cu crystal with ase.filters.FrechetCellFilter and compare with EMT itself.

    python examples/relax_cell_emt.py [--structures 40] [--epochs 40] [--fmax 0.01]
                                      [--model-out cu_emt.pt] [--model cu_emt.pt]

EMT (``ase.calculators.emt``) is a cheap effective-medium potential for fcc metals with energies,
forces and stress; it stands in for DFT here. Training data: small fcc Cu cells (4 and 8 atoms)
under random strain (volume +-12 %, shear 2 %) and thermal-like rattling. The model learns
energies, forces and stress (``stress_weight``), so that its stress is right — and the cell
filter moves the lattice by that stress. The result: the lattice constant of the relaxed crystal
under the model and under EMT (3.590 Å).
"""

from __future__ import annotations

import argparse
import sys
import time
from typing import List, Optional

import numpy as np
from ase.build import bulk
from ase.calculators.emt import EMT
from ase.calculators.singlepoint import SinglePointCalculator

import tfpot
from tfpot.calculators import TFPotCalculator
from tfpot.calculators.relax_cli import relax


def emt_training_set(n: int, seed: int = 0):
    """``n`` strained, rattled fcc Cu cells labelled with EMT energy, forces and stress."""
    rng = np.random.default_rng(seed)
    emt = EMT()
    out = []
    for k in range(n):
        atoms = bulk("Cu", "fcc", a=3.6, cubic=True)
        if k % 2:
            atoms = atoms.repeat((2, 1, 1))
        strain = np.eye(3) * (1 + rng.uniform(-0.04, 0.04)) + rng.uniform(-0.02, 0.02, (3, 3))
        atoms.set_cell(atoms.cell.array @ (0.5 * (strain + strain.T)), scale_atoms=True)
        atoms.positions += rng.normal(scale=rng.uniform(0.0, 0.1), size=atoms.positions.shape)
        atoms.calc = emt
        labels = dict(energy=atoms.get_potential_energy(), forces=atoms.get_forces(),
                      stress=atoms.get_stress())
        atoms.calc = SinglePointCalculator(atoms, **labels)
        out.append(atoms)
    return out


def train_cu_model(n_structures: int, epochs: int, seed: int = 0, max_time: Optional[float] = None):
    from tfpot.training import fit

    data = emt_training_set(n_structures, seed)
    model = tfpot.build_model(["Cu"], cutoff=4.0, preset="small", seed=seed)
    t0 = time.perf_counter()
    fit(model, data, epochs=epochs, batch_size=8, lr=5e-3, forces_weight=10.0,
        stress_weight=100.0, seed=seed, max_time=max_time)
    print(f"trained on {len(data)} EMT cells for {epochs} epochs in {time.perf_counter() - t0:.1f} s")
    return model


def lattice_constant(atoms) -> float:
    """fcc conventional lattice constant from the volume per atom (4 atoms per cube)."""
    return float((4.0 * atoms.get_volume() / len(atoms)) ** (1.0 / 3.0))


def main(argv: Optional[List[str]] = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--structures", type=int, default=40, help="EMT training cells (default: 40)")
    p.add_argument("--epochs", type=int, default=40, help="training epochs (default: 40)")
    p.add_argument("--max-train-time", type=float, default=None, help="stop training after s")
    p.add_argument("--model", default=None, help="use this model file instead of training")
    p.add_argument("--model-out", default=None, help="save the trained model here")
    p.add_argument("--fmax", type=float, default=0.01, help="eV/Å (default: 0.01)")
    p.add_argument("--steps", type=int, default=300, help="maximum optimiser steps (default: 300)")
    p.add_argument("--optimizer", default="BFGS", choices=("BFGS", "FIRE", "LBFGS"))
    p.add_argument("--expand", type=float, default=0.04,
                   help="start with the lattice this fraction too large (default: 0.04)")
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args(argv)

    if args.model:
        model = tfpot.load_model(args.model)
    else:
        model = train_cu_model(args.structures, args.epochs, args.seed, args.max_train_time)
        if args.model_out:
            tfpot.save_model(model, args.model_out)

    # Start: 2x2x2 conventional cells, expanded (4 % by default), sheared and rattled.
    start = bulk("Cu", "fcc", a=3.6, cubic=True).repeat((2, 2, 2))
    deform = np.eye(3) * (1.0 + args.expand)
    deform[0, 1] = deform[1, 0] = 0.01
    start.set_cell(start.cell.array @ deform, scale_atoms=True)
    start.rattle(0.03, seed=args.seed)

    results = {}
    for name, calc in (("tfpot", TFPotCalculator(model)), ("EMT", EMT())):
        atoms = start.copy()
        atoms.calc = calc
        p0 = -np.trace(atoms.get_stress(voigt=False)) / 3 / 0.006241509  # GPa
        converged, nsteps, fmax = relax(atoms, fmax=args.fmax, steps=args.steps,
                                        optimizer=args.optimizer, cell=True)
        stress = atoms.get_stress()
        results[name] = (converged, lattice_constant(atoms))
        print(f"{name:5s}: {'converged' if converged else 'NOT converged'} in {nsteps} steps "
              f"(fmax {fmax:.4f} eV/Å), pressure {p0:+.2f} GPa -> a = {lattice_constant(atoms):.4f} Å, "
              f"max |stress| {np.abs(stress).max():.2e} eV/Å^3, cell angles "
              f"{np.round(atoms.cell.angles(), 2).tolist()}")
    da = results["tfpot"][1] - results["EMT"][1]
    print(f"lattice constant: tfpot {results['tfpot'][1]:.4f} Å, EMT {results['EMT'][1]:.4f} Å "
          f"(difference {da:+.4f} Å)")
    return 0 if results["tfpot"][0] else 1


if __name__ == "__main__":
    sys.exit(main())
