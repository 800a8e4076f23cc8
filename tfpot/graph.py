"""The graph builder: neighbour lists with periodic-image shifts, and the model's input fields.

Every neighbour within the cutoff is kept (never truncated: a cap on neighbours makes the energy
discontinuous). Periodic cells of any shape and size (smaller than the cutoff too), with
periodicity chosen per axis, go through matscipy; molecules get a bounding box.

* :func:`neighbor_list`: all pairs within a cutoff (numpy);
* :class:`SkinNeighborList`: the same pairs, rebuilt only when atoms moved more than half a
  Verlet skin (MD, relaxations: the ASE calculator);
* :func:`graph_fields`: positions, numbers, cell, pbc and a pair list as the tensors the model
  reads (keys of :mod:`tfpot._keys`), for one structure. :func:`atoms_to_graph` (prediction),
  the ASE calculator and the data pipeline (:mod:`tfpot.data.datasets`, PyG graphs with labels)
  all build their graphs with it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Dict, Optional, Sequence, Tuple, Union

import numpy as np
import torch
from ase import Atoms
from matscipy.neighbours import neighbour_list as _matscipy_nl

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


ArrayLike = Union[np.ndarray, torch.Tensor, Sequence]


def _as_tensor(value: ArrayLike, dtype: torch.dtype, device: Union[torch.device, str]) -> torch.Tensor:
    """A tensor of ``dtype`` on ``device``; numpy input is copied (the tensor owns its memory,
    never a view of a read-only buffer), a tensor is converted only if needed."""
    if isinstance(value, torch.Tensor):
        return value.to(dtype=dtype, device=device)
    return torch.tensor(np.asarray(value), dtype=dtype, device=device)


def graph_fields(positions: ArrayLike, numbers: ArrayLike, cell: ArrayLike, pbc: ArrayLike,
                 edge_index: ArrayLike, shifts: ArrayLike, dtype: torch.dtype = torch.float64,
                 device: Union[torch.device, str] = "cpu") -> Dict[str, torch.Tensor]:
    """One structure's model inputs (keys of :mod:`tfpot._keys`), without ``batch``.

    Args:
        positions: (N, 3) Å; numbers: (N,) atomic numbers; cell: (3, 3) lattice vectors as
            rows, Å (zeros for a molecule); pbc: (3,) bool; edge_index: (2, E) [centre,
            neighbour]; shifts: (E, 3) Cartesian image shifts, Å.
        dtype: floating dtype of positions, shifts and cell.

    Shapes of the result: pos (N, 3), atomic_numbers (N,), edge_index (2, E), shifts (E, 3),
    cell (1, 3, 3), pbc (1, 3): a batch of one, as PyG concatenates them.
    """
    return {
        K.POSITIONS: _as_tensor(positions, dtype, device).reshape(-1, 3),
        K.ATOMIC_NUMBERS: _as_tensor(numbers, torch.long, device).reshape(-1),
        K.EDGE_INDEX: _as_tensor(edge_index, torch.long, device).reshape(2, -1),
        K.SHIFTS: _as_tensor(shifts, dtype, device).reshape(-1, 3),
        K.CELL: _as_tensor(cell, dtype, device).reshape(1, 3, 3),
        K.PBC: _as_tensor(pbc, torch.bool, device).reshape(1, 3),
    }


def atoms_to_graph(atoms: Atoms, cutoff: float, dtype: torch.dtype = torch.float64,
                   device: torch.device | str = "cpu") -> Dict[str, torch.Tensor]:
    """One structure as a graph dict (keys in :mod:`tfpot._keys`), batch of one.

    Cell and shifts are kept so that the strain derivative (stress) works for periodic cells.
    """
    pbc = np.asarray(atoms.get_pbc(), dtype=bool)
    cell = np.asarray(atoms.get_cell(), dtype=np.float64)
    positions = atoms.get_positions()
    nl = neighbor_list(positions, cutoff, cell, pbc)
    graph = graph_fields(positions, atoms.get_atomic_numbers(), cell, pbc, nl.edge_index,
                         nl.shifts, dtype, device)
    graph[K.BATCH] = torch.zeros(len(atoms), dtype=torch.long, device=device)
    return graph


class SkinNeighborList:
    """Pairs within ``cutoff``, from a list built at ``cutoff + skin`` and reused (Verlet skin).

    The list is rebuilt when an atom has moved more than ``skin / 2`` since the build, or the
    cell, pbc or atomic numbers changed; every call keeps the pairs whose *current* distance is
    below the cutoff. Any pair now within the cutoff was within ``cutoff + skin`` at the build
    (each atom moved < skin/2), so the edges equal a fresh :func:`neighbor_list` (same pairs, in
    the same ``(centre, neighbour)`` order).

    Args:
        cutoff, skin: Å (skin 0: rebuild whenever the positions change).
        device: where the returned tensors live.

    Attributes:
        n_builds: builds so far.
    """

    def __init__(self, cutoff: float, skin: float, device: Union[torch.device, str] = "cpu"):
        if not (np.isfinite(skin) and skin >= 0):
            raise ValueError(f"skin must be a finite number >= 0 Å (got {skin})")
        self.cutoff = float(cutoff)
        self.skin = float(skin)
        self.device = torch.device(device)
        self.n_builds = 0
        self.reset()

    def reset(self) -> None:
        """Forget the list (the next call builds one)."""
        self._pos: Optional[np.ndarray] = None
        self._cell: Optional[np.ndarray] = None
        self._pbc: Optional[np.ndarray] = None
        self._numbers: Optional[np.ndarray] = None
        self._edges: Optional[torch.Tensor] = None
        self._shifts: Optional[torch.Tensor] = None

    def _needs_rebuild(self, positions: np.ndarray, cell: np.ndarray, pbc: np.ndarray,
                       numbers: np.ndarray) -> bool:
        if self._pos is None or self._pos.shape != positions.shape:
            return True
        if not (np.array_equal(cell, self._cell) and np.array_equal(pbc, self._pbc)
                and np.array_equal(numbers, self._numbers)):
            return True
        if self.skin == 0.0:
            return not np.array_equal(positions, self._pos)
        disp = positions - self._pos
        max_d2 = float(np.einsum("ij,ij->i", disp, disp).max()) if len(disp) else 0.0
        return max_d2 > (0.5 * self.skin) ** 2

    def _build(self, positions: np.ndarray, cell: np.ndarray, pbc: np.ndarray,
               numbers: np.ndarray) -> None:
        nl = neighbor_list(positions, self.cutoff + self.skin, cell, pbc)
        self._edges = torch.as_tensor(nl.edge_index, dtype=torch.long, device=self.device)
        self._shifts = torch.as_tensor(nl.shifts, dtype=torch.float64, device=self.device)
        self._pos = positions.copy()
        self._cell = cell.copy()
        self._pbc = pbc.copy()
        self._numbers = numbers.copy()
        self.n_builds += 1

    def pairs(self, positions: np.ndarray, cell: np.ndarray, pbc: np.ndarray,
              numbers: np.ndarray) -> Tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """edge_index (2, E) int64, shifts (E, 3) float64 Å and squared lengths (E,) float64
        Å^2 of the pairs within the cutoff now (rebuilding the list when needed)."""
        positions = np.asarray(positions, dtype=np.float64)
        cell = np.asarray(cell, dtype=np.float64)
        pbc = np.asarray(pbc, dtype=bool)
        numbers = np.asarray(numbers)
        if self._needs_rebuild(positions, cell, pbc, numbers):
            self._build(positions, cell, pbc, numbers)
        edges, shifts = self._edges, self._shifts
        pos = torch.as_tensor(positions, device=self.device)
        vec = pos[edges[1]] - pos[edges[0]] + shifts
        d2 = (vec * vec).sum(-1)
        if self.skin > 0.0:
            keep = d2 < self.cutoff * self.cutoff
            edges, shifts, d2 = edges[:, keep], shifts[keep], d2[keep]
        return edges, shifts, d2
