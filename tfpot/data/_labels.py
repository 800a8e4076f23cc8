"""Attach energy/forces/stress labels to Atoms and check them, shared by every reader."""

from __future__ import annotations

from typing import Optional

import numpy as np
from ase import Atoms
from ase.calculators.singlepoint import SinglePointCalculator
from ase.stress import voigt_6_to_full_3x3_stress

from tfpot.data.errors import DataFormatError


def attach_labels(atoms: Atoms, energy: Optional[float] = None,
                  forces: Optional[np.ndarray] = None,
                  stress: Optional[np.ndarray] = None) -> Atoms:
    """Store labels on ``atoms`` as a :class:`SinglePointCalculator` (in place; returns atoms).

    Units: energy eV (stored as float64), forces (N, 3) eV/Å, stress (3, 3) or Voigt (6,)
    eV/Å^3 in ASE's sign convention (positive = tensile).
    """
    results = {}
    if energy is not None:
        results["energy"] = float(energy)
        results["free_energy"] = float(energy)
    if forces is not None:
        results["forces"] = np.asarray(forces, dtype=np.float64).reshape(len(atoms), 3)
    if stress is not None:
        results["stress"] = np.asarray(stress, dtype=np.float64)
    if results:
        atoms.calc = SinglePointCalculator(atoms, **results)
    return atoms


def labels_of(atoms: Atoms):
    """``(energy, forces, stress)`` stored on ``atoms``; each None when absent.

    Shapes and units: energy float eV, forces (N, 3) float64 eV/Å, stress (3, 3) float64 eV/Å^3.
    """
    calc = atoms.calc
    results = getattr(calc, "results", None) or {}
    energy = results.get("energy")
    if energy is None:
        energy = results.get("free_energy")
    forces = results.get("forces")
    stress = results.get("stress")
    if stress is not None:
        stress = np.asarray(stress, dtype=np.float64)
        if stress.shape == (9,):  # ASE databases store a flattened 3x3
            stress = stress.reshape(3, 3)
        elif stress.shape == (6,):
            stress = voigt_6_to_full_3x3_stress(stress)
    return (None if energy is None else float(energy),
            None if forces is None else np.asarray(forces, dtype=np.float64),
            stress)


def check_structure(atoms: Atoms, where: str) -> Atoms:
    """Refuse non-finite positions, cells and labels, and label shapes that do not fit.

    Args:
        atoms: the structure.
        where: names the source in the message, e.g. ``"data.xyz, structure 3"``.
    """
    pos = atoms.get_positions()
    if not np.all(np.isfinite(pos)):
        bad = int(np.argwhere(~np.isfinite(pos))[0, 0])
        raise DataFormatError(f"{where}: position of atom {bad} is not finite ({pos[bad].tolist()})")
    if not np.all(np.isfinite(atoms.cell.array)):
        raise DataFormatError(f"{where}: cell is not finite ({atoms.cell.array.tolist()})")
    z = atoms.get_atomic_numbers()
    if len(z) and (z.min() < 1 or z.max() > 118):
        raise DataFormatError(f"{where}: atomic numbers must be in 1..118 (got {sorted(set(z.tolist()))})")
    energy, forces, stress = labels_of(atoms)
    if energy is not None and not np.isfinite(energy):
        raise DataFormatError(f"{where}: energy is not finite ({energy})")
    if forces is not None:
        if forces.shape != (len(atoms), 3):
            raise DataFormatError(
                f"{where}: forces must have shape ({len(atoms)}, 3) (got {forces.shape})")
        if not np.all(np.isfinite(forces)):
            bad = int(np.argwhere(~np.isfinite(forces))[0, 0])
            raise DataFormatError(f"{where}: force on atom {bad} is not finite")
    if stress is not None:
        if stress.shape != (3, 3):
            raise DataFormatError(f"{where}: stress must have shape (3, 3) or (6,) (got {stress.shape})")
        if not np.all(np.isfinite(stress)):
            raise DataFormatError(f"{where}: stress is not finite")
        if np.shape(atoms.calc.results["stress"]) not in ((6,), (3, 3)):
            atoms.calc.results["stress"] = stress  # e.g. the flat (9,) of ASE databases
    return atoms
