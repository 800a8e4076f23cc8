"""The data check: what every frame must satisfy before a model trains on it or is scored on it.

Per frame (:func:`frame_problems`), each problem one line naming file, frame and atom:

* at least one atom;
* finite positions, cell, energy, forces and stress; forces (N, 3), stress (3, 3) or Voigt (6,);
* a non-singular cell when any direction is periodic;
* atomic numbers of real elements (1..118) and, when the model's species are given, among them;
* no two atoms (or an atom and a periodic image) closer than ``min_distance`` (default
  :data:`DEFAULT_MIN_DISTANCE`, the ASE calculator's); the closest pair is named;
* the labels the loss uses (``needs``): a frame with none of them is refused; stress labels
  only on cells periodic in three directions.

:class:`DataCheck` runs this over a stream of frames in constant memory and gathers the data
statistics reported with it (frames, atoms, elements, labels, shortest distance, largest force,
energy per atom range). ``tfpot train`` runs it over every data file of a config before training
(``tfpot train --check-data`` runs only it), ``tfpot convert`` over its input while converting,
``tfpot eval`` over its data. Reading an LMDB store this way decodes every record, so a record
with a bad checksum is found here, before any training.
"""

from __future__ import annotations

import math
from collections import Counter
from dataclasses import dataclass, field
from typing import Iterable, Iterator, List, Optional, Sequence, Tuple

import numpy as np
from ase import Atoms
from ase.data import chemical_symbols

from tfpot.data._labels import labels_of
from tfpot.data.errors import DataFormatError
from tfpot.graph import neighbor_list

#: Å; atoms closer than this are refused (as ``TFPotCalculator(min_distance=0.1)`` does)
DEFAULT_MIN_DISTANCE = 0.1
#: Å; shortest distances below this are found for the statistics
STATISTICS_RADIUS = 2.0
#: problems listed in a report (all are counted)
MAX_LISTED = 20
LABELS = ("energy", "forces", "stress")


class DataCheckError(DataFormatError):
    """Frames that a model cannot train on or be scored on; the message is the first problem
    and how many more there are."""


def _sym(z: int) -> str:
    return chemical_symbols[z] if 0 < z < len(chemical_symbols) else f"Z={z}"


def _count(n: int, noun: str) -> str:
    return f"{n} {noun}{'' if n == 1 else 's'}"


def _fmt(values) -> str:
    return "(" + ", ".join(f"{v:.6g}" for v in np.asarray(values, dtype=float).ravel()) + ")"


def _first_nonfinite_row(a: np.ndarray) -> int:
    return int(np.argwhere(~np.isfinite(a.reshape(len(a), -1)).all(axis=1))[0, 0])


@dataclass
class FrameFacts:
    """What the statistics need from one checked frame."""

    closest: Optional[Tuple[float, int, int]] = None  # (distance Å, atom i, atom j)
    max_force: Optional[float] = None


