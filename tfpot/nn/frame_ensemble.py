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
(water's O: weight 1/2; CH4's C: 0.26). ``max_angle`` (hyperparameter ``ensemble_max_angle``,
default 120°) moves this window, ``o`` rising over the 30° below it: with an inner cutoff that
holds only the bonds of a molecule, 120° leaves the sp2 atoms (bond angles ~120°) without a
frame; 150° keeps them. In each frame f a network reads every inner neighbour
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
whose 12 neighbours tie). :class:`BisectorFrameEnsemble` (``ensemble_pairs: unordered``) builds
one frame per *unordered* pair from the bisector of the two bonds, half of both counts. The
local coordinates come from each centre's Gram matrix of inner bonds (K^2 dot products) and one
triple product per evaluation, not from a copy of the frame per evaluation (tfpot 0.14: the
ensemble's share of a 256-atom call 18-32 % lower).
"""

from __future__ import annotations

import math
from typing import Tuple

import torch
from torch import Tensor, nn

from tfpot.frames import smoothstep_c2
from tfpot.nn.mlp import MLP

#: the collinearity switch q: 0 at or below this |r̂_a x r̂_b|^2 ...
PAIR_SIN2_LO = 0.05
#: ... 1 at or above this
PAIR_SIN2_HI = 0.2
#: the angle switch o: 0 from this angle between r̂_a and r̂_b on (degrees; ``max_angle``) ...
PAIR_MAX_ANGLE = 120.0
#: ... 1 from this many degrees below it
PAIR_ANGLE_RAMP = 30.0
#: the weighted mean's regulariser (a frame weight is at most 1; a cubic site has ~120 frames)
DELTA = 0.1


def inner_pairs(centre: Tensor, inner: Tensor, num_nodes: int, unordered: bool = False
                ) -> Tuple[Tensor, Tensor, Tensor, Tensor, Tensor]:
    """Every ordered (or, with ``unordered``, every unordered) pair of distinct inner edges with
    one centre.

    Args:
        centre: (E,) centre atom of every edge.
        inner: (E,) bool, the edges in the inner shell.
        num_nodes: atoms N.
        unordered: one pair (a, b) with a before b in ``edge`` instead of both orders.

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
    keep = pos_a < pos_b if unordered else pos_a != pos_b
    return edge, group_start, group_size, pos_a[keep], pos_b[keep]


def pair_triples(pos_a: Tensor, group_start: Tensor, group_size: Tensor
                 ) -> Tuple[Tensor, Tensor, Tensor]:
    """(pair, third edge) for every pair of :func:`inner_pairs` and every inner edge of its
    centre (the pair's own two included): the pair's index (T,), the third edge's position in
    ``edge`` (T,) and its rank among its centre's inner edges (T,)."""
    pair, offset = _expand(group_size.index_select(0, pos_a))
    return pair, group_start.index_select(0, pos_a).index_select(0, pair) + offset, offset


def _expand(sizes: Tensor) -> Tuple[Tensor, Tensor]:
    """``i`` repeated ``sizes[i]`` times, and ``0 .. sizes[i] - 1`` alongside: (sum sizes,) each."""
    rows = torch.repeat_interleave(torch.arange(sizes.shape[0], device=sizes.device), sizes)
    first = torch.repeat_interleave(torch.cumsum(sizes, 0) - sizes, sizes)
    return rows, torch.arange(rows.shape[0], device=sizes.device) - first


def ensemble_indices(centre: Tensor, inner: Tensor, num_nodes: int, unordered: bool = False
                     ) -> Tuple[Tensor, Tensor, Tensor, Tensor]:
    """Ordered (or unordered) pairs and (pair, neighbour) triples of the edges selected by
    ``inner``, as edge ids: pair_a, pair_b (P,); triple_pair (T,) the pair of each triple,
    triple_c (T,) its third edge (:func:`inner_pairs` and :func:`pair_triples`, before any pair
    is dropped)."""
    edge, group_start, group_size, pos_a, pos_b = inner_pairs(centre, inner, num_nodes,
                                                              unordered)
    tp, tc, _ = pair_triples(pos_a, group_start, group_size)
    return (edge.index_select(0, pos_a), edge.index_select(0, pos_b), tp,
            edge.index_select(0, tc))


class _PairFrameEnsemble(nn.Module):
    """What both ensembles share: the inner pairs and their weights, the per-neighbour layer's
    per-edge part, local coordinates and the weighted mean (see :class:`FrameEnsemble`).

    ``act_width``: numbers per (frame, neighbour) of the per-neighbour layer."""

    def __init__(self, num_species: int, num_basis: int, channels: int, cutoff: float,
                 width: float, norm: float, act_width: int, unordered: bool, max_angle: float):
        super().__init__()
        if not 0.0 < width < cutoff:
            raise ValueError(f"frame ensemble: need 0 < width < cutoff (got width {width} Å, "
                             f"cutoff {cutoff} Å)")
        self.cutoff = float(cutoff)
        self.width = float(width)
        self.norm = float(norm)
        self.channels = int(channels)
        self.unordered = bool(unordered)
        self.sin2_lo = PAIR_SIN2_LO
        self.sin2_hi = PAIR_SIN2_HI
        # o's ends as cosines, rounded to 12 digits so that 120° / 90° give -0.5 / 0 exactly
        self.max_angle = float(max_angle)
        self.cos_lo = round(math.cos(math.radians(self.max_angle)), 12)
        self.cos_hi = round(math.cos(math.radians(self.max_angle - PAIR_ANGLE_RAMP)), 12)
        self.delta = DELTA
        # per neighbour c of a frame: silu(A_c + W (local coordinates)); A_c = radial + species
        # of c + species of i, per edge
        self.radial = nn.Linear(num_basis, act_width)
        self.centre_embed = nn.Embedding(num_species, act_width)
        self.neighbour_embed = nn.Embedding(num_species, act_width)
        self.local = nn.Linear(3, act_width, bias=False)

    def coordinates(self, cos: Tensor, sin2: Tensor, tp: Tensor, cos_ac: Tensor,
                    cos_bc: Tensor, det: Tensor) -> Tuple[Tensor, Tensor, Tensor]:
        """Local coordinates ``(x, y, z)`` (T,) each of a triple's third bond c in its pair's
        frame, from the pair's ``cos`` and ``sin^2`` (P,), the triple's pair ``tp`` (T,),
        ``r̂_a . r̂_c``, ``r̂_b . r̂_c`` and ``(r̂_a x r̂_b) . r̂_c`` (T,)."""
        raise NotImplementedError

    def pairs(self, species: Tensor, r: Tensor, unit: Tensor, rbf: Tensor, centre: Tensor,
              neighbour: Tensor) -> Tuple[Tensor, Tensor, Tensor, Tensor, Tensor, Tensor,
                                          Tensor]:
        """The pairs that carry a frame and their triples (pair, third inner neighbour c):
        weights ``w`` (P,), each pair's centre (P,); per triple the pair ``tp`` (T,), c's switch
        ``s`` (T,), its local coordinates ``y`` and ``z`` in the pair's frame (T,) and the
        per-neighbour layer's activation (T, act_width).

        The local coordinates come from the dot products of the centre's inner bonds (a Gram
        matrix per centre, sum K^2 numbers) and one triple product per triple, never from a
        (T, 3, 3) copy of the frames (:meth:`coordinates`)."""
        n = species.shape[0]
        inner = r < self.cutoff
        edge, group_start, group_size, pos_a, pos_b = inner_pairs(centre, inner, n,
                                                                  self.unordered)
        u = unit.index_select(0, edge)  # (M, 3), the inner bonds in ``edge`` order
        # the Gram matrix of every centre's inner bonds, row by row: entry row_start[i] + k is
        # r̂_i . r̂_j for the centre's k-th inner bond j
        g_row, g_rank = _expand(group_size)
        gram = (u.index_select(0, g_row)
                * u.index_select(0, group_start.index_select(0, g_row) + g_rank)).sum(-1)
        row_start = torch.cumsum(group_size, 0) - group_size
        row_a = row_start.index_select(0, pos_a)
        cos = gram.index_select(0, row_a + pos_b - group_start.index_select(0, pos_a))
        sin2 = 1.0 - cos * cos
        # collinear pairs and pairs at max_angle or more carry no frame: q = 0 or o = 0, with zero
        # slope, so dropping them (before the triples are made) changes neither the value nor
        # its derivatives
        kept = torch.nonzero((sin2 > self.sin2_lo) & (cos > self.cos_lo)).squeeze(1)
        pos_a = pos_a.index_select(0, kept)
        pos_b = pos_b.index_select(0, kept)
        row_a = row_a.index_select(0, kept)
        cos = cos.index_select(0, kept)
        sin2 = sin2.index_select(0, kept)
        tp, tc, rank = pair_triples(pos_a, group_start, group_size)  # tc: positions in ``edge``
        # everything per edge is computed for the inner edges only (in ``edge`` order)
        # the three switches in one evaluation: s per inner edge (1 - S((r - cutoff + width) /
        # width) = S((cutoff - r) / width)), q and o per pair
        m, p = edge.shape[0], cos.shape[0]
        s, q, o = torch.split(smoothstep_c2(torch.cat([
            (self.cutoff - r.index_select(0, edge)) * (1.0 / self.width),
            (sin2 - self.sin2_lo) * (1.0 / (self.sin2_hi - self.sin2_lo)),
            (cos - self.cos_lo) * (1.0 / (self.cos_hi - self.cos_lo))])), [m, p, p])
        w = s.index_select(0, pos_a) * s.index_select(0, pos_b) * q * o  # (P,)
        per_edge = (self.radial(rbf.index_select(0, edge))
                    + self.neighbour_embed(species.index_select(0, neighbour.index_select(0, edge)))
                    + self.centre_embed(species.index_select(0, centre.index_select(0, edge))))
        pair_centre = centre.index_select(0, edge.index_select(0, pos_a))
        # local coordinates of every triple's third bond c
        cos_ac = gram.index_select(0, row_a.index_select(0, tp) + rank)
        cos_bc = gram.index_select(0, row_start.index_select(0, pos_b).index_select(0, tp) + rank)
        normal = torch.linalg.cross(u.index_select(0, pos_a), u.index_select(0, pos_b))  # (P, 3)
        det = (normal.index_select(0, tp) * u.index_select(0, tc)).sum(-1)
        x, y, z = self.coordinates(cos, sin2, tp, cos_ac, cos_bc, det)
        local = torch.stack([x, y * y if self.unordered else y, z * z], dim=-1)  # (T, 3)
        act = torch.nn.functional.silu(torch.addmm(per_edge.index_select(0, tc), local,
                                                   self.local.weight.t()))
        return w, pair_centre, tp, s.index_select(0, tc), y, z, act

    def mean(self, n: int, pair_centre: Tensor, w: Tensor, feats: Tensor) -> Tensor:
        """``sum_f w_f h_f / (delta + sum_f w_f)`` per atom: (N, out_dim)."""
        num = torch.zeros(n, feats.shape[1], dtype=feats.dtype, device=feats.device).index_add(
            0, pair_centre, w.unsqueeze(-1) * feats)
        den = torch.zeros(n, dtype=feats.dtype, device=feats.device).index_add(0, pair_centre, w)
        return num / (self.delta + den).unsqueeze(-1)


class FrameEnsemble(_PairFrameEnsemble):
    """Per-atom invariant features from a weighted ensemble of ordered pair frames (module
    docstring).

    Args:
        num_species: number of elements.
        num_basis: size of the radial basis it receives.
        channels: H, the width of the per-neighbour layer (2H) and of the frame MLP.
        out_dim: features per atom.
        cutoff: inner cutoff, Å (neighbours beyond it are not read).
        width: the inner switch's width, Å (``s`` falls from 1 at ``cutoff - width`` to 0).
        norm: divides the neighbour sums (a typical inner neighbour count).
        max_angle: pairs at this angle or wider carry no frame (degrees; ``o`` rises to 1 over
            the 30 degrees below it).

    Shapes:
        species (N,), r (E,) Å, unit (E, 3), rbf (E, num_basis), centre, neighbour (E,) ->
        (N, out_dim).
    """

    def __init__(self, num_species: int, num_basis: int, channels: int, out_dim: int,
                 cutoff: float, width: float = 0.5, norm: float = 8.0,
                 max_angle: float = PAIR_MAX_ANGLE):
        super().__init__(num_species, num_basis, channels, cutoff, width, norm,
                         act_width=2 * int(channels), unordered=False, max_angle=max_angle)
        h = self.channels
        # per frame: the odd sums are mixed, then squared (even); one MLP on [E_f, (W O_f)^2]
        self.odd_mix = nn.Linear(h, h, bias=False)
        self.frame_mlp = MLP(2 * h, [h], out_dim)

    def coordinates(self, cos: Tensor, sin2: Tensor, tp: Tensor, cos_ac: Tensor,
                    cos_bc: Tensor, det: Tensor) -> Tuple[Tensor, Tensor, Tensor]:
        """``e1 = r̂_a``, ``e2 = (r̂_b - cos r̂_a) / sin``, ``e3 = r̂_a x r̂_b / sin``."""
        cos_t, inv_sin = torch.stack([cos, torch.rsqrt(sin2)], dim=-1).index_select(
            0, tp).unbind(1)
        return cos_ac, (cos_bc - cos_t * cos_ac) * inv_sin, det * inv_sin

    def forward(self, species: Tensor, r: Tensor, unit: Tensor, rbf: Tensor, centre: Tensor,
                neighbour: Tensor) -> Tensor:
        h = self.channels
        w, pair_centre, tp, s_c, _, z, act = self.pairs(species, r, unit, rbf, centre,
                                                        neighbour)  # act: (T, 2H)
        scale = torch.stack([s_c, z * s_c], dim=-1).unsqueeze(-1)  # (T, 2, 1): even, odd half
        point = (act.view(-1, 2, h) * scale).view(-1, 2 * h)
        sums = torch.zeros(w.shape[0], 2 * h, dtype=unit.dtype, device=unit.device
                           ).index_add(0, tp, point) * (1.0 / self.norm)
        even_sums, odd_sums = torch.split(sums, [h, h], dim=1)
        odd = self.odd_mix(odd_sums)
        feats = self.frame_mlp(torch.cat([even_sums, odd * odd], dim=-1))  # (P, out_dim)
        return self.mean(species.shape[0], pair_centre, w, feats)

    def extra_repr(self) -> str:
        return (f"channels={self.channels}, inner cutoff={self.cutoff} Å (switch "
                f"{self.width} Å), ordered pair frames weighted by s(r_a) s(r_b) q(sin^2) o(cos)")


class BisectorFrameEnsemble(_PairFrameEnsemble):
    """The ensemble over *unordered* pairs, half the frames of :class:`FrameEnsemble`.

    The frame of {a, b} is built from the bisector and the difference of the two unit vectors,

        e1 = (r̂_a + r̂_b) / |r̂_a + r̂_b|,   e2 = (r̂_a - r̂_b) / |r̂_a - r̂_b|,   e3 = e1 x e2,

    (orthonormal because |r̂_a| = |r̂_b|), weighted as in :class:`FrameEnsemble`. Swapping a
    and b turns this frame by 180° about e1, ``(x, y, z) -> (x, -y, -z)``, and a mirror maps
    ``z -> -z``, so the local coordinates are defined up to independent sign flips of y and z
    (the Klein four-group). The per-neighbour layer reads ``(x, y^2, z^2)`` and has four blocks,
    even (H numbers) and odd in y, in z, in y z (H/2 each, multiplied by y, z and y z); per frame
    the three odd sums are mixed within their block, and the MLP reads the even sums, the squares
    of the mixed odd ones and their product ``Y Z (YZ)`` (invariant: each flip changes the sign
    of two of the three). Per atom: at most K (K - 1) / 2 frames and K^2 (K - 1) / 2 evaluations
    (fcc first shell: 36 frames, 432 evaluations).

    Args and shapes: as :class:`FrameEnsemble`; the per-neighbour layer is H + 3 (H // 2) wide.
    """

    def __init__(self, num_species: int, num_basis: int, channels: int, out_dim: int,
                 cutoff: float, width: float = 0.5, norm: float = 8.0,
                 max_angle: float = PAIR_MAX_ANGLE):
        h = int(channels)
        ho = max(1, h // 2)
        super().__init__(num_species, num_basis, channels, cutoff, width, norm,
                         act_width=h + 3 * ho, unordered=True, max_angle=max_angle)
        self.odd_channels = ho
        # which of the neighbour weights (1, y, z, y z) each per-neighbour output takes
        self.register_buffer("block_of", torch.tensor([0] * h + [1] * ho + [2] * ho + [3] * ho),
                             persistent=False)
        # per frame: each odd block's sums mixed within the block (3, Ho, Ho)
        self.odd_mix = nn.Parameter(torch.randn(3, ho, ho) / ho ** 0.5)
        self.frame_mlp = MLP(h + 4 * ho, [h], out_dim)

    def coordinates(self, cos: Tensor, sin2: Tensor, tp: Tensor, cos_ac: Tensor,
                    cos_bc: Tensor, det: Tensor) -> Tuple[Tensor, Tensor, Tensor]:
        """``e1 = (r̂_a + r̂_b) / |.|``, ``e2 = (r̂_a - r̂_b) / |.|``, ``e3 = e1 x e2 =
        -2 r̂_a x r̂_b / (|r̂_a + r̂_b| |r̂_a - r̂_b|)``."""
        inv_plus = torch.rsqrt(2.0 + 2.0 * cos)
        inv_minus = torch.rsqrt(2.0 - 2.0 * cos)
        c_plus, c_minus, c_normal = torch.stack(
            [inv_plus, inv_minus, -2.0 * inv_plus * inv_minus], dim=-1).index_select(
            0, tp).unbind(1)
        return (cos_ac + cos_bc) * c_plus, (cos_ac - cos_bc) * c_minus, det * c_normal

    def forward(self, species: Tensor, r: Tensor, unit: Tensor, rbf: Tensor, centre: Tensor,
                neighbour: Tensor) -> Tensor:
        h = self.channels
        ho = self.odd_channels
        w, pair_centre, tp, s_c, y, z, act = self.pairs(species, r, unit, rbf, centre,
                                                        neighbour)  # act: (T, H + 3 Ho)
        # per frame: the neighbour sums weighted by s_c (1, y, z, y z) / norm, one sum: the
        # even block takes the first weight, each odd block its own
        ysc = y * s_c
        scale = torch.stack([s_c, ysc, z * s_c, ysc * z], dim=-1).index_select(1, self.block_of)
        sums = torch.zeros(w.shape[0], h + 3 * ho, dtype=unit.dtype, device=unit.device
                           ).index_add(0, tp, act * scale) * (1.0 / self.norm)
        even_sums, odd_sums = torch.split(sums, [h, 3 * ho], dim=1)
        # each block mixed within itself: one product with the block-diagonal (3 Ho, 3 Ho)
        # matrix (its gradient is contiguous, which the index_add's backward gather needs)
        odd = torch.mm(odd_sums, torch.block_diag(self.odd_mix[0], self.odd_mix[1],
                                                  self.odd_mix[2]).t()).view(-1, 3, ho)
        prod = odd[:, 0] * odd[:, 1] * odd[:, 2]
        feats = self.frame_mlp(torch.cat([even_sums, (odd * odd).reshape(-1, 3 * ho), prod],
                                         dim=-1))  # (P, out_dim)
        return self.mean(species.shape[0], pair_centre, w, feats)

    def extra_repr(self) -> str:
        return (f"channels={self.channels}, inner cutoff={self.cutoff} Å (switch "
                f"{self.width} Å), unordered bisector pair frames weighted by s(r_a) s(r_b) "
                f"q(sin^2) o(cos)")
