"""Readers: every format from files in its published layout, units against hand-computed values.

Unit constants written out by hand (CODATA 2014, as ASE uses): 1 kcal/mol = 0.0433641 eV and
1 Hartree = 27.211386 eV, each checked to 1e-6 relative (the digits given); 1 D = 0.2081943 e*Å,
1 bohr = 0.5291772 Å (1e-6 relative). Values read are float64.
"""

import json
import re
import tarfile

import numpy as np
import pytest
from ase import Atoms
from ase.calculators.singlepoint import SinglePointCalculator

from tfpot.data import DataFormatError, detect_format, read_rmd17_split, read_structures
from tfpot.data.qm9 import QM9_PROPERTIES, parse_qm9_xyz

KCAL_MOL_EV = 0.0433641  # eV, by hand
HARTREE_EV = 27.211386  # eV, by hand
DEBYE_EA = 0.2081943  # e*Å, by hand
BOHR_A = 0.5291772  # Å, by hand
REL = 1e-6  # relative tolerance for the hand constants (their last digit)


def test_unit_constants_match_hand_values():
    from tfpot.data import units

    assert units.KCAL_PER_MOL == pytest.approx(KCAL_MOL_EV, rel=REL)
    assert units.HARTREE == pytest.approx(HARTREE_EV, rel=REL)
    assert units.DEBYE == pytest.approx(DEBYE_EA, rel=REL)
    assert units.BOHR == pytest.approx(BOHR_A, rel=REL)


# ------------------------------------------------------------------------------------ MD17 --

def test_md17_units_and_layout(md17_file):
    path, (z, R, E, F) = md17_file
    assert detect_format(path) == "md17"
    frames = read_structures(path)
    assert len(frames) == len(R)
    for k, atoms in enumerate(frames):
        np.testing.assert_array_equal(atoms.get_atomic_numbers(), z)
        np.testing.assert_array_equal(atoms.get_positions(), R[k])  # Å in, Å out, exact
        assert atoms.get_potential_energy() == pytest.approx(E[k] * KCAL_MOL_EV, rel=REL)
        np.testing.assert_allclose(atoms.get_forces(), F[k] * KCAL_MOL_EV, rtol=REL)
        assert atoms.info["frame"] == k and atoms.info["molecule"] == "ethanol"
        assert not atoms.pbc.any()
    assert isinstance(frames[0].get_potential_energy(), float)


def test_md17_indices_select_frames(md17_file):
    path, (z, R, E, F) = md17_file
    frames = read_structures(path, indices=[4, 1])
    assert [a.info["frame"] for a in frames] == [4, 1]
    np.testing.assert_array_equal(frames[0].get_positions(), R[4])
    with pytest.raises(DataFormatError, match=r"ethanol.npz: indices must lie in \[0, 6\)"):
        read_structures(path, indices=[6])


def _rewrite(path, drop=(), **replace):
    data = dict(np.load(path))
    for k in drop:
        del data[k]
    data.update(replace)
    np.savez(path, **data)


def test_md17_missing_key_names_file_and_key(md17_file):
    path, _ = md17_file
    _rewrite(path, drop=["F"])
    with pytest.raises(DataFormatError,
                       match=re.escape("ethanol.npz: missing key 'F' (MD17 layout needs R, z, E, F")):
        read_structures(path)


def test_md17_shape_mismatch(md17_file):
    path, (z, R, E, F) = md17_file
    _rewrite(path, F=F[:, :5])
    with pytest.raises(DataFormatError, match=r"ethanol.npz: key 'F' must have shape \(6, 9, 3\)"):
        read_structures(path)


def test_md17_z_mismatch(md17_file):
    path, (z, R, E, F) = md17_file
    _rewrite(path, z=z[:-1])
    with pytest.raises(DataFormatError, match=r"key 'z' must have shape \(9,\)"):
        read_structures(path)


def test_md17_nan_is_refused_with_frame(md17_file):
    path, (z, R, E, F) = md17_file
    E = E.copy()
    E[2] = np.nan
    _rewrite(path, E=E[:, None])
    with pytest.raises(DataFormatError, match=r"key 'E' has non-finite values in frame 2"):
        read_structures(path)


def test_npz_of_other_layout_and_not_zip(tmp_path):
    other = tmp_path / "other.npz"
    np.savez(other, x=np.zeros(3))
    with pytest.raises(DataFormatError, match=r"other.npz: not an MD17 npz .* found keys \['x'\]"):
        read_structures(other)
    broken = tmp_path / "broken.npz"
    broken.write_bytes(b"this is not a zip archive")
    with pytest.raises(DataFormatError, match=r"broken.npz: not a readable .npz"):
        read_structures(broken)


