"""tfpot.energy_derivatives: forces, virial and stress, and stress at zero volume (float64)."""

import numpy as np
import torch
from ase.build import molecule
from torch_geometric.data import Batch

import tfpot
from tfpot import _keys as K
from tfpot.data.datasets import atoms_to_data, model_inputs
from tfpot.energy_derivatives import apply_strain, energy_gradients, stress_from_virial
from tfpot.graph import atoms_to_graph
from tfpot.testing.structures import ethanol, triclinic_cu

from helpers import make_model


def test_stress_from_virial_is_zero_at_zero_volume_and_minus_w_over_v_otherwise():
    virial = torch.arange(18, dtype=torch.float64).reshape(2, 3, 3)
    cell = torch.stack([torch.zeros(3, 3, dtype=torch.float64), 2.0 * torch.eye(3, dtype=torch.float64)])
    stress = stress_from_virial(virial, cell)
    assert torch.equal(stress[0], torch.zeros(3, 3, dtype=torch.float64))
    assert torch.equal(stress[1], -virial[1] / 8.0)
    assert stress.dtype == torch.float64


def test_molecule_stress_is_zero_and_finite_float64():
    # compute_stress on a molecule (cell of zeros): virial finite, stress exactly 0 (no inf/NaN)
    model = make_model()
    out = model(atoms_to_graph(ethanol(), model.cutoff), True, True)
    assert torch.isfinite(out[K.VIRIAL]).all() and out[K.VIRIAL].abs().max() > 0
    assert torch.equal(out[K.STRESS], torch.zeros(1, 3, 3, dtype=torch.float64))


def test_batch_of_molecule_and_crystal_float64():
    # the crystal's stress in a mixed batch equals its own (abs 1e-12 eV/Å^3); the molecule's is 0
    model = make_model()
    cu = triclinic_cu()
    batch = Batch.from_data_list([atoms_to_data(molecule("CH4"), model.cutoff),
                                  atoms_to_data(cu, model.cutoff)])
    out = model(model_inputs(batch), True, True)
    alone = tfpot.predict(model, cu)
    assert torch.equal(out[K.STRESS][0], torch.zeros(3, 3, dtype=torch.float64))
    assert np.abs(out[K.STRESS][1].numpy() - alone["stress"]).max() < 1e-12


def test_energy_gradients_of_a_quadratic_float64():
    # E = sum |x|^2 (strained): F = -2x exactly; virial = -dE/d(eps) = -2 sum x x^T
    pos = torch.randn(5, 3, dtype=torch.float64, requires_grad=True)
    batch = torch.zeros(5, dtype=torch.long)
    edge_index = torch.zeros(2, 0, dtype=torch.long)
    strain, strained, _ = apply_strain(pos, torch.zeros(0, 3, dtype=torch.float64), batch,
                                       edge_index, 1)
    forces, virial = energy_gradients((strained ** 2).sum(), pos, strain, False)
    assert torch.allclose(forces, -2 * pos, rtol=0, atol=1e-14)
    assert torch.allclose(virial[0], -2 * pos.detach().T @ pos.detach(), rtol=0, atol=1e-13)
    # an input the energy does not use gets a zero derivative, not None
    forces, virial = energy_gradients(strain.sum(), pos, strain, False)
    assert torch.equal(forces, torch.zeros_like(pos))
