"""Train / validation / test splits that can be reproduced and audited.

* :func:`random_split`: a seeded permutation cut by counts or fractions.
* :func:`rmd17_split`: the official rMD17 splits (``index_train_0X.csv`` / ``index_test_0X.csv``).
* A held-out test set that training never touches. The rule is physical separation: split
  **once**, when converting, into two files (:func:`write_held_out_split` writes
  ``<name>.train.lmdb`` and ``<name>.test.lmdb``); training configs name only the train file
  (validation is split off *it*), and the test file is read only by evaluation. Fingerprints
  (:func:`structure_fingerprint`) let a test assert that no test structure appears in the
  training file (:func:`assert_disjoint`), e.g. after a later re-conversion.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path
from typing import Dict, Iterable, List, Sequence, Tuple, Union

import numpy as np
from ase import Atoms

from tfpot.data.errors import DataFormatError
from tfpot.data.lmdb_store import write_lmdb
from tfpot.data.md17 import read_rmd17_split

PathLike = Union[str, os.PathLike]


def _counts(n: int, sizes: Sequence[Union[int, float]]) -> List[int]:
    sizes = list(sizes)
    if not sizes:
        raise ValueError("random_split needs at least one size")
    if any(s < 0 for s in sizes):
        raise ValueError(f"split sizes must be non-negative (got {sizes})")
    if all(isinstance(s, (int, np.integer)) for s in sizes):
        counts = [int(s) for s in sizes]
        if sum(counts) > n:
            raise ValueError(f"split sizes {counts} add up to {sum(counts)} > {n} structures")
        return counts
    if any(s > 1 for s in sizes):
        raise ValueError(f"fractions must lie in [0, 1]; do not mix counts and fractions (got {sizes})")
    total = float(sum(sizes))
    if total > 1 + 1e-9:
        raise ValueError(f"split fractions {sizes} add up to {total:.6g} > 1")
    exact = [s * n for s in sizes]
    counts = [int(np.floor(e + 1e-9)) for e in exact]
    if abs(total - 1) <= 1e-9:  # a full partition: hand out the remainder by largest fraction
        order = np.argsort([-(e - c) for e, c in zip(exact, counts)], kind="stable")
        for k in order[: n - sum(counts)]:
            counts[k] += 1
    return counts


def random_split(n: int, sizes: Sequence[Union[int, float]], seed: int = 0) -> List[np.ndarray]:
    """Disjoint random index sets, reproducible from ``seed``.

    Args:
        n: number of structures.
        sizes: counts (ints) or fractions (floats in [0, 1]) per subset, e.g. ``(950, 50)`` or
            ``(0.8, 0.1, 0.1)``. Fractions that add up to 1 cover all structures (remainder to the
            largest fractional parts); otherwise each subset gets floor(fraction * n).
        seed: seed of ``numpy.random.default_rng``.

    Returns:
        One sorted (k,) int64 index array per size.
    """
    if n < 0:
        raise ValueError(f"n must be non-negative (got {n})")
    counts = _counts(n, sizes)
    perm = np.random.default_rng(seed).permutation(n)
    out, start = [], 0
    for c in counts:
        out.append(np.sort(perm[start:start + c]).astype(np.int64))
        start += c
    return out


def rmd17_split(split_dir: PathLike, fold: int = 1, n_val: int = 50,
                seed: int = 0) -> Dict[str, np.ndarray]:
    """An official rMD17 split: train (minus a validation part), validation and test indices.

    Args:
        split_dir: directory with ``index_train_0X.csv`` and ``index_test_0X.csv``.
        fold: X in 1..5.
        n_val: how many of the official training indices go to validation (seeded).
        seed: seed for choosing the validation indices.

    Returns:
        ``{"train", "val", "test"}`` -> int64 frame indices into the rMD17 npz.
    """
    split_dir = Path(split_dir)
    train = read_rmd17_split(split_dir / f"index_train_{fold:02d}.csv")
    test = read_rmd17_split(split_dir / f"index_test_{fold:02d}.csv")
    overlap = np.intersect1d(train, test)
    if overlap.size:
        raise DataFormatError(
            f"{split_dir.name}: fold {fold} train and test share {overlap.size} indices "
            f"(first {overlap[:5].tolist()})")
    if n_val > len(train):
        raise ValueError(f"n_val={n_val} exceeds the {len(train)} training indices of fold {fold}")
    pick = np.random.default_rng(seed).permutation(len(train))
    return {"train": np.sort(train[pick[n_val:]]), "val": np.sort(train[pick[:n_val]]),
            "test": test}


def structure_fingerprint(atoms: Atoms, decimals: int = 6) -> str:
    """A hash of numbers, positions (rounded to ``decimals`` Å), cell and pbc."""
    h = hashlib.sha1()
    h.update(atoms.get_atomic_numbers().astype("<i8").tobytes())
    h.update(np.round(atoms.get_positions(), decimals).astype("<f8").tobytes())
    h.update(np.round(atoms.get_cell().array, decimals).astype("<f8").tobytes())
    h.update(np.asarray(atoms.get_pbc(), bool).tobytes())
    return h.hexdigest()


def assert_disjoint(train: Iterable[Atoms], test: Iterable[Atoms]) -> None:
    """Raise ValueError if any test structure also appears among the training structures."""
    seen = {structure_fingerprint(a) for a in train}
    shared = [k for k, a in enumerate(test) if structure_fingerprint(a) in seen]
    if shared:
        raise ValueError(f"{len(shared)} test structures also appear in the training data "
                         f"(test indices {shared[:10]})")


def write_held_out_split(structures: Sequence[Atoms], output: PathLike,
                         test: Union[int, float] = 0.1, seed: int = 0,
                         **lmdb_options) -> Tuple[Path, Path]:
    """Split off a test set once and write it to its own file.

    Args:
        structures: all labelled structures.
        output: base path; writes ``<stem>.train.lmdb`` and ``<stem>.test.lmdb`` beside it.
        test: count or fraction of structures held out.
        seed: seed of the split.
        **lmdb_options: passed to :func:`tfpot.data.lmdb_store.write_lmdb` (e.g. ``cutoff``).

    Returns:
        (train_path, test_path). Statistics (E0, ...) in the train header come from the train
        part only, so nothing about the test set leaks into training.
    """
    output = Path(output)
    n = len(structures)
    (test_idx,) = random_split(n, [test], seed=seed)
    mask = np.zeros(n, bool)
    mask[test_idx] = True
    stem = output.name[: -len(output.suffix)] if output.suffix else output.name
    train_path = output.with_name(f"{stem}.train.lmdb")
    test_path = output.with_name(f"{stem}.test.lmdb")
    write_lmdb((structures[i] for i in np.flatnonzero(~mask)), train_path, **lmdb_options)
    write_lmdb((structures[i] for i in test_idx), test_path, **lmdb_options)
    return train_path, test_path