def test_rmd17_units_and_old_indices(rmd17_file):
    path, (z, R, E, F) = rmd17_file
    assert detect_format(path) == "rmd17"
    frames = read_structures(path)
    assert len(frames) == len(R)
    for k, atoms in enumerate(frames):
        np.testing.assert_array_equal(atoms.get_positions(), R[k])
        assert atoms.get_potential_energy() == pytest.approx(E[k] * KCAL_MOL_EV, rel=REL)
        np.testing.assert_allclose(atoms.get_forces(), F[k] * KCAL_MOL_EV, rtol=REL)
        assert atoms.info["old_index"] == 100 * k


def test_rmd17_missing_key(rmd17_file):
    path, _ = rmd17_file
    _rewrite(path, drop=["forces"])
    with pytest.raises(DataFormatError, match=re.escape(
            "rmd17_ethanol.npz: missing key 'forces' (rMD17 layout needs nuclear_charges, coords, "
            "energies, forces")):
        read_structures(path)


def test_rmd17_split_files(tmp_path, rmd17_file):
    path, (z, R, E, F) = rmd17_file
    split = tmp_path / "index_train_01.csv"
    split.write_text("5\n0\n3\n")  # one integer per line, as in the archive
    idx = read_rmd17_split(split)
    assert idx.dtype == np.int64 and idx.tolist() == [5, 0, 3]
    frames = read_structures(path, indices=idx)
    np.testing.assert_array_equal(frames[0].get_positions(), R[5])
    bad = tmp_path / "index_test_01.csv"
    bad.write_text("1\n2\nthree\n")
    with pytest.raises(DataFormatError, match=r"index_test_01.csv, line 3: expected one integer"):
        read_rmd17_split(bad)
    empty = tmp_path / "index_test_02.csv"
    empty.write_text("\n")
    with pytest.raises(DataFormatError, match=r"index_test_02.csv: no indices"):
        read_rmd17_split(empty)


# ------------------------------------------------------------------------------------- QM9 --

def test_qm9_properties_units_and_mathematica_exponents(qm9_dir):
    mols = read_structures(qm9_dir)
    assert [m.info["gdb_id"] for m in mols] == [1, 3]
    ch4, h2o = mols
    assert ch4.get_chemical_formula() == "CH4" and h2o.get_chemical_formula() == "H2O"
    # energies: Hartree -> eV
    assert ch4.get_potential_energy() == pytest.approx(-40.47893 * HARTREE_EV, rel=REL)
    assert ch4.info["U0"] == pytest.approx(-40.47893 * HARTREE_EV, rel=REL)
    assert ch4.info["G"] == pytest.approx(-40.498597 * HARTREE_EV, rel=REL)
    assert h2o.info["gap"] == pytest.approx(0.3615 * HARTREE_EV, rel=REL)
    assert h2o.info["zpve"] == pytest.approx(0.021375 * HARTREE_EV, rel=REL)
    # other units
    assert ch4.info["A"] == 157.7118  # GHz, unchanged
    assert ch4.info["mu"] == pytest.approx(1.5e-4 * DEBYE_EA, rel=REL)  # "1.5*^-4" D
    assert h2o.info["alpha"] == pytest.approx(6.31 * BOHR_A ** 3, rel=REL)
    assert h2o.info["r2"] == pytest.approx(19.0002 * BOHR_A ** 2, rel=REL)
    assert h2o.info["Cv"] == pytest.approx(6.002e-3 * KCAL_MOL_EV, rel=REL)  # eV/K
    # *^ in a coordinate and a charge
    assert ch4.positions[1, 2] == pytest.approx(1.9761204e-3, rel=1e-12)
    assert ch4.arrays["mulliken_charges"][2] == pytest.approx(0.133922, rel=1e-12)
    assert h2o.info["smiles"] == "O" and h2o.info["inchi_relaxed"] == "InChI=1S/H2O/h1H2"
    assert h2o.info["frequencies"].shape == (3,)
    assert set(QM9_PROPERTIES) <= set(ch4.info)
    assert len(QM9_PROPERTIES) == 15


