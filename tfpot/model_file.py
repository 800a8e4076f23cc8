"""The model file: what :func:`save_model` writes and :func:`read_model_file` checks.

A model file is a ``torch.save`` dict that records the hyperparameters (with the model's
revision, :mod:`tfpot.revisions`), species, cutoff, units, dtype and tfpot version with the
weights, and a checksum of them all (:mod:`tfpot.integrity`); it loads with ``weights_only=True`` (no pickled code) and without the training code. Building a
model from it is :func:`tfpot.builder.load_model`.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Dict, Optional, Union

import torch

from tfpot._version import __version__
from tfpot.atomic_io import atomic_torch_save
from tfpot.errors import FileIntegrityError, short_reason
from tfpot.file_kinds import require_model_file
from tfpot.inference import model_dtype
from tfpot.integrity import nonfinite_tensors, seal, verify_payload

MODEL_FORMAT = "tfpot-model"
MODEL_FORMAT_VERSION = 1
UNITS = {"length": "Å", "energy": "eV", "forces": "eV/Å", "stress": "eV/Å^3"}


def save_model(model: torch.nn.Module, path: Union[str, os.PathLike],
               extra: Optional[Dict[str, Any]] = None) -> None:
    """Write ``model`` (an :class:`~tfpot.model.EnergyModel`) to ``path`` atomically (temporary
    file in the same directory, then rename), with a checksum of its weights and settings."""
    payload = {
        "format": MODEL_FORMAT,
        "format_version": MODEL_FORMAT_VERSION,
        "tfpot_version": __version__,
        "hyperparameters": dict(model.config),
        "species": list(model.species),
        "cutoff": float(model.cutoff),
        "units": dict(UNITS),
        "dtype": str(model_dtype(model)).replace("torch.", ""),
        "state_dict": {k: v.detach().cpu() for k, v in model.state_dict().items()},
        "extra": dict(extra or {}),
    }
    atomic_torch_save(seal(payload), Path(path))


def read_model_file(path: Union[str, os.PathLike]) -> Dict[str, Any]:
    """The checked contents of a model file.

    Raises:
        FileNotFoundError: no such file.
        FileIntegrityError: a directory, a TorchScript export, not a PyTorch file, not a model
            file, torn, failing its checksum, or holding non-finite weights; the message names
            the file. (Files without a checksum, written before tfpot 0.4, load unverified.)
    """
    path = require_model_file(path)  # one-line errors: missing, directory, export, not torch
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # not a torch file, truncated, or pickled code
        raise FileIntegrityError(f"{path}: not a readable tfpot model file ({short_reason(e)}); "
                                 f"the file is torn or of another kind: use a model file from "
                                 f"tfpot train") from e
    if not isinstance(payload, dict) or payload.get("format") != MODEL_FORMAT:
        raise FileIntegrityError(f"{path}: not a tfpot model file (no '{MODEL_FORMAT}' format "
                                 "marker); TorchScript exports (tfpot export) are for LAMMPS and "
                                 "torch.jit.load")
    if payload.get("format_version") != MODEL_FORMAT_VERSION:
        raise FileIntegrityError(f"{path}: model format version {payload.get('format_version')} is "
                                 f"not supported by tfpot {__version__} (expects "
                                 f"{MODEL_FORMAT_VERSION})")
    verify_payload(payload, path, "model file", "restore it from a copy or retrain")
    bad = nonfinite_tensors(payload["state_dict"])
    if bad:
        raise FileIntegrityError(f"{path}: weights {', '.join(bad[:3])} hold NaN or infinite "
                                 f"values (a diverged training run); retrain, or use an earlier "
                                 f"model file")
    return payload
