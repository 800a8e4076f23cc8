"""One optimiser step, the same on every rank (see :mod:`tfpot.training.distributed`)::

    L  = WeightedLoss(model(batch_r), labels) / global counts      (counts: all_reduce;
                                                                    frames turned at random
                                                                    with training.frame_noise)
         + w_g * sum_i (1 - g_i) / global atom count                (loss.frame_gate_weight: the
                                                                    open-frame term, off at 0)
         + w_c * sum_i s_i / global atom count                      (loss.frame_closed_weight:
                                                                    the closed-frame term, s_i =
                                                                    LocalFrames.shortfall)
    g  = sum_r dL_r/dw                                              (all_reduce)
    w  = AdamW(w, clip(g));  lr <- schedule;  w_ema <- EMA(w)

with the guard (:mod:`.guard`) between the gradient and the update: a non-finite loss or
gradient on any rank leaves the weights as they were; so does a loss spike (:mod:`.spikes`), and
a second spike in a row also undoes the last few applied steps (:mod:`.rollback`).
:class:`OptimiserStep` owns what a step changes: optimiser, schedule, EMA and the running
training-error sums.
"""

from __future__ import annotations

from contextlib import ExitStack, contextmanager, nullcontext
from typing import Any, Callable, ContextManager, Dict, Iterator, List, Mapping, Optional, Tuple

import torch
from torch import Tensor

from tfpot.frames import captured_gates, captured_shortfalls, rotated_frames
from tfpot.training.config import TrainConfig
from tfpot.training.distributed import DistContext, all_reduce_gradients
from tfpot.training.ema import ExponentialMovingAverage
from tfpot.training.guard import step_is_finite
from tfpot.training.losses import Targets, WeightedLoss, errors
from tfpot.training.metrics import MetricAccumulator, predict_batch
from tfpot.training.rollback import RecentStepsUndo
from tfpot.training.schedules import LRSchedule
from tfpot.training.spikes import LossSpikeGuard

#: what a failed step leaves to name it: (loss or None, per-graph errors or None, targets or None)
Failure = Tuple[Optional[Tensor], Optional[Dict[str, Tensor]], Optional[Targets]]