def test_qm9_target_selects_energy(qm9_dir):
    (ch4, _) = read_structures(qm9_dir, target="H")
    assert ch4.get_potential_energy() == pytest.approx(-40.475117 * HARTREE_EV, rel=REL)
    with pytest.raises(ValueError, match=r"QM9 target must be one of .*U0.*got 'mu'"):
        read_structures(qm9_dir, target="mu")


def test_qm9_tar_bz2_equals_directory_and_extracts_nothing(tmp_path, qm9_dir):
    archive = tmp_path / "dsgdb9nsd.xyz.tar.bz2"
    with tarfile.open(archive, "w:bz2") as tar:
        for p in sorted(qm9_dir.iterdir()):
            tar.add(p, arcname=p.name)
    before = sorted(p.name for p in tmp_path.iterdir())
    assert detect_format(archive) == "qm9"
    from_tar = read_structures(archive)
    assert sorted(p.name for p in tmp_path.iterdir()) == before
    from_dir = read_structures(qm9_dir)
    assert len(from_tar) == 2
    for a, b in zip(from_tar, from_dir):
        np.testing.assert_array_equal(a.positions, b.positions)
        assert a.get_potential_energy() == b.get_potential_energy()


def test_qm9_single_file_detected(qm9_dir):
    path = qm9_dir / "dsgdb9nsd_000003.xyz"
    assert detect_format(path) == "qm9"
    (h2o,) = read_structures(path)
    assert h2o.info["gdb_id"] == 3


@pytest.mark.parametrize("mutate, message", [
    (lambda t: t.replace("0.9775395708", "0.97x5"), r"dsgdb9nsd_000003.xyz, line 3: expected a number for y"),
    (lambda t: t.replace("\t6.002\t", "\t"), r"dsgdb9nsd_000003.xyz, line 2: expected 15 properties"),
    (lambda t: "\n".join(t.splitlines()[:4]), r"dsgdb9nsd_000003.xyz: expected 8 lines for 3 atoms"),
    (lambda t: t.replace("H\t 0.8717903737", "Xx\t 0.8717903737"), r"line 5: unknown element 'Xx'"),
    (lambda t: "three\n" + t.split("\n", 1)[1], r"line 1: expected the number of atoms"),
])
def test_qm9_errors_name_file_and_line(tmp_path, qm9_texts, mutate, message):
    path = tmp_path / "dsgdb9nsd_000003.xyz"
    path.write_text(mutate(qm9_texts[path.name]))
    with pytest.raises(DataFormatError, match=message):
        read_structures(path)


def test_qm9_corrupt_archive(tmp_path):
    archive = tmp_path / "qm9.tar.bz2"
    archive.write_bytes(b"BZh91AY&SY" + b"\x00" * 64)
    with pytest.raises(DataFormatError, match=r"qm9.tar.bz2: not a readable tar archive"):
        read_structures(archive)


# ------------------------------------------------------------------ extxyz, ASE db, pymatgen --

EXTXYZ = """2
Lattice="3.0 0.0 0.0 0.0 3.5 0.0 0.0 0.0 4.0" Properties=species:S:1:pos:R:3:forces:R:3 energy=-1.5 stress="0.01 0.0 0.0 0.0 0.02 0.0 0.0 0.0 0.03" pbc="T T T"
Cu 0.0 0.0 0.0 0.1 0.2 0.3
Cu 1.5 1.75 2.0 -0.1 -0.2 -0.3
3
Properties=species:S:1:pos:R:3:REF_forces:R:3 REF_energy=-3.25 pbc="F F F"
O 0.0 0.0 0.0 0.0 0.0 0.5
H 0.96 0.0 0.0 0.0 0.0 -0.25
H -0.24 0.93 0.0 0.0 0.0 -0.25
"""


def test_extxyz_labels_and_custom_keys(tmp_path):
    path = tmp_path / "train.xyz"
    path.write_text(EXTXYZ)
    assert detect_format(path) == "extxyz"
    cu, water = read_structures(path)
    assert cu.get_potential_energy() == -1.5
    np.testing.assert_array_equal(cu.get_forces()[1], [-0.1, -0.2, -0.3])
    np.testing.assert_allclose(cu.get_stress(voigt=False), np.diag([0.01, 0.02, 0.03]), atol=0)
    assert water.calc is None  # no standard labels on the second frame
    _, water = read_structures(path, energy_key="REF_energy", forces_key="REF_forces")
    assert water.get_potential_energy() == -3.25
    np.testing.assert_array_equal(water.get_forces()[0], [0, 0, 0.5])
    assert "REF_forces" not in water.arrays


