"""Data: readers for published formats, the LMDB store, graphs, splits and statistics.

Everything returned is in eV, Å, eV/Å and eV/Å^3::

    from tfpot.data import read_structures, write_lmdb, LmdbDataset
    atoms = read_structures("rmd17_ethanol.npz")            # list of labelled ase.Atoms
    write_lmdb(atoms, "ethanol.lmdb", cutoff=5.0)           # atomic, streamed, with statistics
    ds = LmdbDataset("ethanol.lmdb", cutoff=5.0)            # torch Dataset of PyG graphs

Names are imported on first use (PEP 562), so ``import tfpot.data`` (and the ``tfpot`` command
line) does not load torch_geometric until a graph is needed.
"""

from importlib import import_module
from typing import TYPE_CHECKING, Any

from tfpot.data.errors import DataFormatError

_EXPORTS = {
    "read_structures": "readers", "iter_structures": "readers", "detect_format": "readers",
    "FORMATS": "readers",
    "read_rmd17_split": "md17",
    "parse_qm9_xyz": "qm9", "QM9_PROPERTIES": "qm9",
    "write_lmdb": "lmdb_store", "read_header": "lmdb_store", "LmdbDataset": "lmdb_store",
    "FORMAT_VERSION": "lmdb_store",
    "AtomsDataset": "datasets", "atoms_to_data": "datasets", "arrays_to_data": "datasets",
    "make_loader": "datasets", "model_inputs": "datasets",
    "random_split": "splits", "rmd17_split": "splits", "write_held_out_split": "splits",
    "structure_fingerprint": "splits", "assert_disjoint": "splits",
    "DatasetStatistics": "statistics", "StatisticsAccumulator": "statistics",
    "compute_statistics": "statistics", "fit_reference_energies": "statistics",
    "force_rms": "statistics", "average_num_neighbors": "statistics",
    "demo_dataset_path": "demo", "resolve_data_path": "demo",
}

__all__ = ["DataFormatError", *_EXPORTS]


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'tfpot.data' has no attribute {name!r}")
    value = getattr(import_module(f"tfpot.data.{module}"), name)
    globals()[name] = value
    return value


def __dir__():
    return sorted(__all__)


if TYPE_CHECKING:  # static analysers and IDEs see the real names
    from tfpot.data.demo import demo_dataset_path, resolve_data_path
    from tfpot.data.datasets import (AtomsDataset, arrays_to_data, atoms_to_data, make_loader,
                                     model_inputs)
    from tfpot.data.lmdb_store import FORMAT_VERSION, LmdbDataset, read_header, write_lmdb
    from tfpot.data.md17 import read_rmd17_split
    from tfpot.data.qm9 import QM9_PROPERTIES, parse_qm9_xyz
    from tfpot.data.readers import FORMATS, detect_format, iter_structures, read_structures
    from tfpot.data.splits import (assert_disjoint, random_split, rmd17_split,
                                   structure_fingerprint, write_held_out_split)
    from tfpot.data.statistics import (DatasetStatistics, StatisticsAccumulator,
                                       average_num_neighbors, compute_statistics,
                                       fit_reference_energies, force_rms)
