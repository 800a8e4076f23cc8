"""Data: readers for published formats, the LMDB store, graphs, splits and statistics.

Everything returned is in eV, Å, eV/Å and eV/Å^3::

    from tfpot.data import read_structures, write_lmdb, LmdbDataset
    atoms = read_structures("rmd17_ethanol.npz")            # list of labelled ase.Atoms
    write_lmdb(atoms, "ethanol.lmdb", cutoff=5.0)           # atomic, streamed, with statistics
    ds = LmdbDataset("ethanol.lmdb", cutoff=5.0)            # torch Dataset of PyG graphs
"""

from tfpot.data.demo import demo_dataset_path
from tfpot.data.errors import DataFormatError
from tfpot.data.graphs import AtomsDataset, arrays_to_data, atoms_to_data, make_loader
from tfpot.data.lmdb_store import FORMAT_VERSION, LmdbDataset, read_header, write_lmdb
from tfpot.data.md17 import read_rmd17_split
from tfpot.data.qm9 import QM9_PROPERTIES, parse_qm9_xyz
from tfpot.data.readers import FORMATS, detect_format, iter_structures, read_structures
from tfpot.data.splits import (assert_disjoint, random_split, rmd17_split, structure_fingerprint,
                               write_held_out_split)
from tfpot.data.statistics import (DatasetStatistics, StatisticsAccumulator, average_num_neighbors,
                                   compute_statistics, fit_reference_energies, force_rms)

__all__ = [
    "DataFormatError",
    "read_structures", "iter_structures", "detect_format", "FORMATS",
    "read_rmd17_split", "parse_qm9_xyz", "QM9_PROPERTIES",
    "write_lmdb", "read_header", "LmdbDataset", "FORMAT_VERSION",
    "AtomsDataset", "atoms_to_data", "arrays_to_data", "make_loader",
    "random_split", "rmd17_split", "write_held_out_split", "structure_fingerprint",
    "assert_disjoint",
    "DatasetStatistics", "StatisticsAccumulator", "compute_statistics", "fit_reference_energies",
    "force_rms", "average_num_neighbors",
    "demo_dataset_path",
]
