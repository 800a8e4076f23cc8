"""Learning-rate schedules behind one interface: ``step_batch()`` after every optimiser step,
``step_epoch(metric)`` after every epoch.

* ``plateau``: multiply the rate by ``factor`` when the monitored loss (validation, or training
  without a validation set) has not improved for ``patience`` epochs; never below ``min_lr``.
* ``cosine``: linear warm-up over ``warmup_epochs``, then cosine decay to ``min_lr`` at the end of
  the run. The run length is ``max_epochs``, or the length that a ``max_time`` budget fixed once
  (:mod:`tfpot.training.budget`, :meth:`LRSchedule.set_epochs`): the rate is a function of the
  step alone, never of the clock, so runs with the same config and seed are identical and a
  resumed run equals an uninterrupted one. The decay never runs backwards (a resume with more
  epochs holds the rate until the steps catch up).
* ``constant``.
"""

from __future__ import annotations

import math
from typing import Dict, Optional

import torch

from tfpot.training.config import ScheduleConfig


class _WarmupCosine:
    """lr factor (relative to the base rate): (s + 1) / W for step s < W, then a cosine from 1 to
    ``min_ratio`` over progress p in [0, 1], p = (s - W) / (T - W), never decreasing."""

    def __init__(self, warmup: int, total: int, min_ratio: float) -> None:
        self.warmup, self.total, self.min_ratio = int(warmup), max(int(total), 1), float(min_ratio)
        self.step = 0
        self.progress = 0.0

    def step_share(self, step: int) -> float:
        """Progress by steps alone: 0 until the warm-up ends, 1 at ``total``."""
        return min(max((step - self.warmup) / max(self.total - self.warmup, 1), 0.0), 1.0)

    def advance(self) -> None:
        self.step += 1
        if self.step < self.warmup:
            return
        self.progress = min(max(self.progress, self.step_share(self.step)), 1.0)

    def factor(self) -> float:
        if self.step < self.warmup:
            return (self.step + 1) / self.warmup
        return self.min_ratio + (1.0 - self.min_ratio) * 0.5 * (1.0 + math.cos(math.pi * self.progress))


class LRSchedule:
    """A learning-rate schedule from a :class:`~tfpot.training.config.ScheduleConfig`.

    Args:
        optimizer: the optimiser whose rate is driven.
        cfg: schedule settings.
        steps_per_epoch, max_epochs: for the cosine length and warm-up (the length may be
            fixed later, before the first step, by :meth:`set_epochs`).
    """

    def __init__(self, optimizer: torch.optim.Optimizer, cfg: ScheduleConfig,
                 steps_per_epoch: int, max_epochs: int) -> None:
        self.type = cfg.type
        self.optimizer = optimizer
        self._sched: Optional[object] = None
        self.steps_per_epoch = int(steps_per_epoch)
        if cfg.type == "plateau":
            self._sched = torch.optim.lr_scheduler.ReduceLROnPlateau(
                optimizer, mode="min", factor=cfg.factor, patience=cfg.patience, min_lr=cfg.min_lr)
        elif cfg.type == "cosine":
            self.base_lr = float(optimizer.param_groups[0]["lr"])
            self._cosine = _WarmupCosine(round(cfg.warmup_epochs * steps_per_epoch),
                                         steps_per_epoch * max_epochs,
                                         min(cfg.min_lr / self.base_lr, 1.0))
            self._apply()
        elif cfg.type != "constant":
            raise ValueError(f"unknown schedule type {cfg.type!r}")

    @property
    def lr(self) -> float:
        return float(self.optimizer.param_groups[0]["lr"])

    def _apply(self) -> None:
        for group in self.optimizer.param_groups:
            group["lr"] = self.base_lr * self._cosine.factor()

    def set_epochs(self, epochs: int) -> None:
        """Fix the run length (the cosine ends at ``epochs * steps_per_epoch`` steps)."""
        if self.type == "cosine":
            self._cosine.total = max(int(epochs) * self.steps_per_epoch, 1)
            self._apply()

    def step_batch(self) -> None:
        """After an optimiser step."""
        if self.type == "cosine":
            self._cosine.advance()
            self._apply()

    def step_epoch(self, metric: float) -> None:
        if self.type == "plateau" and math.isfinite(metric):
            self._sched.step(metric)

    def state_dict(self) -> Dict:
        if self.type == "cosine":
            return {"type": self.type, "state": {"step": self._cosine.step,
                                                 "progress": self._cosine.progress}}
        return {"type": self.type, "state": self._sched.state_dict() if self._sched else None}

    def load_state_dict(self, state: Dict) -> None:
        if state["type"] != self.type:
            raise ValueError(f"checkpoint has a {state['type']} schedule, the config {self.type}")
        if self.type == "cosine":
            st = state["state"]
            if "step" not in st:  # written by tfpot <= 0.2 (a LambdaLR): progress by steps only
                self._cosine.step = int(st["last_epoch"])
                self._cosine.progress = self._cosine.step_share(self._cosine.step)
            else:
                self._cosine.step, self._cosine.progress = int(st["step"]), float(st["progress"])
            self._apply()
        elif self._sched is not None:
            self._sched.load_state_dict(state["state"])
