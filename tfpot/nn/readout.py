"""The readout: per-atom energies from the final scalar features, final in float64.

    E_i = scale * MLP(s_i) + shift + E0[z_i]

``scale`` and ``shift`` (eV) put the network output on the data's scale, ``E0`` (eV per element)
is the reference energy of an isolated atom of each element; all three are float64 buffers
fitted to the training set before training (:mod:`tfpot.training.normalisation`). What leaves
the readout is the model's per-atom energy: nothing is added downstream (forward pass, export).
"""

from __future__ import annotations

from typing import Sequence

import torch
from torch import Tensor, nn

from tfpot.nn.mlp import MLP


class EnergyReadout(nn.Module):
    """``E_i = scale * MLP(s_i) + shift + E0[z_i]``.

    Args:
        in_dim: scalar channels per atom; hidden: MLP width; num_species: elements (E0 entries).

    Shapes: s (N, in_dim), species (N,) model species index -> (N,) float64.
    Units: eV.
    """

    def __init__(self, in_dim: int, hidden: int, num_species: int):
        super().__init__()
        self.mlp = MLP(in_dim, [hidden], 1)
        self.register_buffer("atomic_reference", torch.zeros(num_species, dtype=torch.float64))
        self.register_buffer("energy_scale", torch.ones((), dtype=torch.float64))
        self.register_buffer("energy_shift", torch.zeros((), dtype=torch.float64))

    def network(self, s: Tensor) -> Tensor:
        """The network's output (N,), float64, before scale, shift and E0."""
        return self.mlp(s).squeeze(-1).to(torch.float64)

    def finish(self, network_output: Tensor, species: Tensor) -> Tensor:
        """``scale * network_output + shift + E0[z_i]`` (N,) float64, eV."""
        return (network_output * self.energy_scale + self.energy_shift
                + self.atomic_reference.index_select(0, species))

    def forward(self, s: Tensor, species: Tensor) -> Tensor:
        return self.finish(self.network(s), species)

    @torch.no_grad()
    def set_statistics(self, atomic_reference: Sequence[float], scale: float,
                       shift: float) -> None:
        """Write E0 (eV, one per model species, in the model's order), scale and shift (eV)."""
        e0 = torch.as_tensor(atomic_reference, dtype=torch.float64)
        if e0.shape != self.atomic_reference.shape:
            raise ValueError(f"expected {self.atomic_reference.numel()} reference energies, one "
                             f"per model species (got {tuple(e0.shape)})")
        self.atomic_reference.copy_(e0)
        self.energy_scale.fill_(float(scale))
        self.energy_shift.fill_(float(shift))

    def extra_repr(self) -> str:
        return (f"E_i = {float(self.energy_scale):.4g} * MLP(s_i) + "
                f"{float(self.energy_shift):.4g} + E0[z_i] eV")
