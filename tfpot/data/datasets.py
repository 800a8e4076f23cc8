"""Structures as :class:`torch_geometric.data.Data` graphs, and an in-memory dataset of them.

A graph carries the fields of :mod:`tfpot._keys` and, where the structure has them, the targets:

=================  ============  ===================================================
key                shape         meaning, units
=================  ============  ===================================================
pos                (N, 3)        positions, Å (``dtype``)
atomic_numbers     (N,) int64    Z
edge_index         (2, E) int64  [centre i, neighbour j], every pair with |r_ij| < cutoff
shifts             (E, 3)        Cartesian image shift, Å: r_ij = pos[j] - pos[i] + shifts
cell               (1, 3, 3)     lattice vectors as rows, Å (zeros for molecules)
pbc                (1, 3) bool   periodicity per axis
energy             (1,) float64  total energy, eV
forces             (N, 3)        eV/Å (``dtype``)
stress             (1, 3, 3)     eV/Å^3, ASE sign (``dtype``)
has_<target>       (1,) bool     only in datasets where some structures lack <target>:
                                 False where the zeros stored in <target> are padding
=================  ============  ===================================================

PyG's ``Batch`` / ``DataLoader`` concatenate these along dim 0 (edge_index along dim 1, offset by
the atoms before it), so a batch has cell (G, 3, 3), pbc (G, 3), energy (G,), stress (G, 3, 3)
and ``batch`` (N,), as :mod:`tfpot._keys` declares; :func:`model_inputs` hands it to the model.
The model's fields are assembled by :func:`tfpot.graph.graph_fields`, as for every other graph.
"""

from __future__ import annotations

from typing import Dict, Iterable, List, Optional, Sequence, Tuple

import numpy as np
import torch
from ase import Atoms
from torch_geometric.data import Batch, Data
from torch_geometric.loader import DataLoader

from tfpot import _keys as K
from tfpot.data._labels import labels_of
from tfpot.graph import graph_fields, neighbor_list

TARGETS: Tuple[str, ...] = (K.ENERGY, K.FORCES, K.STRESS)


_MASK_KEYS = {K.ENERGY: K.HAS_ENERGY, K.FORCES: K.HAS_FORCES, K.STRESS: K.HAS_STRESS}


def mask_key(target: str) -> str:
    """Name of the (1,) bool field that says whether ``target`` is real or padding."""
    return _MASK_KEYS[target]


def arrays_to_data(
    positions: np.ndarray,
    numbers: np.ndarray,
    cell: np.ndarray,
    pbc: np.ndarray,
    edge_index: np.ndarray,
    shifts: np.ndarray,
    energy: Optional[float] = None,
    forces: Optional[np.ndarray] = None,
    stress: Optional[np.ndarray] = None,
    dtype: torch.dtype = torch.float64,
    pad_targets: Sequence[str] = (),
) -> Data:
    """One graph from plain arrays (shapes and units as in the module table).

    Args:
        edge_index: (2, E) integer [centre, neighbour]; shifts: (E, 3) Cartesian Å.
        pad_targets: targets to store even when missing (zeros), with a ``has_<target>`` mask.
    """
    n = len(numbers)
    fields = graph_fields(positions, numbers, cell, pbc, edge_index, shifts, dtype)
    values = {K.ENERGY: energy, K.FORCES: forces, K.STRESS: stress}
    shapes = {K.ENERGY: (1,), K.FORCES: (n, 3), K.STRESS: (1, 3, 3)}
    for key in TARGETS:
        value = values[key]
        tdtype = torch.float64 if key == K.ENERGY else dtype  # energies always float64
        if value is not None:
            fields[key] = torch.tensor(np.asarray(value), dtype=tdtype).reshape(shapes[key])
        elif key in pad_targets:
            fields[key] = torch.zeros(shapes[key], dtype=tdtype)
        if key in pad_targets:
            fields[mask_key(key)] = torch.tensor([value is not None])
    return Data(num_nodes=n, **fields)


