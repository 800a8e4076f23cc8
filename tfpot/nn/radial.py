"""Radial functions: the smooth cutoff envelope and a Bessel radial basis."""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn


class PolynomialEnvelope(nn.Module):
    """Smooth cutoff: ``u(x) = 1 - (p+1)(p+2)/2 x^p + p(p+2) x^(p+1) - p(p+1)/2 x^(p+2)``.

    ``x = r / cutoff``; ``u`` and its first and second derivatives vanish at ``x = 1``, and
    ``u = 0`` beyond, so every message multiplied by it enters and leaves the cutoff smoothly.

    Shapes: r (E,) Å -> (E,) dimensionless.
    """

    def __init__(self, cutoff: float, p: int = 6):
        super().__init__()
        if cutoff <= 0:
            raise ValueError(f"cutoff must be positive (got {cutoff})")
        if p < 2:
            raise ValueError(f"envelope exponent p must be >= 2 for a C2 cutoff (got {p})")
        self.cutoff = float(cutoff)
        self.p = int(p)

    def forward(self, r: Tensor) -> Tensor:
        p = float(self.p)
        x = r / self.cutoff
        inside = x < 1.0
        x = torch.where(inside, x, torch.zeros_like(x))
        u = (1.0 - (p + 1.0) * (p + 2.0) / 2.0 * x.pow(self.p)
             + p * (p + 2.0) * x.pow(self.p + 1) - p * (p + 1.0) / 2.0 * x.pow(self.p + 2))
        return torch.where(inside, u, torch.zeros_like(u))

    def extra_repr(self) -> str:
        return f"cutoff={self.cutoff} Å, p={self.p}"


class BesselBasis(nn.Module):
    """``b_n(r) = sqrt(2/rc) sin(n pi r / rc) / r``, n = 1..num_basis (Å^-3/2).

    Smooth for r > 0; atoms at r = 0 are refused before the model is called.

    Shapes: r (E,) Å -> (E, num_basis).
    """

    def __init__(self, cutoff: float, num_basis: int = 8):
        super().__init__()
        if num_basis < 1:
            raise ValueError(f"num_basis must be >= 1 (got {num_basis})")
        self.cutoff = float(cutoff)
        self.num_basis = int(num_basis)
        self.register_buffer(
            "freq", torch.arange(1, num_basis + 1, dtype=torch.float64) * math.pi / cutoff
        )

    def forward(self, r: Tensor) -> Tensor:
        r = r.unsqueeze(-1)
        return math.sqrt(2.0 / self.cutoff) * torch.sin(self.freq.to(r.dtype) * r) / r

    def extra_repr(self) -> str:
        return f"cutoff={self.cutoff} Å, num_basis={self.num_basis}"
