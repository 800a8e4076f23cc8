"""Multi-layer perceptron with smooth (SiLU) activations."""

from __future__ import annotations

from typing import Sequence

from torch import Tensor, nn


class MLP(nn.Module):
    """``Linear -> SiLU -> ... -> Linear``; no activation after the last layer.

    SiLU, never ReLU: forces are derivatives of the energy and must be continuous.

    Shapes: (..., in_dim) -> (..., out_dim).
    """

    def __init__(self, in_dim: int, hidden: Sequence[int], out_dim: int, bias_last: bool = True):
        super().__init__()
        dims = [int(in_dim)] + [int(h) for h in hidden] + [int(out_dim)]
        layers = []
        for k in range(len(dims) - 1):
            last = k == len(dims) - 2
            layers.append(nn.Linear(dims[k], dims[k + 1], bias=bias_last or not last))
            if not last:
                layers.append(nn.SiLU())
        self.net = nn.Sequential(*layers)
        self.in_dim = dims[0]
        self.out_dim = dims[-1]

    def forward(self, x: Tensor) -> Tensor:
        return self.net(x)

    def __repr__(self) -> str:
        n = sum(p.numel() for p in self.parameters())
        hidden = [m.out_features for m in self.net if isinstance(m, nn.Linear)][:-1]
        return f"MLP({self.in_dim} -> {hidden} -> {self.out_dim}, SiLU, {n} weights)"
