"""Real spherical harmonics of a unit vector, as polynomials (exact, no Euler angles).

``Y_lm(r) = N_lm Q_l^|m|(z) C_m(x, y)`` with ``Q_l^m = d^m P_l / dz^m`` from the three-term
recursion and ``C_m + i S_m = (x + i y)^m``. Orthonormal on the sphere:
``sum_m Y_lm(a) Y_lm(b) = (2l+1)/(4 pi) P_l(a . b)``. Ordered l = 0..lmax, m = -l..l.
"""

from __future__ import annotations

import math
from typing import List

import torch
from torch import Tensor


def spherical_harmonics(unit: Tensor, lmax: int) -> Tensor:
    """Real orthonormal spherical harmonics.

    Shapes: unit (E, 3) unit vectors -> (E, (lmax+1)^2).
    """
    x = unit[:, 0]
    y = unit[:, 1]
    z = unit[:, 2]
    # C_m, S_m: real and imaginary parts of (x + i y)^m
    C: List[Tensor] = [torch.ones_like(x)]
    S: List[Tensor] = [torch.zeros_like(x)]
    for m in range(1, lmax + 1):
        C.append(x * C[m - 1] - y * S[m - 1])
        S.append(x * S[m - 1] + y * C[m - 1])
    # Q[l][m] = d^m P_l / dz^m
    Q: List[List[Tensor]] = [[torch.zeros_like(z) for _ in range(lmax + 1)] for _ in range(lmax + 1)]
    for m in range(0, lmax + 1):
        dfact = 1.0
        for k in range(1, 2 * m, 2):
            dfact *= float(k)
        Q[m][m] = torch.full_like(z, dfact)
        if m + 1 <= lmax:
            Q[m + 1][m] = (2.0 * m + 1.0) * z * Q[m][m]
        for l in range(m + 2, lmax + 1):
            Q[l][m] = ((2.0 * l - 1.0) * z * Q[l - 1][m] - (l + m - 1.0) * Q[l - 2][m]) / (l - m)
    out: List[Tensor] = []
    for l in range(0, lmax + 1):
        for m in range(-l, l + 1):
            am = abs(m)
            norm = math.sqrt((2.0 * l + 1.0) / (4.0 * math.pi)
                             * math.factorial(l - am) / math.factorial(l + am))
            if m == 0:
                out.append(norm * Q[l][0])
            elif m > 0:
                out.append(math.sqrt(2.0) * norm * Q[l][am] * C[am])
            else:
                out.append(math.sqrt(2.0) * norm * Q[l][am] * S[am])
    return torch.stack(out, dim=-1)
