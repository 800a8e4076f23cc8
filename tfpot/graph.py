"""Neighbour lists with periodic-image shifts, and atomic graphs as torch tensors.

Every neighbour within the cutoff is kept (never truncated: a cap on neighbours makes the energy
discontinuous). Periodic cells of any shape and size (smaller than the cutoff too), with
periodicity chosen per axis, go through matscipy; molecules get a bounding box.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Dict, Optional, Sequence

import numpy as np
import torch
from ase import Atoms

from tfpot import _keys as K


@dataclass
class NeighborList:
    """Directed neighbour pairs within a cutoff.

    Shapes:
        edge_index: (2, E) int64, ``[centre i, neighbour j]``.
        shifts: (E, 3) float64, Cartesian image shift in Å: ``r_ij = pos[j] - pos[i] + shifts``.
        cell_shifts: (E, 3) int64, the same shift in units of the lattice vectors.
    """

    edge_index: np.ndarray
    shifts: np.ndarray
    cell_shifts: np.ndarray


def neighbor_list(
    positions: np.ndarray,
    cutoff: float,
    cell: Optional[np.ndarray] = None,
    pbc: Sequence[bool] = (False, False, False),
) -> NeighborList:
    """All directed pairs (i, j), i != j or different images, with |r_ij| < cutoff.

    Args:
        positions: (N, 3) Cartesian positions, Å.
        cutoff: radius, Å.
        cell: (3, 3) lattice vectors as rows, Å; needed (non-singular) when any pbc is True.
        pbc: periodicity per axis.
    """
    from matscipy.neighbours import neighbour_list as _matscipy_nl

    positions = np.asarray(positions, dtype=np.float64)
    if positions.ndim != 2 or positions.shape[1] != 3:
        raise ValueError(f"Expected positions of shape (N, 3) (got {positions.shape})")
    if not np.all(np.isfinite(positions)):
        bad = int(np.argwhere(~np.isfinite(positions))[0, 0])
        raise ValueError(f"Position of atom {bad} is not finite: {positions[bad].tolist()}")
    if cutoff <= 0:
        raise ValueError(f"cutoff must be positive (got {cutoff})")
    pbc = np.asarray(pbc, dtype=bool).reshape(3)
    n = len(positions)
    empty = NeighborList(
        np.zeros((2, 0), np.int64), np.zeros((0, 3), np.float64), np.zeros((0, 3), np.int64)
    )
    if n == 0:
        return empty
    if not pbc.any():
        # A box around the molecule with a margin: no periodic images can appear.
        lo = positions.min(axis=0) - cutoff
        extent = positions.max(axis=0) - lo + cutoff + 1.0
        box = np.diag(extent)
        i, j = _matscipy_nl("ij", positions=positions - lo, cutoff=float(cutoff), cell=box,
                            pbc=np.zeros(3, bool))
        S = np.zeros((len(i), 3), np.int64)
        shifts = np.zeros((len(i), 3), np.float64)
    else:
        cell = np.asarray(cell, dtype=np.float64).reshape(3, 3)
        if abs(np.linalg.det(cell)) < 1e-9:
            raise ValueError(
                f"Periodic structure (pbc={pbc.tolist()}) needs a non-singular cell "
                f"(got {cell.tolist()}); give vacuum directions a finite cell vector"
            )
        i, j, S = _matscipy_nl("ijS", positions=positions, cutoff=float(cutoff), cell=cell,
                               pbc=pbc)
        S = S.astype(np.int64)
        shifts = S @ cell
    order = np.lexsort((j, i))  # deterministic order: by centre, then neighbour
    edge_index = np.stack([i[order], j[order]]).astype(np.int64)
    return NeighborList(edge_index, shifts[order], S[order])


def atoms_to_graph(atoms: Atoms, cutoff: float, dtype: torch.dtype = torch.float64,
                   device: torch.device | str = "cpu") -> Dict[str, torch.Tensor]:
    """One structure as a graph dict (keys in :mod:`tfpot._keys`), batch of one.

    Cell and shifts are kept so that the strain derivative (stress) works for periodic cells.
    """
    pbc = np.asarray(atoms.get_pbc(), dtype=bool)
    cell = np.asarray(atoms.get_cell(), dtype=np.float64)
    nl = neighbor_list(atoms.get_positions(), cutoff, cell, pbc)
    return {
        K.POSITIONS: torch.tensor(atoms.get_positions(), dtype=dtype, device=device),
        K.ATOMIC_NUMBERS: torch.tensor(atoms.get_atomic_numbers(), dtype=torch.long, device=device),
        K.EDGE_INDEX: torch.tensor(nl.edge_index, dtype=torch.long, device=device),
        K.SHIFTS: torch.tensor(nl.shifts, dtype=dtype, device=device),
        K.CELL: torch.tensor(cell, dtype=dtype, device=device).unsqueeze(0),
        K.PBC: torch.tensor(pbc, device=device).unsqueeze(0),
        K.BATCH: torch.zeros(len(atoms), dtype=torch.long, device=device),
    }

