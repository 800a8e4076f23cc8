"""Names of the fields of an atomic graph, declared once.

Each key is a constant with its shape, meaning and units. Modules read and write these named
fields; nothing else spells the strings. N = atoms in the batch, E = directed edges, G = graphs.

Edge convention: ``edge_index[0]`` is the centre atom i (the receiver of the message),
``edge_index[1]`` the neighbour j (the sender), and the edge vector is
``r_ij = pos[j] - pos[i] + shifts[e]`` (Å), pointing from i to j.
"""

from typing import Final

POSITIONS: Final[str] = "pos"  # (N, 3) float | Cartesian positions, Å
ATOMIC_NUMBERS: Final[str] = "atomic_numbers"  # (N,) int64 | nuclear charge Z
EDGE_INDEX: Final[str] = "edge_index"  # (2, E) int64 | [centre i, neighbour j]
SHIFTS: Final[str] = "shifts"  # (E, 3) float | Cartesian periodic-image shift S @ cell, Å
CELL: Final[str] = "cell"  # (G, 3, 3) float | lattice vectors as rows, Å (zeros: no cell)
PBC: Final[str] = "pbc"  # (G, 3) bool | periodicity per axis
BATCH: Final[str] = "batch"  # (N,) int64 | graph index of each atom
NUM_GRAPHS: Final[str] = "num_graphs"  # () int64 | G

ENERGY: Final[str] = "energy"  # (G,) float64 | total energy, eV
ATOMIC_ENERGIES: Final[str] = "energies"  # (N,) float64 | per-atom energy, eV
FORCES: Final[str] = "forces"  # (N, 3) float | -dE/dpos, eV/Å
VIRIAL: Final[str] = "virial"  # (G, 3, 3) float | -dE/d(strain), eV
STRESS: Final[str] = "stress"  # (G, 3, 3) float64 | (1/V) dE/d(strain), eV/Å^3 (ASE sign), 0 if V = 0

# Masks for targets that only some structures of a data set have (tfpot.data.datasets pads the
# missing ones with zeros): False where the stored target is padding.
HAS_ENERGY: Final[str] = "has_energy"  # (G,) bool
HAS_FORCES: Final[str] = "has_forces"  # (G,) bool
HAS_STRESS: Final[str] = "has_stress"  # (G,) bool
