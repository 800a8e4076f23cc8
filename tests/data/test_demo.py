"""The shipped demo set: MD17 layout, real GFN2-xTB labels."""

import numpy as np
import pytest

from tfpot.data import demo_dataset_path, read_structures


def test_demo_file_layout_and_size():
    path = demo_dataset_path()
    assert path.stat().st_size < 1_000_000
    with np.load(path) as d:
        assert d["R"].shape == (400, 9, 3) and d["E"].shape == (400, 1) and d["F"].shape == (400, 9, 3)
        assert str(d["theory"]) == "GFN2-xTB" and d["z"].tolist() == [6, 6, 8, 1, 1, 1, 1, 1, 1]


def test_demo_labels_are_gfn2_xtb():
    tblite = pytest.importorskip("tblite.ase")
    frames = read_structures(demo_dataset_path(), indices=[0, 217])
    for atoms in frames:
        ref = atoms.copy()
        ref.calc = tblite.TBLite(method="GFN2-xTB", accuracy=0.01, verbosity=0)  # as generated
        # Stored in kcal/mol and converted back (float64). Energy to 1e-6 eV; forces to 1e-5
        # eV/Å: in the MD each SCF started from the previous step's wavefunction, which moves
        # forces by ~1e-6 eV/Å at accuracy=0.01 (the default accuracy would give ~2e-4).
        assert atoms.get_potential_energy() == pytest.approx(ref.get_potential_energy(), abs=1e-6)
        np.testing.assert_allclose(atoms.get_forces(), ref.get_forces(), rtol=0, atol=1e-5)
