"""Sums over each atom's neighbours of per-edge outer products, without forming them per edge.

``A_i = sum_{j in N(i)} R_ij Y_ij^T`` for (E, K) and (E, M) per-edge rows is, as a per-edge
(E, K M) outer product followed by a scatter, the largest tensor of a model call (and again in
the backward pass). Placed in a padded (atoms, largest neighbour count) table, it is one batched
matrix product instead, forward and backward.
"""

from __future__ import annotations

from typing import Tuple

import torch
from torch import Tensor


def padded_rows(centre: Tensor, num_nodes: int) -> Tuple[Tensor, int]:
    """Row of each edge in a padded per-atom layout, and the layout's width.

    Edge e goes to row ``centre[e] * width + k`` of a (num_nodes * width) table, k = its rank among
    the edges of its centre (in edge order), width = the largest neighbour count; rows no edge
    fills stay zero. A sum over each atom's neighbours then becomes one batched matrix product
    over the (num_nodes, width) table instead of a scatter of a per-edge outer product.

    Shapes: centre (E,) int64 -> rows (E,) int64, width (int).
    """
    num_edges = centre.shape[0]
    if num_edges == 0:
        return centre, 0
    counts = torch.bincount(centre, minlength=num_nodes)
    width = int(counts.max())
    order = torch.argsort(centre, stable=True)
    first = torch.cumsum(counts, 0) - counts  # first sorted position of each centre's edges
    rank_sorted = (torch.arange(num_edges, dtype=centre.dtype, device=centre.device)
                   - first.index_select(0, centre.index_select(0, order)))
    rank = torch.empty_like(centre).index_copy(0, order, rank_sorted)
    return centre * width + rank, width


def neighbour_outer_sums(R: Tensor, Y: Tensor, centre: Tensor, num_nodes: int) -> Tensor:
    """``A_i = sum_{e: centre[e] = i} R_e Y_e^T``.

    Shapes: R (E, K), Y (E, M), centre (E,) int64 -> A (num_nodes, K, M); atoms without edges
    get zeros.
    """
    rows, width = padded_rows(centre, num_nodes)
    k, m = R.shape[1], Y.shape[1]
    Rp = torch.zeros(num_nodes * width, k, dtype=R.dtype, device=R.device).index_copy(0, rows, R)
    Yp = torch.zeros(num_nodes * width, m, dtype=Y.dtype, device=Y.device).index_copy(0, rows, Y)
    return torch.bmm(Rp.view(num_nodes, width, k).transpose(1, 2), Yp.view(num_nodes, width, m))
