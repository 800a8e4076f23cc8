"""A wall-clock budget (``training.max_time``) turned into a fixed run length, once.

A schedule or a stop that follows the clock makes two runs with the same config and seed differ
(no clock ticks the same way twice) and a killed-and-resumed run differ from an uninterrupted
one. So the clock is read once, when the budget is first seen, and never again:

1. **Probe.** Time real optimiser steps on the first batches of the current epoch (data
   loading included; at least ``PROBE_STEPS``, and until they add up to ``PROBE_MIN_SECONDS``
   or 1 % of the budget, or the epoch ends), one validation pass and the serialisation of a
   checkpoint (the end of every epoch); then restore every state those steps changed (weights,
   optimiser, EMA, schedule, random generators, metric sums, position), so the run continues exactly as it would
   have without the probe. The probe's seconds count against the budget.
2. **Plan.** With ``t_epoch = steps_per_epoch * t_step + t_val`` (seconds), the run length is

       epochs = min(max_epochs, max(ceil(e0), floor(e0 + (max_time - t0 - t_probe) / t_epoch)))

   where ``e0`` epochs (fractional) and ``t0`` seconds were done when the probe started (0 and
   0 for a new run); at least one epoch, and never shorter than the epochs already begun.
3. **Record.** The measured :class:`SpeedRecord` goes into the checkpoint and ``summary.json``;
   a resume recomputes the plan from the record and the current ``max_time`` / ``max_epochs``,
   never from the clock.

From then on the learning-rate schedule and the stop depend on steps only: a run with a budget
equals a run of ``training.max_epochs: N`` and ``max_time: null`` with N the planned epochs
(tested), and a resumed run equals an uninterrupted one. What still depends on the machine is
N itself when the budget is the limit (a faster machine plans more epochs); the log and
``summary.json`` state it. After planning, the clock does not stop the run: if the machine slows
down, the run takes longer than the budget (Ctrl-C / SIGTERM still stop it with a checkpoint).
"""

from __future__ import annotations

import copy
import io
import math
import time
from dataclasses import asdict, dataclass
from typing import Any, Dict, Mapping, Optional, Protocol

import torch

from tfpot.training.distributed import sharded_loader

_END = object()

#: optimiser steps timed by the probe (the first one, warm-up, is run but not timed)
PROBE_STEPS = 6
#: ... and the probe keeps timing steps until they add up to this many seconds (or 1 % of the
#: budget, if less; or the epoch's batches run out): six steps of ~50 ms catch one moment of a
#: shared machine's load, and a plan from them was off by -30 % / +3 % in two runs started
#: together (benchmarks/README.md, "EMT with tfpot 0.6")
PROBE_MIN_SECONDS = 10.0


def _now() -> float:
    """Seconds on a monotonic clock: the only clock the plan reads (tests replace it)."""
    return time.perf_counter()


@dataclass(frozen=True)
class SpeedRecord:
    """What the probe measured, and where the run stood when it did.

    Units: seconds; ``at_epochs`` in epochs (fractional: steps done / steps per epoch).
    """

    seconds_per_step: float
    seconds_per_validation: float  # validation pass + end-of-epoch checkpoint
    probe_seconds: float
    steps_per_epoch: int
    at_epochs: float = 0.0
    at_seconds: float = 0.0

    def epoch_seconds(self) -> float:
        """Estimated seconds of one epoch: its steps and one validation pass."""
        return self.steps_per_epoch * self.seconds_per_step + self.seconds_per_validation

    def to_dict(self) -> Dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> "SpeedRecord":
        return cls(**{k: (int(v) if k == "steps_per_epoch" else float(v)) for k, v in d.items()})


def planned_epochs(max_epochs: int, max_time: Optional[float],
                   record: Optional[SpeedRecord]) -> int:
    """The run length in epochs (see the module doc); ``max_epochs`` without a budget."""
    if max_time is None:
        return int(max_epochs)
    if record is None:
        raise ValueError("a max_time budget needs a speed record (probe_speed) to plan the run")
    left = max_time - record.at_seconds - record.probe_seconds
    fit = math.floor(record.at_epochs + left / max(record.epoch_seconds(), 1e-9))
    floor_epochs = max(math.ceil(record.at_epochs - 1e-9), 1)
    return int(min(max_epochs, max(fit, floor_epochs)))


