"""pymatgen ``Structure`` / ``Molecule`` lists stored as JSON (a list of ``as_dict()``).

Labels, when present, are read from ``properties["energy"]`` (eV), the site property ``forces``
(eV/Å) and ``properties["stress"]`` ((3, 3) or Voigt (6,), eV/Å^3, ASE sign: positive =
tensile). Structures become periodic Atoms (pbc from the lattice), molecules non-periodic ones,
through :class:`pymatgen.io.ase.AseAtomsAdaptor`.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Iterator, List, Union

import numpy as np
from ase import Atoms

from tfpot.data._labels import attach_labels
from tfpot.data.errors import DataFormatError

PathLike = Union[str, os.PathLike]

_LABEL_KEYS = ("energy", "stress")


def load_json(path: Path):
    try:
        with open(path, "r") as fh:
            return json.load(fh)
    except json.JSONDecodeError as e:
        raise DataFormatError(f"{path.name}, line {e.lineno}: not valid JSON ({e.msg})") from e
    except UnicodeDecodeError as e:
        raise DataFormatError(f"{path.name}: not a text (JSON) file ({e})") from e


def iter_pymatgen_json(path: PathLike) -> Iterator[Atoms]:
    """Atoms from a JSON list of pymatgen Structure/Molecule dicts (or a single dict)."""
    try:
        from pymatgen.core import Molecule, Structure
        from pymatgen.io.ase import AseAtomsAdaptor
    except ImportError as e:  # optional dependency
        raise ImportError("Reading pymatgen JSON needs pymatgen: pip install 'tfpot[pymatgen]'") from e
    path = Path(path)
    data = load_json(path)
    items: List = data if isinstance(data, list) else [data]
    for k, item in enumerate(items):
        where = f"{path.name}, item {k}"
        if not isinstance(item, dict):
            raise DataFormatError(f"{where}: expected a Structure/Molecule dict (got {type(item).__name__})")
        cls = item.get("@class")
        if cls not in ("Structure", "Molecule", "IStructure", "IMolecule"):
            raise DataFormatError(
                f"{where}: expected '@class' Structure or Molecule (as written by as_dict()), got {cls!r}")
        try:
            obj = (Structure if "Structure" in cls else Molecule).from_dict(item)
        except Exception as e:  # pymatgen raises many types for malformed dicts
            raise DataFormatError(f"{where}: cannot build a pymatgen {cls} ({type(e).__name__}: {e})") from e
        props = dict(getattr(obj, "properties", {}) or {})
        forces = obj.site_properties.get("forces")
        atoms = AseAtomsAdaptor.get_atoms(obj, msonable=False)
        for key in _LABEL_KEYS:
            atoms.info.pop(key, None)
        if "forces" in atoms.arrays:
            del atoms.arrays["forces"]
        energy = props.get("energy")
        stress = props.get("stress")
        attach_labels(atoms,
                      energy=None if energy is None else float(energy),
                      forces=None if forces is None else np.asarray(forces, dtype=np.float64),
                      stress=None if stress is None else np.asarray(stress, dtype=np.float64))
        yield atoms
