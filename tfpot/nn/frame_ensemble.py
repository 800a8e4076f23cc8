"""A weighted frame ensemble per atom: local coordinates where no single frame exists.

At a site with point symmetry (fcc, bcc, CH4) every equivariant vector of the neighbourhood
vanishes, so the gated frames of :mod:`tfpot.frames` are shut there by construction. A
*weighted* ensemble of frames exists everywhere (Dym, Lawrence, Siegel, arXiv 2402.16077; the
ECSE of PET): each ordered pair (a, b) of atom i's inner neighbours gives a candidate frame

    e1 = r̂_a,   e2 = (r̂_b - (r̂_b . e1) e1) / |r̂_a x r̂_b|,   e3 = e1 x e2     (a rotation)

with the weight ``w_ab = s(r_a) s(r_b) q(|r̂_a x r̂_b|^2) o(r̂_a . r̂_b)``: ``s`` switches
smoothly (C2) from 1 to 0 over the last ``width`` Å before the inner cutoff, ``q`` from 0 at
``sin^2 = 0.05`` to 1 at 0.2 (collinear pairs carry no frame), and ``o`` from 0 at an angle of
120° (``cos = -0.5``) to 1 at 90°: only pairs at acute to right angles carry a frame. At a
perfect fcc site that leaves 72 of the 132 ordered pairs (per neighbour: 4 at 60°, 2 at 90°
with weight 1/2; the 4 at 120° and the one at 180° carry none; thermal sites keep ~100, some
with tiny weights), and it keeps every environment with two neighbours less than 120° apart
(water's O: weight 1/2; CH4's C: 0.26). In each frame f a network reads every inner neighbour
c's local direction ``(x, y, z) = L_f r̂_c``, its radial basis and the two species,

    m_c = silu(A(rbf_c, z_i, z_c) + W (x, y, z^2))     (2H numbers: H even, H odd)
    E_f = sum_c s(r_c) m_c[:H] / n,   O_f = sum_c s(r_c) z m_c[H:] / n
    h_f = MLP(E_f, (W' O_f)^2)

and the atom gets the weighted mean ``h_i = sum_f w_f h_f / (delta + sum_f w_f)``. Every
quantity is a smooth function of the positions (``delta`` keeps the mean smooth when the
last frame's weight goes to 0), exactly invariant under rotations (the frames turn with the
atoms), reflections (a mirror maps ``z -> -z`` in these frames: even parts are even in z, and the
odd sums enter squared) and permutations (all ordered pairs). Pairs with ``q o = 0`` and edges
beyond the inner cutoff are dropped before the products: their weights have zero value and zero
slope there.

Cost: for K inner neighbours, at most K (K - 1) frames and K^2 (K - 1) evaluations of m_c per
atom (fcc first shell: 72 frames, 864 evaluations; none can be pruned further at a cubic site,
whose 12 neighbours tie).
"""

from __future__ import annotations

from typing import Tuple

import torch
from torch import Tensor, nn

from tfpot.frames import smoothstep_c2
from tfpot.nn.mlp import MLP

#: the collinearity switch q: 0 at or below this |r̂_a x r̂_b|^2 ...
PAIR_SIN2_LO = 0.05
#: ... 1 at or above this
PAIR_SIN2_HI = 0.2
#: the angle switch o: 0 at or below this cos(r̂_a, r̂_b) ...
PAIR_COS_LO = -0.5
#: ... 1 at or above this
PAIR_COS_HI = 0.0
#: the weighted mean's regulariser (a frame weight is at most 1; a cubic site has ~120 frames)
DELTA = 0.1


def inner_pairs(centre: Tensor, inner: Tensor, num_nodes: int
                ) -> Tuple[Tensor, Tensor, Tensor, Tensor, Tensor]:
    """Every ordered pair of distinct inner edges with one centre.

    Args:
        centre: (E,) centre atom of every edge.
        inner: (E,) bool, the edges in the inner shell.
        num_nodes: atoms N.

    Returns:
        edge (M,): the inner edges' ids, sorted by centre; group_start (M,), group_size (M,):
        where each one's centre's inner edges start in ``edge`` and how many there are;
        pos_a, pos_b (P,): the pairs, as positions in ``edge``.
    """
    edge = torch.nonzero(inner).squeeze(1)
    c = centre.index_select(0, edge)
    c, order = torch.sort(c, stable=True)
    edge = edge.index_select(0, order)
    counts = torch.bincount(c, minlength=num_nodes)
    group_start = (torch.cumsum(counts, 0) - counts).index_select(0, c)
    group_size = counts.index_select(0, c)
    pos_a, offset = _expand(group_size)
    pos_b = group_start.index_select(0, pos_a) + offset
    keep = pos_a != pos_b
    return edge, group_start, group_size, pos_a[keep], pos_b[keep]


