"""Splits: seeded, disjoint, exact sizes; rMD17 official files; a held-out test file."""

import numpy as np
import pytest
from ase import Atoms
from ase.calculators.singlepoint import SinglePointCalculator

from tfpot.data import (DataFormatError, LmdbDataset, assert_disjoint, random_split, rmd17_split,
                        structure_fingerprint, write_held_out_split)


def test_counts_are_exact_disjoint_and_seeded():
    train, val, test = random_split(100, [70, 20, 10], seed=3)
    assert (len(train), len(val), len(test)) == (70, 20, 10)
    assert len(np.unique(np.concatenate([train, val, test]))) == 100
    assert train.dtype == np.int64 and np.all(np.diff(train) > 0)
    again = random_split(100, [70, 20, 10], seed=3)
    assert all(np.array_equal(x, y) for x, y in zip((train, val, test), again))
    other = random_split(100, [70, 20, 10], seed=4)
    assert not np.array_equal(train, other[0])


def test_fractions_cover_everything_when_they_sum_to_one():
    parts = random_split(101, [0.8, 0.1, 0.1], seed=0)
    assert sum(len(p) for p in parts) == 101
    assert [len(p) for p in parts] == [81, 10, 10]
    (part,) = random_split(101, [0.5])  # not a partition: floor
    assert len(part) == 50


def test_bad_sizes():
    with pytest.raises(ValueError, match=r"add up to 11 > 10 structures"):
        random_split(10, [6, 5])
    with pytest.raises(ValueError, match=r"add up to 1.2 > 1"):
        random_split(10, [0.6, 0.6])
    with pytest.raises(ValueError, match=r"do not mix counts and fractions"):
        random_split(10, [5, 0.5])


def test_rmd17_official_split(tmp_path):
    (tmp_path / "index_train_02.csv").write_text("\n".join(map(str, range(0, 200, 2))) + "\n")
    (tmp_path / "index_test_02.csv").write_text("\n".join(map(str, range(1, 200, 2))) + "\n")
    split = rmd17_split(tmp_path, fold=2, n_val=10, seed=0)
    assert len(split["train"]) == 90 and len(split["val"]) == 10 and len(split["test"]) == 100
    assert np.all(split["train"] % 2 == 0) and np.all(split["test"] % 2 == 1)
    assert not np.intersect1d(split["train"], split["val"]).size
    (tmp_path / "index_test_03.csv").write_text("4\n5\n")
    (tmp_path / "index_train_03.csv").write_text("1\n4\n")
    with pytest.raises(DataFormatError, match=r"fold 3 train and test share 1 indices"):
        rmd17_split(tmp_path, fold=3, n_val=1)


def _structures(n):
    rng = np.random.default_rng(0)
    out = []
    for k in range(n):
        a = Atoms("H2O", positions=rng.standard_normal((3, 3)))
        a.calc = SinglePointCalculator(a, energy=float(k), forces=np.zeros((3, 3)))
        out.append(a)
    return out


def test_held_out_test_file_is_disjoint_from_train(tmp_path):
    structures = _structures(40)
    train_path, test_path = write_held_out_split(structures, tmp_path / "water.lmdb", test=0.25, seed=1)
    assert train_path.name == "water.train.lmdb" and test_path.name == "water.test.lmdb"
    train, test = list(LmdbDataset(train_path)), list(LmdbDataset(test_path))
    assert len(train) == 30 and len(test) == 10
    assert_disjoint(train, test)
    energies = sorted(a.get_potential_energy() for a in train + test)
    assert energies == [float(k) for k in range(40)]
    # statistics in the train header see the train part only
    assert LmdbDataset(train_path).statistics.num_structures == 30
    with pytest.raises(ValueError, match=r"1 test structures also appear in the training data"):
        assert_disjoint(train, test[:2] + [train[0]])


def test_fingerprint_sees_positions_not_labels():
    a, b = _structures(2)
    c = a.copy()
    assert structure_fingerprint(a) == structure_fingerprint(c)
    assert structure_fingerprint(a) != structure_fingerprint(b)
    c.positions[0, 0] += 1e-3
    assert structure_fingerprint(a) != structure_fingerprint(c)
