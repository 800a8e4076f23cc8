"""Building, saving and loading models.

Three layers (as NequIP's builders): a preset name (``small``/``medium``/``large``) gives
defaults, keyword hyperparameters override them, and :class:`~tfpot.model.EnergyModel` takes the
full settings. A model file is a ``torch.save`` dict that records the hyperparameters, species,
cutoff, units, dtype and tfpot version with the weights; it loads without the training code and
with ``weights_only=True`` (no pickled code).
"""

from __future__ import annotations

import inspect
import os
from pathlib import Path
from typing import Any, Dict, Sequence, Union

import torch
from ase.data import atomic_numbers as _symbol_to_z

from tfpot import __version__
from tfpot.atomic_io import atomic_torch_save
from tfpot.errors import FileIntegrityError, short_reason
from tfpot.file_kinds import require_model_file
from tfpot.inference import model_dtype
from tfpot.integrity import nonfinite_tensors, seal, verify_payload
from tfpot.model import EnergyModel

MODEL_FORMAT = "tfpot-model"
MODEL_FORMAT_VERSION = 1
UNITS = {"length": "Å", "energy": "eV", "forces": "eV/Å", "stress": "eV/Å^3"}

PRESETS: Dict[str, Dict[str, Any]] = {
    "small": dict(reps="32x0+8x1+2x2", hidden=32, num_layers=2, ps_channels=6, lmax=4),
    "medium": dict(reps="64x0+16x1+4x2", hidden=64, num_layers=2, ps_channels=8, lmax=4),
    "large": dict(reps="128x0+32x1+8x2", hidden=128, num_layers=3, ps_channels=8, lmax=6),
}
DTYPES = {"float32": torch.float32, "float64": torch.float64}


def _model_keys() -> set:
    return set(inspect.signature(EnergyModel.__init__).parameters) - {"self", "species", "cutoff"}


def as_atomic_numbers(species: Sequence[Union[int, str]]) -> list:
    """Atomic numbers from numbers or element symbols ('Cu', 29, ...)."""
    out = []
    for s in species:
        if isinstance(s, str):
            if s not in _symbol_to_z:
                raise ValueError(f"Unknown element symbol {s!r} in species {list(species)}")
            out.append(_symbol_to_z[s])
        else:
            out.append(int(s))
    return out


def resolve_dtype(dtype: Union[str, torch.dtype]) -> torch.dtype:
    if isinstance(dtype, torch.dtype):
        if dtype not in DTYPES.values():
            raise ValueError(f"dtype must be float32 or float64 (got {dtype})")
        return dtype
    if dtype not in DTYPES:
        raise ValueError(f"dtype must be 'float32' or 'float64' (got {dtype!r})")
    return DTYPES[dtype]


def build_model(species: Sequence[Union[int, str]], cutoff: float = 5.0, seed: int = 0,
                preset: str = "medium", dtype: Union[str, torch.dtype] = "float64",
                **hyper: Any) -> EnergyModel:
    """A freshly initialised model.

    Args:
        species: elements (symbols or atomic numbers).
        cutoff: radial cutoff, Å.
        seed: weights are initialised from ``torch.Generator`` seeded with this (reproducible).
        preset: ``small``, ``medium`` or ``large`` defaults; keyword ``hyper`` overrides them.
        dtype: ``float32`` or ``float64`` parameters (energy sums are float64 either way).
        **hyper: any :class:`~tfpot.model.EnergyModel` argument (reps, num_layers, hidden,
            message, lmax, ps_channels, gate_range, parity, avg_num_neighbors, num_basis).
    """
    if preset not in PRESETS:
        raise ValueError(f"Unknown preset {preset!r}; choose one of {sorted(PRESETS)}")
    valid = _model_keys()
    unknown = sorted(set(hyper) - valid)
    if unknown:
        import difflib

        hints = [f"{k!r}" + (f" (did you mean {m[0]!r}?)" if (m := difflib.get_close_matches(k, valid, 1)) else "")
                 for k in unknown]
        raise ValueError(f"Unknown model hyperparameter(s): {', '.join(hints)}; valid: {sorted(valid)}")
    settings = dict(PRESETS[preset])
    settings.update(hyper)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(int(seed))
        model = EnergyModel(as_atomic_numbers(species), cutoff=cutoff, **settings)
    return model.to(resolve_dtype(dtype))


def save_model(model: EnergyModel, path: Union[str, os.PathLike], extra: Dict[str, Any] | None = None) -> None:
    """Write a model file atomically (temporary file in the same directory, then rename), with
    a checksum of its weights and settings (:mod:`tfpot.integrity`)."""
    path = Path(path)
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
    atomic_torch_save(seal(payload), path)


def load_model(path: Union[str, os.PathLike], device: Union[str, torch.device] = "cpu",
               dtype: Union[str, torch.dtype, None] = None) -> EnergyModel:
    """Load a model file written by :func:`save_model` (or ``model.save``), in eval mode.

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
    hyper = dict(payload["hyperparameters"])
    species = hyper.pop("species")
    cutoff = hyper.pop("cutoff")
    hyper["gate_range"] = tuple(hyper["gate_range"])
    model = EnergyModel(species, cutoff=cutoff, **hyper)
    stored = resolve_dtype(payload["dtype"])
    model = model.to(stored)
    try:
        model.load_state_dict(payload["state_dict"])
    except RuntimeError as e:
        raise FileIntegrityError(
            f"{path}: weights do not fit the model this tfpot {__version__} builds from the "
            f"file's hyperparameters (written by tfpot {payload.get('tfpot_version')}); retrain "
            f"or load it with that version ({' '.join(str(e).split())})") from e
    if dtype is not None:
        model = model.to(resolve_dtype(dtype))
    return model.to(device).eval()
