"""What a training run shows and writes, as loggers that the training loop calls.

The loop (:class:`~tfpot.training.loop.Trainer`) calls every logger of rank 0 at these points
(each method of :class:`TrainingLogger` does nothing unless a logger overrides it):

====================================  ===========================================================
``start_epoch(trainer)``              before the first (or, on resume, the next) step of an epoch
``after_step(trainer)``               after each optimiser step
``end_steps(trainer)``                the epoch's steps are done (or a signal stopped them)
``end_epoch(trainer, row)``           after validation; ``row``: the epoch's ``metrics.csv`` row
``message(text)``                     a log line (data, statistics, epoch lines, stop reasons)
``close()``                           the run ends (also on an error)
====================================  ===========================================================

:class:`ConsoleLog` prints the lines and a tqdm bar per epoch (on a terminal); the others write
into the output directory: :class:`TextLog` (``train.log``), :class:`CsvLog` (``metrics.csv``
with units in the header, the same for the same config and seed; wall-clock seconds in
``timing.csv``) and :class:`TensorBoardLog` (``tensorboard/``, scalars per epoch).
"""

from __future__ import annotations

import csv
import io
import sys
from pathlib import Path
from typing import Any, List, Mapping, Optional, Sequence

from tqdm.auto import tqdm

from tfpot.atomic_io import atomic_write_text
from tfpot.training.config import LoggingConfig
from tfpot.training.metrics import short_metrics, with_units

try:  # optional (pip install tfpot[train]); logging.tensorboard: auto skips it when absent
    from torch.utils.tensorboard import SummaryWriter
except ImportError:
    SummaryWriter = None


class TrainingLogger:
    """The callback protocol of the training loop (see the module doc); every hook is a no-op
    here. ``trainer`` is the :class:`~tfpot.training.loop.Trainer`, read but never changed."""

    def start_epoch(self, trainer: Any) -> None:
        pass

    def after_step(self, trainer: Any) -> None:
        pass

    def end_steps(self, trainer: Any) -> None:
        pass

    def end_epoch(self, trainer: Any, row: Mapping[str, Any]) -> None:
        pass

    def message(self, text: str) -> None:
        pass

    def close(self) -> None:
        pass


class ConsoleLog(TrainingLogger):
    """Log lines on stdout and, with ``progress_bar`` and stderr on a terminal, a tqdm bar per
    epoch (with the running training errors every 5 steps); batch jobs, whose stderr is a file,
    get no bar: the epoch lines say the same."""

    def __init__(self, progress_bar: bool) -> None:
        self.show_bar = progress_bar and sys.stderr.isatty()
        self._bar: Optional[tqdm] = None

    def start_epoch(self, trainer: Any) -> None:
        if self.show_bar:
            self._bar = tqdm(total=trainer.steps_per_epoch, initial=trainer.batch_in_epoch,
                             leave=False, desc=f"epoch {trainer.epoch + 1}/{trainer.run_epochs}",
                             dynamic_ncols=True, file=sys.stderr)

    def after_step(self, trainer: Any) -> None:
        if self._bar is None:
            return
        if trainer.batch_in_epoch % 5 == 0:
            metrics = trainer.train_acc.compute(trainer.loss_fn)
            self._bar.set_postfix_str(short_metrics(metrics), refresh=False)
        self._bar.update(1)

    def end_steps(self, trainer: Any) -> None:
        self.close()

    def message(self, text: str) -> None:
        if self._bar is not None:
            self._bar.write(text)
        else:
            print(text, flush=True)

    def close(self) -> None:
        if self._bar is not None:
            self._bar.close()
            self._bar = None


class TextLog(TrainingLogger):
    """Every log line, appended to ``path`` (``train.log``) and flushed."""

    def __init__(self, path: Path) -> None:
        self._file = open(path, "a")

    def message(self, text: str) -> None:
        self._file.write(text + "\n")
        self._file.flush()

    def close(self) -> None:
        self._file.close()


