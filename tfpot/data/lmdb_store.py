"""tfpot's LMDB store: one file, one record per structure, random access by many workers.

Layout (LMDB with ``subdir=False``, i.e. a single file):

* key ``struct.pack(">Q", i)`` (8-byte big-endian index) -> record ``i`` (see below);
* key ``__tfpot_header__`` -> JSON header: ``format`` ("tfpot-lmdb"), ``version``
  (:data:`FORMAT_VERSION`), ``count``, ``num_atoms``, ``elements`` (sorted Z), ``units``,
  ``labels`` (how many structures have energy/forces/stress), ``cutoff`` (Å, when neighbour
  lists are cached, else null), ``statistics`` (:class:`~tfpot.data.statistics.DatasetStatistics`
  as a dict, or null), ``sources``, ``tfpot_version``;
* key ``__tfpot_natoms__`` -> raw little-endian int32 array of atom counts (for size-aware
  samplers, without reading the records).

A record is ``b"TFR1" | crc32(payload) u32 | payload`` with payload ``len(meta) u32 | meta JSON |
array bytes``. ``meta`` lists each array (name, dtype, shape, offset) and the scalar ``info``
entries. No pickle: a record from an untrusted file cannot run code, and a flipped byte is
caught by the checksum. Arrays: ``numbers`` (N,) uint8, ``positions`` (N, 3) Å, ``cell`` (3, 3)
Å, ``pbc`` (3,) bool, and where present ``energy`` () float64 eV, ``forces`` (N, 3) eV/Å,
``stress`` (3, 3) eV/Å^3, ``edge_index`` (2, E) int32 and ``cell_shifts`` (E, 3) int8/int32
(cached neighbour list), ``info:<key>`` (array-valued info) and ``array:<key>`` (per-atom arrays,
e.g. QM9's ``mulliken_charges``).

The file is written atomically (:func:`tfpot.atomic_io.atomic_path`: a locked temporary file
``.{name}.XXXXXXXX.tmp`` in the same directory, then ``os.replace``), so a crash never leaves a
half-written store under the final name (and ``tfpot convert`` removes the temporary file a
killed conversion left), and streamed: structures are
consumed from an iterator and committed in chunks, so memory does not grow with the data.
"""

from __future__ import annotations

import json
import os
import struct
import time
import warnings
import zlib
from array import array
from pathlib import Path
from typing import Any, Dict, Iterable, Iterator, List, Optional, Sequence, Tuple, Union

import lmdb
import numpy as np
import torch
from ase import Atoms
from tqdm import tqdm

from tfpot._version import __version__
from tfpot.atomic_io import atomic_path
from tfpot.data._labels import attach_labels, labels_of
from tfpot.data.datasets import arrays_to_data, targets_to_pad
from tfpot.data.errors import DataFormatError
from tfpot.data.statistics import DatasetStatistics, StatisticsAccumulator
from tfpot.data.units import INTERNAL_UNITS
from tfpot.graph import neighbor_list

PathLike = Union[str, os.PathLike]

FORMAT_NAME = "tfpot-lmdb"
FORMAT_VERSION = 1
HEADER_KEY = b"__tfpot_header__"
NATOMS_KEY = b"__tfpot_natoms__"
RECORD_MAGIC = b"TFR1"
_U32 = struct.Struct("<I")
_INITIAL_MAP_SIZE = 64 << 20  # bytes; doubled whenever a chunk does not fit
_FIXED = ("numbers", "positions", "cell", "pbc", "energy", "forces", "stress", "edge_index",
          "cell_shifts")


def record_key(i: int) -> bytes:
    """LMDB key of record ``i`` (big-endian, so keys sort in index order)."""
    return struct.pack(">Q", i)


# --------------------------------------------------------------------------------- encoding --

def _json_scalar(value: Any) -> Any:
    """A JSON-able scalar, or None when ``value`` is not a scalar."""
    if isinstance(value, (bool, np.bool_)):
        return bool(value)
    if isinstance(value, (int, np.integer)):
        return int(value)
    if isinstance(value, (float, np.floating)):
        return float(value)
    if isinstance(value, str):
        return value
    return None


