"""Training data from a config: read, split, and serve as graphs (built on ``tfpot.data``).

A :class:`StructureSet` is a subset (``indices``) of a graph dataset (in-memory
:class:`~tfpot.data.AtomsDataset` or lazy :class:`~tfpot.data.LmdbDataset`). It serves graphs for
the loaders and the labels (composition, energy, forces, stress) for the statistics, without
building graphs.

Splits of one file (``data.path``) are drawn as ``random_split(n, [test, val, train])``: the test
set is cut first, so it stays the same when the training size changes. For (r)MD17 files only the
frames of the requested subsets are read. The test set is returned as a function: nothing reads
it before training ends.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Dict, Iterator, List, Optional, Sequence, Tuple

import numpy as np
import torch

from tfpot.data import (AtomsDataset, LmdbDataset, detect_format, iter_structures, random_split,
                        read_structures, rmd17_split)
from tfpot.data._labels import labels_of
from tfpot.data.check import DataCheck
from tfpot.data.demo import DEMO_TOKEN, resolve_data_path  # noqa: F401 (DEMO_TOKEN re-exported)
from tfpot.data.errors import DataFormatError
from tfpot.data.md17 import npz_layout
from tfpot.training.config import ConfigError, DataConfig, LossConfig, load_config

Labels = Tuple[np.ndarray, Optional[float], Optional[np.ndarray], Optional[np.ndarray]]


def resolve_path(path: str) -> Path:
    """A config path: ``tfpot:demo`` is the bundled demo set, ``~`` is expanded."""
    return resolve_data_path(path)


def missing_data_file(key: str, path: Path) -> FileNotFoundError:
    """The error for a data path that does not exist: the key, where it looked, the rule."""
    return FileNotFoundError(
        f"{key}: no such file {path.absolute()} (relative paths in a config file are relative to "
        f"the file's folder, in a bundled recipe or a dict to the current directory); fix the "
        f"path or give an absolute one")


@dataclass
class StructureSet:
    """Structures ``indices`` of ``dataset`` (graphs) with their labels.

    Args:
        dataset: a torch Dataset of PyG graphs (AtomsDataset or LmdbDataset).
        indices: (n,) positions in ``dataset``.
        name: 'train', 'val' or 'test' (for messages).
    """

    dataset: torch.utils.data.Dataset
    indices: np.ndarray
    name: str = "data"
    source: str = ""
    file_frames: Optional[np.ndarray] = None  # frame numbers in ``source`` (None: = indices)
    _labels: Optional[List[Labels]] = field(default=None, repr=False)

    def __len__(self) -> int:
        return len(self.indices)

    def __getitem__(self, i: int):
        return self.dataset[int(self.indices[i])]

    @property
    def source_name(self) -> str:
        """The data file's name, for messages (``"<name> structures"`` for in-memory lists)."""
        return Path(self.source).name if self.source else f"the {self.name} structures"

    def frame_numbers(self, positions) -> List[int]:
        """Frame numbers in the source file of the structures at ``positions`` of this set."""
        pos = np.asarray(positions, dtype=np.int64)
        frames = self.indices if self.file_frames is None else self.file_frames
        return [int(f) for f in frames[pos]]

    def iter_labels(self) -> Iterator[Labels]:
        """(numbers, energy eV | None, forces (N,3) eV/Å | None, stress (3,3) eV/Å^3 | None)."""
        if isinstance(self.dataset, AtomsDataset):
            for i in self.indices:
                atoms = self.dataset.structures[int(i)]
                e, f, s = labels_of(atoms)
                yield atoms.get_atomic_numbers(), e, f, s
        elif isinstance(self.dataset, LmdbDataset):
            for i in self.indices:
                rec = self.dataset.record(int(i))
                e = rec.get("energy")
                yield (np.asarray(rec["numbers"]), None if e is None else float(e),
                       rec.get("forces"), rec.get("stress"))
        else:  # any dataset of graphs
            for i in self.indices:
                g = self.dataset[int(i)]
                yield (g.atomic_numbers.numpy(),
                       float(g.energy[0]) if "energy" in g else None,
                       g.forces.numpy() if "forces" in g else None,
                       g.stress.numpy()[0] if "stress" in g else None)

    def num_atoms(self) -> np.ndarray:
        if isinstance(self.dataset, AtomsDataset):
            return np.array([len(self.dataset.structures[int(i)]) for i in self.indices], np.int64)
        if isinstance(self.dataset, LmdbDataset):
            return self.dataset.num_atoms()[self.indices]
        return np.array([self[i].num_nodes for i in range(len(self))], np.int64)

    def label_counts(self) -> Dict[str, int]:
        """How many structures carry each target."""
        counts = {"energy": 0, "forces": 0, "stress": 0}
        for _, e, f, s in self.iter_labels():
            counts["energy"] += e is not None
            counts["forces"] += f is not None
            counts["stress"] += s is not None
        return counts

    def elements(self) -> List[int]:
        seen = set()
        for numbers, *_ in self.iter_labels():
            seen.update(int(z) for z in np.unique(numbers))
        return sorted(seen)


