"""MD17 and revised MD17 (rMD17) ``.npz`` files, read exactly as published.

Layouts (n frames, N atoms):

* MD17 (Chmiela et al. 2017, sGDML): ``R`` (n, N, 3) Å, ``z`` (N,), ``E`` (n, 1) kcal/mol,
  ``F`` (n, N, 3) kcal/mol/Å, and 0-d strings ``name``, ``theory``, ``type``, ``md5``.
* rMD17 (Christensen & von Lilienfeld 2020): ``nuclear_charges`` (N,), ``coords`` (n, N, 3) Å,
  ``energies`` (n,) kcal/mol, ``forces`` (n, N, 3) kcal/mol/Å, plus ``old_indices``,
  ``old_energies``, ``old_forces`` (the MD17 frames they were recomputed from). The official
  archive has split files ``splits/index_train_0X.csv`` / ``index_test_0X.csv``, one integer per
  line, indexing the frames of the npz.

Energies become eV (× ase.units.kcal/ase.units.mol = 0.0433641 eV) and forces eV/Å. Each
structure's ``info`` holds ``frame`` (index in the file), and ``molecule``/``theory`` for MD17 or
``old_index`` for rMD17.
"""

from __future__ import annotations

import os
import zipfile
from pathlib import Path
from typing import Any, Callable, Dict, Iterator, List, Optional, Sequence, Union

import numpy as np
from ase import Atoms

from tfpot.data._labels import attach_labels
from tfpot.data.errors import DataFormatError
from tfpot.data.units import KCAL_PER_MOL

PathLike = Union[str, os.PathLike]

MD17_KEYS = ("R", "z", "E", "F")
RMD17_KEYS = ("nuclear_charges", "coords", "energies", "forces")


def _load_npz(path: Path) -> Dict[str, np.ndarray]:
    """Open an npz lazily (a dict-like of arrays); errors name the file."""
    try:
        return np.load(path, allow_pickle=False)
    except FileNotFoundError:
        raise
    except (zipfile.BadZipFile, ValueError, OSError, EOFError) as e:
        raise DataFormatError(f"{path.name}: not a readable .npz (zip of .npy) file ({e})") from e


def _get(npz, path: Path, key: str, layout: str, keys: Sequence[str]) -> np.ndarray:
    if key not in npz.files:
        raise DataFormatError(
            f"{path.name}: missing key '{key}' ({layout} layout needs {', '.join(keys)}; "
            f"found {', '.join(npz.files) or 'no keys'})")
    try:
        return np.asarray(npz[key])
    except (zipfile.BadZipFile, ValueError, OSError, EOFError) as e:
        raise DataFormatError(f"{path.name}: key '{key}' cannot be read ({e})") from e


def _get_all(npz, path: Path, keys: Sequence[str], layout: str,
             layout_keys: Sequence[str]) -> List[np.ndarray]:
    """The arrays under ``keys``, in that order (see :func:`_get`)."""
    return [_get(npz, path, key, layout, layout_keys) for key in keys]


def _meta_string(npz, key: str) -> Optional[str]:
    """A 0-d string entry such as ``name``; None when absent or unreadable without pickle."""
    if key not in npz.files:
        return None
    try:
        value = npz[key]
    except ValueError:  # an object array: never unpickle data from a file
        return None
    value = np.asarray(value).reshape(-1)
    if value.size == 0:
        return None
    item = value[0]
    return item.decode() if isinstance(item, bytes) else str(item)


def npz_layout(path: PathLike) -> str:
    """``"md17"`` or ``"rmd17"``, from the keys of the file.

    Raises:
        DataFormatError: when neither layout's keys are there.
    """
    path = Path(path)
    with _load_npz(path) as npz:
        files = set(npz.files)
    if files & set(RMD17_KEYS) and not files & {"R", "z"}:
        return "rmd17"
    if files & set(MD17_KEYS):
        return "md17"
    raise DataFormatError(
        f"{path.name}: not an MD17 npz (keys R, z, E, F) nor an rMD17 npz (keys nuclear_charges, "
        f"coords, energies, forces); found keys {sorted(files)}")


def _check_arrays(path: Path, names, z, R, E, F) -> None:
    """Shapes and values of (z, R, E, F) under the file's own key names ``names``."""
    kz, kR, kE, kF = names
    if R.ndim != 3 or R.shape[2] != 3:
        raise DataFormatError(f"{path.name}: key '{kR}' must have shape (n, N, 3) (got {R.shape})")
    n, N = R.shape[:2]
    if z.shape != (N,):
        raise DataFormatError(
            f"{path.name}: key '{kz}' must have shape ({N},) to match '{kR}' {R.shape} (got {z.shape})")
    if not np.issubdtype(z.dtype, np.integer):
        if not (np.issubdtype(z.dtype, np.floating) and np.all(z == np.round(z))):
            raise DataFormatError(f"{path.name}: key '{kz}' must hold integers (got {z.dtype})")
    if N and (z.min() < 1 or z.max() > 118):
        raise DataFormatError(
            f"{path.name}: key '{kz}' must hold atomic numbers 1..118 (got {sorted(set(z.tolist()))})")
    if E.shape not in ((n,), (n, 1)):
        raise DataFormatError(
            f"{path.name}: key '{kE}' must have shape ({n}, 1) or ({n},) to match '{kR}' {R.shape} "
            f"(got {E.shape})")
    if F.shape != (n, N, 3):
        raise DataFormatError(
            f"{path.name}: key '{kF}' must have shape ({n}, {N}, 3) to match '{kR}' (got {F.shape})")
    for key, arr in ((kR, R), (kE, E), (kF, F)):
        if not np.issubdtype(arr.dtype, np.number):
            raise DataFormatError(f"{path.name}: key '{key}' must be numeric (got {arr.dtype})")
        finite = np.isfinite(arr.reshape(n, -1)).all(axis=1)
        if not finite.all():
            raise DataFormatError(
                f"{path.name}: key '{key}' has non-finite values in frame {int(np.argmin(finite))}")