def atoms_to_data(atoms: Atoms, cutoff: float, dtype: torch.dtype = torch.float64,
                  pad_targets: Sequence[str] = ()) -> Data:
    """One structure as a graph with its labels (energy, forces, stress where present).

    Args:
        atoms: structure; labels are read from its calculator (SinglePointCalculator).
        cutoff: neighbour radius, Å.
        dtype: floating dtype of positions, shifts, cell, forces, stress (energy stays float64).
        pad_targets: see :func:`arrays_to_data`.
    """
    cell = atoms.get_cell().array
    pbc = atoms.get_pbc()
    nl = neighbor_list(atoms.get_positions(), cutoff, cell, pbc)
    energy, forces, stress = labels_of(atoms)
    return arrays_to_data(atoms.get_positions(), atoms.get_atomic_numbers(), cell, pbc,
                          nl.edge_index, nl.shifts, energy, forces, stress, dtype, pad_targets)


def targets_to_pad(label_counts: Dict[str, int], total: int) -> Tuple[str, ...]:
    """Targets present in some but not all of ``total`` structures (these get masks)."""
    return tuple(k for k in TARGETS if 0 < label_counts.get(k, 0) < total)


class AtomsDataset(torch.utils.data.Dataset):
    """An in-memory list of Atoms served as graphs (or as the Atoms themselves).

    Graphs are built on first access and kept when ``cache=True`` (neighbour lists are the cost).
    Targets that only some structures have are zero-padded with a ``has_<target>`` mask, so that
    any subset batches together.

    Args:
        structures: labelled Atoms.
        cutoff: neighbour radius, Å; required for ``return_type="graph"``.
        dtype: floating dtype of the graphs (energy stays float64).
        return_type: ``"graph"`` (default when a cutoff is given) or ``"atoms"``.
        cache: keep built graphs.
    """

    def __init__(self, structures: Iterable[Atoms], cutoff: Optional[float] = None,
                 dtype: torch.dtype = torch.float64, return_type: Optional[str] = None,
                 cache: bool = True) -> None:
        self.structures: List[Atoms] = list(structures)
        self.cutoff = cutoff
        self.dtype = dtype
        self.return_type = return_type or ("graph" if cutoff is not None else "atoms")
        if self.return_type not in ("graph", "atoms"):
            raise ValueError(f"return_type must be 'graph' or 'atoms' (got {self.return_type!r})")
        if self.return_type == "graph" and cutoff is None:
            raise ValueError("AtomsDataset needs a cutoff (Å) to return graphs")
        counts = {k: 0 for k in TARGETS}
        for atoms in self.structures:
            for key, value in zip(TARGETS, labels_of(atoms)):
                counts[key] += value is not None
        self.pad_targets = targets_to_pad(counts, len(self.structures))
        self._cache: Optional[Dict[int, Data]] = {} if cache else None

    def __len__(self) -> int:
        return len(self.structures)

    def __getitem__(self, idx: int):
        idx = int(idx)
        if self.return_type == "atoms":
            return self.structures[idx]
        if self._cache is not None and idx in self._cache:
            return self._cache[idx]
        data = atoms_to_data(self.structures[idx], self.cutoff, self.dtype, self.pad_targets)
        if self._cache is not None:
            self._cache[idx] = data
        return data

    def __repr__(self) -> str:
        return (f"{type(self).__name__}({len(self)} structures, cutoff={self.cutoff}, "
                f"return_type={self.return_type!r}, dtype={self.dtype})")


def make_loader(dataset, batch_size: int = 16, shuffle: bool = False, num_workers: int = 0,
                **kwargs):
    """A :class:`torch_geometric.loader.DataLoader` over a graph dataset (batches are ``Batch``)."""
    return DataLoader(dataset, batch_size=batch_size, shuffle=shuffle, num_workers=num_workers,
                      persistent_workers=num_workers > 0 and kwargs.pop("persistent_workers", False),
                      **kwargs)


#: The fields of a batch that the model reads (besides ``num_graphs``).
MODEL_INPUT_KEYS: Tuple[str, ...] = (K.POSITIONS, K.ATOMIC_NUMBERS, K.EDGE_INDEX, K.SHIFTS,
                                     K.CELL, K.BATCH)


def model_inputs(batch: Batch) -> Dict[str, torch.Tensor]:
    """The model's input dict of a PyG batch of these graphs (keys of :mod:`tfpot._keys`).

    ``num_graphs`` is passed explicitly, so a structure without atoms still counts.
    """
    out = {k: batch[k] for k in MODEL_INPUT_KEYS}
    out[K.NUM_GRAPHS] = torch.tensor(int(batch.num_graphs))
    return out