def test_extxyz_bad_line(tmp_path):
    path = tmp_path / "bad.extxyz"
    path.write_text(EXTXYZ.replace("Cu 1.5 1.75 2.0", "Cu 1.5 abc 2.0"))
    with pytest.raises(DataFormatError, match=r"bad.extxyz, frame 0, line 4 \(atom 1\): column 3 "
                                              r"\(pos\) is 'abc', not a real number"):
        read_structures(path)


def test_extxyz_nan_energy_refused(tmp_path):
    path = tmp_path / "nan.extxyz"
    path.write_text(EXTXYZ.replace("energy=-1.5", "energy=nan"))
    with pytest.raises(DataFormatError, match=r"nan.extxyz, frame 0: energy is not finite"):
        read_structures(path)


def test_ase_db_round_trip(tmp_path, labelled_structures):
    import ase.db

    path = tmp_path / "data.db"
    with ase.db.connect(path) as db:
        for k, atoms in enumerate(labelled_structures):
            db.write(atoms, split=k)
    assert detect_format(path) == "ase-db"
    back = read_structures(path)
    assert len(back) == 3
    for a, b in zip(labelled_structures, back):
        np.testing.assert_array_equal(a.positions, b.positions)
        assert a.get_potential_energy() == b.get_potential_energy()
        np.testing.assert_array_equal(a.get_forces(), b.get_forces())
    np.testing.assert_allclose(back[1].get_stress(voigt=False),
                               labelled_structures[1].get_stress(voigt=False), atol=1e-15)
    assert [b.info["split"] for b in back] == [0, 1, 2]
    assert len(read_structures(path, selection="split>0")) == 2


def test_pymatgen_json(tmp_path):
    from pymatgen.core import Lattice, Molecule, Structure

    s = Structure(Lattice.cubic(3.6), ["Cu"], [[0, 0, 0]],
                  site_properties={"forces": [[0.1, 0.0, -0.1]]}, properties={"energy": -3.7})
    m = Molecule(["O", "H", "H"], [[0, 0, 0], [0.96, 0, 0], [-0.24, 0.93, 0]])
    path = tmp_path / "structures.json"
    path.write_text(json.dumps([s.as_dict(), m.as_dict()]))
    assert detect_format(path) == "pymatgen-json"
    cu, water = read_structures(path)
    assert cu.pbc.all() and cu.cell.volume == pytest.approx(3.6 ** 3, rel=1e-12)
    assert cu.get_potential_energy() == -3.7
    np.testing.assert_array_equal(cu.get_forces(), [[0.1, 0.0, -0.1]])
    assert not water.pbc.any() and water.calc is None
    np.testing.assert_allclose(water.positions[1], [0.96, 0, 0])
    path.write_text(json.dumps([{"@class": "ComputedEntry"}]))
    with pytest.raises(DataFormatError, match=r"structures.json, item 0: expected '@class' Structure"):
        read_structures(path, format="pymatgen-json")


def test_unknown_format_and_foreign_option(md17_file, tmp_path):
    path, _ = md17_file
    with pytest.raises(ValueError, match=r"unknown format 'md71'"):
        read_structures(path, format="md71")
    with pytest.raises(TypeError, match=r"option\(s\) target do not apply to format 'md17'"):
        read_structures(path, target="U0")
    with pytest.raises(FileNotFoundError, match=r"nothere.npz"):
        read_structures(tmp_path / "nothere.npz")
    blob = tmp_path / "mystery.bin"
    blob.write_bytes(b"\x00\x01\x02")
    with pytest.raises(DataFormatError, match=r"mystery.bin: cannot tell the format"):
        read_structures(blob)


def test_parse_qm9_rejects_missing_inchi(qm9_texts):
    text = qm9_texts["dsgdb9nsd_000001.xyz"].replace("InChI=1S/CH4/h1H4\tInChI=1S/CH4/h1H4", "CH4")
    with pytest.raises(DataFormatError, match=r"x.xyz, line 10: expected two InChI"):
        parse_qm9_xyz(text, "x.xyz")


def test_nonfinite_position_in_ase_input_refused(tmp_path):
    import ase.io

    atoms = Atoms("H2", positions=[[0, 0, 0], [0, 0, np.inf]])
    atoms.calc = SinglePointCalculator(atoms, energy=1.0)
    path = tmp_path / "inf.extxyz"
    ase.io.write(path, atoms)
    with pytest.raises(DataFormatError, match=r"inf.extxyz, frame 0, atom 1: position is not finite"):
        read_structures(path)
