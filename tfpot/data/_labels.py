"""Attach energy/forces/stress labels to Atoms and read them back, shared by every reader
(the checks are in :mod:`tfpot.data.check`)."""

from __future__ import annotations

from typing import Optional

import numpy as np
from ase import Atoms
from ase.calculators.singlepoint import SinglePointCalculator
from ase.stress import voigt_6_to_full_3x3_stress



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
