"""Setting a run up from a config: ``tfpot train`` and :func:`train_from_config`.

In order: the resume guard (:mod:`.resume`), threads and seeds, the data check and the splits,
the model (new: statistics of the training set, then the preset with the config's
hyperparameters; resumed: as the checkpoint records it), the run's files, and then the loop
(:class:`~tfpot.training.loop.Trainer`). In-memory structures are :func:`tfpot.training.fit`.

Files in the output directory: ``config.yaml`` (resolved), ``checkpoint.pt``, ``best_model.pt``,
``final_model.pt``, ``metrics.csv``, ``timing.csv``, ``train.log``, ``tensorboard/``,
``splits.npz`` (indices of the split), ``statistics.json``, ``test_metrics.json``,
``summary.json``.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any, Dict, List, Mapping, Optional, Sequence, Tuple, Union

import numpy as np
import torch
import yaml

from tfpot.atomic_io import remove_stale_temp_files
from tfpot.builder import as_atomic_numbers, build_model, model_from_config, resolve_dtype
from tfpot.model import EnergyModel
from tfpot.atomic_io import atomic_write_text
from tfpot.training.config import TrainConfig, load_config, resolve_data_paths
from tfpot.training.data import DataSplits, labels_needed, load_splits, verify_data
from tfpot.training.distributed import setup, teardown
from tfpot.training.loop import Callback, Trainer
from tfpot.training.normalisation import (apply_statistics, describe_statistics,
                                          statistics_json, training_statistics)
from tfpot.training.resume import checkpoint_to_resume

ConfigLike = Union[str, Path, Mapping[str, Any], TrainConfig]


def train_from_config(config: ConfigLike, resume: bool = False,
                      output_dir: Optional[Union[str, Path]] = None,
                      callbacks: Sequence[Callback] = (), verbose: bool = True) -> Path:
    """Train as a config describes; returns the output directory (see :func:`train_run`)."""
    return train_run(config, resume, output_dir, callbacks, verbose)[0]


def train_run(config: ConfigLike, resume: bool = False,
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
    """
    cfg = load_config(config)
    resolve_data_paths(cfg, Path.cwd())  # relative ones (dicts, recipes): absolute in config.yaml
    if output_dir is not None:
        cfg.output_dir = str(output_dir)
    out = Path(cfg.output_dir)
    ctx = setup(cfg.device)
    try:
        state = checkpoint_to_resume(out, resume, cfg)
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
            (None if cfg.model.species is None else model_species(cfg, None))
        echo = (lambda line: print(line, file=sys.stderr)) if verbose and ctx.is_main else None
        preamble += verify_data(cfg.data, labels_needed(cfg.loss), known, echo)

        splits = load_splits(cfg.data, cfg.seed)
        say(f"data: {splits.description}")
        if state is not None:
            model, stats = resumed_model(cfg, state), None
        else:
            model, stats = new_model(cfg, splits)
            for note in stats["notes"]:
                say(f"note: {note}")
            say(describe_statistics(stats))
        say(f"model: {model!r}")
        if ctx.is_main:
            write_run_files(out, cfg, splits, stats)
        ctx.barrier()
        trainer = Trainer(model, cfg, splits.train, splits.val, out, ctx, splits.load_test,
                          callbacks, verbose)
        summary = trainer.run(state, preamble)
    finally:
        teardown(ctx)
    return out, summary


def model_species(cfg: TrainConfig, splits: Optional[DataSplits]) -> List[int]:
    """The model's atomic numbers, sorted: ``model.species`` of the config, else the elements
    of the training and validation sets."""
    if cfg.model.species is not None:
        return sorted(as_atomic_numbers(cfg.model.species))
    elements = set(splits.train.elements())
    if splits.val is not None:
        elements |= set(splits.val.elements())
    return sorted(elements)


def new_model(cfg: TrainConfig, splits: DataSplits) -> Tuple[EnergyModel, Dict[str, Any]]:
    """A new model fitted to the training set's statistics (E0, scale, shift, neighbour count;
    see :mod:`.normalisation`), and those statistics."""
    species = model_species(cfg, splits)
    m = cfg.model
    stats = training_statistics(splits.train, species, m.e0, m.energy_scale, m.energy_shift,
                                seed=cfg.seed)
    hyper = m.resolve(stats["avg_num_neighbors"] if m.avg_num_neighbors == "auto" else None)
    model = build_model(species, cutoff=cfg.data.cutoff, preset=hyper, dtype=m.dtype,
                        seed=cfg.seed if m.seed is None else m.seed)
    apply_statistics(model, stats)
    return model, stats


def resumed_model(cfg: TrainConfig, state: Mapping[str, Any]) -> EnergyModel:
    """The model of a checkpoint, with its weights, in the config's dtype."""
    model = model_from_config(state["model_config"]).to(resolve_dtype(cfg.model.dtype))
    model.load_state_dict(state["model_state"])
    return model


def write_run_files(out: Path, cfg: TrainConfig, splits: DataSplits,
                    stats: Optional[Mapping[str, Any]]) -> None:
    """``config.yaml`` (resolved), ``splits.npz`` (where one file was split) and, for a new
    run, ``statistics.json``, into ``out`` (created)."""
    out.mkdir(parents=True, exist_ok=True)
    atomic_write_text(yaml.safe_dump(cfg.to_dict(), sort_keys=False), out / "config.yaml")
    if splits.indices:
        np.savez(out / "splits.npz", **splits.indices)
    if stats is not None:
        atomic_write_text(statistics_json(stats), out / "statistics.json")