def describe_plan(epochs: int, max_epochs: int, max_time: Optional[float],
                  record: Optional[SpeedRecord]) -> str:
    """One log line that says how the run length was fixed."""
    if max_time is None or record is None:
        return f"run length: {epochs} epochs (training.max_epochs; no time budget)"
    speed = (f"measured {record.seconds_per_step * 1e3:.1f} ms/step and "
             f"{record.seconds_per_validation:.2f} s/validation, ~{record.epoch_seconds():.2f} "
             f"s/epoch")
    if epochs >= max_epochs:
        return (f"run length: {epochs} epochs (training.max_epochs; {speed}: they fit in the "
                f"{max_time:g} s budget)")
    return (f"run length: {epochs} of {max_epochs} epochs, fixed now by the {max_time:g} s "
            f"budget ({speed}); the schedule follows steps only from here. To repeat this run "
            f"exactly elsewhere, set training.max_epochs: {epochs} and training.max_time: null")


def plan_run(trainer: Any) -> int:
    """The run length of a :class:`~tfpot.training.loop.Trainer` in epochs, fixed now: probe the
    speed once if ``training.max_time`` is set and the run has no record yet (kept in
    ``trainer.speed``); the schedule and the log are told."""
    tc = trainer.cfg.training
    if tc.max_time is not None and trainer.speed is None:
        trainer.speed = probe_speed(trainer, min_seconds=min(PROBE_MIN_SECONDS,
                                                             0.01 * float(tc.max_time)))
    epochs = planned_epochs(tc.max_epochs, tc.max_time, trainer.speed)
    trainer.schedule.set_epochs(epochs)
    trainer.log(describe_plan(epochs, tc.max_epochs, tc.max_time, trainer.speed))
    return epochs


class Probeable(Protocol):
    """The parts of :class:`~tfpot.training.loop.Trainer` the probe uses."""

    ctx: Any
    sampler: Any
    train_set: Any
    cfg: Any
    steps_per_epoch: int
    global_step: int
    batch_in_epoch: int
    elapsed_before: float

    @property
    def elapsed(self) -> float: ...

    def state_dict(self) -> Dict[str, Any]: ...

    def load_state_dict(self, state: Mapping[str, Any]) -> None: ...

    def step(self, batch) -> None: ...

    def validate(self) -> Dict[str, float]: ...


def probe_speed(trainer: Probeable, num_steps: int = PROBE_STEPS,
                min_seconds: float = 0.0) -> SpeedRecord:
    """Time ``num_steps`` (+1 warm-up) optimiser steps, more while the timed steps add up to
    less than ``min_seconds`` (s) and the epoch has batches left, and one validation pass; then
    restore the trainer's state exactly (see the module doc). Collective: every rank calls it and
    runs the same steps (a rank still short of ``min_seconds`` keeps all going); the slowest
    rank's times are used, so that every rank plans the same run."""
    start = _now()
    at_seconds = trainer.elapsed
    at_epochs = trainer.global_step / trainer.steps_per_epoch
    saved = copy.deepcopy(trainer.state_dict())
    epoch = int(saved["progress"]["epoch"])
    batch_in_epoch = int(saved["progress"]["batch_in_epoch"])
    try:
        trainer.sampler.set_epoch(epoch, start=batch_in_epoch)
        loader = sharded_loader(trainer.train_set, trainer.sampler, trainer.cfg.data.num_workers)
        step_times = []
        batches = iter(loader)
        while len(step_times) <= num_steps or trainer.ctx.any(sum(step_times[1:]) < min_seconds):
            t = _now()  # a step as the loop runs it: loading and collating the batch included
            batch = next(batches, _END)
            if batch is _END:
                break
            trainer.step(batch)
            step_times.append(_now() - t)
            trainer.batch_in_epoch += 1  # as the loop counts (a failing step names its frames)
        timed = step_times[1:] or step_times  # the first step warms up (unless it is the only one)
        t = _now()
        trainer.validate()
        torch.save(trainer.state_dict(), io.BytesIO())  # the checkpoint of every epoch end
        t_val = _now() - t
    finally:
        trainer.load_state_dict(saved)
    probe_seconds = _now() - start
    trainer.elapsed_before = at_seconds + probe_seconds
    times = torch.tensor([sum(timed) / max(len(timed), 1), t_val, probe_seconds], dtype=torch.float64,
                         device=trainer.ctx.device)
    trainer.ctx.all_reduce_(times, "max")
    per_step, per_val, probe = (float(x) for x in times.cpu())
    return SpeedRecord(per_step, per_val, probe, int(trainer.steps_per_epoch), at_epochs, at_seconds)