def _select(n: int, indices: Optional[Sequence[int]], path: Path) -> np.ndarray:
    if indices is None:
        return np.arange(n)
    idx = np.asarray(indices).reshape(-1)
    if not np.issubdtype(idx.dtype, np.integer):
        raise DataFormatError(f"{path.name}: indices must be integers (got {idx.dtype})")
    if idx.size and (idx.min() < -n or idx.max() >= n):
        raise DataFormatError(
            f"{path.name}: indices must lie in [0, {n}) (got min {idx.min()}, max {idx.max()})")
    return idx % n if n else idx


def _labelled_frames(path: Path, indices: Optional[Sequence[int]], z: np.ndarray, R: np.ndarray,
                     E: np.ndarray, F: np.ndarray,
                     info: Callable[[int], Dict[str, Any]]) -> Iterator[Atoms]:
    """Frames ``indices`` (all by default) as Atoms: positions Å, labels converted from kcal/mol
    to eV, ``atoms.info`` = ``{"frame": i, **info(i)}``."""
    z = z.astype(np.int64)
    E = E.reshape(-1).astype(np.float64) * KCAL_PER_MOL
    for i in _select(len(R), indices, path):
        atoms = Atoms(numbers=z, positions=R[i].astype(np.float64))
        atoms.info.update({"frame": int(i), **info(int(i))})
        yield attach_labels(atoms, energy=E[i], forces=F[i].astype(np.float64) * KCAL_PER_MOL)


def iter_md17(path: PathLike, indices: Optional[Sequence[int]] = None) -> Iterator[Atoms]:
    """Frames of an original MD17 npz as Atoms with labels in eV, eV/Å.

    Args:
        path: the ``.npz`` file.
        indices: frames to read (in this order); all by default.
    """
    path = Path(path)
    with _load_npz(path) as npz:
        R, z, E, F = _get_all(npz, path, ("R", "z", "E", "F"), "MD17", MD17_KEYS)
        name, theory = _meta_string(npz, "name"), _meta_string(npz, "theory")
    _check_arrays(path, ("z", "R", "E", "F"), z, R, E, F)
    meta = {k: v for k, v in (("molecule", name), ("theory", theory)) if v is not None}
    yield from _labelled_frames(path, indices, z, R, E, F, lambda i: meta)


def iter_rmd17(path: PathLike, indices: Optional[Sequence[int]] = None) -> Iterator[Atoms]:
    """Frames of a revised MD17 npz as Atoms with labels in eV, eV/Å.

    Args:
        path: the ``rmd17_<molecule>.npz`` file.
        indices: frames to read (e.g. from :func:`read_rmd17_split`); all by default.
    """
    path = Path(path)
    with _load_npz(path) as npz:
        z, R, E, F = _get_all(npz, path, ("nuclear_charges", "coords", "energies", "forces"),
                              "rMD17", RMD17_KEYS)
        old = np.asarray(npz["old_indices"]) if "old_indices" in npz.files else None
    _check_arrays(path, ("nuclear_charges", "coords", "energies", "forces"), z, R, E, F)
    if old is not None and old.shape != (len(R),):
        raise DataFormatError(
            f"{path.name}: key 'old_indices' must have shape ({len(R)},) (got {old.shape})")
    yield from _labelled_frames(path, indices, z, R, E, F,
                                lambda i: {} if old is None else {"old_index": int(old[i])})


def read_rmd17_split(path: PathLike) -> np.ndarray:
    """One official rMD17 split file (``index_train_0X.csv`` / ``index_test_0X.csv``).

    Returns:
        (n,) int64 frame indices, in file order.

    Raises:
        DataFormatError: a line that is not a non-negative integer (the line number is named),
        an empty file, or repeated indices.
    """
    path = Path(path)
    out = []
    with open(path, "r") as fh:
        for lineno, line in enumerate(fh, start=1):
            text = line.strip()
            if not text:
                continue
            try:
                value = int(text)
            except ValueError:
                try:  # tolerate "12.0", refuse "12.5"
                    f = float(text)
                except ValueError:
                    f = None
                if f is None or f != int(f):
                    raise DataFormatError(
                        f"{path.name}, line {lineno}: expected one integer index per line "
                        f"(got {text!r})") from None
                value = int(f)
            if value < 0:
                raise DataFormatError(f"{path.name}, line {lineno}: negative index {value}")
            out.append(value)
    if not out:
        raise DataFormatError(f"{path.name}: no indices (empty split file)")
    idx = np.asarray(out, dtype=np.int64)
    if len(np.unique(idx)) != len(idx):
        raise DataFormatError(f"{path.name}: repeated indices ({len(idx) - len(np.unique(idx))} duplicates)")
    return idx