def pair_triples(pos_a: Tensor, group_start: Tensor, group_size: Tensor
                 ) -> Tuple[Tensor, Tensor]:
    """(pair, third edge) for every pair of :func:`inner_pairs` and every inner edge of its
    centre (the pair's own two included): the pair's index (T,) and the third edge's position
    in ``edge`` (T,)."""
    pair, offset = _expand(group_size.index_select(0, pos_a))
    return pair, group_start.index_select(0, pos_a).index_select(0, pair) + offset


def _expand(sizes: Tensor) -> Tuple[Tensor, Tensor]:
    """``i`` repeated ``sizes[i]`` times, and ``0 .. sizes[i] - 1`` alongside: (sum sizes,) each."""
    rows = torch.repeat_interleave(torch.arange(sizes.shape[0], device=sizes.device), sizes)
    first = torch.repeat_interleave(torch.cumsum(sizes, 0) - sizes, sizes)
    return rows, torch.arange(rows.shape[0], device=sizes.device) - first


def ensemble_indices(centre: Tensor, inner: Tensor, num_nodes: int
                     ) -> Tuple[Tensor, Tensor, Tensor, Tensor]:
    """Ordered pairs and (pair, neighbour) triples of the edges selected by ``inner``, as edge
    ids: pair_a, pair_b (P,); triple_pair (T,) the pair of each triple, triple_c (T,) its third
    edge (:func:`inner_pairs` and :func:`pair_triples`, before any pair is dropped)."""
    edge, group_start, group_size, pos_a, pos_b = inner_pairs(centre, inner, num_nodes)
    tp, tc = pair_triples(pos_a, group_start, group_size)
    return (edge.index_select(0, pos_a), edge.index_select(0, pos_b), tp,
            edge.index_select(0, tc))


