"""The training loop, its setup from a config, and the ``fit`` API.

One step (on each of W ranks, see :mod:`tfpot.training.distributed`)::

    batch_r  = rank r's share of global batch b of epoch e      (order = f(seed, e))
    L        = WeightedLoss(model(batch_r), labels) / global counts
    g        = sum_r dL_r/dw                                       (all_reduce)
    w        = AdamW(w, clip(g));  lr <- schedule;  w_ema <- EMA(w)

Per epoch: train metrics (from the training batches, live weights), validation metrics with the
EMA weights, the schedule's epoch step, the best model (``best_model.pt``, EMA weights, lowest
validation loss), early stopping, a CSV row, TensorBoard scalars and a checkpoint. At the end:
``final_model.pt`` (EMA weights) and the test-set report of the best model.

Before training the model's buffers receive per-element reference energies E0 (float64 least
squares on the training set by default), a scale (force RMS) and a per-atom shift, so the model
files contain them: E_i = scale * NN_i + shift + E0[z_i].

Reproducible: the data order is a function of (seed, epoch) and nothing reads the clock except
once, to turn a ``max_time`` budget into a fixed number of epochs (:mod:`.budget`), so the same
config and seed give the same ``metrics.csv`` and models (wall-clock columns go to
``timing.csv``). Exact resume: the checkpoint holds every state that evolves (weights,
optimiser, schedule, EMA, RNGs, position in the epoch, partial metric sums, best result,
patience counter, history, the budget's speed record), so ``--resume`` continues the run it
interrupted bit for bit.
"""

from __future__ import annotations

import csv
import io
import json
import math
import signal
import sys
import threading
import time
from pathlib import Path
from typing import Any, Callable, Dict, List, Mapping, Optional, Sequence, Tuple, Union

import numpy as np
import torch

from tfpot.atomic_io import remove_stale_temp_files
from tfpot.builder import as_atomic_numbers, build_model, model_from_config
from tfpot.data.check import DataCheck
from tfpot.inference import model_dtype
from tfpot.model import EnergyModel
from tfpot.model_file import save_model
from tfpot.training.budget import SpeedRecord, describe_plan, planned_epochs, probe_speed
from tfpot.training.checkpoint import (CHECKPOINT_NAME, atomic_write_text, load_checkpoint,
                                       rng_state, save_checkpoint, set_rng_state)
from tfpot.training.config import (ConfigError, TrainConfig, config_from_dict, load_config,
                                   resolve_data_paths)
from tfpot.training.data import (StructureSet, atoms_set, labels_needed, load_splits,
                                 verify_data)
from tfpot.training.distributed import (DistContext, ShardedBatchSampler, all_reduce_gradients,
                                        setup, sharded_loader, teardown)
from tfpot.training.ema import ExponentialMovingAverage
from tfpot.training.guard import (NonFiniteError, check_metrics, nonfinite_graphs,
                                  step_error, step_is_finite)
from tfpot.training.losses import Targets, WeightedLoss, errors
from tfpot.training.metrics import (MetricAccumulator, evaluate, format_metrics, predict_batch,
                                    short_metrics, units_of, with_units)
from tfpot.training.schedules import LRSchedule
from tfpot.training.normalisation import apply_statistics, training_statistics

Callback = Callable[["Trainer"], None]

#: units of the entries of statistics.json
STATISTICS_UNITS = {"e0": "eV (per atom of the element)", "energy_scale": "eV",
                    "energy_shift": "eV/atom", "avg_num_neighbors": "neighbours per atom",
                    "force_rms": "eV/Å", "energy_per_atom_std": "eV/atom"}

#: Config keys that may change between a run and its resume.
RESUMABLE_KEYS = ("training.max_epochs", "training.max_time", "training.early_stopping_patience",
                  "training.checkpoint_every", "logging.", "device", "output_dir", "num_threads",
                  "data.num_workers", "data.min_distance")