def frame_problems(atoms: Atoms, where: str, *, min_distance: Optional[float] = DEFAULT_MIN_DISTANCE,
                   species: Optional[Sequence[int]] = None, needs: Sequence[str] = (),
                   allow_empty: bool = False, facts: Optional[FrameFacts] = None) -> List[str]:
    """Problems of one frame, each a one-line message (empty list: the frame is fine).

    Args:
        atoms: the frame, labels on its calculator (eV, eV/Å, eV/Å^3).
        where: names file and frame, e.g. ``"train.xyz, frame 7"``.
        min_distance: Å; None skips the distance check.
        species: atomic numbers the model knows; None: any element.
        needs: labels the loss uses (``"energy"``, ``"forces"``, ``"stress"``).
        allow_empty: accept a frame without atoms (readers do; training does not).
        facts: filled with the closest pair (within :data:`STATISTICS_RADIUS`) and the largest
            force component, for the statistics.
    """
    problems: List[str] = []
    n = len(atoms)
    if n == 0 and not allow_empty:
        problems.append(f"{where}: no atoms; remove the frame")
    pos = atoms.get_positions()
    positions_ok = bool(np.all(np.isfinite(pos)))
    if not positions_ok:
        i = _first_nonfinite_row(pos)
        problems.append(f"{where}, atom {i}: position is not finite {_fmt(pos[i])}; fix or "
                        f"remove the frame")
    cell = atoms.cell.array
    pbc = np.asarray(atoms.get_pbc(), bool)
    cell_ok = bool(np.all(np.isfinite(cell)))
    if not cell_ok:
        problems.append(f"{where}: cell is not finite {_fmt(cell)}; fix the Lattice/cell")
    elif pbc.any() and abs(np.linalg.det(cell)) < 1e-9:
        cell_ok = False
        problems.append(f"{where}: periodic (pbc={''.join('T' if p else 'F' for p in pbc)}) but "
                        f"the cell is singular {_fmt(cell)}; give every direction a finite cell "
                        f"vector, or set pbc False")
    z = atoms.get_atomic_numbers()
    elements_ok = True
    if n:
        bad = np.flatnonzero((z < 1) | (z > 118))
        if bad.size:
            elements_ok = False
            problems.append(f"{where}, atom {int(bad[0])}: atomic number {int(z[bad[0]])} is not "
                            f"an element (1..118)")
        elif species is not None:
            unknown = np.flatnonzero(~np.isin(z, np.asarray(list(species))))
            if unknown.size:
                i = int(unknown[0])
                known = " ".join(_sym(int(s)) for s in sorted(species))
                problems.append(f"{where}, atom {i}: element {_sym(int(z[i]))} is not one the "
                                f"model knows ({known}); remove the frame or use a model "
                                f"trained with {_sym(int(z[i]))}")
    problems += _label_problems(atoms, where, needs, pbc, facts)
    if (min_distance is not None or facts is not None) and (n > 1 or (n and pbc.any())) \
            and positions_ok and cell_ok and elements_ok:
        problems += _distance_problems(atoms, where, min_distance, facts)
    return problems


def _label_problems(atoms: Atoms, where: str, needs: Sequence[str], pbc: np.ndarray,
                    facts: Optional[FrameFacts]) -> List[str]:
    problems = []
    try:
        energy, forces, stress = labels_of(atoms)
    except (ValueError, TypeError) as e:  # e.g. a stress of an odd length
        return [f"{where}: unreadable labels ({e}); fix the energy/forces/stress entries"]
    n = len(atoms)
    if energy is not None and not math.isfinite(energy):
        problems.append(f"{where}: energy is not finite ({energy}); fix or remove the frame")
    if forces is not None:
        if forces.shape != (n, 3):
            problems.append(f"{where}: forces have shape {forces.shape}, expected ({n}, 3); the "
                            f"forces belong to another frame or the file is malformed")
        elif not np.all(np.isfinite(forces)):
            i = _first_nonfinite_row(forces)
            problems.append(f"{where}, atom {i}: force is not finite {_fmt(forces[i])}; fix or "
                            f"remove the frame")
        elif facts is not None and n:
            facts.max_force = float(np.abs(forces).max())
    if stress is not None:
        if stress.shape != (3, 3):
            problems.append(f"{where}: stress has shape {stress.shape}, expected (3, 3) or (6,)")
        elif not np.all(np.isfinite(stress)):
            problems.append(f"{where}: stress is not finite {_fmt(stress)}; fix or remove the "
                            f"frame")
        elif "stress" in needs and not pbc.all():
            problems.append(f"{where}: a stress label on a structure that is not periodic in "
                            f"three directions (pbc={''.join('T' if p else 'F' for p in pbc)}); "
                            f"remove the stress or fix pbc/Lattice")
    have = {"energy": energy is not None, "forces": forces is not None,
            "stress": stress is not None}
    if needs and not any(have[k] for k in needs):
        problems.append(f"{where}: no {' or '.join(needs)} label, so the loss cannot use the "
                        f"frame; add labels, name their keys (data.options energy_key/"
                        f"forces_key), or remove the frame")
    return problems


