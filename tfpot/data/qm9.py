"""QM9 (Ramakrishnan et al. 2014): ``dsgdb9nsd_XXXXXX.xyz`` files, a directory of them, or the
published ``.tar.bz2`` archive (read as a stream, nothing extracted to disk).

File layout (na atoms)::

    line 1          na
    line 2          gdb <id>  A  B  C  mu  alpha  homo  lumo  gap  r2  zpve  U0  U  H  G  Cv
    lines 3..na+2   element  x  y  z  mulliken_charge       (Å, e)
    line na+3       harmonic frequencies (cm^-1)
    line na+4       SMILES (GDB-17, B3LYP-relaxed), tab-separated
    line na+5       InChI (GDB-17, B3LYP-relaxed), tab-separated

Numbers may be written with Mathematica exponents, ``1.2345*^-6`` = 1.2345e-6.

All 15 properties go into ``atoms.info`` under the keys of :data:`QM9_PROPERTIES`, converted to
tfpot units (energies in eV). The ``target`` property (default ``U0``) also becomes the
SinglePointCalculator energy. Per atom, ``atoms.arrays["mulliken_charges"]`` (e); per molecule
``info["gdb_id"]``, ``info["smiles"]``, ``info["smiles_relaxed"]``, ``info["inchi"]``,
``info["inchi_relaxed"]`` and ``info["frequencies"]`` (cm^-1, array).
"""

from __future__ import annotations

import os
import tarfile
from pathlib import Path
from typing import Dict, Iterator, NamedTuple, Optional, Tuple, Union

import numpy as np
from ase import Atoms
from ase.data import atomic_numbers

from tfpot.data._labels import attach_labels
from tfpot.data.errors import DataFormatError
from tfpot.data.units import BOHR, CAL_PER_MOL_K, DEBYE, HARTREE

PathLike = Union[str, os.PathLike]


class Qm9Property(NamedTuple):
    """One column of QM9's second line: its unit in the file, in tfpot, and the factor."""

    file_unit: str
    unit: str
    factor: float
    description: str


#: The 15 properties in file order: key in ``atoms.info`` -> units and factor (value × factor).
QM9_PROPERTIES: Dict[str, Qm9Property] = {
    "A": Qm9Property("GHz", "GHz", 1.0, "rotational constant A"),
    "B": Qm9Property("GHz", "GHz", 1.0, "rotational constant B"),
    "C": Qm9Property("GHz", "GHz", 1.0, "rotational constant C"),
    "mu": Qm9Property("D", "e*Å", DEBYE, "dipole moment"),
    "alpha": Qm9Property("a0^3", "Å^3", BOHR ** 3, "isotropic polarizability"),
    "homo": Qm9Property("Ha", "eV", HARTREE, "HOMO energy"),
    "lumo": Qm9Property("Ha", "eV", HARTREE, "LUMO energy"),
    "gap": Qm9Property("Ha", "eV", HARTREE, "HOMO-LUMO gap"),
    "r2": Qm9Property("a0^2", "Å^2", BOHR ** 2, "electronic spatial extent"),
    "zpve": Qm9Property("Ha", "eV", HARTREE, "zero-point vibrational energy"),
    "U0": Qm9Property("Ha", "eV", HARTREE, "internal energy at 0 K"),
    "U": Qm9Property("Ha", "eV", HARTREE, "internal energy at 298.15 K"),
    "H": Qm9Property("Ha", "eV", HARTREE, "enthalpy at 298.15 K"),
    "G": Qm9Property("Ha", "eV", HARTREE, "free energy at 298.15 K"),
    "Cv": Qm9Property("cal/(mol K)", "eV/K", CAL_PER_MOL_K, "heat capacity at 298.15 K"),
}

#: Properties in eV that may serve as the training energy (``target=``).
QM9_ENERGY_TARGETS: Tuple[str, ...] = tuple(k for k, p in QM9_PROPERTIES.items() if p.unit == "eV")


def _float(token: str, where: str, what: str) -> float:
    text = token.strip().replace("*^", "e")
    try:
        value = float(text)
    except ValueError:
        raise DataFormatError(f"{where}: expected a number for {what} (got {token!r})") from None
    if not np.isfinite(value):
        raise DataFormatError(f"{where}: {what} is not finite (got {token!r})")
    return value


def check_target(target: Optional[str]) -> Optional[str]:
    """Validate a ``target=`` option (an energy-valued property name, or None for no label)."""
    if target is not None and target not in QM9_ENERGY_TARGETS:
        raise ValueError(
            f"QM9 target must be one of {', '.join(QM9_ENERGY_TARGETS)} (energies in eV) or None "
            f"(got {target!r})")
    return target