def atoms_set(structures, cutoff: float, name: str = "data", source: str = "",
              file_frames: Optional[np.ndarray] = None) -> StructureSet:
    """A StructureSet over a list of labelled Atoms (graphs built once, cached, float64);
    ``file_frames``: their frame numbers in ``source``."""
    structures = list(structures)
    ds = AtomsDataset(structures, cutoff=cutoff, dtype=torch.float64)
    frames = None if file_frames is None else np.asarray(file_frames, dtype=np.int64)
    return StructureSet(ds, np.arange(len(structures), dtype=np.int64), name, source, frames)


@dataclass
class DataSplits:
    """Train and validation sets, the test set on demand, and how they were made."""

    train: StructureSet
    val: Optional[StructureSet]
    load_test: Optional[Callable[[], StructureSet]]
    indices: Dict[str, np.ndarray]  # split indices into the source file, where one file was split
    description: str


def _reader_options(cfg: DataConfig, fmt: str) -> dict:
    options = dict(cfg.options)
    if cfg.target is not None:
        if fmt != "qm9":
            raise ConfigError(f"data.target: applies to QM9 data only (this file's format is {fmt})")
        options["target"] = cfg.target
    return options


def _format_of(path: Path, cfg: DataConfig) -> str:
    fmt = cfg.format.lower() if cfg.format else detect_format(path)
    if fmt == "npz":
        fmt = npz_layout(path)
    return fmt


def _count_frames(path: Path, fmt: str) -> int:
    key = "E" if fmt == "md17" else "energies"
    with np.load(path, allow_pickle=False) as npz:
        if key not in npz.files:
            raise DataFormatError(f"{path.name}: missing key '{key}' ({fmt} layout)")
        return int(npz[key].shape[0])


def _sizes(n: int, split, with_test: bool) -> Tuple[int, int, int]:
    """(test, val, train) counts from counts/fractions; train None = the rest."""

    def count(v) -> int:
        if v is None:
            return 0
        return int(v) if isinstance(v, int) else int(np.floor(float(v) * n + 1e-9))

    test = count(split.test) if with_test else 0
    val = count(split.val)
    train = n - test - val if split.train is None else count(split.train)
    if test + val + train > n or train < 0:
        raise ConfigError(f"data.split: test {test} + val {val} + train {train} structures exceed "
                          f"the {n} in the data")
    if train == 0:
        raise ConfigError(f"data.split: no training structures left ({n} in the data, test {test}, "
                          f"val {val})")
    return test, val, train


class _Source:
    """One data file, read whole, by frame indices ((r)MD17), or lazily (LMDB)."""

    def __init__(self, path: Path, cfg: DataConfig, key: str = "data.path") -> None:
        self.path = path
        self.cfg = cfg
        if not path.exists():
            raise missing_data_file(key, path)
        self.format = _format_of(path, cfg)
        self.options = _reader_options(cfg, self.format)
        self._all = None
        self._lmdb = None

    def __len__(self) -> int:
        if self.format in ("md17", "rmd17"):
            return _count_frames(self.path, self.format)
        if self.format == "lmdb":
            return len(self._lmdb_dataset())
        return len(self._read_all())

    def _lmdb_dataset(self):
        if self._lmdb is None:
            self._lmdb = LmdbDataset(self.path, cutoff=self.cfg.cutoff, dtype=torch.float64)
        return self._lmdb

    def _read_all(self):
        if self._all is None:
            self._all = read_structures(self.path, format=self.format, **self.options)
            if not self._all:
                raise ConfigError(f"{self.path}: no structures in the file")
        return self._all

    def subset(self, indices: Optional[np.ndarray], name: str) -> StructureSet:
        if self.format == "lmdb":
            ds = self._lmdb_dataset()
            idx = np.arange(len(ds)) if indices is None else np.asarray(indices, np.int64)
            return StructureSet(ds, idx, name, str(self.path))
        if self.format in ("md17", "rmd17") and indices is not None:
            atoms = read_structures(self.path, format=self.format, indices=np.asarray(indices),
                                    **self.options)
        else:
            allatoms = self._read_all()
            atoms = allatoms if indices is None else [allatoms[int(i)] for i in indices]
        return atoms_set(atoms, self.cfg.cutoff, name, str(self.path), indices)


