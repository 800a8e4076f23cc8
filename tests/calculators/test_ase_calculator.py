"""TFPotCalculator: agreement with the model, stress as strain derivative, the skin neighbour
list, dtype/device handling, ASE caching and refusals of bad input."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from ase import Atoms, units
from ase.calculators.calculator import PropertyNotImplementedError
from ase.calculators.emt import EMT
from ase.md.langevin import Langevin
from ase.stress import full_3x3_to_voigt_6_stress

import tfpot
from helpers import make_model
from tfpot.testing.structures import ethanol, triclinic_cu
from tfpot.calculators import TFPotCalculator
from tfpot.calculators.md_cli import init_velocities
from tfpot.testing import assert_forces_are_gradients, assert_stress_is_strain_derivative


@pytest.fixture(scope="module")
def model():
    return make_model()


def _slab():
    a = triclinic_cu(seed=2)
    a.pbc = (True, True, False)
    return a


STRUCTURES = {"molecule": ethanol, "triclinic cell": triclinic_cu, "slab (pbc T,T,F)": _slab}


@pytest.mark.parametrize("name", list(STRUCTURES))
def test_calculator_equals_predict(model, name):
    """The Python module path is bit for bit tfpot.predict's (same operations)."""
    atoms = STRUCTURES[name]()
    ref = tfpot.predict(model, atoms)
    for skin in (0.0, 0.5):
        atoms.calc = TFPotCalculator(model, skin=skin, script=False)
        e = atoms.get_potential_energy()
        assert e == ref["energy"], (skin, e - ref["energy"])
        assert atoms.get_potential_energy(force_consistent=True) == ref["energy"]
        np.testing.assert_array_equal(atoms.get_forces(), ref["forces"])
        np.testing.assert_array_equal(atoms.get_potential_energies(), ref["energies"])
        assert atoms.get_forces().dtype == np.float64
        if "stress" in ref:
            np.testing.assert_array_equal(atoms.get_stress(), full_3x3_to_voigt_6_stress(ref["stress"]))
            np.testing.assert_array_equal(atoms.get_stress(voigt=False), ref["stress"])
        else:
            with pytest.raises(PropertyNotImplementedError, match="periodic in all three"):
                atoms.get_stress()
    assert abs(atoms.get_potential_energies().sum() - ref["energy"]) < 1e-10


@pytest.mark.parametrize("name", list(STRUCTURES))
def test_scripted_calculator_equals_predict(model, name):
    """The default TorchScript path runs the module's own operations: bit for bit the same
    numbers as tfpot.predict (float64 model), from the first call on."""
    atoms = STRUCTURES[name]()
    ref = tfpot.predict(model, atoms)
    atoms.calc = TFPotCalculator(model, skin=0.5)
    assert isinstance(atoms.calc._evaluate, torch.jit.ScriptModule)  # what runs
    for _ in range(3):  # TorchScript's optimising executor would change the rounding here
        atoms.calc.reset()
        assert atoms.get_potential_energy() == ref["energy"]
        np.testing.assert_array_equal(atoms.get_forces(), ref["forces"])
        np.testing.assert_array_equal(atoms.get_potential_energies(), ref["energies"])
        if "stress" in ref:
            np.testing.assert_array_equal(atoms.get_stress(),
                                          full_3x3_to_voigt_6_stress(ref["stress"]))


def test_stress_and_forces_are_derivatives_through_the_calculator_float64(model):
    # the contract checks, evaluated through the calculator (its skin list, its copy of the
    # model): central differences of its energy, float64, relative 1e-6
    calc = TFPotCalculator(model)
    assert_stress_is_strain_derivative(calc, triclinic_cu(seed=3), tol=1e-6)
    assert_forces_are_gradients(calc, triclinic_cu(seed=4), atom_indices=[0, 3, 5], tol=1e-6)