def parse_qm9_xyz(text: str, name: str = "<qm9>", target: Optional[str] = "U0") -> Atoms:
    """One QM9 molecule from the text of its ``.xyz`` file.

    Args:
        text: file contents.
        name: file name used in error messages.
        target: property that becomes the SinglePointCalculator energy (eV); None for none.

    Raises:
        DataFormatError: naming the file and the 1-based line that is wrong.
    """
    check_target(target)
    lines = text.splitlines()
    if not lines:
        raise DataFormatError(f"{name}: empty file")
    try:
        na = int(lines[0].strip())
    except ValueError:
        raise DataFormatError(f"{name}, line 1: expected the number of atoms (got {lines[0]!r})") from None
    if na <= 0:
        raise DataFormatError(f"{name}, line 1: number of atoms must be positive (got {na})")
    if len(lines) < na + 5:
        raise DataFormatError(
            f"{name}: expected {na + 5} lines for {na} atoms (count, properties, {na} atoms, "
            f"frequencies, SMILES, InChI), got {len(lines)}; file truncated?")

    props_line = lines[1].split()
    where = f"{name}, line 2"
    if len(props_line) < 2 or props_line[0] != "gdb":
        raise DataFormatError(f"{where}: expected 'gdb <id>' and 15 properties (got {lines[1][:60]!r})")
    values = props_line[2:]
    if len(values) != len(QM9_PROPERTIES):
        raise DataFormatError(
            f"{where}: expected 15 properties after 'gdb <id>' (got {len(values)})")
    try:
        gdb_id = int(props_line[1])
    except ValueError:
        raise DataFormatError(f"{where}: expected an integer id after 'gdb' (got {props_line[1]!r})") from None
    info: Dict[str, object] = {"gdb_id": gdb_id}
    for (key, prop), token in zip(QM9_PROPERTIES.items(), values):
        info[key] = _float(token, where, key) * prop.factor

    numbers = np.empty(na, dtype=np.int64)
    positions = np.empty((na, 3), dtype=np.float64)
    charges = np.empty(na, dtype=np.float64)
    for a in range(na):
        lineno = a + 3
        where = f"{name}, line {lineno}"
        parts = lines[lineno - 1].split()
        if len(parts) != 5:
            raise DataFormatError(
                f"{where}: expected 'element x y z mulliken_charge' (got {len(parts)} fields)")
        symbol = parts[0]
        if symbol not in atomic_numbers:
            raise DataFormatError(f"{where}: unknown element {symbol!r}")
        numbers[a] = atomic_numbers[symbol]
        for c in range(3):
            positions[a, c] = _float(parts[1 + c], where, "xyz"[c])
        charges[a] = _float(parts[4], where, "Mulliken charge")

    where = f"{name}, line {na + 3}"
    info["frequencies"] = np.array(
        [_float(t, where, "a harmonic frequency") for t in lines[na + 2].split()], dtype=np.float64)
    smiles = lines[na + 3].split()
    inchi = lines[na + 4].split()
    if len(smiles) != 2:
        raise DataFormatError(f"{name}, line {na + 4}: expected two SMILES (got {len(smiles)} fields)")
    if len(inchi) != 2 or not all(s.startswith("InChI=") for s in inchi):
        raise DataFormatError(f"{name}, line {na + 5}: expected two InChI strings (got {lines[na + 4][:60]!r})")
    info["smiles"], info["smiles_relaxed"] = smiles
    info["inchi"], info["inchi_relaxed"] = inchi

    atoms = Atoms(numbers=numbers, positions=positions)
    atoms.arrays["mulliken_charges"] = charges
    atoms.info.update(info)
    if target is not None:
        attach_labels(atoms, energy=info[target])
    return atoms


def _is_qm9_member(name: str) -> bool:
    base = os.path.basename(name)
    return base.endswith(".xyz") and not base.startswith(".")


def iter_qm9(path: PathLike, target: Optional[str] = "U0") -> Iterator[Atoms]:
    """QM9 molecules from one ``.xyz`` file, a directory of them, or a ``.tar(.bz2|.gz|.xz)``.

    Directories are read in sorted file-name order (``dsgdb9nsd_000001.xyz`` first); archives in
    archive order, streamed member by member (``tarfile`` stream mode, no extraction).

    Args:
        path: file, directory or archive.
        target: energy-valued property used as the label energy (eV); see :data:`QM9_ENERGY_TARGETS`.
    """
    check_target(target)
    path = Path(path)
    if path.is_dir():
        files = sorted(p for p in path.iterdir() if p.is_file() and _is_qm9_member(p.name))
        if not files:
            raise DataFormatError(f"{path}: directory holds no QM9 .xyz files (dsgdb9nsd_XXXXXX.xyz)")
        for p in files:
            yield parse_qm9_xyz(_decode(p.read_bytes(), p.name), p.name, target)
        return
    if not path.exists():
        raise FileNotFoundError(f"{path}: no such file or directory")
    if path.name.endswith(".xyz"):
        yield parse_qm9_xyz(_decode(path.read_bytes(), path.name), path.name, target)
        return
    found = 0
    try:
        with tarfile.open(path, mode="r|*") as tar:
            for member in tar:
                if not member.isfile() or not _is_qm9_member(member.name):
                    continue
                fh = tar.extractfile(member)
                data = fh.read() if fh is not None else b""
                where = f"{path.name}:{member.name}"
                found += 1
                yield parse_qm9_xyz(_decode(data, where), where, target)
    except (tarfile.TarError, EOFError, OSError) as e:
        raise DataFormatError(f"{path.name}: not a readable tar archive of QM9 .xyz files ({e})") from e
    if found == 0:
        raise DataFormatError(f"{path.name}: archive holds no QM9 .xyz files (dsgdb9nsd_XXXXXX.xyz)")


def _decode(data: bytes, where: str) -> str:
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as e:
        raise DataFormatError(f"{where}: not a text file ({e})") from e
