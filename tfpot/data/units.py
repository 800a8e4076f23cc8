"""Unit factors from the units files use to tfpot's internal units (eV, Å, eV/Å, eV/Å^3).

All factors come from :mod:`ase.units` (CODATA 2014 in current ASE), so tfpot converts exactly as
ASE does. Multiply a value in the file's unit by the factor to get the internal unit.
"""

from __future__ import annotations

from typing import Dict, Final

from ase import units as _u

KCAL_PER_MOL: Final[float] = _u.kcal / _u.mol  # eV per (kcal/mol), 0.0433641...
HARTREE: Final[float] = _u.Hartree  # eV per Hartree, 27.211386...
BOHR: Final[float] = _u.Bohr  # Å per bohr (a0), 0.529177...
DEBYE: Final[float] = _u.Debye  # e·Å per Debye, 0.2081943...
CAL_PER_MOL_K: Final[float] = 1e-3 * _u.kcal / _u.mol  # eV/K per (cal/(mol K)), per molecule

#: The units of every quantity inside tfpot, written into LMDB headers.
INTERNAL_UNITS: Final[Dict[str, str]] = {
    "energy": "eV",
    "positions": "Å",
    "cell": "Å",
    "forces": "eV/Å",
    "stress": "eV/Å^3",
}