class OptimiserStep:
    """The step of ``model`` with the loss, optimiser, schedule and EMA settings of ``cfg``.

    Args:
        model: the model being trained (on ``ctx.device``).
        cfg: the run's settings (loss, optimizer, schedule, training).
        ctx: distributed context.
        steps_per_epoch: optimiser steps per epoch (the schedule counts in them).
    """

    def __init__(self, model: torch.nn.Module, cfg: TrainConfig, ctx: DistContext,
                 steps_per_epoch: int) -> None:
        self.model, self.ctx = model, ctx
        lo = cfg.loss
        self.loss_fn = WeightedLoss(lo.energy_weight, lo.forces_weight, lo.stress_weight,
                                    lo.per_atom_energy, lo.type, lo.huber_delta)
        #: weight of the open-frame term, w_g * mean over the batch's atoms of (1 - g_i)
        self.gate_weight = lo.frame_gate_weight
        #: weight of the closed-frame term, w_c * mean over the batch's atoms of the shortfall
        self.closed_weight = lo.frame_closed_weight
        self.compute_forces = lo.forces_weight > 0
        self.compute_stress = lo.stress_weight > 0
        self.params = [p for p in model.parameters() if p.requires_grad]
        self.optimizer = torch.optim.AdamW(self.params, lr=cfg.optimizer.lr,
                                           weight_decay=cfg.optimizer.weight_decay,
                                           amsgrad=cfg.optimizer.amsgrad)
        self.schedule = LRSchedule(self.optimizer, cfg.schedule, steps_per_epoch,
                                   cfg.training.max_epochs)
        self.ema = ExponentialMovingAverage(model, cfg.training.ema_decay)
        self.train_acc = MetricAccumulator(ctx.device)
        self.grad_clip = cfg.training.grad_clip
        self.frame_noise = cfg.training.frame_noise
        factor = cfg.training.loss_spike_factor
        self.spike_guard = (LossSpikeGuard(factor, cfg.training.loss_spike_patience)
                            if factor is not None else None)
        #: the state before one of the last 10 applied steps, restored at a second spike in a row
        self.undo = RecentStepsUndo(self.params, self.optimizer, self.ema) if factor is not None \
            else None
        #: what the last step skipped, for the log ("" if it was applied)
        self.skip_message = ""

    def __call__(self, batch: Any) -> Optional[Failure]:
        """One step on this rank's share ``batch`` of a global batch (None: no share);
        collective. Returns None, or what names a non-finite step (weights unchanged)."""
        model, ctx = self.model, self.ctx
        model.train()
        self.optimizer.zero_grad(set_to_none=True)
        loss = err = t = None
        if batch is not None:
            batch = batch.to(ctx.device)
            t = Targets.from_batch(batch)
            # the term counts and the atom count of the open-frame term, in one reduction
            counts = torch.cat([self.loss_fn.counts(t), t.num_atoms.sum().reshape(1)])
        else:
            counts = torch.zeros(4, dtype=torch.float64, device=ctx.device)
        ctx.all_reduce_(counts)
        if batch is not None:
            with rotated_frames(model, self.frame_noise), self._frame_terms() as (gates, short):
                out = predict_batch(model, batch, self.compute_forces, self.compute_stress)
            err = errors(out, t, self.loss_fn.per_atom_energy)
            loss = self.loss_fn.combine(self.loss_fn.sums(err), counts[:3])
            if gates:
                closed = sum((1.0 - g).sum() for g in gates).to(torch.float64)
                loss = loss + self.gate_weight * closed / counts[3].clamp(min=1.0)
            if short:
                below = sum(s.sum() for s in short).to(torch.float64)
                loss = loss + self.closed_weight * below / counts[3].clamp(min=1.0)
            loss.backward()
        all_reduce_gradients(self.params, ctx)
        if not step_is_finite(loss, self.params, ctx):
            return loss, err, t
        self.skip_message = ""
        if self.spike_guard is not None:
            total = (loss.detach().to(torch.float64).reshape(1).clone() if loss is not None
                     else torch.zeros(1, dtype=torch.float64, device=ctx.device))
            value = float(ctx.all_reduce_(total).item())  # the global batch's loss
            if self.spike_guard.is_spike(value):
                self.skip_message = (f"loss {value:.4g} is {self.spike_guard.ratio(value):.3g}x "
                                     f"the running mean: step not applied (loss spike "
                                     f"{self.spike_guard.skipped})")
                undone = (self.undo.restore() if self.spike_guard.in_a_row == 2
                          and self.undo is not None else 0)
                if undone:
                    self.skip_message += (f"; two in a row: a step before them damaged the "
                                          f"weights, so weights, optimiser state and EMA are "
                                          f"back to {undone} applied step(s) before")
                self.schedule.step_batch()
                return None
        if err is not None:
            self.train_acc.add(err, self.loss_fn)
        if self.grad_clip:
            torch.nn.utils.clip_grad_norm_(self.params, self.grad_clip)
        if self.undo is not None:
            self.undo.record()
        self.optimizer.step()
        self.schedule.step_batch()
        self.ema.update()
        return None

    @contextmanager
    def _frame_terms(self) -> Iterator[Tuple[List[Tensor], List[Tensor]]]:
        """The gates and frame shortfalls of the step's forward pass, each captured only if its
        term (open-frame, closed-frame) is on (else an empty list)."""
        with ExitStack() as stack:
            gates = stack.enter_context(self._captured(captured_gates, self.gate_weight))
            short = stack.enter_context(self._captured(captured_shortfalls, self.closed_weight))
            yield gates, short

    def _captured(self, capture: Callable[[torch.nn.Module], ContextManager[List[Tensor]]],
                  weight: float) -> ContextManager[List[Tensor]]:
        """``capture(model)`` if its term's ``weight`` is on, else a block that captures nothing."""
        return capture(self.model) if weight > 0 else nullcontext([])

    def epoch_metrics(self) -> Dict[str, float]:
        """Training errors of the epoch's steps so far, over all ranks; collective."""
        acc = MetricAccumulator(self.ctx.device)
        acc.sums.copy_(self._all_sums())
        return acc.compute(self.loss_fn)

    def _all_sums(self) -> Tensor:
        sums = self.train_acc.sums.clone()
        self.ctx.all_reduce_(sums)
        return sums

    def state_dict(self) -> Dict[str, Any]:
        """The checkpoint entries ``optimizer``, ``schedule``, ``ema`` and ``train_sums`` (the
        epoch's error sums over all ranks); collective."""
        state = {"optimizer": self.optimizer.state_dict(), "schedule": self.schedule.state_dict(),
                 "ema": self.ema.state_dict(), "train_sums": self._all_sums().cpu().tolist()}
        if self.spike_guard is not None:
            state["spike_guard"] = self.spike_guard.state_dict()
        if self.undo is not None:
            state["undo_recent_steps"] = self.undo.state_dict()
        return state

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        self.optimizer.load_state_dict(state["optimizer"])
        self.schedule.load_state_dict(state["schedule"])
        self.ema.load_state_dict(state["ema"])
        if self.spike_guard is not None and "spike_guard" in state:  # (none before tfpot 0.6)
            self.spike_guard.load_state_dict(state["spike_guard"])
        if self.undo is not None and state.get("undo_recent_steps") is not None:  # (tfpot >= 0.7)
            self.undo.load_state_dict(state["undo_recent_steps"])
        if self.ctx.is_main:  # rank 0 holds the sums of all ranks
            self.train_acc.load_state(state["train_sums"])
        else:
            self.train_acc.reset()
