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
units "metal", dtype, tfpot and torch versions, and ``checksum``: SHA-256 of the other metadata
and of every parameter and buffer, :func:`tfpot.integrity.export_digest`). :func:`load_exported`
and the LAMMPS pair style refuse an export whose checksum does not match; exports written before
tfpot 0.4 have none and load unverified.
"""

from __future__ import annotations

import json
import os
from typing import Any, Dict, List, Sequence, Tuple, Union

import torch
from torch import Tensor, nn

from tfpot._version import __version__
from tfpot.atomic_io import atomic_path
from tfpot.builder import load_model, resolve_dtype
from tfpot.energy_derivatives import energy_gradients
from tfpot.errors import FileIntegrityError, short_reason
from tfpot.integrity import CHECKSUM_KEY, export_digest, verify_export
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
    meta[CHECKSUM_KEY] = export_digest(meta, scripted_tensors(scripted))
    with atomic_path(path) as tmp:
        torch.jit.save(scripted, tmp, _extra_files={METADATA_FILE: json.dumps(meta)})
    return meta


def scripted_tensors(module: torch.jit.ScriptModule) -> List[Tuple[str, Tensor]]:
    """Every parameter and buffer of a scripted module, by dotted name (what the checksum of an
    export covers; the LAMMPS pair style walks the same lists)."""
    return list(module.named_parameters()) + list(module.named_buffers())


def load_exported(path: Union[str, os.PathLike]) -> Tuple[torch.jit.ScriptModule, Dict[str, Any]]:
    """Load an exported module and its metadata.

    Raises:
        FileNotFoundError: no such file.
        FileIntegrityError: not a TorchScript file, not a tfpot export, another format version,
            or failing its checksum; the message names the file.
    """
    if not os.path.exists(path):
        raise FileNotFoundError(f"{path}: no such export file")
    extra = {METADATA_FILE: ""}
    try:
        module = torch.jit.load(str(path), map_location="cpu", _extra_files=extra)
    except Exception as e:
        raise FileIntegrityError(f"{path}: not a TorchScript file, or a torn one "
                                 f"({short_reason(e)}); export the model again with "
                                 f"`tfpot export`") from e
    if not extra[METADATA_FILE]:
        raise FileIntegrityError(f"{path}: no {METADATA_FILE}; not a tfpot export (run 'tfpot export')")
    try:
        meta = json.loads(extra[METADATA_FILE])
    except ValueError as e:
        raise FileIntegrityError(f"{path}: {METADATA_FILE} is not valid JSON ({e}); export the "
                                 f"model again with `tfpot export`") from e
    if not isinstance(meta, dict):
        raise FileIntegrityError(f"{path}: {METADATA_FILE} is not a JSON object; export the model "
                                 f"again with `tfpot export`")
    if meta.get("format") != EXPORT_FORMAT or meta.get("format_version") != EXPORT_FORMAT_VERSION:
        raise FileIntegrityError(f"{path}: export format {meta.get('format')!r} "
                                 f"v{meta.get('format_version')} is not {EXPORT_FORMAT!r} "
                                 f"v{EXPORT_FORMAT_VERSION}")
    verify_export(meta, scripted_tensors(module), path)
    return module, meta