class CsvLog(TrainingLogger):
    """``metrics.csv`` (the trainer's history, units in the header) and ``timing.csv`` (wall
    clock per epoch), rewritten atomically after every epoch."""

    def __init__(self, out_dir: Path) -> None:
        self.out_dir = out_dir

    def end_epoch(self, trainer: Any, row: Mapping[str, Any]) -> None:
        atomic_write_text(csv_text([with_units(r) for r in trainer.history]),
                          self.out_dir / "metrics.csv")
        atomic_write_text(csv_text(trainer.timings), self.out_dir / "timing.csv")


class TensorBoardLog(TrainingLogger):
    """The numbers of each epoch's row as scalars ``train/<metric>``, ``val/<metric>`` and
    ``lr``, at step = epoch (1-based); events after ``purge_step`` of an interrupted run are
    dropped on resume."""

    def __init__(self, folder: Path, purge_step: int) -> None:
        self._writer = SummaryWriter(str(folder), purge_step=purge_step)

    def end_epoch(self, trainer: Any, row: Mapping[str, Any]) -> None:
        for key, value in row.items():
            if key not in ("epoch", "step") and isinstance(value, (int, float)):
                tag = key.replace("train_", "train/").replace("val_", "val/")
                self._writer.add_scalar(tag, value, row["epoch"])
        self._writer.flush()

    def close(self) -> None:
        self._writer.close()


def file_loggers(settings: LoggingConfig, out_dir: Path, epoch: int) -> List[TrainingLogger]:
    """The loggers that write into ``out_dir`` (created) for a run starting at ``epoch``
    (0-based): ``train.log`` always, the others as ``settings`` (``logging:``) say.

    Raises:
        ImportError: ``logging.tensorboard: true`` without tensorboard installed.
    """
    if settings.tensorboard is True and SummaryWriter is None:
        raise ImportError("logging.tensorboard is true but tensorboard is not installed "
                          "(pip install tensorboard, or set it to auto/false)")
    out_dir.mkdir(parents=True, exist_ok=True)
    loggers: List[TrainingLogger] = [TextLog(out_dir / "train.log")]
    if settings.csv:
        loggers.append(CsvLog(out_dir))
    if settings.tensorboard and SummaryWriter is not None:
        loggers.append(TensorBoardLog(out_dir / "tensorboard", purge_step=epoch + 1))
    return loggers


def epoch_line(row: Mapping[str, Any], run_epochs: int, epoch_time: float, best: bool) -> str:
    """The log line of an epoch: its ``metrics.csv`` row (epoch, lr, train_* and val_*
    metrics), its seconds and the time left; ``*`` marks a new best model."""
    train = {k[6:]: v for k, v in row.items() if k.startswith("train_")}
    val = {k[4:]: v for k, v in row.items() if k.startswith("val_")}
    epoch = row["epoch"]
    remaining = (run_epochs - epoch) * epoch_time
    return (f"epoch {epoch:4d}/{run_epochs}  {epoch_time:6.1f} s  lr {row['lr']:.2e}  "
            f"train: {short_metrics(train)}"
            + (f" | val: {short_metrics(val)}{' *' if best else ''}" if val else "")
            + f"  ETA {hms(remaining)}")


def csv_text(rows: Sequence[Mapping[str, Any]]) -> str:
    """CSV of dict rows; the columns are the keys in order of first appearance ('' if absent)."""
    keys: List[str] = []
    for r in rows:
        keys += [k for k in r if k not in keys]
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=keys, restval="")
    writer.writeheader()
    writer.writerows(rows)
    return buf.getvalue()


def hms(seconds: float) -> str:
    """``1h02m03s`` or ``2m03s`` (whole seconds; negative counts as 0)."""
    seconds = int(max(seconds, 0))
    h, rem = divmod(seconds, 3600)
    m, s = divmod(rem, 60)
    return f"{h}h{m:02d}m{s:02d}s" if h else f"{m}m{s:02d}s"
