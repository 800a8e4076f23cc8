"""Real spherical harmonics of a unit vector, as polynomials (exact, no Euler angles).

``Y_lm(r) = N_lm Q_l^|m|(z) C_m(x, y)`` with ``Q_l^m = d^m P_l / dz^m`` from the three-term
recursion and ``C_m + i S_m = (x + i y)^m``. Orthonormal on the sphere:
``sum_m Y_lm(a) Y_lm(b) = (2l+1)/(4 pi) P_l(a . b)``. Ordered l = 0..lmax, m = -l..l.

The recursions are expanded once, in float64, into polynomial coefficients: ``N_lm Q_l^|m|`` in
powers of z, ``C_m`` and ``S_m`` in monomials ``x^a y^b``. Evaluating every harmonic is then a
handful of tensor operations and two matrix products (:class:`SphericalHarmonics`) instead of
hundreds of small element-wise ones.
"""

from __future__ import annotations

import math
from functools import lru_cache
from typing import Dict, List, Tuple

import torch
from torch import Tensor, nn

Polynomial = Dict[Tuple[int, int], float]  # (power of x, power of y) or (power of z, 0) -> coef


def _add(p: Polynomial, q: Polynomial, scale: float = 1.0) -> Polynomial:
    out = dict(p)
    for k, v in q.items():
        out[k] = out.get(k, 0.0) + scale * v
    return out


def _times(p: Polynomial, axis: int, scale: float = 1.0) -> Polynomial:
    """``scale * t * p`` with t the first (axis 0) or second (axis 1) variable of p."""
    return {(a + (axis == 0), b + (axis == 1)): scale * v for (a, b), v in p.items()}


@lru_cache(maxsize=None)
def harmonic_factors(lmax: int) -> Tuple[List[List[float]], List[Tuple[int, int]],
                                         List[List[float]]]:
    """The two polynomial factors of every harmonic, ``Y_lm = f_lm(z) g_lm(x, y)`` (float64).

    Returns ``(z_coef, xy_monomials, xy_coef)``: ``f_lm(z) = sum_k z_coef[k][lm] z^k`` (k <= lmax;
    this factor holds the normalisation) and ``g_lm(x, y) = sum_p xy_coef[p][lm] x^a y^b`` with
    ``(a, b) = xy_monomials[p]``, a + b <= lmax (``g = C_|m|`` for m >= 0, ``S_|m|`` for m < 0).
    """
    C: List[Polynomial] = [{(0, 0): 1.0}]
    S: List[Polynomial] = [{}]
    for m in range(1, lmax + 1):
        C.append(_add(_times(C[m - 1], 0), _times(S[m - 1], 1), -1.0))
        S.append(_add(_times(S[m - 1], 0), _times(C[m - 1], 1)))
    # Q[l][m] = d^m P_l / dz^m, as polynomials in z (keys (k, 0))
    Q: List[List[Polynomial]] = [[{} for _ in range(lmax + 1)] for _ in range(lmax + 1)]
    for m in range(lmax + 1):
        dfact = 1.0
        for k in range(1, 2 * m, 2):
            dfact *= float(k)
        Q[m][m] = {(0, 0): dfact}
        if m + 1 <= lmax:
            Q[m + 1][m] = _times(Q[m][m], 0, 2.0 * m + 1.0)
        for l in range(m + 2, lmax + 1):
            Q[l][m] = _add(_times(Q[l - 1][m], 0, (2.0 * l - 1.0) / (l - m)), Q[l - 2][m],
                           -(l + m - 1.0) / (l - m))
    z_cols: List[Polynomial] = []
    xy_cols: List[Polynomial] = []
    for l in range(lmax + 1):
        for m in range(-l, l + 1):
            am = abs(m)
            norm = math.sqrt((2.0 * l + 1.0) / (4.0 * math.pi)
                             * math.factorial(l - am) / math.factorial(l + am))
            if m != 0:
                norm *= math.sqrt(2.0)
            z_cols.append({k: norm * v for k, v in Q[l][am].items()})
            xy_cols.append(C[am] if m >= 0 else S[am])
    z_coef = [[col.get((k, 0), 0.0) for col in z_cols] for k in range(lmax + 1)]
    xy_monomials = sorted({k for col in xy_cols for k, v in col.items() if v != 0.0})
    xy_coef = [[col.get(k, 0.0) for col in xy_cols] for k in xy_monomials]
    return z_coef, xy_monomials, xy_coef


class SphericalHarmonics(nn.Module):
    """Real orthonormal spherical harmonics up to ``lmax`` (module form, TorchScript-able).

    ``Y = (Z A_z) * (M_xy A_xy)``: ``Z`` holds the powers ``z^k`` and ``M_xy`` the monomials
    ``x^a y^b`` (a + b <= lmax, gathered from the powers of x and y), ``A_z`` and ``A_xy`` are the
    coefficient matrices of :func:`harmonic_factors` (non-persistent buffers: they follow the
    model's dtype and are not part of the state dict).

    Shapes: unit (E, 3) unit vectors -> (E, (lmax+1)^2).
    """

    def __init__(self, lmax: int):
        super().__init__()
        if lmax < 0:
            raise ValueError(f"lmax must be >= 0 (got {lmax})")
        self.lmax = int(lmax)
        z_coef, xy_monomials, xy_coef = harmonic_factors(self.lmax)
        # columns of the flattened (E, lmax+1, 3) power table holding x^a and y^b
        self.register_buffer("index_x", torch.tensor([3 * a for a, _ in xy_monomials],
                                                     dtype=torch.long), persistent=False)
        self.register_buffer("index_y", torch.tensor([3 * b + 1 for _, b in xy_monomials],
                                                     dtype=torch.long), persistent=False)
        self.register_buffer("z_coef", torch.tensor(z_coef, dtype=torch.float64),
                             persistent=False)
        self.register_buffer("xy_coef", torch.tensor(xy_coef, dtype=torch.float64),
                             persistent=False)

    def forward(self, unit: Tensor) -> Tensor:
        powers: List[Tensor] = [torch.ones_like(unit)]
        for _ in range(self.lmax):
            powers.append(powers[-1] * unit)
        table = torch.stack(powers, dim=1)  # (E, lmax+1, 3)
        z_part = torch.mm(table[:, :, 2], self.z_coef.to(unit.dtype))
        flat = table.reshape(unit.shape[0], 3 * (self.lmax + 1))
        xy = flat.index_select(1, self.index_x) * flat.index_select(1, self.index_y)
        return z_part * torch.mm(xy, self.xy_coef.to(unit.dtype))

    def extra_repr(self) -> str:
        return f"lmax={self.lmax}, {self.xy_coef.shape[0]} monomials in x, y"


def spherical_harmonics(unit: Tensor, lmax: int) -> Tensor:
    """Real orthonormal spherical harmonics (function form of :class:`SphericalHarmonics`).

    Shapes: unit (E, 3) unit vectors -> (E, (lmax+1)^2).
    """
    return SphericalHarmonics(lmax).to(unit.device)(unit)
