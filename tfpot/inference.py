"""Evaluate a model on ASE structures: graph building, dtype/device handling, numpy results."""

from __future__ import annotations

from typing import Dict, Optional, Sequence

import numpy as np
import torch
from ase import Atoms
from ase.data import chemical_symbols

from tfpot import _keys as K
from tfpot.errors import UnknownElementError
from tfpot.graph import atoms_to_graph


def model_dtype(model: torch.nn.Module) -> torch.dtype:
    return next(p for p in model.parameters()).dtype


def model_device(model: torch.nn.Module) -> torch.device:
    return next(p for p in model.parameters()).device


def require_known_elements(species: Sequence[int], numbers: np.ndarray) -> None:
    """Raise :class:`~tfpot.errors.UnknownElementError` naming, by symbol and atom index, the
    atoms whose element is not in ``species`` (atomic numbers the model knows)."""
    known = np.zeros(119, dtype=bool)
    known[list(species)] = True
    numbers = np.asarray(numbers)
    ok = (numbers >= 0) & (numbers < 119)
    ok[ok] = known[numbers[ok]]
    if ok.all():
        return
    bad = np.flatnonzero(~ok)
    listed = ", ".join(f"{_symbol(numbers[i])} (atom {i})" for i in bad[:10])
    more = f" and {len(bad) - 10} more" if len(bad) > 10 else ""
    raise UnknownElementError(
        f"element(s) not in this model: {listed}{more}; the model knows "
        f"{', '.join(chemical_symbols[z] for z in species)}: use a model trained on every "
        f"element of the structure")


def _symbol(z: int) -> str:
    return chemical_symbols[z] if 0 <= z < len(chemical_symbols) else f"Z={z}"


def predict(model: torch.nn.Module, atoms: Atoms, stress: Optional[bool] = None,
            graph: Optional[Dict[str, torch.Tensor]] = None) -> Dict[str, np.ndarray]:
    """Energy (eV, float64), per-atom energies, forces (eV/Å) and, for cells periodic in all three
    directions (or when ``stress=True``), stress (3x3, eV/Å^3, ASE sign) and virial (eV).
    """
    require_known_elements(model.species, atoms.numbers)
    if stress is None:
        stress = bool(np.all(atoms.get_pbc()))
    device = model_device(model)
    if graph is None:
        graph = atoms_to_graph(atoms, float(model.cutoff), dtype=torch.float64, device=device)
    with torch.enable_grad():
        out = model(graph, True, bool(stress))
    res = {
        "energy": float(out[K.ENERGY].detach().cpu().double()[0]),
        "energies": out[K.ATOMIC_ENERGIES].detach().cpu().double().numpy(),
        "forces": out[K.FORCES].detach().cpu().double().numpy(),
    }
    if stress:
        res["stress"] = out[K.STRESS].detach().cpu().double().numpy()[0]
        res["virial"] = out[K.VIRIAL].detach().cpu().double().numpy()[0]
    return res
