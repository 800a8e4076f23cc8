"""Loss spikes: a step whose loss is far above the recent ones is not applied.

A single batch can give a loss thousands of times the usual one (a structure far from anything
seen, a stiff spot of the model). Its gradient, even clipped, can move Adam's weights so far
that every later force is zero: the run goes on for hours and ends with a dead model (measured:
GFN2-xTB aspirin, lr 1e-2, epoch 89 of 266; ``benchmarks/README.md``). The guard compares each
step's loss with a running geometric mean of the accepted steps' losses::

    skip if  log(loss) > m + log(factor),    m <- decay m + (1 - decay) log(loss)  (accepted steps)

after ``warmup`` accepted steps. A skipped step leaves weights, optimiser and EMA as they were
(the schedule still advances, so the run keeps its planned length) and is logged. Two skips in a
row mean the weights, not a batch, are bad: the last 1-10 applied steps are undone
(:mod:`.rollback`). ``patience`` skips in a row even so: the run stops with
:class:`LossSpikeError`, keeping its checkpoint and best model. Nothing reads the clock: the same
config and seed skip the same steps, and the state is part of the checkpoint.
"""

from __future__ import annotations

import math
from typing import Any, Dict, Mapping, Optional

from tfpot.errors import TfpotError


class LossSpikeError(TfpotError):
    """Too many consecutive optimiser steps had a loss spike (training diverged)."""


class LossSpikeGuard:
    """Decides, step by step, whether a loss is a spike (see the module docstring).

    Args:
        factor: a loss above ``factor`` times the running geometric mean is a spike (> 1).
        patience: spikes in a row that stop the run.
        warmup: accepted steps before any step can be skipped.
        decay: memory of the running mean (0.98: about 50 steps).
    """

    def __init__(self, factor: float, patience: int = 50, warmup: int = 20,
                 decay: float = 0.98) -> None:
        if not factor > 1.0:
            raise ValueError(f"the loss spike factor must be above 1 (got {factor})")
        self.log_factor = math.log(factor)
        self.factor = float(factor)
        self.patience, self.warmup, self.decay = int(patience), int(warmup), float(decay)
        self.log_mean: Optional[float] = None
        self.accepted = 0
        self.in_a_row = 0
        self.skipped = 0

    def is_spike(self, loss: float) -> bool:
        """True: do not apply this step. Raises :class:`LossSpikeError` at ``patience`` spikes
        in a row. ``loss`` must be finite and positive (a zero loss is never a spike)."""
        if loss <= 0.0:
            return False
        log_loss = math.log(loss)
        if (self.log_mean is not None and self.accepted >= self.warmup
                and log_loss > self.log_mean + self.log_factor):
            self.in_a_row += 1
            self.skipped += 1
            if self.in_a_row >= self.patience:
                raise LossSpikeError(
                    f"training diverged: {self.in_a_row} optimiser steps in a row had a loss "
                    f"above {self.factor:g}x the running mean of the steps before (last "
                    f"{loss:.4g}, {self.ratio(loss):.3g}x); the weights are those before the "
                    f"first of them; lower optimizer.lr, or resume from the checkpoint")
            return True
        self.in_a_row = 0
        self.accepted += 1
        self.log_mean = (log_loss if self.log_mean is None
                         else self.decay * self.log_mean + (1.0 - self.decay) * log_loss)
        return False

    def ratio(self, loss: float) -> float:
        """``loss`` over the running geometric mean (nan before the first step)."""
        return loss / math.exp(self.log_mean) if self.log_mean is not None else math.nan

    def state_dict(self) -> Dict[str, Any]:
        return {"log_mean": self.log_mean, "accepted": self.accepted, "in_a_row": self.in_a_row,
                "skipped": self.skipped}

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        self.log_mean = state["log_mean"]
        self.accepted = int(state["accepted"])
        self.in_a_row = int(state["in_a_row"])
        self.skipped = int(state["skipped"])