def test_skin_list_matches_fresh_list_over_periodic_md(model):
    """200 steps of hot Langevin MD (driven by EMT) in a small triclinic cell, atoms leaving the
    cell unwrapped: the skin calculator gives the forces of a fresh neighbour list (abs 1e-12)."""
    atoms = triclinic_cu(seed=5)
    atoms.calc = EMT()
    init_velocities(atoms, 1500.0, seed=5)
    skin = TFPotCalculator(model, skin=0.5)
    fresh = TFPotCalculator(model, skin=0.0)
    dyn = Langevin(atoms, 2.0 * units.fs, temperature_K=1500.0, friction=0.01 / units.fs,
                   rng=np.random.default_rng(5), fixcm=False)
    worst = [0.0, 0.0]

    def compare():
        a = atoms.copy()
        skin.calculate(a, ["energy", "forces", "stress"])
        fresh.calculate(a, ["energy", "forces", "stress"])
        worst[0] = max(worst[0], float(np.abs(skin.results["forces"] - fresh.results["forces"]).max()))
        worst[1] = max(worst[1], float(np.abs(skin.results["stress"] - fresh.results["stress"]).max()))

    dyn.attach(compare, interval=1)
    dyn.run(200)
    outside = np.linalg.solve(atoms.cell.array.T, atoms.positions.T).T
    print(f"\nskin vs fresh: max |dF| {worst[0]:.1e} eV/Å, max |dS| {worst[1]:.1e} eV/Å^3; "
          f"{skin.n_builds} builds (fresh: {fresh.n_builds}) in 201 calls")
    assert worst[0] <= 1e-12 and worst[1] <= 1e-12
    assert 1 < skin.n_builds < 100 and fresh.n_builds == 201
    assert ((outside < 0) | (outside >= 1)).any(), "some atom should have left the cell"


def test_rebuild_on_cell_pbc_and_numbers_change(model):
    atoms = triclinic_cu()
    calc = TFPotCalculator(model)
    atoms.calc = calc
    atoms.get_forces()
    atoms.positions[0] += 0.05  # within skin/2: reused
    atoms.get_forces()
    assert calc.n_builds == 1 and calc.n_calls == 2
    atoms.set_cell(atoms.cell.array * 1.01, scale_atoms=True)
    np.testing.assert_allclose(atoms.get_forces(), tfpot.predict(model, atoms)["forces"],
                               rtol=0, atol=1e-12)
    assert calc.n_builds == 2
    atoms.symbols[1] = "N"
    assert atoms.get_potential_energy() == pytest.approx(tfpot.predict(model, atoms)["energy"],
                                                         abs=1e-10)
    assert calc.n_builds == 3
    atoms.pbc = (True, False, True)
    np.testing.assert_allclose(atoms.get_forces(), tfpot.predict(model, atoms)["forces"],
                               rtol=0, atol=1e-12)
    assert calc.n_builds == 4


def test_caching_and_stress_in_one_pass(model):
    atoms = triclinic_cu()
    calc = TFPotCalculator(model)
    atoms.calc = calc
    atoms.get_potential_energy()
    atoms.get_forces()
    atoms.get_potential_energies()
    assert calc.n_calls == 1
    atoms.get_stress()  # first stress request: one more evaluation
    assert calc.n_calls == 2
    atoms.positions[2] += 0.01
    atoms.get_forces()
    atoms.get_stress()  # from then on computed together with the forces
    assert calc.n_calls == 3


def test_float32(model):
    atoms = triclinic_cu()
    calc = TFPotCalculator(model, dtype="float32")
    assert next(model.parameters()).dtype == torch.float64, "the user's model must not be cast"
    assert next(calc.model.parameters()).dtype == torch.float32
    atoms.calc = calc
    ref = tfpot.predict(model, atoms)
    f = atoms.get_forces()
    assert f.dtype == np.float64 and atoms.get_stress().dtype == np.float64
    assert abs(atoms.get_potential_energy() - ref["energy"]) < 1e-5 * max(1.0, abs(ref["energy"]))
    scale = max(np.abs(ref["forces"]).max(), 1e-2)
    assert np.abs(f - ref["forces"]).max() < 1e-4 * scale


def test_model_file_and_repr(model, tmp_path):
    path = tmp_path / "m.pt"
    tfpot.save_model(model, path)
    atoms = ethanol()
    atoms.calc = TFPotCalculator(str(path))
    assert atoms.get_potential_energy() == tfpot.predict(model, atoms)["energy"]
    text = repr(atoms.calc)
    assert "TFPotCalculator" in text and "cutoff=4.0" in text
    with pytest.raises(TypeError, match="EnergyModel or the path"):
        TFPotCalculator(42)
    with pytest.raises(FileNotFoundError):
        TFPotCalculator(tmp_path / "missing.pt")
    with pytest.raises(ValueError, match="skin"):
        TFPotCalculator(model, skin=-1.0)


