"""Files in the exact published layouts, built in tmp_path by the tests (no downloads)."""

import numpy as np
import pytest
from ase import Atoms
from ase.calculators.singlepoint import SinglePointCalculator

# Two QM9 molecules as published (dsgdb9nsd_000001: methane, dsgdb9nsd_000003: water), tabs as
# in the files. The methane file uses Mathematica exponents (*^) in a coordinate, the charge of
# atom 2 and the dipole moment, as some QM9 files do.
QM9_CH4 = (
    "5\n"
    "gdb 1\t157.7118\t157.70997\t157.70699\t1.5*^-4\t13.21\t-0.3877\t0.1171\t0.5048\t35.3641"
    "\t0.044749\t-40.47893\t-40.476062\t-40.475117\t-40.498597\t6.469\t\n"
    "C\t-0.0126981359\t 1.0858041578\t 0.0080009958\t-0.535689\n"
    "H\t 0.002150416\t-0.0060313176\t 1.9761204*^-3\t 0.133921\n"
    "H\t 1.0117308433\t 1.4637511618\t 0.0002765748\t 1.33922*^-1\n"
    "H\t-0.540815069\t 1.4475266138\t-0.8766437152\t 0.133923\n"
    "H\t-0.5238136345\t 1.4379326443\t 0.9063972942\t 0.133923\n"
    "1341.307\t1341.3284\t1341.365\t1562.6731\t1562.7453\t3038.3205\t3151.6034\t3151.6788\t3151.7078\n"
    "C\tC\t\n"
    "InChI=1S/CH4/h1H4\tInChI=1S/CH4/h1H4\n"
)
QM9_H2O = (
    "3\n"
    "gdb 3\t799.58812\t437.90386\t282.94545\t1.8511\t6.31\t-0.2928\t0.0687\t0.3615\t19.0002"
    "\t0.021375\t-76.404702\t-76.401867\t-76.400922\t-76.422349\t6.002\t\n"
    "O\t-0.0343604951\t 0.9775395708\t 0.0076015923\t-0.589706\n"
    "H\t 0.0647664923\t 0.0205721989\t 0.0015346341\t 0.294853\n"
    "H\t 0.8717903737\t 1.3007924048\t 0.0006931336\t 0.294853\n"
    "1591.0276\t3880.4524\t3989.3306\n"
    "O\tO\t\n"
    "InChI=1S/H2O/h1H2\tInChI=1S/H2O/h1H2\n"
)


def ethanol_frames(n=6, seed=0):
    """(z, R (n, 9, 3) Å, E (n,) kcal/mol, F (n, 9, 3) kcal/mol/Å): arbitrary but fixed numbers."""
    from ase.build import molecule

    rng = np.random.default_rng(seed)
    mol = molecule("CH3CH2OH")
    z = mol.get_atomic_numbers().astype(np.int64)
    R = mol.get_positions()[None] + 0.05 * rng.standard_normal((n, len(z), 3))
    E = -97000.0 + 10.0 * rng.standard_normal(n)
    F = 30.0 * rng.standard_normal((n, len(z), 3))
    return z, R, E, F


@pytest.fixture
def md17_file(tmp_path):
    """An original-MD17 npz exactly as sGDML publishes it (E as (n, 1))."""
    z, R, E, F = ethanol_frames()
    path = tmp_path / "ethanol.npz"
    np.savez(path, R=R, z=z, E=E[:, None], F=F, name=np.array("ethanol"),
             theory=np.array("DFT:PBE+TS"), type=np.array("d"), md5=np.array("0" * 32))
    return path, (z, R, E, F)


@pytest.fixture
def rmd17_file(tmp_path):
    """A revised-MD17 npz exactly as the rMD17 archive has it (energies as (n,))."""
    z, R, E, F = ethanol_frames(seed=1)
    n = len(R)
    path = tmp_path / "rmd17_ethanol.npz"
    np.savez(path, nuclear_charges=z, coords=R, energies=E, forces=F,
             old_indices=np.arange(n) * 100, old_energies=E + 1.0, old_forces=F * 1.01)
    return path, (z, R, E, F)


@pytest.fixture
def qm9_texts():
    """The published text of two QM9 files, by name."""
    return {"dsgdb9nsd_000001.xyz": QM9_CH4, "dsgdb9nsd_000003.xyz": QM9_H2O}


@pytest.fixture
def qm9_dir(tmp_path):
    d = tmp_path / "qm9"
    d.mkdir()
    (d / "dsgdb9nsd_000001.xyz").write_text(QM9_CH4)
    (d / "dsgdb9nsd_000003.xyz").write_text(QM9_H2O)
    return d


@pytest.fixture
def labelled_structures():
    """A molecule (energy, forces), a periodic crystal (energy, forces, stress) and a slab
    (pbc mixed), with scalar and array info."""
    rng = np.random.default_rng(5)
    mol = Atoms("CH4", positions=[[0, 0, 0], [0.63, 0.63, 0.63], [-0.63, -0.63, 0.63],
                                  [-0.63, 0.63, -0.63], [0.63, -0.63, -0.63]])
    mol.calc = SinglePointCalculator(mol, energy=-24.123456789012345,
                                     forces=rng.standard_normal((5, 3)))
    mol.info.update(tag="methane", charge=0, weight=0.5)
    cu = Atoms("Cu4", scaled_positions=[[0, 0, 0], [0.5, 0.5, 0], [0.5, 0, 0.5], [0, 0.5, 0.5]],
               cell=3.6 * np.eye(3) + 0.05 * rng.standard_normal((3, 3)), pbc=True)
    cu.positions += 0.02 * rng.standard_normal((4, 3))
    stress = rng.standard_normal((3, 3))
    cu.calc = SinglePointCalculator(cu, energy=-14.5, forces=rng.standard_normal((4, 3)),
                                    stress=0.5 * (stress + stress.T) * 1e-2)
    cu.info["frequencies"] = np.array([1.0, 2.0, 3.0])
    slab = Atoms("Cu2", positions=[[0, 0, 5], [1.3, 1.3, 6.8]], cell=[2.6, 2.6, 12.0],
                 pbc=(True, True, False))
    slab.calc = SinglePointCalculator(slab, energy=-6.0, forces=np.zeros((2, 3)))
    slab.arrays["mulliken_charges"] = np.array([0.1, -0.1])
    return [mol, cu, slab]
