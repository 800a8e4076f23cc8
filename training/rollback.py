"""Undo the last few applied optimiser steps when the loss spikes twice in a row after them.

A loss spike (:mod:`.spikes`) has two causes. A bad batch: the next step is normal again, and
skipping the spiking step is all it takes. Or damaged weights: an ordinary-looking step moved
them into a region where every batch's loss is thousands of times the usual one (measured:
aspirin, medium preset at lr 1e-2, step 11895 of a 50-minute run; the step's loss and update were
like the 100 before it, the next 50 losses were ~1.4e4x the running mean and the run stopped).
Skipping cannot repair the second case: the damage is already in the weights.

:class:`RecentStepsUndo` keeps the weights, the optimiser's state and the EMA from before one
of the last ``every`` (10) applied steps: a copy is made before every 10th applied step, so it is
never newer than the damaging step. :class:`~.step.OptimiserStep` restores it at the second
spike in a row (one spike: a batch; two: the weights), once per run of spikes; the run then goes
on from there, 1 to 10 applied steps back. A copy (one ``_foreach_copy_`` into buffers allocated
once) takes 0.23 ms for the 79k weights of the aspirin budget model, but copying at every step
made that model's 51 ms training step 2.7 ms slower (6 interleaved rounds; why more than the
copy itself, I did not find out), hence every 10th. The copy is part of the checkpoint, so a
resumed run undoes exactly what the uninterrupted run would.
"""

from __future__ import annotations

from typing import Any, Dict, List, Mapping, Optional, Tuple

import torch
from torch import Tensor

from tfpot.training.ema import ExponentialMovingAverage

#: (parameter index, optimiser state key) of each optimiser-state tensor copied, in order
Signature = List[Tuple[int, str]]


class RecentStepsUndo:
    """The state before one of the last ``every`` applied optimiser steps, and its restoration.

    Args:
        params: the parameters the optimiser updates (in its order).
        optimizer: the optimiser (its per-parameter state tensors are copied, e.g. AdamW's
            ``exp_avg``, ``exp_avg_sq``, ``max_exp_avg_sq`` and ``step``).
        ema: the EMA of the weights (its shadow and update count are copied).
        every: a copy is made before every ``every``-th applied step.
    """

    def __init__(self, params: List[torch.nn.Parameter], optimizer: torch.optim.Optimizer,
                 ema: ExponentialMovingAverage, every: int = 10) -> None:
        if every < 1:
            raise ValueError(f"every must be >= 1 (got {every})")
        self.params, self.optimizer, self.ema = params, optimizer, ema
        self.every = int(every)
        self.applied = 0  # applied steps (since the start, less those undone)
        self.copied_at = 0  # value of ``applied`` when the copy was made
        self._signature: Signature = []
        self._buffers: List[Tensor] = []
        self._ema_updates = 0
        self.available = False  # a recorded state that has not been restored yet

    def _live(self) -> Tuple[Signature, List[Tensor]]:
        """What a record copies: weights, optimiser state tensors, EMA shadow."""
        signature: Signature = []
        tensors: List[Tensor] = [p.detach() for p in self.params]
        for i, p in enumerate(self.params):
            state = self.optimizer.state.get(p, {})
            for key in sorted(state):
                if isinstance(state[key], Tensor):
                    signature.append((i, key))
                    tensors.append(state[key])
        tensors += list(self.ema.shadow)
        return signature, tensors

    @torch.no_grad()
    def record(self) -> None:
        """Count an applied step, copying the state first at every ``every``-th (call just
        before ``optimizer.step()``)."""
        self.applied += 1
        if (self.applied - 1) % self.every != 0:
            return
        self.copied_at = self.applied - 1
        signature, tensors = self._live()
        if signature != self._signature or len(tensors) != len(self._buffers):
            self._signature = signature
            self._buffers = [t.clone() for t in tensors]
        else:
            torch._foreach_copy_(self._buffers, tensors)
        self._ema_updates = self.ema.num_updates
        self.available = True

    @torch.no_grad()
    def restore(self) -> int:
        """Put the copied state back (once); returns how many applied steps that undid (0:
        none: no copy yet, already restored, or copied before the optimiser's first step)."""
        if not self.available:
            return 0
        signature, tensors = self._live()
        if signature != self._signature:  # copied before the optimiser had any state (step 1;
            return 0                      # the spike guard's warm-up never reaches back there)
        torch._foreach_copy_(tensors, self._buffers)
        self.ema.num_updates = self._ema_updates
        self.available = False
        undone, self.applied = self.applied - self.copied_at, self.copied_at
        return undone

    def state_dict(self) -> Dict[str, Any]:
        state: Dict[str, Any] = {"every": self.every, "applied": self.applied,
                                 "copied_at": self.copied_at, "copy": None}
        if self.available:
            state["copy"] = {"signature": [list(s) for s in self._signature],
                             "tensors": [b.detach().cpu().clone() for b in self._buffers],
                             "ema_updates": self._ema_updates}
        return state

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        self.every, self.applied = int(state["every"]), int(state["applied"])
        self.copied_at = int(state["copied_at"])
        state = state["copy"]
        if state is None:
            self.available = False
            return
        self._signature = [(int(i), str(k)) for i, k in state["signature"]]
        signature, live = self._live()
        tensors = list(state["tensors"])
        if signature == self._signature and len(live) == len(tensors):  # each where it lives
            self._buffers = [t.to(device=v.device, dtype=v.dtype) for t, v in zip(tensors, live)]
        else:
            self._buffers = tensors
        self._ema_updates = int(state["ema_updates"])
        self.available = True
