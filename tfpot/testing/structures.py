"""Structures that the contract checks run on: generic, periodic, mixed-periodic and symmetric.

Elements: H, C, N, O, Cu (a model under test must know them). Deterministic (fixed seeds).
"""

from __future__ import annotations

from typing import Dict, List, Tuple

import numpy as np
from ase import Atoms
from ase.build import bulk, molecule


def ethanol() -> Atoms:
    """Ethanol, rattled by 0.02 Å (a generic molecule: frames open on most atoms)."""
    a = molecule("CH3CH2OH")
    a.rattle(0.02, seed=1)
    return a


def triclinic_cu(n_rattle: float = 0.05, seed: int = 0) -> Atoms:
    """A small triclinic periodic Cu/O cell, smaller than twice a 4 Å cutoff (many images per
    pair). Near-perfect fcc: frame gates are closed on every atom at ``n_rattle=0.05``."""
    a = bulk("Cu", "fcc", a=3.6).repeat((2, 2, 2))
    cell = np.array(a.get_cell())
    cell[2] += 0.4 * cell[0] - 0.2 * cell[1]
    a.set_cell(cell, scale_atoms=True)
    a.symbols[3] = "O"
    a.rattle(n_rattle, seed=seed)
    return a


def molecular_crystal() -> Atoms:
    """Rattled ethanol in a small triclinic periodic cell: molecules 2.5-3.5 Å from their images,
    so that periodic images, cell shifts and stress meet open frames (in a near-perfect metal, as
    :func:`triclinic_cu`, frame gates are closed and only the frame-free path is tested)."""
    a = ethanol()
    a.set_cell([[6.0, 0.0, 0.0], [0.8, 5.6, 0.0], [0.5, -0.4, 6.2]])
    a.pbc = True
    a.positions += np.array([2.0, 2.2, 2.4]) - a.positions.mean(axis=0)
    return a


def mixed_pbc_slab() -> Atoms:
    """A rattled Cu slab, periodic in x and y, open along z (4 Å of vacuum each side)."""
    a = bulk("Cu", "fcc", a=3.6, cubic=True).repeat((2, 2, 1))
    a.center(vacuum=4.0, axis=2)
    a.pbc = (True, True, False)
    a.rattle(0.05, seed=4)
    return a


def symmetric_structures() -> Dict[str, Tuple[Atoms, List[int]]]:
    """Structures with point symmetry, by name: (atoms, atoms on which symmetry demands F = 0)."""
    cu = bulk("Cu", "fcc", a=3.6, cubic=True).repeat((2, 2, 2))
    return {
        "fcc_cu_2x2x2": (cu, list(range(len(cu)))),
        "CH4": (molecule("CH4"), [0]),
        "CO2": (molecule("CO2"), [0]),
        "N2": (molecule("N2"), []),
        "benzene": (molecule("C6H6"), []),
        "single_atom": (Atoms("Cu", positions=[[0.0, 0.0, 0.0]]), [0]),
        "dimer": (Atoms("N2", positions=[[0, 0, 0], [0, 0, 1.1]]), []),
    }
