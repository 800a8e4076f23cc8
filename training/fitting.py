"""``fit()``: train a model on in-memory ASE structures (the Python API of :mod:`.loop`).

The run's :class:`~tfpot.training.config.TrainConfig` is built from the model's own
:class:`~tfpot.hyperparameters.ModelHyperparameters` and the keyword settings, and checked as a
config file would be, so a fit run's checkpoint and files are those of ``tfpot train``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Mapping, Optional, Sequence, Union

import torch

from tfpot.atomic_io import remove_stale_temp_files
from tfpot.data.check import DataCheck
from tfpot.inference import model_dtype
from tfpot.model import EnergyModel
from tfpot.training.config import (DataConfig, LoggingConfig, LossConfig, ModelConfig,
                                   OptimizerConfig, ScheduleConfig, TrainConfig, TrainingConfig,
                                   validated)
from tfpot.training.data import atoms_set, labels_needed
from tfpot.training.loop import Callback, Trainer
from tfpot.training.normalisation import apply_statistics, training_statistics
from tfpot.training.resume import checkpoint_to_resume


def fit(model: EnergyModel, train_atoms: Sequence, val_atoms: Optional[Sequence] = None, *,
        epochs: int = 100, batch_size: int = 8, lr: float = 5e-3, energy_weight: float = 1.0,
        forces_weight: float = 10.0, stress_weight: float = 0.0, loss_type: str = "mse",
        huber_delta: float = 0.01, frame_gate_weight: float = 0.0,
        frame_closed_weight: float = 0.0, seed: int = 0,
        max_time: Optional[float] = None, out_dir: Optional[Union[str, Path]] = None,
        ema_decay: Optional[float] = 0.99, e0: Union[str, Mapping[str, float]] = "least_squares",
        schedule: str = "plateau", weight_decay: float = 0.0, amsgrad: bool = False,
        grad_clip: Optional[float] = 10.0, frame_noise: float = 0.0,
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
        loss_type, huber_delta: ``"mse"`` or ``"huber"`` and the Huber transition point, in the
            units of each term (eV/atom, eV/Å, eV/Å^3) (``loss.type``, ``loss.huber_delta``).
        frame_gate_weight: weight of the open-frame term, the mean of ``1 - gate`` over the
            batch's atoms (``loss.frame_gate_weight``); 0: off.
        frame_closed_weight: weight of the closed-frame term, the mean of
            :meth:`tfpot.frames.LocalFrames.shortfall` over the batch's atoms
            (``loss.frame_closed_weight``): it reopens frames that training shut; 0: off.
        schedule: ``plateau``, ``constant`` or ``cosine``; ``max_time`` (s) fixes the number of
            epochs once, from the measured speed (:mod:`tfpot.training.budget`), and the cosine
            reaches its floor (1e-6) at the end of them, so a budgeted run ends annealed.
        weight_decay, amsgrad: AdamW's decoupled weight decay and its AMSGrad variant
            (``optimizer.weight_decay``, ``optimizer.amsgrad``).
        frame_noise: std (rad) of a random rotation of every local frame in each training step
            (``training.frame_noise``; :func:`tfpot.frames.rotated_frames`); 0: off. The
            rotations come from torch's global generator, which ``fit`` seeds with ``seed``.
        out_dir: if given, checkpoints, models and logs are written there (as ``tfpot train``).
        resume: continue from ``out_dir/checkpoint.pt``.

    Raises:
        ConfigError: a setting out of range, or ``out_dir`` holds a run and ``resume`` is false.
        DataCheckError: a structure the data check refuses (named by its index).
    """
    cfg = validated(TrainConfig(
        seed=seed, device=str(next(model.parameters()).device),
        output_dir=str(out_dir) if out_dir is not None else "<none>",
        data=DataConfig(path="<in-memory atoms>", cutoff=float(model.cutoff)),
        model=ModelConfig.of(model.hyperparameters, dtype=str(model_dtype(model))[6:],
                             e0=e0 if isinstance(e0, str) else dict(e0)),
        loss=LossConfig(energy_weight=energy_weight, forces_weight=forces_weight,
                        stress_weight=stress_weight, type=loss_type,
                        huber_delta=huber_delta, frame_gate_weight=frame_gate_weight,
                        frame_closed_weight=frame_closed_weight),
        optimizer=OptimizerConfig(lr=lr, weight_decay=weight_decay, amsgrad=amsgrad),
        schedule=ScheduleConfig(type=schedule),
        training=TrainingConfig(max_epochs=epochs, max_time=max_time, batch_size=batch_size,
                                ema_decay=ema_decay, grad_clip=grad_clip,
                                frame_noise=frame_noise),
        logging=LoggingConfig(progress_bar=progress_bar,
                              tensorboard=False if out_dir is None else "auto")), "fit()")
    check = DataCheck(min_distance=cfg.data.min_distance, species=model.species,
                      needs=labels_needed(cfg.loss))
    train_atoms = list(check.filter(train_atoms, "train_atoms", "structure"))
    val_atoms = list(check.filter(val_atoms or [], "val_atoms", "structure")) or None
    check.raise_if_problems("")
    state = None
    if out_dir is not None:
        remove_stale_temp_files(out_dir)
        state = checkpoint_to_resume(out_dir, resume, cfg)
    train = atoms_set(train_atoms, model.cutoff, "train")
    val = atoms_set(val_atoms, model.cutoff, "val") if val_atoms else None
    if state is None:
        stats = training_statistics(train, model.species, cfg.model.e0, seed=seed)
        apply_statistics(model, stats)
    # torch's generator draws the frame noise: seeded here, as ``tfpot train`` seeds it, so the
    # same settings and seed repeat a run (a resume restores the generator from the checkpoint)
    torch.manual_seed(seed)
    trainer = Trainer(model, cfg, train, val, out_dir, callbacks=callbacks, verbose=verbose)
    trainer.run(state)
    trainer.ema.copy_to()
    return model.eval()