def encode_record(atoms: Atoms, edge_index: Optional[np.ndarray] = None,
                  cell_shifts: Optional[np.ndarray] = None,
                  float_dtype: np.dtype = np.float64) -> bytes:
    """One structure as record bytes (layout in the module doc).

    Args:
        atoms: structure with labels on its calculator (eV, eV/Å, eV/Å^3).
        edge_index: (2, E) cached neighbour pairs; cell_shifts: (E, 3) integer image shifts.
        float_dtype: dtype of positions, forces and stress (energy is always float64).
    """
    arrays: Dict[str, np.ndarray] = {
        "numbers": atoms.get_atomic_numbers().astype(np.uint8),
        "positions": atoms.get_positions().astype(float_dtype),
        "cell": atoms.get_cell().array.astype(np.float64),
        "pbc": np.asarray(atoms.get_pbc(), dtype=bool),
    }
    energy, forces, stress = labels_of(atoms)
    if energy is not None:
        arrays["energy"] = np.asarray(energy, dtype=np.float64)
    if forces is not None:
        arrays["forces"] = forces.astype(float_dtype)
    if stress is not None:
        arrays["stress"] = stress.astype(float_dtype)
    if edge_index is not None:
        arrays["edge_index"] = np.asarray(edge_index).astype(np.int32)
        s = np.asarray(cell_shifts)
        small = s.size == 0 or np.abs(s).max() < 127
        arrays["cell_shifts"] = s.astype(np.int8 if small else np.int32)
    info: Dict[str, Any] = {}
    for key, value in atoms.info.items():
        scalar = _json_scalar(value)
        if scalar is not None:
            info[key] = scalar
        elif isinstance(value, np.ndarray) and value.dtype.kind in "biuf":
            arrays[f"info:{key}"] = value
    for key, value in atoms.arrays.items():
        if key not in ("numbers", "positions") and value.dtype.kind in "biuf":
            arrays[f"array:{key}"] = value
    specs, chunks, offset = [], [], 0
    for name, arr in arrays.items():
        arr = np.asarray(arr, order="C")  # (np.ascontiguousarray would make 0-d arrays 1-d)
        if arr.dtype.byteorder == ">":
            arr = arr.astype(arr.dtype.newbyteorder("<"))
        specs.append([name, arr.dtype.str, list(arr.shape), offset])
        chunks.append(arr.tobytes())
        offset += arr.nbytes
    meta = json.dumps({"a": specs, "i": info}, separators=(",", ":")).encode()
    payload = b"".join([_U32.pack(len(meta)), meta, *chunks])
    return RECORD_MAGIC + _U32.pack(zlib.crc32(payload)) + payload


def decode_record(value, where: str = "record") -> Dict[str, Any]:
    """Record bytes -> ``{name: array, ..., "info": {scalars}}`` (arrays own their memory).

    Raises:
        DataFormatError: wrong magic, checksum mismatch or a malformed record; names ``where``.
    """
    buf = bytearray(value)
    if len(buf) < 12 or bytes(buf[:4]) != RECORD_MAGIC:
        raise DataFormatError(f"{where}: not a tfpot record (bad magic {bytes(buf[:4])!r})")
    payload = memoryview(buf)[8:]
    if zlib.crc32(payload) != _U32.unpack_from(buf, 4)[0]:
        raise DataFormatError(f"{where}: corrupt (checksum mismatch); rewrite the store with "
                              f"`tfpot convert`")
    try:
        (n_meta,) = _U32.unpack_from(payload, 0)
        meta = json.loads(bytes(payload[4:4 + n_meta]))
        base = 4 + n_meta
        out: Dict[str, Any] = {"info": meta["i"]}
        for name, dt, shape, offset in meta["a"]:
            count = 1
            for dim in shape:
                count *= dim
            arr = np.frombuffer(payload, dtype=dt, count=count, offset=base + offset)
            out[name] = arr.reshape(shape)
    except (ValueError, KeyError, TypeError, struct.error) as e:
        raise DataFormatError(f"{where}: malformed record ({type(e).__name__}: {e})") from e
    return out