def _distance_problems(atoms: Atoms, where: str, min_distance: Optional[float],
                       facts: Optional[FrameFacts]) -> List[str]:
    radius = max(min_distance or 0.0, STATISTICS_RADIUS if facts is not None else 0.0)
    pos = atoms.get_positions()
    nl = neighbor_list(pos, radius, atoms.cell.array, atoms.get_pbc())
    i, j = nl.edge_index
    keep = i <= j  # each pair once (i == j: an atom and its own periodic image)
    i, j = i[keep], j[keep]
    if i.size == 0:
        return []
    d = np.linalg.norm(pos[j] - pos[i] + nl.shifts[keep], axis=1)
    k = int(np.argmin(d))
    a, b, dmin = int(i[k]), int(j[k]), float(d[k])
    if facts is not None:
        facts.closest = (dmin, a, b)
    if min_distance is None or dmin >= min_distance:
        return []
    z = atoms.get_atomic_numbers()
    close = int(np.count_nonzero(d < min_distance))
    pair = (f"atom {a} ({_sym(int(z[a]))}) and its periodic image" if a == b else
            f"atoms {a} ({_sym(int(z[a]))}) and {b} ({_sym(int(z[b]))})")
    more = f" (closest of {close} pairs)" if close > 1 else ""
    return [f"{where}: {pair} are {dmin:.3g} Å apart{more}, closer than the minimum "
            f"{min_distance:g} Å; remove the duplicate atom or fix the positions"]


def check_readable(atoms: Atoms, where: str) -> Atoms:
    """What every reader refuses: non-finite values, label shapes that do not fit, atomic
    numbers that are not elements (no distance or empty-frame check). Returns ``atoms``.

    Raises:
        DataFormatError: the first problem.
    """
    problems = frame_problems(atoms, where, min_distance=None, allow_empty=True)
    if problems:
        raise DataFormatError(problems[0])
    return atoms


# ------------------------------------------------------------------------------ the report --

