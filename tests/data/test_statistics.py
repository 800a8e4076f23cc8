"""Statistics: E0 by float64 least squares against numpy's lstsq, residual spread, force RMS and
neighbour counts against direct computations. Tolerances: 1e-9 relative unless stated."""

import warnings

import numpy as np
import pytest
from ase import Atoms
from ase.build import bulk
from ase.calculators.singlepoint import SinglePointCalculator

from tfpot.data import (DatasetStatistics, average_num_neighbors, compute_statistics,
                        fit_reference_energies, force_rms)

E0_TRUE = {1: -13.6, 6: -1029.8, 8: -2041.5}  # eV, QM9-like magnitudes


def random_molecules(n, noise, seed=0):
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(n):
        counts = {1: rng.integers(0, 9), 6: rng.integers(1, 6), 8: rng.integers(0, 3)}
        numbers = [z for z, c in counts.items() for _ in range(c)]
        atoms = Atoms(numbers=numbers, positions=3 * rng.random((len(numbers), 3)))
        e = sum(E0_TRUE[z] for z in numbers) + noise * rng.standard_normal() * len(numbers)
        atoms.calc = SinglePointCalculator(atoms, energy=e, forces=rng.standard_normal((len(numbers), 3)))
        out.append(atoms)
    return out


def test_exact_reference_energies_are_recovered():
    mols = random_molecules(60, noise=0.0)
    e0 = fit_reference_energies(mols)
    for z, value in E0_TRUE.items():
        assert e0[z] == pytest.approx(value, rel=1e-10)
    stats = compute_statistics(mols)
    assert abs(stats.energy_per_atom_mean) < 1e-9 and stats.energy_per_atom_std < 1e-9
    assert stats.e0_rank == 3 and stats.elements == [1, 6, 8]


def test_noisy_fit_matches_numpy_lstsq():
    mols = random_molecules(200, noise=0.05, seed=1)
    A = np.array([[np.sum(m.numbers == z) for z in (1, 6, 8)] for m in mols], float)
    E = np.array([m.get_potential_energy() for m in mols])
    ref, *_ = np.linalg.lstsq(A, E, rcond=None)
    stats = compute_statistics(mols)
    got = np.array([stats.reference_energies[z] for z in (1, 6, 8)])
    np.testing.assert_allclose(got, ref, rtol=1e-9)
    resid = (E - A @ ref) / A.sum(1)
    assert stats.energy_per_atom_mean == pytest.approx(resid.mean(), abs=1e-9)
    assert stats.energy_per_atom_std == pytest.approx(resid.std(), rel=1e-6)
    assert stats.energy_per_atom_std == pytest.approx(0.05, rel=0.2)  # the noise we put in
    F = np.concatenate([m.get_forces().ravel() for m in mols])
    assert stats.force_rms == pytest.approx(np.sqrt(np.mean(F ** 2)), rel=1e-12)
    assert force_rms(mols) == stats.force_rms


def test_single_composition_is_rank_deficient():
    mols = [m for m in random_molecules(1, 0.0)] * 5
    with pytest.warns(UserWarning, match=r"span rank 1 of \d elements"):
        stats = compute_statistics(mols)
    assert stats.e0_rank == 1
    values = np.array(list(stats.reference_energies.values()))
    assert np.all(np.isfinite(values))
    # the minimum-norm answer around the mean per-atom energy still reproduces the energies
    n = np.array([np.sum(mols[0].numbers == z) for z in stats.reference_energies])
    assert n @ values == pytest.approx(mols[0].get_potential_energy(), rel=1e-12)
    with pytest.raises(ValueError, match=r"not unique.*give reference energies explicitly"):
        compute_statistics(mols, rank_deficient="raise")


def test_absent_element_gets_zero_with_warning():
    mols = random_molecules(30, 0.0)
    with pytest.warns(UserWarning, match=r"element N \(Z=7\) is absent"):
        e0 = fit_reference_energies(mols, elements=[1, 6, 7, 8])
    assert e0[7] == 0.0 and e0[6] == pytest.approx(E0_TRUE[6], rel=1e-10)


def test_no_energies():
    a = Atoms("H2", positions=[[0, 0, 0], [0.74, 0, 0]])
    stats = compute_statistics([a])
    assert stats.reference_energies is None and stats.force_rms is None
    with pytest.raises(ValueError, match="none had one"):
        fit_reference_energies([a])


def test_average_neighbours():
    # fcc Cu, a = 3.6 Å: 12 neighbours at 2.546 Å, 6 at 3.6 Å; cutoff 3.0 Å -> 12 exactly
    cu = bulk("Cu", "fcc", a=3.6, cubic=True)
    assert average_num_neighbors([cu], 3.0) == 12.0
    assert average_num_neighbors([cu], 4.0) == 18.0
    # a molecule: H2 at 0.74 Å has one neighbour each
    h2 = Atoms("H2", positions=[[0, 0, 0], [0.74, 0, 0]])
    assert average_num_neighbors([h2, cu], 3.0) == pytest.approx((2 * 1 + 4 * 12) / 6, rel=1e-15)


def test_round_trip_dict():
    stats = compute_statistics(random_molecules(10, 0.01), cutoff=2.0)
    back = DatasetStatistics.from_dict(stats.to_dict())
    assert back == stats
    assert set(back.reference_energies) == {1, 6, 8}


def test_large_offsets_do_not_lose_precision():
    # -1e4 eV per atom more (totals near -1e5 eV) with a 1e-3 eV/atom spread: E0 moves by
    # exactly -1e4 and the spread is unchanged to 1e-9 relative (float64 sums are shifted)
    mols = random_molecules(100, noise=1e-3, seed=2)
    before = compute_statistics(mols)
    for m in mols:
        m.calc.results["energy"] -= 1e4 * len(m)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # full rank: no warning
        after = compute_statistics(mols)
    assert after.energy_per_atom_std == pytest.approx(before.energy_per_atom_std, rel=1e-6)
    assert after.energy_per_atom_std == pytest.approx(1e-3, rel=0.25)
    for z in E0_TRUE:
        assert after.reference_energies[z] == pytest.approx(before.reference_energies[z] - 1e4, abs=1e-8)


def test_streaming_warmup_does_not_change_the_answer():
    from tfpot.data import StatisticsAccumulator

    mols = random_molecules(150, noise=0.05, seed=4)
    results = []
    for warmup in (1000, 20, 60):  # shift fixed only at the end, or after 20 or 60 structures
        acc = StatisticsAccumulator(warmup=warmup)
        for m in mols:
            acc.add_atoms(m)
        results.append(acc.result())
    for r in results[1:]:
        for z in E0_TRUE:
            assert r.reference_energies[z] == pytest.approx(results[0].reference_energies[z], rel=1e-10)
        assert r.energy_per_atom_std == pytest.approx(results[0].energy_per_atom_std, rel=1e-9)