def record_to_atoms(rec: Dict[str, Any]) -> Atoms:
    """A decoded record as labelled Atoms (SinglePointCalculator; info and arrays restored)."""
    atoms = Atoms(numbers=rec["numbers"].astype(np.int64),
                  positions=rec["positions"].astype(np.float64),
                  cell=rec["cell"], pbc=rec["pbc"])
    atoms.info.update(rec["info"])
    for name, value in rec.items():
        if name.startswith("info:"):
            atoms.info[name[5:]] = value
        elif name.startswith("array:"):
            atoms.arrays[name[6:]] = value
    energy = rec.get("energy")
    return attach_labels(atoms, energy=None if energy is None else float(energy),
                         forces=rec.get("forces"), stress=rec.get("stress"))


# ---------------------------------------------------------------------------------- writing --

def _statistics(acc: StatisticsAccumulator) -> Dict[str, Any]:
    """Header statistics. Non-unique E0 (one molecule, as in MD17) is normal for a store: the
    header records ``e0_rank`` next to ``elements`` instead of warning."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        return acc.result().to_dict()


def write_lmdb(
    structures: Iterable[Atoms],
    path: PathLike,
    cutoff: Optional[float] = None,
    statistics: bool = True,
    float_dtype: Union[str, np.dtype] = "float64",
    commit_every: int = 1000,
    sources: Sequence[str] = (),
    progress: bool = False,
) -> Dict[str, Any]:
    """Write structures to a tfpot LMDB store, streaming and atomically.

    Args:
        structures: any iterable of labelled Atoms (a generator is consumed once, in chunks).
        path: output file; replaced atomically when it exists.
        cutoff: Å; when given, each record caches its neighbour list (edges and integer image
            shifts) and the statistics include the mean neighbour count.
        statistics: compute :class:`~tfpot.data.statistics.DatasetStatistics` (E0, per-atom
            energy spread, force RMS) while writing and store them in the header.
        float_dtype: "float64" (default) or "float32" for positions, forces and stress.
        commit_every: structures per write transaction (memory holds one chunk).
        sources: names of the inputs, recorded in the header.
        progress: show a tqdm progress bar.

    Returns:
        The header dict that was written.

    Raises:
        DataFormatError: no structures (a ValueError).
    """
    path = Path(path)
    float_dtype = np.dtype(float_dtype)
    if float_dtype not in (np.float32, np.float64):
        raise ValueError(f"float_dtype must be float32 or float64 (got {float_dtype})")
    if commit_every < 1:
        raise ValueError(f"commit_every must be >= 1 (got {commit_every})")
    with atomic_path(path) as tmp:
        env = lmdb.open(tmp, subdir=False, map_size=_INITIAL_MAP_SIZE, lock=False, sync=False,
                        metasync=False, meminit=False, readahead=False, max_dbs=0)
        try:
            header = _write_records(env, structures, path, cutoff, statistics, float_dtype,
                                    commit_every, sources, progress)
            env.sync(True)
        finally:
            env.close()
    return header


def _write_records(env: lmdb.Environment, structures: Iterable[Atoms], path: Path,
                   cutoff: Optional[float], statistics: bool, float_dtype: np.dtype,
                   commit_every: int, sources: Sequence[str], progress: bool) -> Dict[str, Any]:
    """Write the records and the header into an open environment; returns the header."""
    map_size = _INITIAL_MAP_SIZE
    acc = StatisticsAccumulator(cutoff=cutoff)
    natoms = array("i")
    present = np.zeros(119, bool)
    labels = {"energy": 0, "forces": 0, "stress": 0}
    pending: List[bytes] = []
    count = 0

    def commit(put) -> None:
        nonlocal map_size
        while True:
            try:
                with env.begin(write=True) as txn:
                    put(txn)
                return
            except lmdb.MapFullError:
                map_size *= 2
                env.set_mapsize(map_size)

    def flush(items: List[bytes], first: int) -> None:
        def put(txn) -> None:
            for k, value in enumerate(items):
                txn.put(record_key(first + k), value, append=True)
        commit(put)

    iterator: Iterable[Atoms] = structures
    if progress:
        iterator = tqdm(structures, desc=f"writing {path.name}", unit="structures")
    for atoms in iterator:
        ei = S = None
        if cutoff is not None:
            nl = neighbor_list(atoms.get_positions(), cutoff, atoms.get_cell().array,
                               atoms.get_pbc())
            ei, S = nl.edge_index, nl.cell_shifts
        energy, forces, stress = labels_of(atoms)
        for key, value in (("energy", energy), ("forces", forces), ("stress", stress)):
            labels[key] += value is not None
        z = atoms.get_atomic_numbers()
        present[z] = True
        natoms.append(len(z))
        if statistics:
            acc.add(z, energy, forces, None if ei is None else ei.shape[1])
        pending.append(encode_record(atoms, ei, S, float_dtype))
        count += 1
        if len(pending) >= commit_every:
            flush(pending, count - len(pending))
            pending = []
    if count == 0:
        raise DataFormatError(f"{path.name}: no structures to write; give at least one input "
                              f"frame")
    if pending:
        flush(pending, count - len(pending))
    header = {
        "format": FORMAT_NAME,
        "version": FORMAT_VERSION,
        "count": count,
        "num_atoms": int(sum(natoms)),
        "elements": [int(z) for z in np.flatnonzero(present)],
        "units": dict(INTERNAL_UNITS),
        "labels": labels,
        "cutoff": None if cutoff is None else float(cutoff),
        "float_dtype": float_dtype.name,
        "statistics": _statistics(acc) if statistics else None,
        "sources": [str(s) for s in sources],
        "tfpot_version": __version__,
        "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
    }
    natoms_bytes = np.asarray(natoms, dtype="<i4").tobytes()

    def put_header(txn) -> None:
        txn.put(NATOMS_KEY, natoms_bytes)
        txn.put(HEADER_KEY, json.dumps(header).encode())
    commit(put_header)
    return header


# ---------------------------------------------------------------------------------- reading --

def _open_env(path: Path) -> lmdb.Environment:
    """Open read-only, refusing what is not a complete LMDB file (never map past its end)."""
    if not path.exists():
        raise FileNotFoundError(f"{path}: no such file")
    if path.is_dir():
        raise DataFormatError(
            f"{path}: a directory; a tfpot LMDB store is a single file (written by write_lmdb)")
    size = path.stat().st_size
    try:
        env = lmdb.open(str(path), subdir=False, readonly=True, lock=False, readahead=False,
                        meminit=False, max_readers=2048)
    except lmdb.InvalidError as e:
        raise DataFormatError(f"{path.name}: not an LMDB file ({size} bytes; {e})") from e
    except lmdb.Error as e:
        raise DataFormatError(f"{path.name}: cannot open as an LMDB file ({type(e).__name__}: {e})") from e
    needed = (env.info()["last_pgno"] + 1) * env.stat()["psize"]
    if size < needed:
        env.close()
        raise DataFormatError(
            f"{path.name}: truncated ({size} bytes, but its index reaches byte {needed}); the copy "
            f"is incomplete: copy it again or rewrite it with `tfpot convert`")
    return env


def _read_header(env: lmdb.Environment, path: Path) -> Dict[str, Any]:
    try:
        with env.begin() as txn:
            raw = txn.get(HEADER_KEY)
            entries = txn.stat()["entries"]
    except lmdb.Error as e:
        raise DataFormatError(f"{path.name}: corrupt LMDB ({type(e).__name__}: {e})") from e
    if raw is None:
        raise DataFormatError(
            f"{path.name}: an LMDB file, but not a tfpot store (no '{HEADER_KEY.decode()}' "
            f"record); convert the data with `tfpot convert`")
    try:
        header = json.loads(raw)
    except (ValueError, UnicodeDecodeError) as e:
        raise DataFormatError(f"{path.name}: corrupt header record ({e})") from e
    if not isinstance(header, dict) or header.get("format") != FORMAT_NAME:
        fmt = header.get("format") if isinstance(header, dict) else None
        raise DataFormatError(f"{path.name}: header format is {fmt!r}, expected '{FORMAT_NAME}'")
    version = header.get("version")
    if version != FORMAT_VERSION:
        hint = ("upgrade tfpot" if isinstance(version, int) and version > FORMAT_VERSION
                else "rewrite it with `tfpot convert`")
        raise DataFormatError(
            f"{path.name}: format version {version!r}, but this tfpot reads version "
            f"{FORMAT_VERSION}; {hint}")
    for key in ("count", "elements", "labels", "cutoff"):
        if key not in header:
            raise DataFormatError(f"{path.name}: header lacks '{key}'")
    if entries != header["count"] + 2:
        raise DataFormatError(
            f"{path.name}: header promises {header['count']} records, the file holds "
            f"{entries - 2}; the store is incomplete")
    return header


# LMDB refuses a second handle on one file in one process (py-lmdb checks the inode), so every
# reader in a process shares one read-only environment per file. After a fork (DataLoader
# workers) the inherited handles are closed and each process opens its own.
_ENV_CACHE: Dict[Tuple[int, int], lmdb.Environment] = {}
_ENV_CACHE_PID = os.getpid()


def _file_key(path: Path) -> Tuple[int, int]:
    try:
        st = path.stat()
    except FileNotFoundError:
        raise FileNotFoundError(f"{path}: no such file") from None
    return st.st_dev, st.st_ino


def _shared_env(path: Path) -> Tuple[Tuple[int, int], lmdb.Environment]:
    """This process's read-only environment for ``path`` (opened and checked on first use)."""
    global _ENV_CACHE_PID
    if _ENV_CACHE_PID != os.getpid():
        for env in _ENV_CACHE.values():
            try:  # readonly, lock=False: only a mapping and a descriptor to release
                env.close()
            except lmdb.Error:
                pass
        _ENV_CACHE.clear()
        _ENV_CACHE_PID = os.getpid()
    key = _file_key(path)
    env = _ENV_CACHE.get(key)
    if env is None:
        env = _open_env(path)
        _ENV_CACHE[key] = env
    return key, env


