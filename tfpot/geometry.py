"""Edge geometry: the one place where edge vectors, lengths and directions are formed.

    r_ij = pos[j] - pos[i] + shifts[e]        (Å; edge e = (i, j), see :mod:`tfpot._keys`)

Vectors are formed in the precision of the positions (float64 positions keep a float32 model
exact to its own rounding, whatever the absolute coordinates) and then cast to the model's dtype.
"""

# no "from __future__ import annotations": TorchScript reads the NamedTuple annotations

from typing import NamedTuple

import torch
from torch import Tensor


class EdgeGeometry(NamedTuple):
    """Shapes: vec (E, 3) Å, r (E,) Å, unit (E, 3) dimensionless."""

    vec: Tensor
    r: Tensor
    unit: Tensor


def edge_geometry(pos: Tensor, edge_index: Tensor, shifts: Tensor,
                  dtype: torch.dtype) -> EdgeGeometry:
    """Edge vectors ``r_ij``, their lengths and unit vectors, in ``dtype``.

    Shapes: pos (N, 3), edge_index (2, E) [centre i, neighbour j], shifts (E, 3).
    Atoms at zero distance give r = 0 and non-finite directions: callers refuse overlapping atoms
    before (the ASE calculator's ``min_distance``).
    """
    vec = pos.index_select(0, edge_index[1]) - pos.index_select(0, edge_index[0]) + shifts
    return edge_vectors_geometry(vec, dtype)


def edge_vectors_geometry(vec: Tensor, dtype: torch.dtype) -> EdgeGeometry:
    """:func:`edge_geometry` from edge vectors (E, 3) already formed (in any float precision)."""
    vec = vec.to(dtype)
    r = torch.sqrt((vec * vec).sum(-1))
    return EdgeGeometry(vec, r, vec / r.unsqueeze(-1))
