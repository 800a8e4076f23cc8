"""Building models: from a preset and keywords, from a model file, from a recorded config.

Three layers (as NequIP's builders): a preset (``small``/``medium``/``large``, instances of
:class:`~tfpot.hyperparameters.ModelHyperparameters`) gives defaults, keyword hyperparameters
override them, and :class:`~tfpot.model.EnergyModel` takes the resulting object. The file format
is :mod:`tfpot.model_file`.
"""

from __future__ import annotations

import os
from typing import Any, Mapping, Sequence, Union

import torch
from ase.data import atomic_numbers as _symbol_to_z

from tfpot._version import __version__
from tfpot.errors import FileIntegrityError
from tfpot.hyperparameters import LEGACY_PARITY, PRESETS, ModelHyperparameters
from tfpot.legacy_average import MirrorAveragedEnergyModel
from tfpot.model import EnergyModel
from tfpot.model_file import read_model_file
from tfpot.revisions import UNRECORDED, apply_revision

DTYPES = {"float32": torch.float32, "float64": torch.float64}


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
                preset: Union[str, ModelHyperparameters] = "medium",
                dtype: Union[str, torch.dtype] = "float64", **hyper: Any) -> EnergyModel:
    """A freshly initialised model.

    Args:
        species: elements (symbols or atomic numbers).
        cutoff: radial cutoff, Å.
        seed: weights are initialised from ``torch.Generator`` seeded with this (reproducible).
        preset: ``small``, ``medium`` or ``large`` (or a
            :class:`~tfpot.hyperparameters.ModelHyperparameters`): the defaults that the keyword
            ``hyper`` override.
        dtype: ``float32`` or ``float64`` parameters (energy sums are float64 either way).
        **hyper: any :class:`~tfpot.hyperparameters.ModelHyperparameters` field (reps,
            num_layers, hidden, message, lmax, ps_channels, gate_range, parity,
            avg_num_neighbors, num_basis, envelope_p).
    """
    if isinstance(preset, ModelHyperparameters):
        base = preset
    elif preset in PRESETS:
        base = PRESETS[preset]
    else:
        raise ValueError(f"Unknown preset {preset!r}; choose one of {sorted(PRESETS)}")
    hp = base.replace(**hyper)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(int(seed))
        model = EnergyModel(as_atomic_numbers(species), cutoff=cutoff, hyperparameters=hp)
    return model.to(resolve_dtype(dtype))


def model_from_config(config: Mapping[str, Any]) -> EnergyModel:
    """An initialised model of the architecture a ``model.config`` dict records (species,
    cutoff, hyperparameters and revision, as model files and checkpoints store them; without a
    revision: 1, see :mod:`tfpot.revisions`)."""
    hyper = dict(config)
    species = hyper.pop("species")
    cutoff = hyper.pop("cutoff")
    revision = hyper.pop("revision", UNRECORDED)
    # files written before the radial filter existed (tfpot < 0.5) record no key and have none,
    # whatever the default of new models
    hyper.setdefault("radial_filter", "none")
    if hyper.get("parity") == LEGACY_PARITY:  # tfpot < 0.2
        hyper["parity"] = "none"
        model = MirrorAveragedEnergyModel(species, cutoff, ModelHyperparameters.from_dict(hyper))
    else:
        model = EnergyModel(species, cutoff=cutoff,
                            hyperparameters=ModelHyperparameters.from_dict(hyper))
    return apply_revision(model, revision)


def load_model(path: Union[str, os.PathLike], device: Union[str, torch.device] = "cpu",
               dtype: Union[str, torch.dtype, None] = None) -> EnergyModel:
    """Load a model file written by :func:`~tfpot.model_file.save_model` (or ``model.save``),
    in eval mode.

    Raises:
        FileNotFoundError: no such file.
        FileIntegrityError: not a model file, torn, failing its checksum, holding non-finite
            weights, or weights that do not fit; the message names the file. (Files without a
            checksum, written before tfpot 0.4, load unverified.)
    """
    payload = read_model_file(path)
    try:
        model = model_from_config(payload["hyperparameters"])
    except FileIntegrityError as e:  # a revision this tfpot does not know
        raise FileIntegrityError(f"{path}: {e}") from e
    model = model.to(resolve_dtype(payload["dtype"]))
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
