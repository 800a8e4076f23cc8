"""Forces, virial and stress as exact derivatives of the energy: one implementation, used by
:meth:`tfpot.model.EnergyModel.forward` and by the TorchScript export (:mod:`tfpot.export`).

    F_k = -dE/dx_k                      (eV/Å)
    W   = -dE/d(eps)                    (eV), eps a symmetric strain: x -> x (1 + eps)
    stress = -W / |det cell|            (eV/Å^3, ASE sign); 0 for a cell of zero volume

The strain acts on positions and on the periodic-image shifts of every edge, so that
``dE/d(eps)`` is the derivative of the energy of the periodic structure under a homogeneous
deformation of its cell.
"""

from __future__ import annotations

from typing import List, Optional, Tuple

import torch
from torch import Tensor


def apply_strain(pos: Tensor, shifts: Tensor, batch: Tensor, edge_index: Tensor,
                 num_graphs: int) -> Tuple[Tensor, Tensor, Tensor]:
    """A zero strain per structure (requiring gradients) applied to positions and shifts.

    Shapes: pos (N, 3), shifts (E, 3), batch (N,), edge_index (2, E) -> strain (G, 3, 3),
    strained pos (N, 3), strained shifts (E, 3).
    """
    strain = torch.zeros(num_graphs, 3, 3, dtype=pos.dtype, device=pos.device)
    strain.requires_grad_(True)
    sym = 0.5 * (strain + strain.transpose(1, 2))
    pos = pos + torch.bmm(pos.unsqueeze(1), sym[batch]).squeeze(1)
    edge_graph = batch[edge_index[0]]
    shifts = shifts + torch.bmm(shifts.unsqueeze(1), sym[edge_graph]).squeeze(1)
    return strain, pos, shifts


def energy_gradients(energy: Tensor, pos: Tensor, strain: Optional[Tensor],
                     create_graph: bool) -> Tuple[Tensor, Optional[Tensor]]:
    """Forces ``-dE/dpos`` (N, 3) and, with a strain, the virial ``-dE/d(strain)`` (G, 3, 3).

    Args:
        energy: scalar total energy (eV) computed from ``pos`` (and ``strain``).
        create_graph: keep the graph of the derivatives (training on forces).
    Inputs the energy does not depend on get zero derivatives.
    """
    inputs: List[Tensor] = [pos]
    if strain is not None:
        inputs.append(strain)
    grads = torch.autograd.grad([energy], inputs, create_graph=create_graph, allow_unused=True)
    g_pos = grads[0]
    forces = -g_pos if g_pos is not None else torch.zeros_like(pos)
    virial: Optional[Tensor] = None
    if strain is not None:
        g_strain = grads[1]
        virial = -g_strain if g_strain is not None else torch.zeros_like(strain)
    return forces, virial


def stress_from_virial(virial: Tensor, cell: Tensor) -> Tensor:
    """``-virial / |det cell|`` (G, 3, 3) float64 eV/Å^3; zero where the cell has no volume
    (molecules in a batch), never inf or NaN.

    Shapes: virial (G, 3, 3) eV, cell (G, 3, 3) Å (lattice vectors as rows).
    """
    volume = torch.abs(torch.linalg.det(cell.reshape(-1, 3, 3).to(torch.float64)))
    has_volume = volume > 0
    safe = torch.where(has_volume, volume, torch.ones_like(volume))
    stress = -virial.to(torch.float64) / safe.view(-1, 1, 1)
    return torch.where(has_volume.view(-1, 1, 1), stress, torch.zeros_like(stress))
