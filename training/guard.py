"""The training guard: a non-finite loss, gradient or metric stops the run, nothing NaN is written.

Each step checks, before the optimiser touches the weights, that the loss of every rank and
every gradient are finite (one collective flag, so all ranks stop together). If not, the run
stops with :class:`NonFiniteError` (a :class:`~tfpot.errors.TfpotError`: ``tfpot train``
prints one line and exits 1) that names the step, the frames of the batch (as frame numbers
of the data file) and which of them gave non-finite errors. The weights are those of the last
good step; the checkpoint on disk and ``best_model.pt`` are from before the failure and are left
as they are; ``final_model.pt`` and the test report are not written. Validation and test
metrics are checked the same way at the end of each epoch and of the run.
"""

from __future__ import annotations

from typing import Any, Iterable, List, Mapping, Optional, Sequence

import numpy as np
import torch
from torch import Tensor

from tfpot.errors import TfpotError
from tfpot.training.losses import Targets, WeightedLoss

#: frames named in a message (the rest are counted)
MAX_NAMED = 12


class NonFiniteError(TfpotError):
    """A loss, gradient, metric or prediction became NaN or infinite (the command stopped)."""


def step_is_finite(loss: Optional[Tensor], params: Iterable[torch.nn.Parameter], ctx) -> bool:
    """True on every rank when every rank's loss and every (reduced) gradient are finite."""
    flags = [torch.isfinite(p.grad).all() for p in params if p.grad is not None]
    if loss is not None:
        flags.append(torch.isfinite(loss.detach()).all())
    ok = bool(torch.stack(flags).all()) if flags else True  # one device sync
    return not ctx.any(not ok)


def nonfinite_graphs(err: Mapping[str, Tensor], t: Targets, loss_fn: WeightedLoss) -> List[int]:
    """Positions in the batch (graph index) of structures whose loss terms are not finite."""
    num_graphs = len(t.num_atoms)
    bad = torch.zeros(num_graphs, dtype=torch.bool, device=t.num_atoms.device)

    def finite_rows(d: Tensor, width: int) -> Tensor:
        return torch.isfinite(loss_fn.rho(d.detach())).reshape(-1, width).all(dim=1)

    energy = loss_fn.energy_errors(dict(err))
    if energy is not None:
        where = torch.nonzero(t.energy_mask).reshape(-1)
        bad[where[~finite_rows(energy, 1)]] = True
    if "forces" in err:
        atoms = torch.nonzero(t.forces_mask).reshape(-1)
        bad[t.batch[atoms[~finite_rows(err["forces"], 3)]]] = True
    if "stress" in err:
        where = torch.nonzero(t.stress_mask).reshape(-1)
        bad[where[~finite_rows(err["stress"], 9)]] = True
    return torch.nonzero(bad).reshape(-1).tolist()


def frame_list(frames: Sequence[int]) -> str:
    """``"3, 17, 40"``; long lists end with ``"... (N in all)"``."""
    shown = ", ".join(str(int(f)) for f in frames[:MAX_NAMED])
    return shown + (f", ... ({len(frames)} in all)" if len(frames) > MAX_NAMED else "")


def step_error(step: int, epoch: int, batch: int, loss: Optional[float], source: str,
               batch_frames: Sequence[int], bad_frames: Sequence[int],
               kept: Sequence[str]) -> NonFiniteError:
    """The one-line error of a step whose loss or gradient is not finite.

    Args:
        step, epoch, batch: 1-based counters of the failed step.
        loss: this rank's loss value (None: this rank had no structures).
        source: the data file the frame numbers refer to.
        batch_frames: frame numbers of the whole (global) batch.
        bad_frames: frame numbers whose loss terms are not finite (this rank's share).
        kept: the files from before the failure that stay as they are (checkpoint, best model).
    """
    what = "the loss is " + (f"{loss}" if loss is not None and not np.isfinite(loss)
                             else "finite but a gradient is not")
    culprits = (f"non-finite errors in frame{'s' if len(bad_frames) > 1 else ''} "
                f"{frame_list(bad_frames)} of {source}; " if bad_frames else "")
    return NonFiniteError(
        f"training step {step} (epoch {epoch}, batch {batch}): {what}; {culprits}batch frames "
        f"{frame_list(batch_frames)} of {source}; the run stopped before updating the weights "
        f"and wrote no final model; kept: {', '.join(kept) if kept else 'nothing (no checkpoint yet)'}; "
        f"check these frames (tfpot train --check-data CONFIG), lower optimizer.lr or set "
        f"training.grad_clip")


def step_failure(trainer: Any, loss: Optional[Tensor], err: Optional[Mapping[str, Tensor]],
                 t: Optional[Targets]) -> NonFiniteError:
    """:func:`step_error` of the step a :class:`~tfpot.training.loop.Trainer` is at, from what
    :class:`~tfpot.training.step.OptimiserStep` returned of it (loss, errors, targets)."""
    positions = trainer.sampler.global_batches()[trainer.batch_in_epoch]
    mine = np.array_split(positions, trainer.ctx.world_size)[trainer.ctx.rank]
    bad = [] if err is None else mine[nonfinite_graphs(err, t, trainer.loss_fn)]
    frames = trainer.train_set.frame_numbers
    kept = [trainer.last_checkpoint] if trainer.last_checkpoint else []
    if trainer.best.epoch >= 0 and trainer.out_dir is not None:
        kept.append(f"{trainer.out_dir / 'best_model.pt'} (epoch {trainer.best.epoch + 1})")
    return step_error(trainer.global_step + 1, trainer.epoch + 1, trainer.batch_in_epoch + 1,
                      None if loss is None else float(loss.detach()),
                      trainer.train_set.source_name, frames(positions), frames(bad), kept)


def check_metrics(metrics: Mapping[str, float], what: str) -> None:
    """Raise :class:`NonFiniteError` if any metric is NaN or infinite.

    Args:
        what: names the metrics in the message, e.g. ``"epoch 3 validation"``.
    """
    bad = {k: v for k, v in metrics.items() if not np.isfinite(v)}
    if bad:
        listed = ", ".join(f"{k} {v}" for k, v in bad.items())
        raise NonFiniteError(
            f"{what} metrics are not finite ({listed}): a frame gives a non-finite prediction "
            f"or label; check the data (tfpot train --check-data CONFIG); the run stopped and "
            f"wrote no model from this point on")

