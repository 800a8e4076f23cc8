"""What the frame gates do on real data: how many atoms have a usable frame, and how much of
the energy the frame path (gated frames and, where a model has one, the weighted frame ensemble)
carries."""

from __future__ import annotations

from typing import Dict, Iterable, Tuple

import numpy as np
import torch
from ase import Atoms

from tfpot import _keys as K
from tfpot.builder import model_from_config
from tfpot.geometry import edge_geometry
from tfpot.graph import atoms_to_graph
from tfpot.inference import predict
from tfpot.model import EnergyModel


@torch.no_grad()
def local_frames(model: EnergyModel, atoms: Atoms) -> Tuple[torch.Tensor, torch.Tensor]:
    """Frames (N, 3, 3), rows = local axes, and gates (N,) in [0, 1] the model builds for
    ``atoms`` (gate 1: frame fully used, 0: frame-free)."""
    g = atoms_to_graph(atoms, model.cutoff)
    species = model.species_index(g[K.ATOMIC_NUMBERS])
    return model.local_frames(g[K.POSITIONS], species, g[K.EDGE_INDEX], g[K.SHIFTS])


@torch.no_grad()
def frame_ensemble_features(model: EnergyModel, atoms: Atoms) -> torch.Tensor:
    """The weighted frame ensemble's features (N, mul0) of every atom (what joins its scalars
    after layer 1; :mod:`tfpot.nn.frame_ensemble`).

    Raises:
        ValueError: the model has no frame ensemble (``ensemble_channels`` 0).
    """
    if model.frame_ensemble is None:
        raise ValueError("this model has no frame ensemble (ensemble_channels = 0)")
    g = atoms_to_graph(atoms, model.cutoff)
    edge_index = g[K.EDGE_INDEX]
    geometry = edge_geometry(g[K.POSITIONS], edge_index, g[K.SHIFTS],
                             model.embedding.weight.dtype)
    species = model.species_index(g[K.ATOMIC_NUMBERS])
    return model.frame_ensemble(species, geometry.r, geometry.unit, model.rbf(geometry.r),
                                edge_index[0], edge_index[1])


def frame_free_model(model: EnergyModel) -> EnergyModel:
    """The same weights with the frame path switched off (the ablation): every gate forced shut
    and the frame ensemble, if any, removed. In evaluation mode."""
    return _without_ensemble(model, {**model.config, "gate_range": (1e6, 2e6)})


def ensemble_free_model(model: EnergyModel) -> EnergyModel:
    """The same weights without the frame ensemble (gates as they are). In evaluation mode.

    Raises:
        ValueError: the model has no frame ensemble.
    """
    if model.frame_ensemble is None:
        raise ValueError("this model has no frame ensemble (ensemble_channels = 0)")
    return _without_ensemble(model, model.config)


def _without_ensemble(model: EnergyModel, config: Dict) -> EnergyModel:
    """A model of ``config`` with ``model``'s weights and no frame ensemble, in evaluation mode."""
    free = model_from_config(config).to(model.embedding.weight.dtype)
    free.load_state_dict(model.state_dict())
    free.frame_ensemble = None
    return free.eval()


def frame_gates(model: EnergyModel, atoms: Atoms) -> np.ndarray:
    """Gate g_i in [0, 1] of every atom (1: frame fully used, 0: frame-free), float64."""
    return local_frames(model, atoms)[1].double().numpy()


def gate_statistics(model: EnergyModel, structures: Iterable[Atoms]) -> Dict[str, float]:
    """Fractions of atoms with closed (g = 0), partial (0 < g < 1) and open (g = 1) gates, the
    mean |E_frames - E_frame-free| per atom (eV): the energy the frame path carries, measured by
    evaluating the same weights with the frame path off (:func:`frame_free_model`), and for a
    model with a frame ensemble the part of it that the ensemble carries (the same without the
    ensemble only, :func:`ensemble_free_model`; NaN without one)."""
    closed_model = frame_free_model(model)
    no_ensemble = ensemble_free_model(model) if model.frame_ensemble is not None else None
    gates, diffs, ens = [], [], []
    for atoms in structures:
        gates.append(frame_gates(model, atoms))
        e_open = predict(model, atoms, stress=False)["energy"]
        e_closed = predict(closed_model, atoms, stress=False)["energy"]
        diffs.append(abs(e_open - e_closed) / len(atoms))
        if no_ensemble is not None:
            ens.append(abs(e_open - predict(no_ensemble, atoms, stress=False)["energy"])
                       / len(atoms))
    g = np.concatenate(gates)
    return {
        "atoms": float(len(g)),
        "fraction_closed": float(np.mean(g == 0.0)),
        "fraction_partial": float(np.mean((g > 0.0) & (g < 1.0))),
        "fraction_open": float(np.mean(g == 1.0)),
        "frame_energy_per_atom_eV": float(np.mean(diffs)),
        "ensemble_energy_per_atom_eV": float(np.mean(ens)) if ens else float("nan"),
    }


@torch.no_grad()
def frame_weight_saturation(model: EnergyModel, structures: Iterable[Atoms],
                            threshold: float = 0.99) -> np.ndarray:
    """Share of edges whose frame weights ``w = tanh(logit)`` have ``|w| > threshold``, per weight
    (3,): 1.0 means the weight is a constant sign on every edge (its tanh saturated, its
    gradient ~0), so the frames are a fixed geometric construction rather than learned."""
    counts = np.zeros(3)
    total = 0
    for atoms in structures:
        g = atoms_to_graph(atoms, model.cutoff)
        edge_index = g[K.EDGE_INDEX]
        geometry = edge_geometry(g[K.POSITIONS], edge_index, g[K.SHIFTS],
                                 model.embedding.weight.dtype)
        w = torch.tanh(model.frames.weight_logits(model.species_index(g[K.ATOMIC_NUMBERS]),
                                                  model.rbf(geometry.r), edge_index[0],
                                                  edge_index[1]))
        counts += (w.abs() > threshold).double().sum(0).numpy()
        total += w.shape[0]
    return counts / max(total, 1)
