"""``read_structures``: any supported file in, a list of labelled ``ase.Atoms`` out.

Formats (``format=`` names), detected from content first and the file name second:

============== ========================================================= =====================
name           what                                                       options
============== ========================================================= =====================
md17           original MD17 npz (R, z, E, F), kcal/mol                   indices
rmd17          revised MD17 npz (nuclear_charges, coords, ...), kcal/mol  indices
qm9            dsgdb9nsd_*.xyz file, directory, or .tar.bz2, Hartree     target (default U0)
extxyz         extended / plain XYZ through ase.io, eV and Å             index, energy_key,
                                                                          forces_key, stress_key
ase-db         ASE database (.db SQLite, or ASE JSON db), eV and Å       selection
pymatgen-json  JSON list of pymatgen Structure/Molecule ``as_dict()``     --
lmdb           tfpot's own LMDB store (:mod:`tfpot.data.lmdb_store`)      --
============== ========================================================= =====================

Any other name is handed to ``ase.io.iread`` as its format (e.g. ``traj``, ``vasp-out``).
Every structure is checked (finite positions, labels of the right shape) before it is returned.
Energies are eV, forces eV/Å, stress eV/Å^3 (3x3 or Voigt, ASE sign), attached through
:class:`ase.calculators.singlepoint.SinglePointCalculator`.
"""

from __future__ import annotations

import os
import struct
from pathlib import Path
from typing import Any, Dict, Iterable, Iterator, List, Optional, Union

import ase.db
import ase.io
import numpy as np
from ase import Atoms
from ase.io.formats import ioformats

from tfpot.data._labels import attach_labels, labels_of
from tfpot.data.check import check_readable
from tfpot.data.extxyz import iter_extxyz
from tfpot.data.errors import DataFormatError
from tfpot.data.lmdb_store import LmdbDataset
from tfpot.data.md17 import iter_md17, iter_rmd17, npz_layout
from tfpot.data.pymatgen_json import iter_pymatgen_json, load_json
from tfpot.data.qm9 import iter_qm9

PathLike = Union[str, os.PathLike]

FORMATS = ("md17", "rmd17", "qm9", "extxyz", "ase-db", "pymatgen-json", "lmdb")

_LMDB_MAGIC = struct.pack("<I", 0xBEEFC0DE)


def _head(path: Path, n: int = 512) -> bytes:
    with open(path, "rb") as fh:
        return fh.read(n)


def detect_format(path: PathLike) -> str:
    """The format name of ``path`` (one of :data:`FORMATS`), from its content and name.

    Raises:
        FileNotFoundError: no such path.
        DataFormatError: nothing recognisable.
    """
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"{path}: no such file or directory")
    if path.is_dir():
        if any(p.suffix == ".xyz" for p in path.iterdir()):
            return "qm9"
        raise DataFormatError(f"{path}: a directory, but not one of QM9 .xyz files")
    name = path.name.lower()
    head = _head(path)
    if head.startswith(b"PK\x03\x04") or name.endswith(".npz"):
        return npz_layout(path)
    if head.startswith(b"SQLite format 3\x00"):
        return "ase-db"
    if len(head) >= 20 and head[16:20] == _LMDB_MAGIC:
        return "lmdb"
    if name.endswith((".lmdb", ".mdb")):
        return "lmdb"
    if head.startswith(b"BZh") or name.endswith((".tar", ".tar.bz2", ".tbz2", ".tar.gz", ".tgz",
                                                 ".tar.xz")):
        return "qm9"
    if len(head) >= 262 and head[257:262] == b"ustar":
        return "qm9"
    if name.endswith(".db"):
        return "ase-db"
    if name.endswith(".json") or head.lstrip()[:1] in (b"[", b"{"):
        return _json_flavour(path)
    if name.endswith(".xyz") or name.endswith(".extxyz"):
        lines = head.decode("utf-8", errors="replace").splitlines()
        if len(lines) >= 2 and lines[1].startswith("gdb "):
            return "qm9"
        return "extxyz"
    raise DataFormatError(
        f"{path.name}: cannot tell the format from its name or content; pass format= one of "
        f"{', '.join(FORMATS)} or an ase.io format name")


def _json_flavour(path: Path) -> str:
    data = load_json(path)
    if isinstance(data, dict) and "nextid" in data:
        return "ase-db"
    first = data[0] if isinstance(data, list) and data else data
    if isinstance(first, dict) and "@class" in first:
        return "pymatgen-json"
    raise DataFormatError(
        f"{path.name}: JSON, but neither an ASE database nor a list of pymatgen Structure/Molecule "
        f"dicts (as_dict())")


class ReaderOptionError(DataFormatError, TypeError):
    """A reader option that the file's format does not take."""


def _reject_options(fmt: str, options: Dict[str, Any], allowed: Iterable[str],
                    path: Path) -> None:
    extra = sorted(set(options) - set(allowed))
    if extra:
        allowed = sorted(allowed)
        raise ReaderOptionError(
            f"{path.name}: option(s) {', '.join(extra)} do not apply to format '{fmt}' "
            f"(it takes {', '.join(allowed) if allowed else 'no options'}); remove them "
            f"(data.options)")


