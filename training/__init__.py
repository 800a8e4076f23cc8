"""Training: trainer, losses, EMA, schedules, recipes.

Two entry points::

    tfpot train config.yaml [--resume]                  # or: torchrun --nproc_per_node N -m tfpot train ...
    tfpot eval best_model.pt test.extxyz -o report/

and the Python API::

    from tfpot.training import fit, train_from_config
    model = fit(tfpot.build_model(["H", "C", "O"], preset="small"), train_atoms, val_atoms,
                epochs=50, batch_size=8, lr=5e-3, forces_weight=10.0)
    out_dir = train_from_config("training/configs/demo.yaml")

Config keys: :mod:`tfpot.training.config` (``tfpot train --help``); commented recipes in
``training/configs/`` (demo, md17, rmd17, qm9, extxyz_materials).
"""

from tfpot.training.config import ConfigError, TrainConfig, load_config
from tfpot.training.fitting import fit
from tfpot.training.loop import Trainer
from tfpot.training.run import train_from_config, train_run

__all__ = ["fit", "train_from_config", "train_run", "Trainer", "TrainConfig", "load_config", "ConfigError"]
