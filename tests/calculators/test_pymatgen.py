"""pymatgen Structure / Molecule input through predict_pymatgen."""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("pymatgen.core", reason="pymatgen is not installed (pip install 'tfpot[pymatgen]')")

from pymatgen.core import Lattice, Molecule, Structure  # noqa: E402
from pymatgen.io.ase import AseAtomsAdaptor  # noqa: E402

import tfpot  # noqa: E402
from helpers import make_model  # noqa: E402
from tfpot.testing.structures import ethanol, triclinic_cu  # noqa: E402
from tfpot.calculators import TFPotCalculator  # noqa: E402
from tfpot.calculators.pymatgen_adapter import predict_pymatgen, pymatgen_to_atoms  # noqa: E402


@pytest.fixture(scope="module")
def model():
    return make_model()


def test_structure_matches_ase(model):
    atoms = triclinic_cu()
    structure = AseAtomsAdaptor.get_structure(atoms)
    res = predict_pymatgen(model, structure)
    ref = tfpot.predict(model, atoms)
    assert res["energy"] == pytest.approx(ref["energy"], rel=1e-12, abs=1e-12)
    np.testing.assert_allclose(res["forces"], ref["forces"], rtol=0, atol=1e-12)
    np.testing.assert_allclose(res["energies"], ref["energies"], rtol=0, atol=1e-12)
    np.testing.assert_allclose(res["stress"], ref["stress"], rtol=0, atol=1e-12)
    assert res["stress"].shape == (3, 3)


def test_molecule_and_calculator_reuse(model):
    atoms = ethanol()
    mol = Molecule(atoms.get_chemical_symbols(), atoms.get_positions())
    calc = TFPotCalculator(model)
    res = predict_pymatgen(calc, mol)
    assert "stress" not in res
    ref = tfpot.predict(model, atoms)
    assert res["energy"] == pytest.approx(ref["energy"], abs=1e-12)
    np.testing.assert_allclose(res["forces"], ref["forces"], rtol=0, atol=1e-12)
    with pytest.raises(Exception, match="periodic in all three"):
        predict_pymatgen(calc, mol, stress=True)


def test_model_file_and_float32(model, tmp_path):
    path = tmp_path / "m.pt"
    tfpot.save_model(model, path)
    s = Structure(Lattice.cubic(3.6), ["Cu"] * 4,
                  [[0, 0, 0], [0.5, 0.5, 0], [0.5, 0, 0.5], [0, 0.5, 0.52]])
    r64 = predict_pymatgen(path, s)
    r32 = predict_pymatgen(path, s, dtype="float32")
    assert r32["forces"].dtype == np.float64
    assert abs(r32["energy"] - r64["energy"]) < 1e-5 * abs(r64["energy"])


def test_bad_inputs(model):
    with pytest.raises(TypeError, match="pymatgen Structure or Molecule"):
        pymatgen_to_atoms(triclinic_cu())
    disordered = Structure(Lattice.cubic(3.6), [{"Cu": 0.5, "O": 0.5}], [[0, 0, 0]])
    with pytest.raises(ValueError, match="partial occupancies"):
        predict_pymatgen(model, disordered)
    s = Structure(Lattice.cubic(3.6), ["Xe"], [[0, 0, 0]])
    with pytest.raises(ValueError, match=r"Xe \(atom 0\)"):
        predict_pymatgen(model, s)