def close_environments() -> None:
    """Close every store this process has open (readers re-open on their next access)."""
    for env in _ENV_CACHE.values():
        env.close()
    _ENV_CACHE.clear()


def read_header(path: PathLike) -> Dict[str, Any]:
    """The validated header of a store (see the module doc).

    Raises:
        FileNotFoundError, DataFormatError: missing, not an LMDB file, truncated, not a tfpot
        store, or a different format version; the message names the file.
    """
    path = Path(path)
    if path.is_dir():
        raise DataFormatError(
            f"{path}: a directory; a tfpot LMDB store is a single file (written by write_lmdb)")
    key, env = _shared_env(path)
    try:
        return _read_header(env, path)
    except DataFormatError:
        _ENV_CACHE.pop(key, None)  # do not keep a refused file open
        env.close()
        raise


class LmdbDataset(torch.utils.data.Dataset):
    """A tfpot LMDB store as a torch Dataset of graphs (``Data``) or Atoms, read lazily.

    The header is checked when the dataset is made (so a bad file fails at once, naming the
    problem). The LMDB environment is opened read-only, without locks, on first access in each
    process (and re-opened after a fork), so DataLoader workers and several training processes
    may read one file at the same time.

    Args:
        path: the store.
        cutoff: neighbour radius, Å. Cached neighbour lists are used when the store's cutoff
            equals it, filtered when the store's is larger, recomputed otherwise.
        dtype: floating dtype of the graphs (energy stays float64).
        return_type: ``"graph"`` (default when a cutoff is given) or ``"atoms"``.
        transform: optional callable applied to each item.

    Shapes (graphs): see :mod:`tfpot.data.datasets`.
    """

    def __init__(self, path: PathLike, cutoff: Optional[float] = None,
                 dtype: torch.dtype = torch.float64, return_type: Optional[str] = None,
                 transform=None) -> None:
        self.path = Path(path)
        self.header = read_header(self.path)
        self.cutoff = None if cutoff is None else float(cutoff)
        self.dtype = dtype
        self.return_type = return_type or ("graph" if cutoff is not None else "atoms")
        if self.return_type not in ("graph", "atoms"):
            raise ValueError(f"return_type must be 'graph' or 'atoms' (got {self.return_type!r})")
        if self.return_type == "graph" and self.cutoff is None:
            raise ValueError("LmdbDataset needs a cutoff (Å) to return graphs")
        if self.cutoff is not None and self.cutoff <= 0:
            raise ValueError(f"cutoff must be positive (got {self.cutoff})")
        self.transform = transform
        self.pad_targets = targets_to_pad(self.header["labels"], self.header["count"])
        self._key: Optional[Tuple[int, int]] = None
        self._pid: Optional[int] = None

    # The environment never travels to another process: each opens its own.
    def __getstate__(self) -> Dict[str, Any]:
        state = dict(self.__dict__)
        state["_key"], state["_pid"] = None, None
        return state

    def _environment(self) -> lmdb.Environment:
        if self._pid == os.getpid():
            env = _ENV_CACHE.get(self._key)
            if env is not None:
                return env
        self._key, env = _shared_env(self.path)
        self._pid = os.getpid()
        return env

    def close(self) -> None:
        """Close this process's handle on the file (shared by every dataset of the file in this
        process; each re-opens on its next access)."""
        env = _ENV_CACHE.pop(self._key, None) if self._pid == os.getpid() else None
        if env is not None:
            env.close()
        self._key, self._pid = None, None

    def __len__(self) -> int:
        return int(self.header["count"])

    @property
    def elements(self) -> List[int]:
        """Atomic numbers present in the store, sorted."""
        return list(self.header["elements"])

    @property
    def statistics(self) -> Optional[DatasetStatistics]:
        """Statistics computed when the store was written (None if it was written without)."""
        stats = self.header.get("statistics")
        return None if stats is None else DatasetStatistics.from_dict(stats)

    def num_atoms(self) -> np.ndarray:
        """(len,) int64 atom count of every structure (one read, no records decoded)."""
        with self._environment().begin() as txn:
            raw = txn.get(NATOMS_KEY)
        if raw is None or len(raw) != 4 * len(self):
            raise DataFormatError(f"{self.path.name}: missing or malformed '{NATOMS_KEY.decode()}' record")
        return np.frombuffer(raw, dtype="<i4").astype(np.int64)

    def record(self, idx: int) -> Dict[str, Any]:
        """Decoded record ``idx`` (arrays and info; see :func:`decode_record`)."""
        n = len(self)
        i = int(idx)
        if i < 0:
            i += n
        if not 0 <= i < n:
            raise IndexError(f"index {idx} out of range for {self.path.name} with {n} structures")
        where = f"{self.path.name}, record {i}"
        try:
            with self._environment().begin(buffers=True) as txn:
                value = txn.get(record_key(i))
                if value is None:
                    raise DataFormatError(f"{where}: missing; the store is incomplete")
                return decode_record(value, where)
        except lmdb.Error as e:
            raise DataFormatError(f"{where}: corrupt LMDB ({type(e).__name__}: {e})") from e

    def __getitem__(self, idx: int):
        rec = self.record(idx)
        item = record_to_atoms(rec) if self.return_type == "atoms" else self._graph(rec)
        return self.transform(item) if self.transform is not None else item

    def _graph(self, rec: Dict[str, Any]):
        cell = rec["cell"].astype(np.float64)
        positions = rec["positions"].astype(np.float64)
        cached = self.header["cutoff"]
        if cached is not None and "edge_index" in rec and self.cutoff <= cached:
            edge_index = rec["edge_index"].astype(np.int64)
            shifts = rec["cell_shifts"].astype(np.float64) @ cell
            if self.cutoff < cached:
                vec = positions[edge_index[1]] - positions[edge_index[0]] + shifts
                keep = np.einsum("ij,ij->i", vec, vec) < self.cutoff ** 2
                edge_index, shifts = edge_index[:, keep], shifts[keep]
        else:
            nl = neighbor_list(positions, self.cutoff, cell, rec["pbc"])
            edge_index, shifts = nl.edge_index, nl.shifts
        energy = rec.get("energy")
        return arrays_to_data(positions, rec["numbers"], cell, rec["pbc"], edge_index, shifts,
                              None if energy is None else float(energy), rec.get("forces"),
                              rec.get("stress"), self.dtype, self.pad_targets)

    def iter_atoms(self) -> Iterator[Atoms]:
        """All structures as Atoms, in order."""
        for i in range(len(self)):
            yield record_to_atoms(self.record(i))

    def __repr__(self) -> str:
        return (f"{type(self).__name__}({self.path.name!r}, {len(self)} structures, "
                f"elements={self.elements}, cutoff={self.cutoff}, return_type={self.return_type!r})")