@dataclass
class DataCheck:
    """Streamed check of many frames with their statistics (constant memory).

    Args:
        min_distance, species, needs: as :func:`frame_problems`.

    Use :meth:`add` per frame (or :meth:`filter` on a stream), then :meth:`lines` for the
    report and :meth:`raise_if_problems`.
    """

    min_distance: Optional[float] = DEFAULT_MIN_DISTANCE
    species: Optional[Sequence[int]] = None
    needs: Sequence[str] = ()
    frames: int = 0
    atoms: int = 0
    min_atoms: Optional[int] = None
    max_atoms: Optional[int] = None
    elements: Counter = field(default_factory=Counter)
    labels: Counter = field(default_factory=Counter)
    periodic: int = 0
    closest: Optional[Tuple[float, str, int, int]] = None
    max_force: Optional[Tuple[float, str]] = None
    energy_per_atom: Optional[Tuple[float, float]] = None
    problems: List[str] = field(default_factory=list)
    num_problems: int = 0
    bad_frames: int = 0
    unreadable: List[str] = field(default_factory=list)

    def add(self, atoms: Atoms, where: str) -> List[str]:
        """Check one frame and count it; returns its problems."""
        facts = FrameFacts()
        problems = frame_problems(atoms, where, min_distance=self.min_distance,
                                  species=self.species, needs=self.needs, facts=facts)
        self.frames += 1
        n = len(atoms)
        self.atoms += n
        self.min_atoms = n if self.min_atoms is None else min(self.min_atoms, n)
        self.max_atoms = n if self.max_atoms is None else max(self.max_atoms, n)
        if n:
            self.elements.update(int(v) for v in atoms.get_atomic_numbers())
        self.periodic += bool(np.any(atoms.get_pbc()))
        if problems:
            self.bad_frames += 1
            self.num_problems += len(problems)
            room = MAX_LISTED - len(self.problems)
            self.problems += problems[:max(room, 0)]
            return problems
        energy, forces, stress = labels_of(atoms)
        for key, value in zip(LABELS, (energy, forces, stress)):
            self.labels[key] += value is not None
        if facts.closest is not None and (self.closest is None or facts.closest[0] < self.closest[0]):
            self.closest = (facts.closest[0], where, facts.closest[1], facts.closest[2])
        if facts.max_force is not None and (self.max_force is None or facts.max_force > self.max_force[0]):
            self.max_force = (facts.max_force, where)
        if energy is not None and n:
            e = energy / n
            lo, hi = self.energy_per_atom or (e, e)
            self.energy_per_atom = (min(lo, e), max(hi, e))
        return problems

    def unreadable_frame(self, error: DataFormatError) -> None:
        """A frame that could not be read (e.g. an LMDB record failing its checksum); the
        reading goes on with the next frame."""
        self.frames += 1
        self.bad_frames += 1
        self.num_problems += 1
        if len(self.problems) < MAX_LISTED:
            self.problems.append(str(error))

    def stop(self, error: DataFormatError) -> None:
        """A file could not be read on (its reader's error counts as a problem)."""
        self.num_problems += 1
        self.unreadable.append(str(error))
        if len(self.problems) < MAX_LISTED:
            self.problems.append(str(error))

    def filter(self, frames: Iterable[Atoms], source: str,
               label: str = "frame") -> Iterator[Atoms]:
        """Check a stream; yield the frames without problems (to be written or used)."""
        for k, atoms in enumerate(frames):
            if not self.add(atoms, f"{source}, {label} {k}"):
                yield atoms

    @property
    def ok(self) -> bool:
        return self.num_problems == 0

    def lines(self, title: str = "data check") -> List[str]:
        """The report: statistics, then the problems (at most :data:`MAX_LISTED`)."""
        out = [f"{title}: {self.frames} frames, {self.atoms} atoms"
               + (f" ({self.min_atoms}..{self.max_atoms} per frame)" if self.frames else "")
               + (f", {self.periodic} periodic" if self.periodic else "")]
        if self.elements:
            out.append("  elements: " + ", ".join(f"{_sym(z)} {c}" for z, c in
                                                  sorted(self.elements.items())))
        good = self.frames - self.bad_frames
        out.append(f"  labels (of {good} frames without problems): "
                   + ", ".join(f"{k} {self.labels[k]}" for k in LABELS))
        if self.closest is not None:
            d, where, i, j = self.closest
            out.append(f"  shortest distance {d:.4g} Å ({where}, atoms {i}-{j}); minimum allowed "
                       f"{self.min_distance:g} Å" if self.min_distance is not None else
                       f"  shortest distance {d:.4g} Å ({where}, atoms {i}-{j})")
        if self.max_force is not None:
            out.append(f"  largest force component {self.max_force[0]:.4g} eV/Å ({self.max_force[1]})")
        if self.energy_per_atom is not None:
            lo, hi = self.energy_per_atom
            out.append(f"  energy per atom {lo:.6g} .. {hi:.6g} eV")
        if self.ok:
            out.append("  no problems")
        else:
            out.append(f"  {_count(self.num_problems, 'problem')} in "
                       f"{_count(self.bad_frames, 'frame')}"
                       + (f" (+ {len(self.unreadable)} unreadable files)" if self.unreadable else "")
                       + (f"; the first {MAX_LISTED}:" if self.num_problems > MAX_LISTED else ":"))
            out += [f"  {p}" for p in self.problems]
        return out

    def summary(self) -> str:
        """One line: the verdict and the shortest distance."""
        verdict = "no problems" if self.ok else f"{_count(self.num_problems, 'problem')}"
        if self.closest is None:
            return f"data check: {verdict}"
        return (f"data check: {verdict}; shortest distance {self.closest[0]:.4g} Å "
                f"({self.closest[1]}), minimum {self.min_distance:g} Å")

    def raise_if_problems(self, hint: str) -> None:
        """Raise :class:`DataCheckError` (first problem, how many more, ``hint``) if any."""
        if self.ok:
            return
        more = self.num_problems - 1
        notes = ([f"and {more} more problem{'s' if more > 1 else ''}"] if more else []) + \
            ([hint] if hint else [])
        raise DataCheckError(self.problems[0] + (f" ({'; '.join(notes)})" if notes else ""))
