"""Stop a molecular-dynamics run that has left physics, with one line that says where and why.

A trained potential can have a hole where its training data had no geometries: the dynamics
falls into it, forces of tens of eV/Å heat the system by thousands of kelvin within a few
femtoseconds, and the run goes on, or ends with an unrelated error (atoms on top of each other)
hundreds of steps later. Measured (benchmarks/README.md): an aspirin model trained 50 minutes on
500 K GFN2-xTB data ran 1.3 ps of NVE at 500 K normally, then met a geometry 0.3 Å outside its
training set (max |F| 5 -> 115 eV/Å within 8 steps, where GFN2-xTB gives 4.8) and reached
10^4 K.

:class:`RunawayGuard` checks every step (with the energies and forces the step computed anyway):

* ``max_force`` (eV/Å, any ensemble): the largest force on any atom. Thermal dynamics of
  molecules and solids stays below ~10 eV/Å; 50 eV/Å means the model, not the physics, drives
  the atoms.
* ``max_energy_change`` (eV/atom, NVE only): ``|E_tot(t) - E_tot(0)| / N``. A healthy
  0.5 fs run of a trained model stays within ~1 meV/atom over 10 ps; 0.05 eV/atom is the
  energy of ~200 K of heating.

``None`` switches a check off. ``tfpot md`` runs it every step; in your own ASE dynamics,
``RunawayGuard(atoms.get_chemical_symbols()).watch(dyn)`` does the same.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import List, Optional, Sequence

import numpy as np
from ase import units
from ase.md.md import MolecularDynamics

from tfpot.errors import TfpotError

#: defaults of ``tfpot md`` (eV/Å and eV/atom)
DEFAULT_MAX_FORCE = 50.0
DEFAULT_MAX_ENERGY_CHANGE = 0.05


class MDRunawayError(TfpotError):
    """A molecular-dynamics run stopped by :class:`RunawayGuard`."""


@dataclass
class RunawayGuard:
    """Checks one MD step at a time (see the module docstring).

    Args:
        symbols: chemical symbols of the atoms (for the message).
        max_force: largest allowed force on an atom, eV/Å; None: no limit.
        max_energy_change: largest allowed ``|E_tot - E_tot(0)|`` per atom, eV; None: no limit
            (give None for dynamics that does not conserve energy: thermostats, barostats).
    """

    symbols: Sequence[str]
    max_force: Optional[float] = DEFAULT_MAX_FORCE
    max_energy_change: Optional[float] = DEFAULT_MAX_ENERGY_CHANGE

    def check(self, step: int, time_ps: float, forces: np.ndarray, total_energy: float,
              initial_total_energy: float) -> None:
        """Raise :class:`MDRunawayError` if step ``step`` (at ``time_ps``) breaks a limit.

        ``forces`` (N, 3) eV/Å; energies in eV.
        """
        norms = np.linalg.norm(np.asarray(forces, dtype=np.float64), axis=1)
        worst = int(np.argmax(norms))
        where = (f"at step {step} ({time_ps:.4f} ps); largest force {norms[worst]:.3g} eV/Å on "
                 f"atom {worst} ({self.symbols[worst]})")
        advice = ("the model is probably outside its training data here (add such geometries "
                  "to the training set) or the time step is too long")
        if not np.all(np.isfinite(norms)) or not np.isfinite(total_energy):
            raise MDRunawayError(f"non-finite energy or forces {where}: {advice}")
        if self.max_force is not None and norms[worst] > self.max_force:
            raise MDRunawayError(f"force above --max-force {self.max_force:g} eV/Å {where}: "
                                 f"{advice}; --max-force 0 runs on")
        if self.max_energy_change is not None:
            change = abs(total_energy - initial_total_energy) / len(self.symbols)
            if change > self.max_energy_change:
                raise MDRunawayError(
                    f"NVE total energy moved {change:.3g} eV/atom from its start, above "
                    f"--max-energy-change {self.max_energy_change:g}, {where}: {advice}; "
                    f"--max-energy-change 0 runs on")

    def watch(self, dynamics: MolecularDynamics) -> None:
        """Check every step of an ASE dynamics (an observer, attached now): its step count and
        time, the forces of the step (cached: no extra evaluation) and its total energy
        against the total energy when the dynamics first calls the observer."""
        atoms = dynamics.atoms
        initial: List[float] = []

        def observe() -> None:
            total = float(atoms.get_potential_energy() + atoms.get_kinetic_energy())
            if not initial:
                initial.append(total)
            self.check(dynamics.nsteps, dynamics.nsteps * dynamics.dt / (1000.0 * units.fs),
                       atoms.get_forces(), total, initial[0])

        dynamics.attach(observe, interval=1)