def _iter_ase(path: Path, fmt: Optional[str], index: Any = ":", energy_key: str = "energy",
              forces_key: str = "forces", stress_key: str = "stress") -> Iterator[Atoms]:
    try:
        if fmt == "extxyz":  # line by line, naming frame and line of every problem
            it = iter_extxyz(path, index=index)
        else:
            it = ase.io.iread(path, index=index, format=fmt)
        for atoms in it:
            yield _relabel(atoms, energy_key, forces_key, stress_key)
    except DataFormatError:
        raise
    except (ValueError, KeyError, IndexError, TypeError, AttributeError, OSError,
            UnicodeDecodeError) as e:
        raise DataFormatError(
            f"{path.name}: cannot read as {fmt or 'an ase.io format'} ({type(e).__name__}: {e})") from e


def _relabel(atoms: Atoms, energy_key: str, forces_key: str, stress_key: str) -> Atoms:
    """Move labels stored under custom keys (e.g. ``REF_energy``) onto the calculator."""
    if (energy_key, forces_key, stress_key) == ("energy", "forces", "stress"):
        return atoms

    energy, forces, stress = labels_of(atoms)
    # A custom key replaces the standard one; the moved value leaves info/arrays.
    energy = atoms.info.pop(energy_key, None) if energy_key != "energy" else energy
    forces = atoms.arrays.pop(forces_key, None) if forces_key != "forces" else forces
    stress = atoms.info.pop(stress_key, None) if stress_key != "stress" else stress
    atoms.calc = None
    return attach_labels(atoms, energy=energy, forces=forces, stress=stress)


def _iter_ase_db(path: Path, selection: Any = None) -> Iterator[Atoms]:
    try:
        db = ase.db.connect(str(path), type="json" if path.suffix == ".json" else "db")
        rows = db.select(selection) if selection is not None else db.select()
        for row in rows:
            atoms = row.toatoms()
            results = getattr(atoms.calc, "results", {})
            if np.shape(results.get("stress")) == (9,):  # ASE databases store a flat 3x3
                results["stress"] = np.reshape(results["stress"], (3, 3))
            atoms.info.update(row.key_value_pairs)
            atoms.info["db_id"] = int(row.id)
            yield atoms
    except DataFormatError:
        raise
    except Exception as e:  # sqlite3.DatabaseError, json errors, ase KeyError ...
        raise DataFormatError(f"{path.name}: cannot read as an ASE database ({type(e).__name__}: {e})") from e


def _iter_lmdb(path: Path) -> Iterator[Atoms]:
    ds = LmdbDataset(path, return_type="atoms")
    for i in range(len(ds)):
        yield ds[i]


def iter_structures(path: PathLike, format: Optional[str] = None, check: bool = True,
                    **options: Any) -> Iterator[Atoms]:
    """Like :func:`read_structures`, but yields one structure at a time (constant memory for
    QM9 archives, extxyz, databases and LMDB stores).

    ``check=False`` skips the per-frame check (:func:`tfpot.data.check.check_readable`), for a
    caller that checks every frame itself (:class:`tfpot.data.check.DataCheck`).
    """
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"{path}: no such file or directory")
    fmt = detect_format(path) if format is None else format.lower()
    if fmt == "npz":
        fmt = npz_layout(path)
    if fmt in ("md17", "rmd17"):
        _reject_options(fmt, options, ("indices",), path)
        source = (iter_md17 if fmt == "md17" else iter_rmd17)(path, **options)
    elif fmt == "qm9":

        _reject_options(fmt, options, ("target",), path)
        source = iter_qm9(path, **options)
    elif fmt in ("extxyz", "xyz"):
        _reject_options(fmt, options, ("index", "energy_key", "forces_key", "stress_key"), path)
        source = _iter_ase(path, "extxyz", **options)
    elif fmt in ("ase-db", "db"):
        _reject_options(fmt, options, ("selection",), path)
        source = _iter_ase_db(path, **options)
    elif fmt == "pymatgen-json":
        _reject_options(fmt, options, (), path)
        source = iter_pymatgen_json(path)
    elif fmt == "lmdb":
        _reject_options(fmt, options, (), path)
        source = _iter_lmdb(path)
    else:
        if fmt not in ioformats:
            raise DataFormatError(
                f"{path.name}: unknown format {format!r}; expected one of {', '.join(FORMATS)} or "
                f"an ase.io format name")
        _reject_options(fmt, options, ("index", "energy_key", "forces_key", "stress_key"), path)
        source = _iter_ase(path, fmt, **options)
    for k, atoms in enumerate(source):
        yield check_readable(atoms, f"{path.name}, frame {k}") if check else atoms


def read_structures(path: PathLike, format: Optional[str] = None, **options: Any) -> List[Atoms]:
    """Read every structure of a data file, with labels in eV, eV/Å and eV/Å^3.

    Args:
        path: a file (or, for QM9, a directory).
        format: one of :data:`FORMATS` (or an ase.io format name); detected when None.
        **options: format options (see the module table), e.g. ``target="U0"`` for QM9 or
            ``indices=read_rmd17_split(...)`` for (r)MD17.

    Returns:
        Atoms with a SinglePointCalculator holding ``energy`` (eV), ``forces`` ((N, 3) eV/Å) and
        ``stress`` (eV/Å^3) where the file has them.

    Raises:
        FileNotFoundError: no such path.
        DataFormatError: (a ValueError) the content does not fit the format; the message names
            the file and the line, key or structure.
        TypeError: an option that the format does not take.
    """
    return list(iter_structures(path, format=format, **options))
