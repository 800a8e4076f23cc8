"""Evaluation during and after training: validation with the EMA weights after every epoch,
the best model (lowest validation loss, ``best_model.pt``), the test-set report of the best
model (``test_metrics.json``) and the run's ``summary.json``.

Metrics and their units are those of :mod:`tfpot.training.metrics` (eV/atom, eV/Å, eV/Å^3).
"""

from __future__ import annotations

import json
import math
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Callable, Dict, Iterator, Mapping, Optional

import torch
from torch import Tensor

from tfpot.atomic_io import atomic_write_text
from tfpot.training.config import TrainingConfig
from tfpot.training.distributed import DistContext
from tfpot.training.ema import ExponentialMovingAverage
from tfpot.training.guard import check_metrics
from tfpot.training.losses import WeightedLoss
from tfpot.training.metrics import evaluate, format_metrics, units_of

State = Dict[str, Tensor]


def eval_batch_size(training: TrainingConfig, world_size: int) -> int:
    """Structures per forward pass and rank for validation and test: ``val_batch_size`` (or
    twice ``batch_size``) over all ranks."""
    total = training.val_batch_size or 2 * training.batch_size
    return max(total // world_size, 1)


def state_copy(model: torch.nn.Module) -> State:
    """The model's weights and buffers, copied to the CPU."""
    return {k: v.detach().cpu().clone() for k, v in model.state_dict().items()}


@contextmanager
def weights_loaded(model: torch.nn.Module, state: Mapping[str, Tensor]) -> Iterator[None]:
    """Run ``model`` with the weights ``state`` inside the block; its own come back after."""
    current = {k: v.detach().clone() for k, v in model.state_dict().items()}
    model.load_state_dict(state)
    try:
        yield
    finally:
        model.load_state_dict(current)


def validate(model: torch.nn.Module, ema: ExponentialMovingAverage, dataset: Any,
             batch_size: int, ctx: DistContext, loss_fn: WeightedLoss) -> Dict[str, float]:
    """Metrics of the EMA weights on ``dataset`` ({} without one); collective over ranks."""
    if dataset is None or len(dataset) == 0:
        return {}
    with ema.swapped():
        return evaluate(model, dataset, batch_size, ctx, loss_fn)


class BestModel:
    """The best epoch so far (0-based, -1 before the first), its validation loss and metrics,
    its EMA weights (CPU) and the epochs since it (early stopping's counter)."""

    def __init__(self) -> None:
        self.loss = math.inf
        self.epoch = -1
        self.metrics: Dict[str, float] = {}
        self.state: Optional[State] = None
        self.bad_epochs = 0

    def update(self, epoch: int, loss: float, metrics: Mapping[str, float],
               keep: Callable[[], State]) -> bool:
        """Record ``epoch`` if its validation ``loss`` beats the best: ``keep()`` saves the
        model and returns its weights. Returns whether it did."""
        if not loss < self.loss:
            self.bad_epochs += 1
            return False
        self.loss, self.epoch, self.metrics = loss, epoch, dict(metrics)
        self.state = keep()
        self.bad_epochs = 0
        return True

    def state_dict(self) -> Dict[str, Any]:
        """The checkpoint entries ``best``, ``best_state`` and ``bad_epochs``."""
        return {"best": {"loss": self.loss, "epoch": self.epoch, "metrics": dict(self.metrics)},
                "best_state": self.state, "bad_epochs": self.bad_epochs}

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        best = state["best"]
        self.loss, self.epoch, self.metrics = best["loss"], best["epoch"], dict(best["metrics"])
        self.state = state.get("best_state")
        self.bad_epochs = int(state["bad_epochs"])


def report_test_set(model: torch.nn.Module, best: State, dataset: Any, batch_size: int,
                ctx: DistContext, loss_fn: WeightedLoss, out_dir: Optional[Path],
                say: Callable[[str], None]) -> Dict[str, float]:
    """Metrics of the weights ``best`` on the test set (read for the first time by the caller),
    logged and written to ``out_dir/test_metrics.json`` (rank 0); the model's weights stay.

    Raises:
        NonFiniteError: a metric is not finite.
    """
    with weights_loaded(model, best):
        metrics = evaluate(model, dataset, batch_size, ctx, loss_fn)
    check_metrics(metrics, "test-set")
    say(format_metrics(metrics, f"test set ({len(dataset)} structures, best model):"))
    if out_dir is not None and ctx.is_main:
        write_json({"num_structures": len(dataset), **metrics, "units": units_of(metrics)},
                   out_dir / "test_metrics.json")
    return metrics


def run_summary(trainer: Any, reason: str, test: Mapping[str, float]) -> Dict[str, Any]:
    """``summary.json`` of a :class:`~tfpot.training.loop.Trainer` that stopped for ``reason``
    (see :mod:`.stopping`, or ``interrupted``), written to its output directory (rank 0)."""
    best = trainer.best
    summary = {"stop_reason": reason, "epochs": trainer.epoch,
               "planned_epochs": trainer.run_epochs,
               "speed": trainer.speed.to_dict() if trainer.speed is not None else None,
               "steps": trainer.global_step, "time": trainer.elapsed,
               "best_epoch": best.epoch + 1, "best_validation": best.metrics, "test": dict(test),
               "last_epoch": trainer.history[-1] if trainer.history else {}}
    summary["units"] = {"time": "s", **units_of(summary["last_epoch"]), **units_of(test)}
    if trainer.out_dir is not None and trainer.ctx.is_main:
        write_json(summary, trainer.out_dir / "summary.json")
    return summary


def write_json(data: Mapping[str, Any], path: Path) -> None:
    """``data`` as indented JSON (numpy and torch scalars as floats), written atomically."""
    atomic_write_text(json.dumps(data, indent=2, default=float), path)
