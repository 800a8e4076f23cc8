"""The training loss: weighted energy, force and stress errors, normalised by global counts.

    L = w_E * sum_g rho(dE_g) / n_E  +  w_F * sum_ic rho(dF_ic) / n_F  +  w_S * sum_gab rho(dS_gab) / n_S

with ``dE_g = (E_pred - E_ref) / N_g`` (per-atom energy, the default) or the total energy error,
``rho`` the square (mse) or the Huber function, and ``n_*`` the number of labelled entries in the
**whole** batch over all ranks (structures, force components, stress components). Each rank sums
over its share and divides by the global count, so the gradients of the ranks add up to the
gradient of the whole batch on one process (see :mod:`tfpot.training.distributed`).

Units: energy eV (or eV/atom), forces eV/Å, stress eV/Å^3.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Dict, Optional

import torch
from torch import Tensor

from tfpot import _keys as K

TERMS = ("energy", "forces", "stress")


@dataclass
class Targets:
    """Reference labels of one batch and where they exist.

    Shapes: energy (G,) float64 eV; num_atoms (G,); forces (N, 3); stress (G, 3, 3);
    masks (G,) / (N,) / (G,) bool (all True unless the data set pads missing labels).
    """

    num_atoms: Tensor
    batch: Tensor
    energy: Optional[Tensor] = None
    energy_mask: Optional[Tensor] = None
    forces: Optional[Tensor] = None
    forces_mask: Optional[Tensor] = None
    stress: Optional[Tensor] = None
    stress_mask: Optional[Tensor] = None

    @classmethod
    def from_batch(cls, batch) -> "Targets":
        """Labels of a PyG batch made by :mod:`tfpot.data.datasets`."""
        g = int(batch.num_graphs)
        index = batch[K.BATCH]
        num_atoms = torch.bincount(index, minlength=g).to(torch.float64)
        t = cls(num_atoms=num_atoms, batch=index)

        def mask(key: str, per_atom: bool) -> Tensor:
            m = batch[f"has_{key}"].reshape(-1) if f"has_{key}" in batch else \
                torch.ones(g, dtype=torch.bool, device=index.device)
            return m[index] if per_atom else m

        if K.ENERGY in batch:
            t.energy = batch[K.ENERGY].reshape(-1).to(torch.float64)
            t.energy_mask = mask("energy", False)
        if K.FORCES in batch:
            t.forces = batch[K.FORCES].to(torch.float64)
            t.forces_mask = mask("forces", True)
        if K.STRESS in batch:
            t.stress = batch[K.STRESS].reshape(-1, 3, 3).to(torch.float64)
            t.stress_mask = mask("stress", False)
        return t


def errors(pred: Dict[str, Tensor], t: Targets, per_atom_energy: bool = True) -> Dict[str, Tensor]:
    """Prediction minus reference for each labelled entry (float64, differentiable).

    Returns:
        ``energy_per_atom`` (n_E,), ``energy`` (n_E,) total, ``forces`` (n_F*3,), ``stress``
        (n_S*9,); only the terms that are both predicted and labelled.
    """
    out: Dict[str, Tensor] = {}
    if t.energy is not None and K.ENERGY in pred:
        d = pred[K.ENERGY].to(torch.float64) - t.energy
        d = d[t.energy_mask]
        out["energy"] = d
        out["energy_per_atom"] = d / t.num_atoms[t.energy_mask]
    if t.forces is not None and K.FORCES in pred:
        out["forces"] = (pred[K.FORCES].to(torch.float64) - t.forces)[t.forces_mask].reshape(-1)
    if t.stress is not None and K.STRESS in pred:
        out["stress"] = (pred[K.STRESS].to(torch.float64) - t.stress)[t.stress_mask].reshape(-1)
    return out


class WeightedLoss:
    """Weighted mse/Huber loss over energy, forces and stress (see the module doc).

    Args:
        energy_weight, forces_weight, stress_weight: term weights (0 switches a term off).
        per_atom_energy: energy error per atom (eV/atom) instead of total (eV).
        kind: ``"mse"`` or ``"huber"``; huber_delta: Huber transition point.
    """

    def __init__(self, energy_weight: float = 1.0, forces_weight: float = 10.0,
                 stress_weight: float = 0.0, per_atom_energy: bool = True, kind: str = "mse",
                 huber_delta: float = 0.01) -> None:
        if kind not in ("mse", "huber"):
            raise ValueError(f"loss type must be 'mse' or 'huber' (got {kind!r})")
        self.weights = {"energy": float(energy_weight), "forces": float(forces_weight),
                        "stress": float(stress_weight)}
        self.per_atom_energy = bool(per_atom_energy)
        self.kind = kind
        self.huber_delta = float(huber_delta)

    def rho(self, d: Tensor) -> Tensor:
        if self.kind == "mse":
            return d * d
        return torch.nn.functional.huber_loss(d, torch.zeros_like(d), reduction="none",
                                              delta=self.huber_delta)

    def energy_errors(self, err: Dict[str, Tensor]) -> Optional[Tensor]:
        return err.get("energy_per_atom" if self.per_atom_energy else "energy")

    def counts(self, t: Targets) -> Tensor:
        """(3,) float64: labelled energies, force components, stress components."""
        n_e = t.energy_mask.sum() if t.energy is not None else torch.zeros((), device=t.batch.device)
        n_f = 3 * t.forces_mask.sum() if t.forces is not None else torch.zeros((), device=t.batch.device)
        n_s = 9 * t.stress_mask.sum() if t.stress is not None else torch.zeros((), device=t.batch.device)
        return torch.stack([n_e, n_f, n_s]).to(torch.float64)

    def sums(self, err: Dict[str, Tensor]) -> Tensor:
        """(3,) float64 sums of rho over each term (zero where not labelled)."""
        parts = []
        for name, d in (("energy", self.energy_errors(err)), ("forces", err.get("forces")),
                        ("stress", err.get("stress"))):
            if d is None or self.weights[name] == 0:
                parts.append(torch.zeros((), dtype=torch.float64, device=self._device(err)))
            else:
                parts.append(self.rho(d).sum())
        return torch.stack(parts)

    def combine(self, sums: Tensor, counts: Tensor) -> Tensor:
        """Scalar loss from term sums and (global) counts."""
        w = torch.tensor([self.weights[k] for k in TERMS], dtype=torch.float64, device=sums.device)
        return (w * sums / counts.clamp(min=1.0)).sum()

    @staticmethod
    def _device(err: Dict[str, Tensor]):
        for v in err.values():
            return v.device
        return torch.device("cpu")

    def __repr__(self) -> str:
        w = ", ".join(f"{k}={v:g}" for k, v in self.weights.items())
        return (f"WeightedLoss({self.kind}, {w}, "
                f"{'per-atom' if self.per_atom_energy else 'total'} energy)")
