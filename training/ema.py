"""Exponential moving average (EMA) of the weights, used for validation and the saved models.

    w_ema <- d_t * w_ema + (1 - d_t) * w,    d_t = min(decay, (1 + t) / (10 + t))

after every optimiser step t (the warm-up keeps early averages from remembering the random
initialisation). Buffers (E0, scale, shift) are not averaged: they are set before training.
"""

from __future__ import annotations

from contextlib import contextmanager
from typing import Dict, Iterator, List

import torch


class ExponentialMovingAverage:
    """Shadow copies of a model's parameters.

    Args:
        model: the model being trained.
        decay: the long-run decay d (0.99 averages over ~100 steps); ``None`` or 0 disables the
            average (``swapped`` then leaves the weights as they are).
    """

    def __init__(self, model: torch.nn.Module, decay: float | None = 0.99) -> None:
        self.decay = float(decay or 0.0)
        if not 0.0 <= self.decay < 1.0:
            raise ValueError(f"EMA decay must lie in [0, 1) (got {decay})")
        self.params: List[torch.nn.Parameter] = [p for p in model.parameters() if p.requires_grad]
        self.shadow: List[torch.Tensor] = [p.detach().clone() for p in self.params]
        self.num_updates = 0

    @property
    def enabled(self) -> bool:
        return self.decay > 0

    @torch.no_grad()
    def update(self) -> None:
        if not self.enabled:
            return
        d = min(self.decay, (1.0 + self.num_updates) / (10.0 + self.num_updates))
        torch._foreach_lerp_(self.shadow, [p.detach() for p in self.params], 1.0 - d)
        self.num_updates += 1

    @contextmanager
    def swapped(self) -> Iterator[None]:
        """Run the model with the averaged weights inside the block; restore them exactly after."""
        if not self.enabled:
            yield
            return
        backup = [p.detach().clone() for p in self.params]
        self.copy_to()
        try:
            yield
        finally:
            with torch.no_grad():
                for p, b in zip(self.params, backup):
                    p.copy_(b)

    @torch.no_grad()
    def copy_to(self) -> None:
        """Load the averaged weights into the model (permanently)."""
        if self.enabled:
            for p, s in zip(self.params, self.shadow):
                p.copy_(s)

    def state_dict(self) -> Dict:
        return {"decay": self.decay, "num_updates": self.num_updates,
                "shadow": [s.detach().cpu().clone() for s in self.shadow]}

    def load_state_dict(self, state: Dict) -> None:
        if len(state["shadow"]) != len(self.shadow):
            raise ValueError(f"EMA state has {len(state['shadow'])} tensors, the model "
                             f"{len(self.shadow)}")
        self.decay = float(state["decay"])
        self.num_updates = int(state["num_updates"])
        with torch.no_grad():
            for s, v in zip(self.shadow, state["shadow"]):
                s.copy_(v)

    def __repr__(self) -> str:
        return f"ExponentialMovingAverage(decay={self.decay}, {self.num_updates} updates)"
