"""Learning-rate schedules behind one interface: ``step_batch()`` after every optimiser step,
``step_epoch(metric)`` after every epoch.

* ``plateau``: multiply the rate by ``factor`` when the monitored loss (validation, or training
  without a validation set) has not improved for ``patience`` epochs; never below ``min_lr``.
* ``cosine``: linear warm-up over ``warmup_epochs``, then cosine decay to ``min_lr`` at the end of
  ``max_epochs`` (a ``max_time`` budget does not shorten it).
* ``constant``.
"""

from __future__ import annotations

import math
from typing import Dict, Optional

import torch

from tfpot.training.config import ScheduleConfig


class _WarmupCosine:
    """lr factor of step s: (s + 1) / W for s < W, then a cosine from 1 to min_ratio."""

    def __init__(self, warmup: int, total: int, min_ratio: float) -> None:
        self.warmup, self.total, self.min_ratio = int(warmup), max(int(total), 1), float(min_ratio)

    def __call__(self, step: int) -> float:
        if step < self.warmup:
            return (step + 1) / self.warmup
        span = max(self.total - self.warmup, 1)
        progress = min((step - self.warmup) / span, 1.0)
        return self.min_ratio + (1.0 - self.min_ratio) * 0.5 * (1.0 + math.cos(math.pi * progress))


class LRSchedule:
    """A learning-rate schedule from a :class:`~tfpot.training.config.ScheduleConfig`.

    Args:
        optimizer: the optimiser whose rate is driven.
        cfg: schedule settings.
        steps_per_epoch, max_epochs: for the cosine length and warm-up.
    """

    def __init__(self, optimizer: torch.optim.Optimizer, cfg: ScheduleConfig,
                 steps_per_epoch: int, max_epochs: int) -> None:
        self.type = cfg.type
        self.optimizer = optimizer
        self._sched: Optional[object] = None
        if cfg.type == "plateau":
            self._sched = torch.optim.lr_scheduler.ReduceLROnPlateau(
                optimizer, mode="min", factor=cfg.factor, patience=cfg.patience, min_lr=cfg.min_lr)
        elif cfg.type == "cosine":
            base = optimizer.param_groups[0]["lr"]
            fn = _WarmupCosine(round(cfg.warmup_epochs * steps_per_epoch),
                               steps_per_epoch * max_epochs, min(cfg.min_lr / base, 1.0))
            self._sched = torch.optim.lr_scheduler.LambdaLR(optimizer, fn)
        elif cfg.type != "constant":
            raise ValueError(f"unknown schedule type {cfg.type!r}")

    @property
    def lr(self) -> float:
        return float(self.optimizer.param_groups[0]["lr"])

    def step_batch(self) -> None:
        if self.type == "cosine":
            self._sched.step()

    def step_epoch(self, metric: float) -> None:
        if self.type == "plateau" and math.isfinite(metric):
            self._sched.step(metric)

    def state_dict(self) -> Dict:
        return {"type": self.type, "state": self._sched.state_dict() if self._sched else None}

    def load_state_dict(self, state: Dict) -> None:
        if state["type"] != self.type:
            raise ValueError(f"checkpoint has a {state['type']} schedule, the config {self.type}")
        if self._sched is not None:
            self._sched.load_state_dict(state["state"])