def load_splits(cfg: DataConfig, seed: int) -> DataSplits:
    """Train/val sets (and a test loader) as ``cfg`` describes; see the module doc."""
    split_seed = seed if cfg.split_seed is None else cfg.split_seed
    indices: Dict[str, np.ndarray] = {}
    if cfg.path is not None:
        src = _Source(resolve_path(cfg.path), cfg)
        if cfg.rmd17_splits is not None:
            split_dir = resolve_path(cfg.rmd17_splits)
            if not split_dir.exists():
                raise missing_data_file("data.rmd17_splits", split_dir)
            parts = rmd17_split(split_dir, fold=cfg.rmd17_fold, n_val=int(cfg.split.val),
                                seed=split_seed)
            train_idx, val_idx, test_idx = parts["train"], parts["val"], parts["test"]
            if cfg.split.train is not None:
                n_train = int(cfg.split.train) if isinstance(cfg.split.train, int) else \
                    int(np.floor(cfg.split.train * len(train_idx)))
                if n_train > len(train_idx):
                    raise ConfigError(f"data.split.train: {n_train} exceeds the {len(train_idx)} "
                                      f"training indices of rMD17 fold {cfg.rmd17_fold}")
                pick = np.random.default_rng(split_seed).permutation(len(train_idx))[:n_train]
                train_idx = np.sort(train_idx[pick])
            how = (f"rMD17 fold {cfg.rmd17_fold} of {src.path.name}: {len(train_idx)} train, "
                   f"{len(val_idx)} val, {len(test_idx)} test")
        else:
            n = len(src)
            sizes = _sizes(n, cfg.split, with_test=True)
            test_idx, val_idx, train_idx = random_split(n, list(sizes), seed=split_seed)
            how = (f"{src.path.name} ({src.format}, {n} structures) split with seed {split_seed}: "
                   f"{len(train_idx)} train, {len(val_idx)} val, {len(test_idx)} test")
        indices = {"train": train_idx, "val": val_idx, "test": test_idx}
        train = src.subset(train_idx, "train")
        val = src.subset(val_idx, "val") if len(val_idx) else None
        load_test = (lambda: src.subset(test_idx, "test")) if len(test_idx) else None
        return DataSplits(train, val, load_test, indices, how)

    # separate files
    tsrc = _Source(resolve_path(cfg.train), cfg, "data.train")
    if cfg.val is not None:
        train = tsrc.subset(None, "train")
        val = _Source(resolve_path(cfg.val), cfg, "data.val").subset(None, "val")
        how = f"train {tsrc.path.name} ({len(train)}), val {Path(cfg.val).name} ({len(val)})"
    else:
        n = len(tsrc)
        _, n_val, n_train = _sizes(n, cfg.split, with_test=False)
        val_idx, train_idx = random_split(n, [n_val, n_train], seed=split_seed)
        indices = {"train": train_idx, "val": val_idx}
        train = tsrc.subset(train_idx, "train")
        val = tsrc.subset(val_idx, "val") if n_val else None
        how = (f"{tsrc.path.name} ({n} structures) split with seed {split_seed}: {len(train_idx)} "
               f"train, {len(val_idx)} val")
    load_test = None
    if cfg.test is not None:
        test_path = resolve_path(cfg.test)
        if not test_path.exists():
            raise missing_data_file("data.test", test_path)
        load_test = lambda: _Source(test_path, cfg).subset(None, "test")  # noqa: E731
        how += f", test {test_path.name}"
    return DataSplits(train, val, load_test, indices, how)


#: how reports name the parts of a run's data
SPLIT_LABELS = {"train": "training", "val": "validation", "test": "held-out test"}


def run_split(run_dir: Path, split: str, cutoff: float) -> Tuple[StructureSet, str]:
    """One part of a finished run's data as the run used it: ``train``, ``val`` or ``test``.

    Reads ``run_dir/config.yaml`` (data paths, absolute since the run started) and
    ``run_dir/splits.npz`` (the indices of a split file). Returns the structures (graphs with
    ``cutoff`` Å) and a description such as "ethanol_gfn2.npz: held-out test split, 40 of 400
    structures (split seed 0)".

    Raises:
        ConfigError: not a run directory, or the run has no such part.
    """
    run_dir = Path(run_dir)
    if split not in SPLIT_LABELS:
        raise ConfigError(f"split must be one of {', '.join(SPLIT_LABELS)} (got {split!r})")
    if not (run_dir / "config.yaml").is_file():
        raise ConfigError(f"{run_dir}: not a training run (no config.yaml); give a model file "
                          f"and a data file instead")
    cfg = load_config(run_dir / "config.yaml")
    d = cfg.data
    d.cutoff = float(cutoff)
    indices: Dict[str, np.ndarray] = {}
    if (run_dir / "splits.npz").is_file():
        with np.load(run_dir / "splits.npz") as npz:
            indices = {k: npz[k] for k in npz.files}
    if split == "test" and d.test is not None:
        key, file, idx = "data.test", d.test, None
    elif d.path is not None:
        key, file, idx = "data.path", d.path, indices.get(split)
        if idx is None:
            raise ConfigError(f"{run_dir / 'splits.npz'}: missing (or without a '{split}' part); "
                              f"the split of {d.path} is unknown")
    elif split == "val" and d.val is not None:
        key, file, idx = "data.val", d.val, None
    elif split in ("train", "val"):
        key, file, idx = "data.train", d.train, indices.get(split)
    else:
        key, file, idx = "data.test", None, None
    if file is None or (idx is not None and len(idx) == 0):
        raise ConfigError(f"{run_dir}: the run has no {SPLIT_LABELS[split]} set; evaluate another "
                          f"split (--split) or give a data file")
    src = _Source(resolve_path(file), d, key)
    structures = src.subset(idx, split)
    if idx is None:
        how = f"{SPLIT_LABELS[split]} file, {len(structures)} structures"
    else:
        seed = cfg.seed if d.split_seed is None else d.split_seed
        how = (f"{SPLIT_LABELS[split]} split, {len(structures)} of {len(src)} structures "
               f"(split seed {seed})")
    return structures, f"{src.path.name}: {how}"


