"""The training loop: epochs of optimiser steps, and the state a checkpoint holds.

Per epoch: the steps (:mod:`.step`) in an order fixed by (seed, epoch), train metrics from the
training batches (live weights), validation with the EMA weights and the best model
(:mod:`.evaluation`), the schedule's epoch step, the loggers (:mod:`.loggers`: epoch line,
``metrics.csv``, TensorBoard), a checkpoint and the stop checks (:mod:`.stopping`). At the end:
``final_model.pt`` (EMA weights) and the test-set report of the best model. Setting a run up
from a config is :mod:`.run`; ``fit()`` is :mod:`.fitting`.

Reproducible: nothing reads the clock except once, to turn a ``max_time`` budget into a fixed
number of epochs (:mod:`.budget`), so the same config and seed give the same ``metrics.csv``
and models. Exact resume: the checkpoint holds every state that evolves (weights, optimiser,
schedule, EMA, RNGs, position in the epoch, partial metric sums, best result, patience counter,
history, the budget's speed record), so ``--resume`` continues the run it interrupted bit for bit.
"""

from __future__ import annotations

import math
import time
from pathlib import Path
from typing import Any, Callable, Dict, List, Mapping, Optional, Sequence, Tuple, Union

from tfpot.model import EnergyModel
from tfpot.model_file import save_model
from tfpot.training.budget import SpeedRecord, plan_run
from tfpot.training.checkpoint import (CHECKPOINT_NAME, restore_trainer, save_checkpoint,
                                       trainer_state)
from tfpot.training.config import TrainConfig
from tfpot.training.data import StructureSet, check_training_set
from tfpot.training.distributed import DistContext, ShardedBatchSampler, sharded_loader
from tfpot.training.evaluation import (BestModel, State, eval_batch_size, report_test_set,
                                       run_summary, state_copy, validate, weights_loaded)
from tfpot.training.guard import check_metrics, step_failure
from tfpot.training.loggers import ConsoleLog, TrainingLogger, epoch_line, file_loggers
from tfpot.training.metrics import format_metrics
from tfpot.training.spikes import LossSpikeError
from tfpot.training.step import OptimiserStep
from tfpot.training.stopping import REASONS, StopSignals, limit_reached

#: called as ``cb(trainer)`` after every optimiser step
Callback = Callable[["Trainer"], None]


