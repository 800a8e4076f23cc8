"""Checkpoints: everything needed to continue a run exactly, written atomically.

A checkpoint is a ``torch.save`` dict (loadable with ``weights_only=True``) holding the model's
hyperparameters and weights (buffers E0/scale/shift included), the optimiser, schedule and EMA
states, the random-number states of python, numpy and torch, the position in the data (epoch,
batch within the epoch, global step), the partial-epoch metric sums, the best validation result,
the early-stopping counter, the elapsed training time and the per-epoch history.

Writes go to a temporary file in the same directory, are flushed and fsync'ed, and replace the
old file with ``os.replace``: a run killed at any moment leaves the previous checkpoint or the
new one, never a torn file. Every checkpoint carries a checksum of its whole content
(:mod:`tfpot.integrity`), checked on load: a corrupt or altered checkpoint is refused instead of
resuming from it (checkpoints written before tfpot 0.4 have none and load unverified).
"""

from __future__ import annotations

import os
import random
from pathlib import Path
from typing import Any, Dict, Mapping, Union

import numpy as np
import torch

from tfpot.atomic_io import atomic_torch_save
from tfpot.errors import FileIntegrityError, short_reason
from tfpot.integrity import seal, verify_payload
from tfpot.training.budget import SpeedRecord

CHECKPOINT_FORMAT = "tfpot-checkpoint"
CHECKPOINT_VERSION = 1
CHECKPOINT_NAME = "checkpoint.pt"


def rng_state() -> Dict[str, Any]:
    """Random states of python, numpy (legacy global) and torch (CPU and CUDA)."""
    kind, keys, pos, has_gauss, cached = np.random.get_state()
    state = {
        "python": random.getstate(),
        "numpy": {"kind": kind, "keys": torch.from_numpy(keys.astype(np.int64)), "pos": int(pos),
                  "has_gauss": int(has_gauss), "cached_gaussian": float(cached)},
        "torch": torch.get_rng_state(),
    }
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: Dict[str, Any]) -> None:
    """Restore what :func:`rng_state` returned."""
    py = state["python"]
    random.setstate((py[0], tuple(py[1]), py[2]))
    n = state["numpy"]
    np.random.set_state((n["kind"], n["keys"].numpy().astype(np.uint32), n["pos"], n["has_gauss"],
                         n["cached_gaussian"]))
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def trainer_state(trainer: Any) -> Dict[str, Any]:
    """The checkpoint of a :class:`~tfpot.training.loop.Trainer` (see the module doc; without
    the format marker and checksum that :func:`save_checkpoint` adds); collective."""
    speed = trainer.speed
    return {
        "config": trainer.cfg.to_dict(),
        "model_config": dict(trainer.model.config),
        "model_state": {k: v.detach().cpu() for k, v in trainer.model.state_dict().items()},
        **trainer.optimiser_step.state_dict(),  # optimizer, schedule, ema, train_sums
        "rng": rng_state(),
        "progress": {"epoch": trainer.epoch, "batch_in_epoch": trainer.batch_in_epoch,
                     "global_step": trainer.global_step, "elapsed": trainer.elapsed,
                     "world_size": trainer.ctx.world_size},
        **trainer.best.state_dict(),  # best, best_state, bad_epochs
        "history": list(trainer.history),
        "timings": list(trainer.timings),
        "extra": dict(trainer.extra_state),
        "speed": speed.to_dict() if speed is not None else None,
    }


def restore_trainer(trainer: Any, state: Mapping[str, Any]) -> None:
    """Put a :class:`~tfpot.training.loop.Trainer` in the state :func:`trainer_state` recorded
    (weights, optimiser, RNGs, position, best model, history, speed record)."""
    trainer.model.load_state_dict(state["model_state"])
    trainer.optimiser_step.load_state_dict(state)
    set_rng_state(state["rng"])
    p = state["progress"]
    trainer.epoch, trainer.batch_in_epoch = int(p["epoch"]), int(p["batch_in_epoch"])
    trainer.global_step, trainer.elapsed_before = int(p["global_step"]), float(p["elapsed"])
    trainer.best.load_state_dict(state)
    trainer.history = list(state["history"])
    trainer.timings = list(state.get("timings", []))
    trainer.extra_state = dict(state.get("extra", {}))
    speed = state.get("speed")
    trainer.speed = SpeedRecord.from_dict(speed) if speed is not None else None


def save_checkpoint(state: Dict[str, Any], path: Union[str, os.PathLike]) -> None:
    """Write a checkpoint dict atomically (adds the format marker and the checksum)."""
    payload = {"format": CHECKPOINT_FORMAT, "format_version": CHECKPOINT_VERSION}
    payload.update(state)
    atomic_torch_save(seal(payload), path)


def load_checkpoint(path: Union[str, os.PathLike], map_location: Any = "cpu") -> Dict[str, Any]:
    """Read a checkpoint written by :func:`save_checkpoint` (no pickled code is executed).

    Raises:
        FileNotFoundError: no such file.
        FileIntegrityError: torn, not a checkpoint, another version, or failing its checksum.
    """
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"{path}: no checkpoint")
    fix = ("restore it from a copy, or start a new run in another output_dir (the models "
           "written so far stay usable)")
    try:
        payload = torch.load(path, map_location=map_location, weights_only=True)
    except Exception as e:
        raise FileIntegrityError(f"{path}: not a readable checkpoint, torn or truncated "
                                 f"({short_reason(e)}); {fix}") from e
    if not isinstance(payload, dict) or payload.get("format") != CHECKPOINT_FORMAT:
        raise FileIntegrityError(f"{path}: not a tfpot training checkpoint (a model file? models "
                                 f"are loaded with tfpot.load_model)")
    if payload.get("format_version") != CHECKPOINT_VERSION:
        raise FileIntegrityError(f"{path}: checkpoint version {payload.get('format_version')} is "
                                 f"not supported (expects {CHECKPOINT_VERSION})")
    verify_payload(payload, path, "checkpoint", fix)
    return payload
