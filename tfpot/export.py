"""TorchScript export for engines that own the neighbour list and the ghost atoms (LAMMPS).

Format version 2. The exported module has two entry points.

``stage`` (used by ``pair_style tfpot``): the atomic energies cut into ``num_stages`` stages
(:meth:`tfpot.model.EnergyModel.stage`), each computed for the owned atoms from their own edges::

    stage(t, vec (E, 3), species (n,), edge_index (2, E), nlocal, state (n, W_t))
        -> state (nlocal, W_{t+1})          for t < num_stages - 1
        -> energies (nlocal,) float64, eV   for the last stage (E0 included)

``vec`` holds the edge vectors ``x_j - x_i`` of every owned centre i (``edge_index[0] < nlocal``),
cast to the model's dtype; ``state`` is the previous stage's state of every atom, owned and
ghost. Between stages the engine copies each owner's state row to its ghosts (forward
communication); in the backward pass it sums the ghosts' gradients into their owners (reverse
communication) before differentiating the previous stage. The state is invariant (expressed in
each atom's own frame), so it is copied verbatim. A local atom then depends on atoms one cutoff
away only: the engine's ghost shell is ``cutoff`` (+ skin) wide. Forces come from the gradient
with respect to ``vec`` (``dE/dx_j += g``, ``dE/dx_i -= g``).

``forward`` (explicit ghosts, no exchange; Python tests and format-1 users): local atoms first,
then ghost atoms out to ``ghost_cutoff`` = ``num_hops * cutoff``, all ordered pairs within the
cutoff, and the number of local atoms::

    forward(pos (n, 3), species (n,) model species index, edge_index (2, E) [centre, neighbour],
            nlocal: int) -> (energy () float64, atomic_energies (n,) float64, forces (n, 3))

The file carries ``metadata.json``: format, format_version, species, cutoff, num_hops,
ghost_cutoff (the receptive field, for ``forward``), num_stages, state_widths (numbers per atom
sent to ghosts after each stage but the last), units "metal", dtype, tfpot and torch versions,
and ``checksum``: SHA-256 of the other metadata and of every parameter and buffer
(:func:`tfpot.integrity.export_digest`). :func:`load_exported` and the LAMMPS pair style refuse
an export whose checksum does not match; exports written before tfpot 0.4 have none and load
unverified.
"""

from __future__ import annotations

import copy
import json
import os
from typing import Any, Dict, List, Sequence, Tuple, Union

import torch
from torch import Tensor, nn

from tfpot._version import __version__
from tfpot.atomic_io import atomic_path
from tfpot.builder import load_model, resolve_dtype
from tfpot.energy_derivatives import energy_gradients
from tfpot.errors import FileIntegrityError, TfpotError, short_reason
from tfpot.integrity import CHECKSUM_KEY, export_digest, verify_export
from tfpot.legacy_average import MirrorAveragedEnergyModel
from tfpot.model import EnergyModel

EXPORT_FORMAT = "tfpot-lammps"
EXPORT_FORMAT_VERSION = 2
# versions load_exported reads: 1 (forward only, tfpot <= 0.3) and 2 (forward and stage)
READABLE_FORMAT_VERSIONS = (1, 2)
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

    @torch.jit.export
    def stage(self, t: int, vec: Tensor, species: Tensor, edge_index: Tensor, nlocal: int,
              state: Tensor) -> Tensor:
        """Stage ``t`` for the owned atoms (see the module docstring); the last one's energies
        are final (the model's readout adds E0)."""
        return self.model.stage(t, vec, species, edge_index, nlocal, state)


def lammps_metadata(species: Sequence[int], cutoff: float, num_hops: int,
                    dtype: Union[str, torch.dtype], num_stages: int,
                    state_width: int) -> Dict[str, Any]:
    """The ``metadata.json`` of an export, as the LAMMPS plugin reads it (pair_tfpot.cpp).

    Args: atomic numbers in the module's species order, cutoff (Å), reach in cutoffs, dtype of
    the module's parameters, stages of :meth:`~tfpot.model.EnergyModel.stage` (the layers) and
    numbers per atom in the state handed between them.
    """
    return {
        "format": EXPORT_FORMAT,
        "format_version": EXPORT_FORMAT_VERSION,
        "species": [int(z) for z in species],
        "cutoff": float(cutoff),
        "num_hops": int(num_hops),
        "ghost_cutoff": float(num_hops * cutoff),
        "num_stages": int(num_stages),
        "state_widths": [int(state_width)] * (int(num_stages) - 1),
        "units": "metal",
        "dtype": str(dtype).replace("torch.", ""),
        "tfpot_version": __version__,
        "torch_version": torch.__version__.split("+")[0],
    }


def export_metadata(model: EnergyModel, dtype: torch.dtype) -> Dict[str, Any]:
    """:func:`lammps_metadata` of ``model`` exported with parameters in ``dtype``."""
    return lammps_metadata(model.species, model.cutoff, model.num_hops, dtype, model.num_layers,
                           model.state_width)


def export_model(model: Union[EnergyModel, str, os.PathLike], path: Union[str, os.PathLike],
                 dtype: Union[str, torch.dtype, None] = None) -> Dict[str, Any]:
    """Script ``model`` (or the model file at that path) and write it atomically to ``path``.

    Returns the metadata written with it.
    """
    if not isinstance(model, EnergyModel):
        model = load_model(model)
    if isinstance(model, MirrorAveragedEnergyModel):
        raise TfpotError("model file from tfpot < 0.2 (parity='average'): LAMMPS export needs a "
                         "model trained with tfpot >= 0.2; retrain")
    # a copy: Module.to() and eval() work in place, and the caller's model must stay as it was
    model = copy.deepcopy(model)
    if dtype is not None:
        model = model.to(resolve_dtype(dtype))
    model = model.cpu().eval()
    # The engine differentiates with respect to edge vectors and states only: without weight
    # gradients autograd saves fewer tensors for the backward pass (less memory per atom).
    for p in model.parameters():
        p.requires_grad_(False)
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
    if meta.get("format") != EXPORT_FORMAT or meta.get("format_version") not in READABLE_FORMAT_VERSIONS:
        raise FileIntegrityError(f"{path}: export format {meta.get('format')!r} "
                                 f"v{meta.get('format_version')} is not {EXPORT_FORMAT!r} "
                                 f"v{EXPORT_FORMAT_VERSION} (or v1, forward only); export the model "
                                 f"again with `tfpot export MODEL -o FILE`")
    verify_export(meta, scripted_tensors(module), path)
    return module, meta