# ---------------------------------------------------------------------------------------------
# refusals
def test_unknown_element_named_by_symbol_and_index(model):
    atoms = ethanol()
    atoms.symbols[3] = "Xe"
    atoms.symbols[6] = "Fe"
    atoms.calc = TFPotCalculator(model)
    with pytest.raises(ValueError, match=r"Xe \(atom 3\), Fe \(atom 6\).*knows H, C, N, O, Cu"):
        atoms.get_potential_energy()


def test_nan_position_refused(model):
    atoms = ethanol()
    atoms.positions[4, 1] = np.nan
    atoms.calc = TFPotCalculator(model)
    with pytest.raises(ValueError, match="atom 4 is not finite"):
        atoms.get_forces()
    atoms.positions[4, 1] = np.inf
    with pytest.raises(ValueError, match="atom 4 is not finite"):
        atoms.get_forces()


@pytest.mark.parametrize("skin", [0.0, 0.5])
def test_overlapping_atoms_refused(model, skin):
    atoms = ethanol()
    calc = TFPotCalculator(model, skin=skin)
    atoms.calc = calc
    atoms.get_forces()
    atoms.positions[7] = atoms.positions[2] + [0.03, 0.0, 0.0]
    with pytest.raises(ValueError, match=r"atoms (2 and 7|7 and 2) overlap: 0.03 Å apart"):
        atoms.get_forces()
    atoms.positions[7] = atoms.positions[2]
    with pytest.raises(ValueError, match="overlap"):
        atoms.get_forces()


def test_nonfinite_model_output_refused():
    """A model whose output overflows (finite weights, energy scale and shift 1e308: the nine
    atoms' energies sum past the float64 range): the calculator raises instead of handing inf to
    an integrator; a sane model is the negative control."""
    huge = make_model()
    with torch.no_grad():
        huge.readout.energy_scale.fill_(1e308)
        huge.readout.energy_shift.fill_(1e308)
    atoms = ethanol()
    atoms.calc = TFPotCalculator(huge)
    with pytest.raises(ValueError, match=r"^TFPotCalculator: the model's energy, free_energy "
                                         r"are not finite for this structure"):
        atoms.get_potential_energy()
    atoms.calc = TFPotCalculator(make_model())
    assert np.isfinite(atoms.get_potential_energy())


def test_stress_on_molecule_not_implemented(model):
    atoms = ethanol()
    atoms.calc = TFPotCalculator(model)
    with pytest.raises(PropertyNotImplementedError, match=r"pbc=\[False, False, False\]"):
        atoms.get_stress()
    # energy and forces still work after the refusal
    assert np.isfinite(atoms.get_forces()).all()


def test_isolated_atom_and_far_apart_atoms(model):
    atoms = Atoms("Cu", positions=[[0.0, 0.0, 0.0]])
    atoms.calc = TFPotCalculator(model)
    assert np.isfinite(atoms.get_potential_energy())
    np.testing.assert_array_equal(atoms.get_forces(), np.zeros((1, 3)))
    two = Atoms("CuO", positions=[[0.0, 0.0, 0.0], [0.0, 0.0, 20.0]])
    two.calc = TFPotCalculator(model)
    assert two.get_potential_energies().shape == (2,)


class _PythonOnly(tfpot.EnergyModel):
    """A subclass TorchScript cannot compile (un-annotated forward)."""

    def forward(self, data, compute_forces=True, compute_stress=False):
        return super().forward(data, compute_forces, compute_stress)


def test_unscriptable_model_is_refused_with_what_to_do(model):
    sub = _PythonOnly(model.species, model.cutoff, model.hyperparameters).to(torch.float64)
    sub.load_state_dict(model.state_dict())
    with pytest.raises(ValueError, match=r"TorchScript cannot compile this _PythonOnly .*"
                                         r"pass script=False"):
        TFPotCalculator(sub)
    atoms = ethanol()
    atoms.calc = TFPotCalculator(sub, script=False)  # runs as a Python module
    assert atoms.get_potential_energy() == tfpot.predict(model, atoms)["energy"]
