"""The EMT Cu/Ni/Al materials set of the benchmarks: strained, rattled 32-atom fcc cells.

Made on the fly (ASE's EMT, a few seconds): ``emt_splits()`` gives the 240 / 30 / 30 split that
``bench_frames.py --materials`` and ``bench_accuracy_vs_mace.py --dataset emt`` train and test on.
"""

from __future__ import annotations

from typing import List, Tuple

import numpy as np
from ase import Atoms
from ase.build import bulk
from ase.calculators.emt import EMT
from ase.calculators.singlepoint import SinglePointCalculator

#: the split sizes (train, validation, test)
EMT_SPLIT = (240, 30, 30)
#: seed of the set: the same cells for every training seed
EMT_DATA_SEED = 1234


def emt_cell(rng: np.random.Generator, strain: float = 0.03, rattle: float = 0.1) -> Atoms:
    """A 32-atom fcc cell (a = 3.6 Å) of Cu/Ni/Al (random, 50/30/20 %), strained by up to
    ``strain`` (symmetric, uniform per component) and rattled by ``rattle`` Å (normal, per
    component), with EMT energy (eV), forces (eV/Å) and stress (eV/Å^3, ASE sign) attached."""
    a = bulk("Cu", "fcc", a=3.6, cubic=True).repeat((2, 2, 2))
    a.set_chemical_symbols(rng.choice(["Cu", "Ni", "Al"], size=len(a), p=[0.5, 0.3, 0.2]))
    eps = rng.uniform(-strain, strain, size=(3, 3))
    a.set_cell(a.cell @ (np.eye(3) + 0.5 * (eps + eps.T)), scale_atoms=True)
    a.positions += rng.normal(scale=rattle, size=a.positions.shape)
    a.calc = EMT()
    res = dict(energy=a.get_potential_energy(), forces=a.get_forces(), stress=a.get_stress())
    a.calc = SinglePointCalculator(a, **res)
    return a


def emt_splits(seed: int = EMT_DATA_SEED) -> Tuple[List[Atoms], List[Atoms], List[Atoms]]:
    """Train, validation and test cells (240 / 30 / 30), labelled."""
    rng = np.random.default_rng(seed)
    n_train, n_val, n_test = EMT_SPLIT
    cells = [emt_cell(rng) for _ in range(n_train + n_val + n_test)]
    return cells[:n_train], cells[n_train:n_train + n_val], cells[n_train + n_val:]
