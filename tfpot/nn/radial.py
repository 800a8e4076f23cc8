"""Radial functions: the smooth cutoff envelope, a Bessel radial basis, and radial filters."""

from __future__ import annotations

import math
from typing import List, Sequence, Tuple

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
        # u = 1 + x^p (-(p+1)(p+2)/2 + x (p(p+2) - x p(p+1)/2)), in Horner form
        inner = (p * (p + 2.0)) - (p * (p + 1.0) / 2.0) * x
        u = 1.0 + x.pow(self.p) * (x * inner - (p + 1.0) * (p + 2.0) / 2.0)
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


#: The ``radial_filter`` hyperparameter: ``"tanh"`` (:class:`RadialFilter`) or ``"none"``.
RADIAL_FILTERS: Tuple[str, ...] = ("tanh", "none")


class RadialFilter(nn.Module):
    """Per-edge, per-channel factors from the radial basis: ``f(r) = tanh(W b(r) + c)``.

    A message network multiplies its hidden activations by them (radial weights, as in NequIP
    and MACE), so each channel's strength depends on the distance directly, not only through
    the network's first layer. The factors depend on ``r`` alone, so they are even under the local
    mirror and keep a Z2-equivariant network equivariant. One linear map serves every group of
    channels it scales: its output rows are the groups' factors one after the other. It runs
    once, on all groups together, and ``torch.split`` hands out the groups (its backward is one
    concatenation; a slice per group would cost a zero-filled (E, sum(widths)) gradient each).

    The tanh bounds every factor by 1, so a filtered network never amplifies more than the same
    network without the filter. With unbounded factors ``W b + c`` (aspirin, lr 2e-2) one run's
    scalars reached ~1e12 and every readout unit saturated: a dead model, zero forces. The bound
    does not make lr 2e-2 safe: a tanh-filtered 50-minute run died the same way after a loss
    spike (``benchmarks/README.md``).

    Args:
        num_basis: radial basis size; widths: channels of each group it scales (e.g. the even and
        the odd channels of each hidden layer).

    Shapes: rbf (E, num_basis) -> a list of (E, widths[k]), dimensionless.
    """

    def __init__(self, num_basis: int, widths: Sequence[int]):
        super().__init__()
        if num_basis < 1:
            raise ValueError(f"a radial filter needs the radial basis (got num_basis={num_basis})")
        self.widths = [int(w) for w in widths]
        self.linear = nn.Linear(int(num_basis), sum(self.widths))

    def forward(self, rbf: Tensor) -> List[Tensor]:
        # tanh(W b + c) as 2 sigmoid(2 (W b + c)) - 1 (the doubling inside the product): the
        # same function to rounding, and torch's CPU tanh is several times slower than its
        # sigmoid (3.8 against 0.5 ms on (10942, 96) float32, one thread)
        doubled = torch.addmm(self.linear.bias, rbf, self.linear.weight.t(), beta=2.0, alpha=2.0)
        factors = 2.0 * torch.sigmoid(doubled) - 1.0
        return list(torch.split(factors, self.widths, dim=-1))

    def extra_repr(self) -> str:
        return f"num_basis={self.linear.in_features}, widths={self.widths}"
