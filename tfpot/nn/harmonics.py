"""Real spherical harmonics of a unit vector, as polynomials (exact, no Euler angles).

``Y_lm(r) = N_lm Q_l^|m|(z) C_m(x, y)`` with ``Q_l^m = d^m P_l / dz^m`` from the three-term
recursion and ``C_m + i S_m = (x + i y)^m``. Orthonormal on the sphere:
``sum_m Y_lm(a) Y_lm(b) = (2l+1)/(4 pi) P_l(a . b)``. Ordered l = 0..lmax, m = -l..l.

The recursion is run once per ``lmax`` on exact polynomials (Python floats keyed by monomial
exponents), giving a (monomials x (lmax+1)^2) coefficient matrix. Evaluating is then a handful of
tensor ops, powers of x, y, z, their products and one matmul, instead of ~150 elementwise ops
whose autograd graph (differentiated twice in force training) is dominated by per-op overhead.
"""

from __future__ import annotations

import math
from typing import Dict, List, Tuple

import torch
from torch import Tensor

Poly = Dict[Tuple[int, int, int], float]  # {(a, b, c): coefficient of x^a y^b z^c}


def _add(p: Poly, q: Poly, s: float = 1.0) -> Poly:
    out = dict(p)
    for k, v in q.items():
        out[k] = out.get(k, 0.0) + s * v
    return out


def _scale(p: Poly, s: float) -> Poly:
    return {k: s * v for k, v in p.items()}


def _times(p: Poly, axis: int) -> Poly:
    """p multiplied by x (axis 0), y (1) or z (2)."""
    out: Poly = {}
    for (a, b, c), v in p.items():
        k = (a + (axis == 0), b + (axis == 1), c + (axis == 2))
        out[k] = out.get(k, 0.0) + v
    return out


def _harmonic_polynomials(lmax: int) -> List[Poly]:
    """Y_lm as polynomials in (x, y, z), ordered l = 0..lmax, m = -l..l."""
    C: List[Poly] = [{(0, 0, 0): 1.0}]
    S: List[Poly] = [{}]
    for m in range(1, lmax + 1):
        C.append(_add(_times(C[m - 1], 0), _times(S[m - 1], 1), -1.0))
        S.append(_add(_times(S[m - 1], 0), _times(C[m - 1], 1)))
    Q: List[List[Poly]] = [[{} for _ in range(lmax + 1)] for _ in range(lmax + 1)]
    for m in range(lmax + 1):
        dfact = 1.0
        for k in range(1, 2 * m, 2):
            dfact *= float(k)
        Q[m][m] = {(0, 0, 0): dfact}
        if m + 1 <= lmax:
            Q[m + 1][m] = _scale(_times(Q[m][m], 2), 2.0 * m + 1.0)
        for l in range(m + 2, lmax + 1):
            Q[l][m] = _scale(_add(_scale(_times(Q[l - 1][m], 2), 2.0 * l - 1.0), Q[l - 2][m],
                                  -(l + m - 1.0)), 1.0 / (l - m))

    def product(p: Poly, q: Poly) -> Poly:
        out: Poly = {}
        for (a1, b1, c1), v1 in p.items():
            for (a2, b2, c2), v2 in q.items():
                k = (a1 + a2, b1 + b2, c1 + c2)
                out[k] = out.get(k, 0.0) + v1 * v2
        return out

    out: List[Poly] = []
    for l in range(lmax + 1):
        for m in range(-l, l + 1):
            am = abs(m)
            norm = math.sqrt((2.0 * l + 1.0) / (4.0 * math.pi)
                             * math.factorial(l - am) / math.factorial(l + am))
            if m == 0:
                out.append(_scale(Q[l][0], norm))
            else:
                out.append(_scale(product(Q[l][am], C[am] if m > 0 else S[am]), math.sqrt(2.0) * norm))
    return out


def monomial_table(lmax: int) -> Tuple[Tensor, Tensor]:
    """Exponents (P, 3) (long) of the monomials x^a y^b z^c the harmonics up to ``lmax`` use, and
    their coefficients (P, (lmax+1)^2), float64: ``Y = monomials @ coefficients``."""
    polys = _harmonic_polynomials(int(lmax))
    keys = sorted({k for p in polys for k, v in p.items() if v != 0.0})
    coef = torch.zeros(len(keys), len(polys), dtype=torch.float64)
    for j, p in enumerate(polys):
        for k, v in p.items():
            if v != 0.0:
                coef[keys.index(k), j] = v
    return torch.tensor(keys, dtype=torch.long).reshape(-1, 3), coef


def harmonics_from_table(unit: Tensor, exponents: Tensor, coefficients: Tensor, lmax: int) -> Tensor:
    """:func:`spherical_harmonics` from a precomputed :func:`monomial_table` (TorchScript-able).

    Shapes: unit (E, 3), exponents (P, 3), coefficients (P, (lmax+1)^2) -> (E, (lmax+1)^2).
    """
    # powers k = 0..lmax of each component, by products (pow's derivative at 0 ** 0 is NaN)
    powers: List[Tensor] = [torch.ones_like(unit)]
    for _ in range(lmax):
        powers.append(powers[-1] * unit)
    p = torch.stack(powers, dim=0)  # (lmax+1, E, 3)
    mono = (p[:, :, 0].index_select(0, exponents[:, 0]) * p[:, :, 1].index_select(0, exponents[:, 1])
            * p[:, :, 2].index_select(0, exponents[:, 2]))  # (P, E)
    return torch.matmul(mono.transpose(0, 1), coefficients)


_TABLES: Dict[int, Tuple[Tensor, Tensor]] = {}


def spherical_harmonics(unit: Tensor, lmax: int) -> Tensor:
    """Real orthonormal spherical harmonics.

    Shapes: unit (E, 3) unit vectors -> (E, (lmax+1)^2).
    """
    if lmax not in _TABLES:
        _TABLES[lmax] = monomial_table(lmax)
    exps, coef = _TABLES[lmax]
    return harmonics_from_table(unit, exps.to(unit.device), coef.to(unit.device, unit.dtype), lmax)