class Trainer:
    """Trains an :class:`~tfpot.model.EnergyModel` (see the module doc).

    Args:
        model: the model, with E0/scale/shift already set (see
            :func:`~tfpot.training.normalisation.apply_statistics`).
        cfg: the run's settings (``cfg.data`` is not read here).
        train, val: structure sets (val may be None: then the training loss is monitored).
        out_dir: where files go (rank 0); None writes nothing (no checkpoints either).
        ctx: distributed context (default: one process on the model's device).
        load_test: returns the test set; called once, after training.
        callbacks: called as ``cb(trainer)`` after every optimiser step (after a checkpoint).
        verbose: print log lines (rank 0).
    """

    def __init__(self, model: EnergyModel, cfg: TrainConfig, train: StructureSet,
                 val: Optional[StructureSet] = None, out_dir: Optional[Union[str, Path]] = None,
                 ctx: Optional[DistContext] = None, load_test: Optional[Callable[[], StructureSet]] = None,
                 callbacks: Sequence[Callback] = (), verbose: bool = True) -> None:
        self.cfg = cfg
        self.ctx = ctx or DistContext.single(next(model.parameters()).device)
        self.model = model.to(self.ctx.device)
        self.train_set, self.val_set, self.load_test = train, val, load_test
        self.out_dir = Path(out_dir) if out_dir is not None else None
        self.callbacks = list(callbacks)
        check_training_set(cfg.loss, train)
        self.sampler = ShardedBatchSampler(len(train), cfg.training.batch_size, self.ctx.rank,
                                           self.ctx.world_size, seed=cfg.seed, shuffle=True)
        self.steps_per_epoch = self.sampler.num_batches()
        self.optimiser_step = OptimiserStep(self.model, cfg, self.ctx, self.steps_per_epoch)
        # what the step owns, by the names loggers, callbacks and tests use
        self.loss_fn, self.optimizer = self.optimiser_step.loss_fn, self.optimiser_step.optimizer
        self.schedule, self.ema = self.optimiser_step.schedule, self.optimiser_step.ema
        self.train_acc = self.optimiser_step.train_acc
        self.speed: Optional[SpeedRecord] = None  # set by the max_time probe (run())
        self.run_epochs = cfg.training.max_epochs  # the run length, fixed in run()
        self.eval_batch_size = eval_batch_size(cfg.training, self.ctx.world_size)

        # progress (all of it goes into the checkpoint)
        self.epoch = 0
        self.batch_in_epoch = 0
        self.global_step = 0
        self.elapsed_before = 0.0
        self.best = BestModel()
        self.history: List[Dict[str, Any]] = []
        self.timings: List[Dict[str, Any]] = []  # wall clock per epoch (timing.csv)
        self.extra_state: Dict[str, Any] = {}
        self.last_checkpoint: Optional[str] = None  # named if the guard stops the run

        self._session_start = time.perf_counter()
        self._signals = StopSignals(self.log)
        self._console: List[TrainingLogger] = \
            [ConsoleLog(cfg.logging.progress_bar)] if self.ctx.is_main and verbose else []
        self.loggers: List[TrainingLogger] = list(self._console)

    # ------------------------------------------------------------------ bookkeeping
    @property
    def elapsed(self) -> float:
        """Training-loop seconds, summed over resumes."""
        return self.elapsed_before + (time.perf_counter() - self._session_start)

    def log(self, msg: str) -> None:
        """A log line for every logger (rank 0)."""
        for logger in self.loggers:
            logger.message(msg)

    def state_dict(self) -> Dict[str, Any]:
        """Everything that a resume needs (:func:`~tfpot.training.checkpoint.trainer_state`);
        collective."""
        return trainer_state(self)

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        """Continue from a checkpoint (:func:`~tfpot.training.checkpoint.restore_trainer`)."""
        restore_trainer(self, state)
        if self.out_dir is not None:
            self.last_checkpoint = f"{self.out_dir / CHECKPOINT_NAME} (step {self.global_step})"
        self._session_start = time.perf_counter()

    def save_checkpoint(self) -> None:
        state = self.state_dict()  # collective: every rank calls it
        if self.out_dir is not None and self.ctx.is_main:
            save_checkpoint(state, self.out_dir / CHECKPOINT_NAME)
            self.last_checkpoint = f"{self.out_dir / CHECKPOINT_NAME} (step {self.global_step})"

    def _save_model(self, name: str, extra: Dict[str, Any]) -> None:
        if self.out_dir is not None and self.ctx.is_main:
            save_model(self.model, self.out_dir / name, extra=extra)

    def _save_ema_model(self, name: str, extra: Dict[str, Any]) -> State:
        """Write the model with its EMA weights to ``name``; returns those weights (CPU)."""
        with self.ema.swapped():
            self._save_model(name, extra)
            return state_copy(self.model)

    # ------------------------------------------------------------------ steps and epochs
    def step(self, batch) -> None:
        """One optimiser step (:class:`~tfpot.training.step.OptimiserStep`); collective.

        Raises:
            NonFiniteError: the loss or a gradient is not finite (weights unchanged; logged).
            LossSpikeError: too many loss spikes in a row (:mod:`.spikes`; logged).
        """
        try:
            failure = self.optimiser_step(batch)
        except LossSpikeError as error:
            self.log(f"stopped at step {self.global_step + 1}: {error}")
            raise
        if failure is not None:
            error = step_failure(self, *failure)
            self.log(f"stopped: {error}")
            raise error
        if self.optimiser_step.skip_message:
            self.log(f"step {self.global_step + 1} (epoch {self.epoch + 1}, batch "
                     f"{self.batch_in_epoch + 1}): {self.optimiser_step.skip_message}")

    def validate(self) -> Dict[str, float]:
        """Metrics of the EMA weights on the validation set ({} without one); collective."""
        return validate(self.model, self.ema, self.val_set, self.eval_batch_size, self.ctx,
                        self.loss_fn)

    def _train_epoch(self) -> Tuple[bool, Optional[str]]:
        """Run the rest of the current epoch; returns (completed, "signal" or None)."""
        self.sampler.set_epoch(self.epoch, start=self.batch_in_epoch)
        loader = sharded_loader(self.train_set, self.sampler, self.cfg.data.num_workers)
        every = self.cfg.training.checkpoint_every
        for logger in self.loggers:
            logger.start_epoch(self)
        try:
            for batch in loader:
                self.step(batch)
                self.batch_in_epoch += 1
                self.global_step += 1
                for logger in self.loggers:
                    logger.after_step(self)
                if every and self.global_step % every == 0:
                    self.save_checkpoint()
                for cb in self.callbacks:
                    cb(self)
                if self.ctx.any(self._signals.received is not None):
                    return self.batch_in_epoch >= self.steps_per_epoch, "signal"
        finally:
            for logger in self.loggers:
                logger.end_steps(self)
        return self.batch_in_epoch >= self.steps_per_epoch, None

    def _end_epoch(self, epoch_time: float) -> None:
        train = self.optimiser_step.epoch_metrics()
        val = self.validate()
        check_metrics({**train, **{f"val_{k}": v for k, v in val.items()}},
                      f"epoch {self.epoch + 1} training/validation")
        monitor = val.get("loss", train.get("loss", math.inf))
        lr = self.schedule.lr
        self.schedule.step_epoch(monitor)
        if self.val_set is None:  # nothing to select on: the final model is the best model
            self.best.bad_epochs = 0
        else:
            info = {"epoch": self.epoch + 1, "step": self.global_step, "validation": dict(val)}
            self.best.update(self.epoch, monitor, val,
                             lambda: self._save_ema_model("best_model.pt", info))
        row: Dict[str, Any] = {"epoch": self.epoch + 1, "step": self.global_step, "lr": lr}
        row.update({f"train_{k}": v for k, v in train.items()})
        row.update({f"val_{k}": v for k, v in val.items()})
        self.history.append(row)
        self.timings.append({"epoch": self.epoch + 1, "step": self.global_step,
                             "time [s]": round(self.elapsed, 3),
                             "epoch_time [s]": round(epoch_time, 3)})
        for logger in self.loggers:
            logger.end_epoch(self, row)
        self.log(epoch_line(row, self.run_epochs, epoch_time, self.best.epoch == self.epoch))
        self.epoch += 1
        self.batch_in_epoch = 0
        self.train_acc.reset()
        self.save_checkpoint()

    # ------------------------------------------------------------------ run
    def run(self, state: Optional[Mapping[str, Any]] = None,
            preamble: Sequence[str] = ()) -> Dict[str, Any]:
        """Train (continuing from a checkpoint ``state`` if given); returns the summary
        (:func:`~tfpot.training.evaluation.run_summary`). ``preamble``: lines to log first."""
        if state is not None:
            self.load_state_dict(state)
        self._session_start = time.perf_counter()
        if self.out_dir is not None and self.ctx.is_main:
            self.loggers = self._console + file_loggers(self.cfg.logging, self.out_dir, self.epoch)
        try:
            with self._signals:
                return self._run(state is not None, preamble)
        finally:
            for logger in self.loggers:
                logger.close()
            self.loggers = list(self._console)

    def _run(self, resumed: bool, preamble: Sequence[str]) -> Dict[str, Any]:
        for line in preamble:
            self.log(line)
        if resumed:
            self.log(f"resuming at epoch {self.epoch + 1}, batch {self.batch_in_epoch}, "
                     f"step {self.global_step} ({self.elapsed_before:.0f} s trained)")
        self.run_epochs = plan_run(self)
        tc = self.cfg.training
        while True:
            reason = limit_reached(self.epoch, self.run_epochs, tc.max_epochs,
                                   tc.early_stopping_patience, self.best.bad_epochs)
            if reason is not None:
                break
            t0 = time.perf_counter()
            completed, signalled = self._train_epoch()
            if completed:
                self._end_epoch(time.perf_counter() - t0)
            if signalled:
                self.save_checkpoint()
                self.log(f"interrupted at step {self.global_step}: checkpoint written; "
                         f"continue with --resume")
                return run_summary(self, "interrupted", {})
        self.log(f"stopped: {REASONS.get(reason, reason)} after {self.global_step} steps, "
                 f"{self.elapsed:.1f} s")
        return self._finalize(reason)

    def _finalize(self, reason: str) -> Dict[str, Any]:
        info = {"epochs": self.epoch, "step": self.global_step, "stop_reason": reason}
        final_state = self._save_ema_model("final_model.pt", info)
        if self.val_set is None or self.best.state is None:  # nothing to select on: final = best
            self.best.state = final_state
            with weights_loaded(self.model, final_state):
                self._save_model("best_model.pt", info)
        self.save_checkpoint()
        test: Dict[str, float] = {}
        if self.load_test is not None:
            test = report_test_set(self.model, self.best.state, self.load_test(),
                                   self.eval_batch_size, self.ctx, self.loss_fn, self.out_dir,
                                   self.log)
        if self.best.epoch >= 0:
            self.log(format_metrics(self.best.metrics, f"best validation (epoch "
                                    f"{self.best.epoch + 1}, EMA weights):"))
        return run_summary(self, reason, test)