class FrameEnsemble(nn.Module):
    """Per-atom invariant features from a weighted ensemble of pair frames (module docstring).

    Args:
        num_species: number of elements.
        num_basis: size of the radial basis it receives.
        channels: H, the width of the per-neighbour layer (2H) and of the frame MLP.
        out_dim: features per atom.
        cutoff: inner cutoff, Å (neighbours beyond it are not read).
        width: the inner switch's width, Å (``s`` falls from 1 at ``cutoff - width`` to 0).
        norm: divides the neighbour sums (a typical inner neighbour count).

    Shapes:
        species (N,), r (E,) Å, unit (E, 3), rbf (E, num_basis), centre, neighbour (E,) ->
        (N, out_dim).
    """

    def __init__(self, num_species: int, num_basis: int, channels: int, out_dim: int,
                 cutoff: float, width: float = 0.5, norm: float = 8.0):
        super().__init__()
        if not 0.0 < width < cutoff:
            raise ValueError(f"frame ensemble: need 0 < width < cutoff (got width {width} Å, "
                             f"cutoff {cutoff} Å)")
        self.cutoff = float(cutoff)
        self.width = float(width)
        self.norm = float(norm)
        self.channels = int(channels)
        self.sin2_lo = PAIR_SIN2_LO
        self.sin2_hi = PAIR_SIN2_HI
        self.cos_lo = PAIR_COS_LO
        self.cos_hi = PAIR_COS_HI
        self.delta = DELTA
        h = self.channels
        # per neighbour c of a frame: silu(A_c + W (x, y, z^2)), 2H numbers, the second half
        # times z (odd under the mirror); A_c = radial + species of c + species of i, per edge
        self.radial = nn.Linear(num_basis, 2 * h)
        self.centre_embed = nn.Embedding(num_species, 2 * h)
        self.neighbour_embed = nn.Embedding(num_species, 2 * h)
        self.local = nn.Linear(3, 2 * h, bias=False)
        # per frame: the odd sums are mixed, then squared (even); one MLP on [E_f, (W O_f)^2]
        self.odd_mix = nn.Linear(h, h, bias=False)
        self.frame_mlp = MLP(2 * h, [h], out_dim)

    def switch(self, r: Tensor) -> Tensor:
        """``s(r)``: 1 below ``cutoff - width``, 0 from ``cutoff`` on, C2; shape of ``r``."""
        return 1.0 - smoothstep_c2((r - (self.cutoff - self.width)) / self.width)

    def forward(self, species: Tensor, r: Tensor, unit: Tensor, rbf: Tensor, centre: Tensor,
                neighbour: Tensor) -> Tensor:
        n = species.shape[0]
        h = self.channels
        inner = r < self.cutoff
        edge, group_start, group_size, pos_a, pos_b = inner_pairs(centre, inner, n)
        ua = unit.index_select(0, edge.index_select(0, pos_a))
        ub = unit.index_select(0, edge.index_select(0, pos_b))
        cos = (ua * ub).sum(-1)
        sin2 = 1.0 - cos * cos
        # collinear pairs and pairs at 120° or more carry no frame: q = 0 or o = 0, with zero
        # slope, so dropping them (before the triples are made) changes neither the value nor
        # its derivatives
        kept = torch.nonzero((sin2 > self.sin2_lo) & (cos > self.cos_lo)).squeeze(1)
        pos_a = pos_a.index_select(0, kept)
        pos_b = pos_b.index_select(0, kept)
        ua = ua.index_select(0, kept)
        ub = ub.index_select(0, kept)
        cos = cos.index_select(0, kept)
        sin2 = sin2.index_select(0, kept)
        tp, tc = pair_triples(pos_a, group_start, group_size)  # tc: positions in ``edge``
        # everything per edge is computed for the inner edges only (in ``edge`` order)
        s = self.switch(r.index_select(0, edge))
        q = smoothstep_c2((sin2 - self.sin2_lo) / (self.sin2_hi - self.sin2_lo))
        o = smoothstep_c2((cos - self.cos_lo) / (self.cos_hi - self.cos_lo))
        w = s.index_select(0, pos_a) * s.index_select(0, pos_b) * q * o  # (P,)
        e1 = ua
        e2 = (ub - cos.unsqueeze(-1) * ua) / torch.sqrt(sin2).unsqueeze(-1)
        e3 = torch.linalg.cross(e1, e2)
        frames = torch.stack([e1, e2, e3], dim=1)  # (P, 3, 3), rows are axes
        # every inner neighbour of every frame, in that frame: (T, 3)
        inner_unit = unit.index_select(0, edge)
        xyz = (frames.index_select(0, tp) * inner_unit.index_select(0, tc).unsqueeze(1)).sum(-1)
        z = xyz[:, 2:3]
        per_edge = (self.radial(rbf.index_select(0, edge))
                    + self.neighbour_embed(species.index_select(0, neighbour.index_select(0, edge)))
                    + self.centre_embed(species.index_select(0, centre.index_select(0, edge))))
        act = torch.nn.functional.silu(torch.addmm(
            per_edge.index_select(0, tc), torch.cat([xyz[:, :2], z * z], dim=-1),
            self.local.weight.t()))  # (T, 2H)
        sc = (s.index_select(0, tc) / self.norm).unsqueeze(-1)  # (T, 1)
        scale = torch.stack([sc, z * sc], dim=1)  # (T, 2, 1): even half, odd half
        point = (act.view(-1, 2, h) * scale).view(-1, 2 * h)
        sums = torch.zeros(frames.shape[0], 2 * h, dtype=unit.dtype, device=unit.device
                           ).index_add(0, tp, point)
        odd = self.odd_mix(sums[:, h:])
        feats = self.frame_mlp(torch.cat([sums[:, :h], odd * odd], dim=-1))  # (P, out_dim)
        pair_centre = centre.index_select(0, edge.index_select(0, pos_a))  # (P,)
        num = torch.zeros(n, feats.shape[1], dtype=unit.dtype, device=unit.device).index_add(
            0, pair_centre, w.unsqueeze(-1) * feats)
        den = torch.zeros(n, dtype=unit.dtype, device=unit.device).index_add(0, pair_centre, w)
        return num / (self.delta + den).unsqueeze(-1)

    def extra_repr(self) -> str:
        return (f"channels={self.channels}, inner cutoff={self.cutoff} Å (switch "
                f"{self.width} Å), pair frames weighted by s(r_a) s(r_b) q(sin^2) o(cos)")
