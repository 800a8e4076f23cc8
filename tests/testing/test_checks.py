"""Negative controls of tfpot.testing's checks: a deliberately broken model fails each one.

Every broken model is the small test model (same weights) with one plausible bug. The checks run
at their default float64 tolerances (tfpot.testing.TOLERANCES); the healthy model passes all of
them in tests/test_model.py (tfpot.testing.contract.ModelContract).
"""

import pytest
import torch
from ase import Atoms

from tfpot import _keys as K
from tfpot.model import EnergyModel
from tfpot.testing import (assert_bounded_near_symmetry, assert_deterministic_at_symmetry,
                           assert_extensive, assert_forces_are_gradients, assert_o3_invariant,
                           assert_smooth_scan, assert_stress_is_strain_derivative,
                           symmetric_structures)
from tfpot.testing.structures import ethanol, triclinic_cu

from helpers import make_model


def broken(cls):
    """``cls`` (an EnergyModel subclass with a bug) with the weights of the test model, float64."""
    healthy = make_model()
    model = cls(healthy.species, healthy.cutoff, healthy.hyperparameters).to(torch.float64)
    model.load_state_dict(healthy.state_dict())
    return model.eval()


class OrientationDependent(EnergyModel):
    """A term that depends on absolute positions (an external field that should not be there)."""

    def atomic_energies(self, pos, species, edge_index, shifts):
        return super().atomic_energies(pos, species, edge_index, shifts) + 1e-3 * torch.tanh(pos[:, 2])


class NonConservative(EnergyModel):
    """Forces 1 % too large: not the gradient of the energy (a smaller error hides below
    the check's FORCE_FLOOR on an untrained model, whose |F| is ~1e-3 eV/Å)."""

    def forward(self, data, compute_forces=True, compute_stress=False):
        out = super().forward(data, compute_forces, compute_stress)
        out[K.FORCES] = out[K.FORCES] * 1.01
        return out


class WrongVolume(EnergyModel):
    """Stress divided by half the volume."""

    def forward(self, data, compute_forces=True, compute_stress=False):
        out = super().forward(data, compute_forces, compute_stress)
        if compute_stress:
            out[K.STRESS] = 2.0 * out[K.STRESS]
        return out


class RandomFallback(EnergyModel):
    """Random noise where frames degenerate, as the reference code does (1e-12 eV per atom)."""

    def atomic_energies(self, pos, species, edge_index, shifts):
        e = super().atomic_energies(pos, species, edge_index, shifts)
        return e + 1e-12 * torch.rand(e.shape, dtype=e.dtype)


class HardCutoff(EnergyModel):
    """A pair term truncated at 0.75 cutoff without an envelope: E jumps, F does not see it."""

    def atomic_energies(self, pos, species, edge_index, shifts):
        e = super().atomic_energies(pos, species, edge_index, shifts)
        vec = pos[edge_index[1]] - pos[edge_index[0]] + shifts
        close = ((vec * vec).sum(-1) < (0.75 * self.cutoff) ** 2).to(e.dtype)
        return e + 0.01 * torch.zeros_like(e).index_add(0, edge_index[0], close)


class SizeNormalised(EnergyModel):
    """A term that grows with the size of the whole structure (non-local normalisation)."""

    def atomic_energies(self, pos, species, edge_index, shifts):
        e = super().atomic_energies(pos, species, edge_index, shifts)
        return e + 1e-3 * pos.shape[0]


class UngatedFrame(EnergyModel):
    """A direction normalised without a gate: turns like 1/delta near a symmetric site."""

    def atomic_energies(self, pos, species, edge_index, shifts):
        e = super().atomic_energies(pos, species, edge_index, shifts)
        vec = pos[edge_index[1]] - pos[edge_index[0]] + shifts
        unit = vec / vec.norm(dim=-1, keepdim=True)
        v = torch.zeros_like(pos).index_add(0, edge_index[0], unit)
        u = v / (v.norm(dim=-1, keepdim=True) + 1e-12)
        return e + 1e-2 * u[:, 0]


def test_o3_invariance_fails_on_orientation_dependence():
    with pytest.raises(AssertionError, match="not O\\(3\\)-invariant"):
        assert_o3_invariant(broken(OrientationDependent), ethanol())


def test_o3_invariance_fails_on_an_so3_only_model():
    # a real model without the parity split: invariant under rotations, not under reflections
    so3 = make_model(parity="none")
    assert_o3_invariant(so3, ethanol(), include_reflections=False)
    with pytest.raises(AssertionError, match="under a rotoreflection"):
        assert_o3_invariant(so3, ethanol())


def test_force_check_fails_on_non_conservative_forces():
    with pytest.raises(AssertionError, match="forces differ from finite differences"):
        assert_forces_are_gradients(broken(NonConservative), ethanol(), atom_indices=[0, 1])


def test_stress_check_fails_on_a_wrong_volume():
    with pytest.raises(AssertionError, match="stress differs from the strain derivative"):
        assert_stress_is_strain_derivative(broken(WrongVolume), triclinic_cu())


def test_determinism_check_fails_on_random_fallbacks():
    atoms, zero_force = symmetric_structures()["CH4"]
    with pytest.raises(AssertionError, match="differ between identical calls"):
        assert_deterministic_at_symmetry(broken(RandomFallback), atoms,
                                         zero_force_atoms=zero_force)


def test_determinism_check_fails_on_a_force_symmetry_forbids():
    atoms, zero_force = symmetric_structures()["CH4"]
    with pytest.raises(AssertionError, match="changes under rotation|symmetry demands zero force"):
        assert_deterministic_at_symmetry(broken(OrientationDependent), atoms,
                                         zero_force_atoms=zero_force)


def test_scan_check_fails_on_a_hard_cutoff():
    atoms = ethanol()
    direction = atoms.positions[1] - atoms.positions[8]
    with pytest.raises(AssertionError, match="energy jumps|does not match the force"):
        assert_smooth_scan(broken(HardCutoff), atoms, 8, direction, length=2.0, n_steps=200)


def test_extensivity_check_fails_on_a_size_dependent_term():
    with pytest.raises(AssertionError, match="not twice one copy"):
        assert_extensive(broken(SizeNormalised), ethanol())


def test_bounded_force_check_fails_on_an_ungated_frame():
    atoms = symmetric_structures()["CH4"][0]
    with pytest.raises(AssertionError, match="from the symmetric structure|forces change by"):
        assert_bounded_near_symmetry(broken(UngatedFrame), atoms)


def test_checks_accept_a_calculator_and_see_its_bugs():
    # the same checks through an ASE calculator: the healthy one passes, a broken one fails
    from tfpot.calculators import TFPotCalculator

    atoms = Atoms("H2O", positions=[[0, 0, 0], [0.96, 0, 0], [-0.24, 0.93, 0.05]])
    assert_forces_are_gradients(TFPotCalculator(make_model()), atoms)
    with pytest.raises(AssertionError, match="forces differ"):
        assert_forces_are_gradients(TFPotCalculator(broken(NonConservative), script=False),
                                    atoms)