# ------------------------------------------------------------------------------ data check --

def data_files(cfg: DataConfig) -> List[Tuple[str, Path]]:
    """``(config key, path)`` of every data file a config names (test files included)."""
    keys = ("path",) if cfg.path is not None else ("train", "val", "test")
    return [(f"data.{k}", resolve_path(getattr(cfg, k))) for k in keys
            if getattr(cfg, k) is not None]


def check_data(cfg: DataConfig, needs: Sequence[str] = (),
               species: Optional[Sequence[int]] = None) -> DataCheck:
    """Check every frame of every file of ``cfg`` (:mod:`tfpot.data.check`), streamed: whole
    files, the test part included, so that nothing fails after training. Every LMDB record is
    decoded, i.e. its checksum verified.

    Args:
        needs: labels the loss uses. species: atomic numbers the model knows (None: any).

    Returns:
        The check (report lines, problems); nothing is raised for bad frames.

    Raises:
        FileNotFoundError: a file is missing.
    """
    check = DataCheck(min_distance=cfg.min_distance, species=species, needs=tuple(needs))
    for key, path in data_files(cfg):
        if not path.exists():
            raise missing_data_file(key, path)
        try:
            fmt = _format_of(path, cfg)
            if fmt == "lmdb":
                ds = LmdbDataset(path, return_type="atoms")
                for i in range(len(ds)):
                    try:
                        atoms = ds[i]
                    except DataFormatError as e:  # e.g. a record failing its checksum
                        check.unreadable_frame(e)
                        continue
                    check.add(atoms, f"{path.name}, frame {i}")
            else:
                frames = iter_structures(path, format=fmt, check=False, **_reader_options(cfg, fmt))
                for k, atoms in enumerate(frames):
                    check.add(atoms, f"{path.name}, frame {k}")
        except DataFormatError as e:  # the file cannot be read on
            check.stop(e)
    return check


#: the hint of a data-check error (how to see every problem)
CHECK_HINT = "list them all with `tfpot train --check-data CONFIG`"


def labels_needed(loss: LossConfig) -> Tuple[str, ...]:
    """The labels the loss uses (those of positive weight): what the data check requires."""
    weights = {"energy": loss.energy_weight, "forces": loss.forces_weight,
               "stress": loss.stress_weight}
    return tuple(k for k, w in weights.items() if w > 0)


def check_training_set(loss: LossConfig, train: StructureSet) -> None:
    """Refuse an empty training set, and a loss term of positive weight that no training
    structure has a label for (ConfigError, naming the key to change)."""
    if len(train) == 0:
        raise ConfigError("the training set is empty; give data.split.train > 0 or a "
                          "non-empty data.train")
    labels = train.label_counts()
    for term, key in (("energy", "energy_weight"), ("forces", "forces_weight"),
                      ("stress", "stress_weight")):
        if getattr(loss, key) > 0 and labels[term] == 0:
            hint = " (energy-only training, e.g. QM9)" if term == "forces" else ""
            raise ConfigError(f"loss.{key} is {getattr(loss, key):g} but no training "
                              f"structure has {term} labels; set loss.{key}: 0{hint}")


def verify_data(cfg: DataConfig, needs: Sequence[str], species: Optional[Sequence[int]],
                echo: Optional[Callable[[str], None]] = None) -> List[str]:
    """:func:`check_data`, refusing bad data: returns the report lines when every frame is fine.

    Raises:
        DataCheckError: first problem and count; ``echo`` (if given) receives the report first.
    """
    check = check_data(cfg, needs, species)
    lines = check.lines()
    if not check.ok:
        if echo is not None:
            for line in lines:
                echo(line)
        check.raise_if_problems(CHECK_HINT)
    return lines