# ----------------------------------------------------------------------------------------------
class Trainer:
    """Trains an :class:`~tfpot.model.EnergyModel` (see the module doc).

    Args:
        model: the model, with E0/scale/shift already set (see :func:`apply_statistics`).
        cfg: the run's settings (``cfg.data`` is not read here).
        train, val: structure sets (val may be None: then the training loss is monitored).
        out_dir: where files go (rank 0); None writes nothing (no checkpoints either).
        ctx: distributed context (default: one process on the model's device).
        load_test: returns the test set; called once, after training.
        callbacks: called as ``cb(trainer)`` after every optimiser step (after a checkpoint).
        verbose: print epoch lines (rank 0).
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
        self.verbose = verbose
        tc = cfg.training
        if len(train) == 0:
            raise ConfigError("the training set is empty; give data.split.train > 0 or a "
                              "non-empty data.train")

        self.loss_fn = WeightedLoss(cfg.loss.energy_weight, cfg.loss.forces_weight,
                                    cfg.loss.stress_weight, cfg.loss.per_atom_energy,
                                    cfg.loss.type, cfg.loss.huber_delta)
        labels = train.label_counts()
        for term, key in (("energy", "energy_weight"), ("forces", "forces_weight"),
                          ("stress", "stress_weight")):
            if getattr(cfg.loss, key) > 0 and labels[term] == 0:
                hint = " (energy-only training, e.g. QM9)" if term == "forces" else ""
                raise ConfigError(f"loss.{key} is {getattr(cfg.loss, key):g} but no training "
                                  f"structure has {term} labels; set loss.{key}: 0{hint}")
        self.compute_forces = cfg.loss.forces_weight > 0
        self.compute_stress = cfg.loss.stress_weight > 0

        params = [p for p in self.model.parameters() if p.requires_grad]
        self.optimizer = torch.optim.AdamW(params, lr=cfg.optimizer.lr,
                                           weight_decay=cfg.optimizer.weight_decay,
                                           amsgrad=cfg.optimizer.amsgrad)
        self.sampler = ShardedBatchSampler(len(train), tc.batch_size, self.ctx.rank,
                                           self.ctx.world_size, seed=cfg.seed, shuffle=True)
        self.steps_per_epoch = self.sampler.num_batches()
        self.schedule = LRSchedule(self.optimizer, cfg.schedule, self.steps_per_epoch, tc.max_epochs)
        self.speed: Optional[SpeedRecord] = None  # set by the max_time probe (run())
        self.run_epochs = tc.max_epochs  # the run length, fixed in run()
        self.ema = ExponentialMovingAverage(self.model, tc.ema_decay)
        self.train_acc = MetricAccumulator(self.ctx.device)

        # progress (all of it goes into the checkpoint)
        self.epoch = 0
        self.batch_in_epoch = 0
        self.global_step = 0
        self.elapsed_before = 0.0
        self.best: Dict[str, Any] = {"loss": math.inf, "epoch": -1, "metrics": {}}
        self.best_state: Optional[Dict[str, torch.Tensor]] = None
        self.bad_epochs = 0
        self.history: List[Dict[str, Any]] = []
        self.timings: List[Dict[str, Any]] = []  # wall clock per epoch (timing.csv)
        self.extra_state: Dict[str, Any] = {}
        self._last_checkpoint: Optional[str] = None  # named if the guard stops the run

        self._session_start = time.perf_counter()
        self._signal: Optional[int] = None
        self._bar = None
        self._tb = None
        self._log_file = None

    # ------------------------------------------------------------------ bookkeeping
    @property
    def elapsed(self) -> float:
        """Training-loop seconds, summed over resumes."""
        return self.elapsed_before + (time.perf_counter() - self._session_start)

    def log(self, msg: str) -> None:
        if not self.ctx.is_main:
            return
        if self.verbose:
            if self._bar is not None:
                self._bar.write(msg)
            else:
                print(msg, flush=True)
        if self._log_file is not None:
            self._log_file.write(msg + "\n")
            self._log_file.flush()

    def state_dict(self) -> Dict[str, Any]:
        """Everything that a resume needs (see :mod:`tfpot.training.checkpoint`)."""
        sums = self.train_acc.sums.clone()
        self.ctx.all_reduce_(sums)  # partial-epoch sums of all ranks
        return {
            "config": self.cfg.to_dict(),
            "model_config": dict(self.model.config),
            "model_state": {k: v.detach().cpu() for k, v in self.model.state_dict().items()},
            "optimizer": self.optimizer.state_dict(),
            "schedule": self.schedule.state_dict(),
            "ema": self.ema.state_dict(),
            "rng": rng_state(),
            "progress": {"epoch": self.epoch, "batch_in_epoch": self.batch_in_epoch,
                         "global_step": self.global_step, "elapsed": self.elapsed,
                         "world_size": self.ctx.world_size},
            "train_sums": sums.cpu().tolist(),
            "best": dict(self.best),
            "best_state": self.best_state,
            "bad_epochs": self.bad_epochs,
            "history": list(self.history),
            "timings": list(self.timings),
            "extra": dict(self.extra_state),
            "speed": self.speed.to_dict() if self.speed is not None else None,
        }

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        self.model.load_state_dict(state["model_state"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.schedule.load_state_dict(state["schedule"])
        self.ema.load_state_dict(state["ema"])
        set_rng_state(state["rng"])
        p = state["progress"]
        self.epoch, self.batch_in_epoch = int(p["epoch"]), int(p["batch_in_epoch"])
        self.global_step, self.elapsed_before = int(p["global_step"]), float(p["elapsed"])
        if self.ctx.is_main:
            self.train_acc.load_state(state["train_sums"])
        else:
            self.train_acc.reset()
        self.best = dict(state["best"])
        self.best_state = state.get("best_state")
        self.bad_epochs = int(state["bad_epochs"])
        self.history = list(state["history"])
        self.timings = list(state.get("timings", []))
        self.extra_state = dict(state.get("extra", {}))
        speed = state.get("speed")
        self.speed = SpeedRecord.from_dict(speed) if speed is not None else None
        if self.out_dir is not None:
            self._last_checkpoint = f"{self.out_dir / CHECKPOINT_NAME} (step {self.global_step})"
        self._session_start = time.perf_counter()

    def save_checkpoint(self) -> None:
        state = self.state_dict()  # collective: every rank calls it
        if self.out_dir is not None and self.ctx.is_main:
            save_checkpoint(state, self.out_dir / CHECKPOINT_NAME)
            self._last_checkpoint = f"{self.out_dir / CHECKPOINT_NAME} (step {self.global_step})"

    def _save_model(self, name: str, extra: Dict[str, Any]) -> None:
        if self.out_dir is None or not self.ctx.is_main:
            return
        save_model(self.model, self.out_dir / name, extra=extra)

    # ------------------------------------------------------------------ one step
    def _step(self, batch) -> None:
        model, ctx = self.model, self.ctx
        model.train()
        self.optimizer.zero_grad(set_to_none=True)
        loss = err = t = None
        if batch is not None:
            batch = batch.to(ctx.device)
            t = Targets.from_batch(batch)
            counts = self.loss_fn.counts(t)
        else:
            counts = torch.zeros(3, dtype=torch.float64, device=ctx.device)
        ctx.all_reduce_(counts)
        if batch is not None:
            out = predict_batch(model, batch, self.compute_forces, self.compute_stress)
            err = errors(out, t, self.loss_fn.per_atom_energy)
            loss = self.loss_fn.combine(self.loss_fn.sums(err), counts)
            loss.backward()
            self.train_acc.add(err, self.loss_fn)
        all_reduce_gradients(self.optimizer.param_groups[0]["params"], ctx)
        if not step_is_finite(loss, self.optimizer.param_groups[0]["params"], ctx):
            raise self._step_failure(loss, err, t)
        if self.cfg.training.grad_clip:
            torch.nn.utils.clip_grad_norm_(self.optimizer.param_groups[0]["params"],
                                           self.cfg.training.grad_clip)
        self.optimizer.step()
        self.schedule.step_batch()
        self.ema.update()

    def _plan_run(self) -> None:
        """Fix the run length (:mod:`.budget`): probe the speed once if a budget has no record."""
        tc = self.cfg.training
        if tc.max_time is not None and self.speed is None:
            self.speed = probe_speed(self)
        self.run_epochs = planned_epochs(tc.max_epochs, tc.max_time, self.speed)
        self.schedule.set_epochs(self.run_epochs)
        self.log(describe_plan(self.run_epochs, tc.max_epochs, tc.max_time, self.speed))

    def _step_failure(self, loss, err, t) -> NonFiniteError:
        """The guard's error for this step (see :mod:`tfpot.training.guard`), also logged."""
        positions = self.sampler.global_batches()[self.batch_in_epoch]
        mine = np.array_split(positions, self.ctx.world_size)[self.ctx.rank]
        bad = [] if err is None else mine[nonfinite_graphs(err, t, self.loss_fn)]
        frames = self.train_set.frame_numbers
        kept = [self._last_checkpoint] if self._last_checkpoint else []
        if self.best["epoch"] >= 0 and self.out_dir is not None:
            kept.append(f"{self.out_dir / 'best_model.pt'} (epoch {self.best['epoch'] + 1})")
        e = step_error(self.global_step + 1, self.epoch + 1, self.batch_in_epoch + 1,
                       None if loss is None else float(loss.detach()), self.train_set.source_name,
                       frames(positions), frames(bad), kept)
        self.log(f"stopped: {e}")
        return e

    # ------------------------------------------------------------------ the loop
    def _stop_requested(self) -> Optional[str]:
        signalled = self.ctx.any(self._signal is not None)
        return "signal" if signalled else None

    def _stop_between_epochs(self) -> Optional[str]:
        tc = self.cfg.training
        if self.epoch >= self.run_epochs:
            return "max_epochs" if self.run_epochs >= tc.max_epochs else "max_time"
        if tc.early_stopping_patience is not None and self.bad_epochs >= tc.early_stopping_patience:
            return "early_stopping"
        return None

    def _train_epoch(self) -> tuple:
        """Run the rest of the current epoch; returns (completed, stop_reason)."""
        from tqdm.auto import tqdm

        self.sampler.set_epoch(self.epoch, start=self.batch_in_epoch)
        loader = sharded_loader(self.train_set, self.sampler, self.cfg.data.num_workers)
        # no bar when stderr is a file (batch jobs): the epoch lines say the same
        show = (self.cfg.logging.progress_bar and self.ctx.is_main and self.verbose
                and sys.stderr.isatty())
        self._bar = tqdm(total=self.steps_per_epoch, initial=self.batch_in_epoch, leave=False,
                         desc=f"epoch {self.epoch + 1}/{self.run_epochs}",
                         disable=not show, dynamic_ncols=True, file=sys.stderr)
        stop = None
        try:
            for batch in loader:
                self._step(batch)
                self.batch_in_epoch += 1
                self.global_step += 1
                if show and self.batch_in_epoch % 5 == 0:
                    m = self.train_acc.compute(self.loss_fn)
                    self._bar.set_postfix_str(short_metrics(m), refresh=False)
                self._bar.update(1)
                every = self.cfg.training.checkpoint_every
                if every and self.global_step % every == 0:
                    self.save_checkpoint()
                for cb in self.callbacks:
                    cb(self)
                stop = self._stop_requested()
                if stop is not None:
                    break
        finally:
            self._bar.close()
            self._bar = None
        return self.batch_in_epoch >= self.steps_per_epoch, stop

    def _validate(self) -> Dict[str, float]:
        if self.val_set is None or len(self.val_set) == 0:
            return {}
        bs = self.cfg.training.val_batch_size or 2 * self.cfg.training.batch_size
        with self.ema.swapped():
            return evaluate(self.model, self.val_set, max(bs // self.ctx.world_size, 1), self.ctx,
                            self.loss_fn)

    def _track_best(self, monitor: float, val: Dict[str, float]) -> bool:
        if not monitor < self.best["loss"]:
            return False
        self.best = {"loss": monitor, "epoch": self.epoch, "metrics": dict(val)}
        with self.ema.swapped():
            self.best_state = {k: v.detach().cpu().clone() for k, v in self.model.state_dict().items()}
            self._save_model("best_model.pt", {"epoch": self.epoch + 1, "step": self.global_step,
                                               "validation": dict(val)})
        return True

    def _end_epoch(self, epoch_time: float) -> None:
        sums = self.train_acc.sums.clone()
        self.ctx.all_reduce_(sums)
        acc = MetricAccumulator(sums.device)
        acc.sums.copy_(sums)
        train = acc.compute(self.loss_fn)
        val = self._validate()
        check_metrics({**train, **{f"val_{k}": v for k, v in val.items()}},
                      f"epoch {self.epoch + 1} training/validation")
        monitor = val.get("loss", train.get("loss", math.inf))
        lr = self.schedule.lr
        self.schedule.step_epoch(monitor)
        if self.val_set is None:  # nothing to select on: the final model is the best model
            self.bad_epochs = 0
        elif self._track_best(monitor, val):
            self.bad_epochs = 0
        else:
            self.bad_epochs += 1
        row: Dict[str, Any] = {"epoch": self.epoch + 1, "step": self.global_step, "lr": lr}
        row.update({f"train_{k}": v for k, v in train.items()})
        row.update({f"val_{k}": v for k, v in val.items()})
        self.history.append(row)
        self.timings.append({"epoch": self.epoch + 1, "step": self.global_step,
                             "time [s]": round(self.elapsed, 3),
                             "epoch_time [s]": round(epoch_time, 3)})
        self._write_logs(row)
        best = " *" if self.best["epoch"] == self.epoch else ""
        remaining = (self.run_epochs - self.epoch - 1) * epoch_time
        self.log(f"epoch {self.epoch + 1:4d}/{self.run_epochs}  {epoch_time:6.1f} s  "
                 f"lr {lr:.2e}  train: {short_metrics(train)}"
                 + (f" | val: {short_metrics(val)}{best}" if val else "")
                 + f"  ETA {_hms(remaining)}")
        self.epoch += 1
        self.batch_in_epoch = 0
        self.train_acc.reset()
        self.save_checkpoint()

    def _write_logs(self, row: Dict[str, Any]) -> None:
        if self.out_dir is None or not self.ctx.is_main:
            return
        if self.cfg.logging.csv:
            # metrics.csv: the same for the same config and seed; wall-clock times in timing.csv
            atomic_write_text(_csv_text([with_units(r) for r in self.history]),
                              self.out_dir / "metrics.csv")
            atomic_write_text(_csv_text(self.timings), self.out_dir / "timing.csv")
        if self._tb is not None:
            for k, v in row.items():
                if k not in ("epoch", "step") and isinstance(v, (int, float)):
                    tag = k.replace("train_", "train/").replace("val_", "val/")
                    self._tb.add_scalar(tag, v, row["epoch"])
            self._tb.flush()

    def _open_logs(self) -> None:
        if self.out_dir is None or not self.ctx.is_main:
            return
        self.out_dir.mkdir(parents=True, exist_ok=True)
        self._log_file = open(self.out_dir / "train.log", "a")
        tb = self.cfg.logging.tensorboard
        if tb:
            try:
                from torch.utils.tensorboard import SummaryWriter
            except ImportError:
                if tb is True:
                    raise ImportError("logging.tensorboard is true but tensorboard is not installed "
                                      "(pip install tensorboard, or set it to auto/false)") from None
                return
            self._tb = SummaryWriter(str(self.out_dir / "tensorboard"), purge_step=self.epoch + 1)

    def _close_logs(self) -> None:
        if self._tb is not None:
            self._tb.close()
            self._tb = None
        if self._log_file is not None:
            self._log_file.close()
            self._log_file = None

    # ------------------------------------------------------------------ run
    def run(self, state: Optional[Mapping[str, Any]] = None,
            preamble: Sequence[str] = ()) -> Dict[str, Any]:
        """Train (continuing from a checkpoint ``state`` if given); returns a summary dict.

        ``preamble``: lines to log first (data, statistics, model).
        """
        if state is not None:
            self.load_state_dict(state)
        self._session_start = time.perf_counter()
        self._open_logs()
        old = self._install_signal_handlers()
        try:
            for line in preamble:
                self.log(line)
            if state is not None:
                self.log(f"resuming at epoch {self.epoch + 1}, batch {self.batch_in_epoch}, "
                         f"step {self.global_step} ({self.elapsed_before:.0f} s trained)")
            self._plan_run()
            reason = None
            while reason is None:
                reason = self._stop_between_epochs()
                if reason is not None:
                    break
                t0 = time.perf_counter()
                completed, reason = self._train_epoch()
                if completed:
                    self._end_epoch(time.perf_counter() - t0)
                    if reason is None:
                        continue
                if reason == "signal":
                    self.save_checkpoint()
                    self.log(f"interrupted at step {self.global_step}: checkpoint written; "
                             f"continue with --resume")
                    return self._summary("interrupted", {})
            self.log(f"stopped: {_REASONS.get(reason, reason)} after {self.global_step} steps, "
                     f"{self.elapsed:.1f} s")
            return self._finalize(reason)
        finally:
            self._restore_signal_handlers(old)
            self._close_logs()

    def _finalize(self, reason: str) -> Dict[str, Any]:
        info = {"epochs": self.epoch, "step": self.global_step, "stop_reason": reason}
        with self.ema.swapped():
            self._save_model("final_model.pt", info)
            final_state = {k: v.detach().cpu().clone() for k, v in self.model.state_dict().items()}
        if self.val_set is None or self.best_state is None:  # nothing to select on: final = best
            self.best_state = final_state
            self._save_model_state("best_model.pt", final_state, info)
        self.save_checkpoint()
        test: Dict[str, float] = {}
        if self.load_test is not None:
            test = self.evaluate_test()
        if self.best["epoch"] >= 0:
            self.log(format_metrics(self.best["metrics"], f"best validation (epoch {self.best['epoch'] + 1}, EMA weights):"))
        return self._summary(reason, test)

    def _save_model_state(self, name: str, state: Dict[str, torch.Tensor], extra: Dict[str, Any]) -> None:
        current = {k: v.detach().clone() for k, v in self.model.state_dict().items()}
        self.model.load_state_dict(state)
        try:
            self._save_model(name, extra)
        finally:
            self.model.load_state_dict(current)

    def evaluate_test(self) -> Dict[str, float]:
        """Metrics of the best model on the test set (read now, for the first time)."""
        test_set = self.load_test()
        current = {k: v.detach().clone() for k, v in self.model.state_dict().items()}
        self.model.load_state_dict(self.best_state)
        try:
            bs = self.cfg.training.val_batch_size or 2 * self.cfg.training.batch_size
            metrics = evaluate(self.model, test_set, max(bs // self.ctx.world_size, 1), self.ctx,
                               self.loss_fn)
        finally:
            self.model.load_state_dict(current)
        check_metrics(metrics, "test-set")
        self.log(format_metrics(metrics, f"test set ({len(test_set)} structures, best model):"))
        if self.out_dir is not None and self.ctx.is_main:
            atomic_write_text(json.dumps({"num_structures": len(test_set), **metrics,
                                          "units": units_of(metrics)}, indent=2),
                              self.out_dir / "test_metrics.json")
        return metrics

    def _summary(self, reason: str, test: Dict[str, float]) -> Dict[str, Any]:
        summary = {"stop_reason": reason, "epochs": self.epoch,
                   "planned_epochs": self.run_epochs,
                   "speed": self.speed.to_dict() if self.speed is not None else None,
                   "steps": self.global_step, "time": self.elapsed,
                   "best_epoch": self.best["epoch"] + 1,
                   "best_validation": self.best["metrics"], "test": test,
                   "last_epoch": self.history[-1] if self.history else {}}
        summary["units"] = {"time": "s", **units_of(summary["last_epoch"]), **units_of(test)}
        if self.out_dir is not None and self.ctx.is_main:
            atomic_write_text(json.dumps(summary, indent=2, default=float),
                              self.out_dir / "summary.json")
        return summary

    def _install_signal_handlers(self):
        if threading.current_thread() is not threading.main_thread():
            return None
        old = {}

        def handler(signum, frame):
            if self._signal is not None:  # second signal: stop now
                raise KeyboardInterrupt
            self._signal = signum
            self.log(f"signal {signum}: finishing the current step, then writing a checkpoint "
                     "(send again to stop at once)")

        for sig in (signal.SIGINT, signal.SIGTERM):
            old[sig] = signal.signal(sig, handler)
        return old

    @staticmethod
    def _restore_signal_handlers(old) -> None:
        if old:
            for sig, h in old.items():
                signal.signal(sig, h)


_REASONS = {"max_epochs": "reached training.max_epochs",
            "max_time": "ran the epochs that the training.max_time budget allows",
            "early_stopping": "no validation improvement for training.early_stopping_patience epochs"}


def _csv_text(rows: Sequence[Mapping[str, Any]]) -> str:
    keys: List[str] = []
    for r in rows:
        keys += [k for k in r if k not in keys]
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=keys, restval="")
    writer.writeheader()
    writer.writerows(rows)
    return buf.getvalue()


def _hms(seconds: float) -> str:
    seconds = int(max(seconds, 0))
    h, rem = divmod(seconds, 3600)
    m, s = divmod(rem, 60)
    return f"{h}h{m:02d}m{s:02d}s" if h else f"{m}m{s:02d}s"


# ----------------------------------------------------------------------------------------------
def _check_resume_config(old: Mapping[str, Any], new: Mapping[str, Any], path: Path) -> None:
    def flat(d, prefix=""):
        out = {}
        for k, v in d.items():
            if isinstance(v, Mapping) and k not in ("options", "e0"):
                out.update(flat(v, prefix + k + "."))
            else:
                out[prefix + k] = v
        return out

    a, b = flat(old), flat(new)
    changed = [k for k in sorted(set(a) | set(b)) if a.get(k) != b.get(k)
               and not any(k == r or (r.endswith(".") and k.startswith(r)) for r in RESUMABLE_KEYS)]
    if changed:
        diffs = "; ".join(f"{k}: {a.get(k)!r} -> {b.get(k)!r}" for k in changed)
        raise ConfigError(f"{path}: cannot resume with a changed config ({diffs}); only "
                          f"{', '.join(RESUMABLE_KEYS)} may change. Start a new output_dir instead.")


def _needs(cfg: TrainConfig) -> Tuple[str, ...]:
    """The labels the config's loss uses (what the data check requires of every frame)."""
    return labels_needed(cfg.loss.energy_weight, cfg.loss.forces_weight, cfg.loss.stress_weight)


def _species(cfg: TrainConfig, splits) -> List[int]:
    if cfg.model.species is not None:
        return sorted(as_atomic_numbers(cfg.model.species))
    elements = set(splits.train.elements())
    if splits.val is not None:
        elements |= set(splits.val.elements())
    return sorted(elements)


def train_from_config(config: Union[str, Path, Mapping[str, Any], TrainConfig], resume: bool = False,
                      output_dir: Optional[Union[str, Path]] = None,
                      callbacks: Sequence[Callback] = (), verbose: bool = True) -> Path:
    """Train as a config describes; returns the output directory (see :func:`train_run`)."""
    return train_run(config, resume, output_dir, callbacks, verbose)[0]


def train_run(config: Union[str, Path, Mapping[str, Any], TrainConfig], resume: bool = False,
              output_dir: Optional[Union[str, Path]] = None,
              callbacks: Sequence[Callback] = (), verbose: bool = True) -> Tuple[Path, Dict[str, Any]]:
    """Train as a config describes; returns the output directory and the run's summary (as
    ``summary.json``; ``summary["stop_reason"]`` is ``"interrupted"`` after Ctrl-C / SIGTERM).

    Args:
        config: YAML path, dict or :class:`TrainConfig`.
        resume: continue from ``output_dir/checkpoint.pt`` (a new run if there is none). Without
            it an existing checkpoint is an error, never silently overwritten.
        output_dir: overrides ``output_dir`` of the config.
        callbacks: ``cb(trainer)`` after every step.
        verbose: print progress (rank 0).

    Files in the output directory: ``config.yaml`` (resolved), ``checkpoint.pt``,
    ``best_model.pt``, ``final_model.pt``, ``metrics.csv``, ``train.log``, ``tensorboard/``,
    ``splits.npz`` (indices of the split), ``statistics.json``, ``test_metrics.json``,
    ``summary.json``.
    """
    import yaml

    cfg = load_config(config)
    resolve_data_paths(cfg, Path.cwd())  # relative ones (dicts, recipes): absolute in config.yaml
    if output_dir is not None:
        cfg.output_dir = str(output_dir)
    out = Path(cfg.output_dir)
    ckpt_path = out / CHECKPOINT_NAME
    ctx = setup(cfg.device)
    try:
        state = None
        if ckpt_path.exists():
            if not resume:
                raise ConfigError(f"{out} already holds a training run ({ckpt_path.name}); pass "
                                  f"--resume (resume=True) to continue it, or choose another "
                                  f"output_dir")
            state = load_checkpoint(ckpt_path)
            _check_resume_config(state["config"], cfg.to_dict(), ckpt_path)
        if cfg.num_threads is not None:
            torch.set_num_threads(cfg.num_threads)
        torch.manual_seed(cfg.seed)
        np.random.seed(cfg.seed % 2 ** 32)

        preamble: List[str] = []  # logged by the trainer (console and train.log)
        say = preamble.append
        if ctx.is_main:
            for path in remove_stale_temp_files(out):
                say(f"removed {path.name}: a temporary file of an interrupted write")
        known = state["model_config"]["species"] if state is not None else \
            (None if cfg.model.species is None else _species(cfg, None))
        echo = (lambda line: print(line, file=sys.stderr)) if verbose and ctx.is_main else None
        preamble += verify_data(cfg.data, _needs(cfg), known, echo)

        splits = load_splits(cfg.data, cfg.seed)
        say(f"data: {splits.description}")
        if state is not None:
            model = model_from_config(state["model_config"])
            model = model.to(torch.float64 if cfg.model.dtype == "float64" else torch.float32)
            model.load_state_dict(state["model_state"])
            stats = None
        else:
            species = _species(cfg, splits)
            m = cfg.model
            stats = training_statistics(splits.train, species, m.e0, m.energy_scale,
                                        m.energy_shift, seed=cfg.seed)
            hyper = m.resolve(stats["avg_num_neighbors"] if m.avg_num_neighbors == "auto" else None)
            model = build_model(species, cutoff=cfg.data.cutoff, preset=hyper, dtype=m.dtype,
                                seed=cfg.seed if m.seed is None else m.seed)
            apply_statistics(model, stats)
            for note in stats["notes"]:
                say(f"note: {note}")
            say(f"statistics: E0 {_fmt_e0(stats['e0'])}, scale {stats['energy_scale']:.4g} eV, "
                f"shift {stats['energy_shift']:.4g} eV/atom, avg neighbours "
                f"{stats['avg_num_neighbors']:.2f}")
        say(f"model: {model!r}")
        if ctx.is_main:
            out.mkdir(parents=True, exist_ok=True)
            atomic_write_text(yaml.safe_dump(cfg.to_dict(), sort_keys=False), out / "config.yaml")
            if splits.indices:
                np.savez(out / "splits.npz", **splits.indices)
            if stats is not None:
                atomic_write_text(json.dumps({**{k: ({str(z): e for z, e in v.items()} if k == "e0"
                                                     else v) for k, v in stats.items()},
                                              "units": STATISTICS_UNITS}, indent=2),
                                  out / "statistics.json")
        ctx.barrier()
        trainer = Trainer(model, cfg, splits.train, splits.val, out, ctx, splits.load_test,
                          callbacks, verbose)
        summary = trainer.run(state, preamble)
    finally:
        teardown(ctx)
    return out, summary


def _fmt_e0(e0: Mapping[int, float]) -> str:
    from ase.data import chemical_symbols

    return "{" + ", ".join(f"{chemical_symbols[z]}: {v:.4f}" for z, v in sorted(e0.items())) + "}"


def fit(model: EnergyModel, train_atoms: Sequence, val_atoms: Optional[Sequence] = None, *,
        epochs: int = 100, batch_size: int = 8, lr: float = 5e-3, energy_weight: float = 1.0,
        forces_weight: float = 10.0, stress_weight: float = 0.0, seed: int = 0,
        max_time: Optional[float] = None, out_dir: Optional[Union[str, Path]] = None,
        ema_decay: Optional[float] = 0.99, e0: Union[str, Mapping[str, float]] = "least_squares",
        schedule: str = "plateau", weight_decay: float = 0.0, grad_clip: Optional[float] = 10.0,
        resume: bool = False, verbose: bool = False, progress_bar: bool = False,
        callbacks: Sequence[Callback] = ()) -> EnergyModel:
    """Fit ``model`` to labelled ASE structures; returns it with the EMA weights, in eval mode.

    E0 (``e0``), scale and shift are computed from ``train_atoms`` and written into the model's
    buffers first (overwriting them). Labels come from each Atoms' calculator (eV, eV/Å, eV/Å^3),
    e.g. a SinglePointCalculator as :func:`tfpot.data.read_structures` attaches.

    Args:
        model: e.g. ``tfpot.build_model(["H", "C", "O"], preset="small")``; trained in place on
            its device.
        train_atoms, val_atoms: lists of labelled Atoms; with ``val_atoms`` the schedule and
            early stopping follow the validation loss.
        epochs, batch_size, lr, seed, max_time: as ``training.max_epochs`` etc. of the config.
        energy_weight, forces_weight, stress_weight: loss weights (0 for absent labels).
        schedule: ``plateau``, ``constant`` or ``cosine``; ``max_time`` (s) fixes the number of
            epochs once, from the measured speed (:mod:`tfpot.training.budget`), and the cosine
            reaches its floor (1e-6) at the end of them, so a budgeted run ends annealed.
        out_dir: if given, checkpoints, models and logs are written there (as ``tfpot train``).
        resume: continue from ``out_dir/checkpoint.pt``.
    """
    raw = {"seed": seed, "device": str(next(model.parameters()).device),
           "output_dir": str(out_dir) if out_dir is not None else "<none>",
           "data": {"path": "<in-memory atoms>", "cutoff": float(model.cutoff)},
           "model": {**{k: v for k, v in model.config.items() if k not in ("species", "cutoff")},
                     "dtype": str(model_dtype(model))[6:],
                     "e0": e0 if isinstance(e0, str) else dict(e0)},
           "loss": {"energy_weight": energy_weight, "forces_weight": forces_weight,
                    "stress_weight": stress_weight},
           "optimizer": {"lr": lr, "weight_decay": weight_decay},
           "schedule": {"type": schedule},
           "training": {"max_epochs": epochs, "max_time": max_time, "batch_size": batch_size,
                        "ema_decay": ema_decay, "grad_clip": grad_clip},
           "logging": {"progress_bar": progress_bar, "tensorboard": False if out_dir is None else "auto"}}
    cfg = config_from_dict(raw, "fit()")
    check = DataCheck(min_distance=cfg.data.min_distance, species=model.species, needs=_needs(cfg))
    train_atoms = list(check.filter(train_atoms, "train_atoms", "structure"))
    val_atoms = list(check.filter(val_atoms or [], "val_atoms", "structure")) or None
    check.raise_if_problems("")
    if out_dir is not None:
        remove_stale_temp_files(out_dir)
    train = atoms_set(train_atoms, model.cutoff, "train")
    val = atoms_set(val_atoms, model.cutoff, "val") if val_atoms else None
    state = None
    if out_dir is not None:
        ckpt = Path(out_dir) / CHECKPOINT_NAME
        if ckpt.exists():
            if not resume:
                raise ConfigError(f"{out_dir} already holds a training run; pass resume=True or "
                                  f"another out_dir")
            state = load_checkpoint(ckpt)
            _check_resume_config(state["config"], cfg.to_dict(), ckpt)
    if state is None:
        stats = training_statistics(train, model.species, cfg.model.e0, seed=seed)
        apply_statistics(model, stats)
    trainer = Trainer(model, cfg, train, val, out_dir, callbacks=callbacks, verbose=verbose)
    trainer.run(state)
    trainer.ema.copy_to()
    return model.eval()
