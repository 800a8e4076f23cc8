"""TorchScript export for engines that own the neighbour list and the ghost atoms (LAMMPS).

The exported module takes local atoms first, then ghost atoms (explicit periodic images or atoms
of other MPI ranks), all ordered pairs within the cutoff, and the number of local atoms:

    forward(pos (n, 3), species (n,) model species index, edge_index (2, E) [centre, neighbour],
            nlocal: int) -> (energy () float64, atomic_energies (n,) float64, forces (n, 3))

``energy`` sums the local atoms only; ``forces = -dE/dpos`` for every atom, ghosts included, so
the engine adds ghost forces to their owners (LAMMPS: newton on + reverse communication) and the
virial is ``-sum_k r_k (x) F_k`` over all atoms. A local atom's energy depends on atoms up to
``num_hops * cutoff`` away: the engine's ghost shell must be at least ``ghost_cutoff``.

The file carries ``metadata.json`` (format, version, species, cutoff, num_hops, ghost_cutoff,
units "metal", dtype, tfpot and torch versions).
"""

from __future__ import annotations

import json
import os
from typing import Any, Dict, Sequence, Tuple, Union

import torch
from torch import Tensor, nn

from tfpot import __version__
from tfpot.atomic_io import atomic_path
from tfpot.builder import load_model, resolve_dtype
from tfpot.energy_derivatives import energy_gradients
from tfpot.model import EnergyModel

EXPORT_FORMAT = "tfpot-lammps"
EXPORT_FORMAT_VERSION = 1
METADATA_FILE = "metadata.json"


class LocalEnergyModel(nn.Module):
    """Energy of the local atoms of a domain with ghosts, and forces on every atom."""

    def __init__(self, model: EnergyModel):
        super().__init__()
        self.model = model

    def forward(self, pos: Tensor, species: Tensor, edge_index: Tensor,
                nlocal: int) -> Tuple[Tensor, Tensor, Tensor]:
        pos = pos.detach().requires_grad_(True)
        shifts = torch.zeros(edge_index.shape[1], 3, dtype=pos.dtype, device=pos.device)
        e_atom = self.model.atomic_energies(pos, species, edge_index, shifts)
        energy = e_atom[:nlocal].sum()
        forces, _ = energy_gradients(energy, pos, None, False)
        return energy.detach(), e_atom.detach(), forces


def lammps_metadata(species: Sequence[int], cutoff: float, num_hops: int,
                    dtype: Union[str, torch.dtype]) -> Dict[str, Any]:
    """The ``metadata.json`` of an export, as the LAMMPS plugin reads it (pair_tfpot.cpp).

    Args: atomic numbers in the module's species order, cutoff (Å), reach in cutoffs, dtype of
    the module's parameters.
    """
    return {
        "format": EXPORT_FORMAT,
        "format_version": EXPORT_FORMAT_VERSION,
        "species": [int(z) for z in species],
        "cutoff": float(cutoff),
        "num_hops": int(num_hops),
        "ghost_cutoff": float(num_hops * cutoff),
        "units": "metal",
        "dtype": str(dtype).replace("torch.", ""),
        "tfpot_version": __version__,
        "torch_version": torch.__version__.split("+")[0],
    }


def export_metadata(model: EnergyModel, dtype: torch.dtype) -> Dict[str, Any]:
    """:func:`lammps_metadata` of ``model`` exported with parameters in ``dtype``."""
    return lammps_metadata(model.species, model.cutoff, model.num_hops, dtype)


def export_model(model: Union[EnergyModel, str, os.PathLike], path: Union[str, os.PathLike],
                 dtype: Union[str, torch.dtype, None] = None) -> Dict[str, Any]:
    """Script ``model`` (or the model file at that path) and write it atomically to ``path``.

    Returns the metadata written with it.
    """
    if not isinstance(model, EnergyModel):
        model = load_model(model)
    if dtype is not None:
        model = model.to(resolve_dtype(dtype))
    model = model.cpu().eval()
    param_dtype = model.embedding.weight.dtype
    meta = export_metadata(model, param_dtype)
    scripted = torch.jit.script(LocalEnergyModel(model))
    with atomic_path(path) as tmp:
        torch.jit.save(scripted, tmp, _extra_files={METADATA_FILE: json.dumps(meta)})
    return meta


def load_exported(path: Union[str, os.PathLike]) -> Tuple[torch.jit.ScriptModule, Dict[str, Any]]:
    """Load an exported module and its metadata (refusing files that are not tfpot exports)."""
    extra = {METADATA_FILE: ""}
    try:
        module = torch.jit.load(str(path), map_location="cpu", _extra_files=extra)
    except Exception as e:
        raise ValueError(f"{path}: not a TorchScript file ({type(e).__name__}: {e})") from e
    if not extra[METADATA_FILE]:
        raise ValueError(f"{path}: no {METADATA_FILE}; not a tfpot export (run 'tfpot export')")
    meta = json.loads(extra[METADATA_FILE])
    if meta.get("format") != EXPORT_FORMAT or meta.get("format_version") != EXPORT_FORMAT_VERSION:
        raise ValueError(f"{path}: export format {meta.get('format')!r} v{meta.get('format_version')}"
                         f" is not {EXPORT_FORMAT!r} v{EXPORT_FORMAT_VERSION}")
    return module, meta
