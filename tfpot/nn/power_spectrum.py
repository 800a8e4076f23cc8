"""The frame-free invariant path: an angular power spectrum of each atom's neighbourhood.

``A_klm(i) = sum_j u(r_ij) R_k(r_ij) c_k(z_j) Y_lm(r_ij / |r_ij|)`` and
``p_lkk'(i) = sum_m A_klm(i) A_k'lm(i)``: invariant under rotations and reflections, smooth, and
defined everywhere, including the symmetric sites where no local frame exists (a cubic site's
signal is in l = 4 and 6). It feeds the scalar channels, so the energy stays expressive where
frame gates close.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from tfpot.nn.harmonics import SphericalHarmonics
from tfpot.nn.neighbour_sums import neighbour_outer_sums


class AngularPowerSpectrum(nn.Module):
    """Per-atom power spectrum features.

    Args:
        num_species: number of elements in the model.
        num_basis: size of the radial basis it receives.
        channels: radial channels K.
        lmax: highest angular order (4 resolves cubic sites; 6 adds more).
        norm: divides A (a typical neighbour count), so p stays O(1).

    Shapes:
        rbf (E, num_basis), env (E,), unit (E, 3), species_j (E,), centre (E,) ->
        (N, (lmax+1) * K * K).
    """

    def __init__(self, num_species: int, num_basis: int, channels: int = 8, lmax: int = 4,
                 norm: float = 10.0):
        super().__init__()
        if lmax < 0:
            raise ValueError(f"lmax must be >= 0 (got {lmax})")
        self.lmax = int(lmax)
        self.channels = int(channels)
        self.norm = float(norm)
        self.radial = nn.Linear(num_basis, channels, bias=False)
        self.species_weight = nn.Embedding(num_species, channels)
        nn.init.constant_(self.species_weight.weight, 1.0)
        self.out_dim = (lmax + 1) * channels * channels
        self.harmonics = SphericalHarmonics(self.lmax)
        # rows of (A, one zero row) that lay out A_l (2l+1 rows) in blocks of 2 lmax + 1 rows,
        # zero-padded, so that every l's product is one batched product
        width = 2 * self.lmax + 1
        zero_row = (self.lmax + 1) ** 2
        rows = [l * l + m if m < 2 * l + 1 else zero_row
                for l in range(self.lmax + 1) for m in range(width)]
        self.register_buffer("block_rows", torch.tensor(rows, dtype=torch.long), persistent=False)

    def forward(self, rbf: Tensor, env: Tensor, unit: Tensor, species_j: Tensor, centre: Tensor,
                num_nodes: int) -> Tensor:
        R = self.radial(rbf) * self.species_weight(species_j) * (env / self.norm).unsqueeze(-1)
        Y = self.harmonics(unit)  # (E, M)
        A = neighbour_outer_sums(Y, R, centre, num_nodes)  # (N, M, K)
        # p_lkk' = sum_m A_lmk A_lmk': blocks (N (lmax+1), 2 lmax + 1, K), one batched product
        blocks = torch.nn.functional.pad(A, (0, 0, 0, 1)).index_select(1, self.block_rows)
        blocks = blocks.view(num_nodes * (self.lmax + 1), 2 * self.lmax + 1, self.channels)
        return torch.bmm(blocks.transpose(1, 2), blocks).reshape(num_nodes, self.out_dim)

    def extra_repr(self) -> str:
        return f"lmax={self.lmax}, channels={self.channels} -> {self.out_dim} invariants"
