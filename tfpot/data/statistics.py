"""Dataset statistics that a model needs before training: per-element reference energies E0,
the spread of the per-atom energy that remains, the force scale, the neighbour count.

All sums are float64 and streaming (:class:`StatisticsAccumulator` keeps O(118^2) numbers and
its first few hundred compositions, not the structures), so the LMDB writer computes them while
converting data larger than memory.

Reference energies solve the least-squares problem

    min_E0  sum_k ( E_k - sum_z n_kz E0_z )^2

through its normal equations. When the compositions do not determine E0 (MD17: one molecule,
every frame has the same composition; or two elements that always appear in a fixed ratio) the
solution is not unique: by default a warning says so and the solution closest (2-norm) to a
uniform per-atom energy (the mean per-atom energy) is returned; ``rank_deficient="raise"``
raises instead. Elements requested through ``elements=`` but absent from the data get E0 = 0
with a warning (never NaN).
"""

from __future__ import annotations

import warnings
from dataclasses import asdict, dataclass, field
from typing import Dict, Iterable, List, Optional, Sequence

import numpy as np
from ase import Atoms
from ase.data import chemical_symbols

from tfpot.data._labels import labels_of
from tfpot.graph import neighbor_list

_NZ = 119  # atomic numbers 0..118


@dataclass
class DatasetStatistics:
    """Summary numbers of a labelled dataset.

    Units: energies eV, ``energy_per_atom_*`` eV/atom, ``force_rms`` eV/Å, ``cutoff`` Å.

    Attributes:
        num_structures, num_atoms: counts over the whole set.
        elements: atomic numbers present, sorted.
        reference_energies: E0 per element (``{Z: eV}``); None without energies.
        e0_rank: rank of the composition matrix (== len(elements) when E0 is unique).
        energy_per_atom_mean, energy_per_atom_std: of (E - sum_i E0[z_i]) / N over structures.
        force_rms: sqrt(mean of F_ic^2) over all force components; None without forces.
        avg_num_neighbors: mean number of neighbours within ``cutoff`` per atom; None without.
    """

    num_structures: int
    num_atoms: int
    elements: List[int]
    reference_energies: Optional[Dict[int, float]] = None
    e0_rank: Optional[int] = None
    energy_per_atom_mean: Optional[float] = None
    energy_per_atom_std: Optional[float] = None
    force_rms: Optional[float] = None
    avg_num_neighbors: Optional[float] = None
    cutoff: Optional[float] = None
    num_with_energy: int = 0
    num_with_forces: int = 0

    def to_dict(self) -> dict:
        """JSON-ready dict (element keys as strings)."""
        d = asdict(self)
        if d["reference_energies"] is not None:
            d["reference_energies"] = {str(z): e for z, e in d["reference_energies"].items()}
        return d

    @classmethod
    def from_dict(cls, d: dict) -> "DatasetStatistics":
        d = dict(d)
        if d.get("reference_energies") is not None:
            d["reference_energies"] = {int(z): float(e) for z, e in d["reference_energies"].items()}
        return cls(**d)


@dataclass
class StatisticsAccumulator:
    """Streaming sums for :class:`DatasetStatistics`; ``add`` one structure at a time.

    Precision: before summing, each energy is reduced by a first estimate of its reference
    energies (a least-squares fit on the first ``warmup`` labelled structures), so the float64
    sums hold residuals of ~0.1 eV, not totals of -10^4 eV, and the per-atom spread keeps its
    digits. The final E0 and spread are exact algebra on those sums.
    """

    cutoff: Optional[float] = None
    warmup: int = 512
    num_structures: int = 0
    num_atoms: int = 0
    num_with_energy: int = 0
    num_with_forces: int = 0
    _present: np.ndarray = field(default_factory=lambda: np.zeros(_NZ, bool))
    _buffer: List = field(default_factory=list)  # (a, E) until the shift is fixed
    _s: Optional[np.ndarray] = None  # (119,) per-element energy shift, eV
    _AtA: np.ndarray = field(default_factory=lambda: np.zeros((_NZ, _NZ)))
    _Atb: np.ndarray = field(default_factory=lambda: np.zeros(_NZ))
    _a_over_n: np.ndarray = field(default_factory=lambda: np.zeros(_NZ))  # sum a_k/N_k
    _aat_over_n2: np.ndarray = field(default_factory=lambda: np.zeros((_NZ, _NZ)))
    _ab_over_n2: np.ndarray = field(default_factory=lambda: np.zeros(_NZ))
    _b_over_n: float = 0.0
    _b2_over_n2: float = 0.0
    _f2: float = 0.0
    _f_count: int = 0
    _edges: int = 0
    _edge_atoms: int = 0

    def add(self, numbers: np.ndarray, energy: Optional[float] = None,
            forces: Optional[np.ndarray] = None, num_edges: Optional[int] = None) -> None:
        """Add one structure.

        Args:
            numbers: (N,) atomic numbers.
            energy: total energy, eV (None: unlabelled).
            forces: (N, 3) eV/Å (None: unlabelled).
            num_edges: directed neighbour pairs within ``cutoff`` (None: not counted).
        """
        numbers = np.asarray(numbers, dtype=np.int64)
        n = len(numbers)
        self.num_structures += 1
        self.num_atoms += n
        a = np.bincount(numbers, minlength=_NZ).astype(np.float64)
        self._present |= a > 0
        if energy is not None and n > 0:
            self.num_with_energy += 1
            if self._s is None:
                self._buffer.append((a, float(energy)))
                if len(self._buffer) >= self.warmup:
                    self._fix_shift()
            else:
                self._accumulate(a, float(energy))
        if forces is not None:
            f = np.asarray(forces, dtype=np.float64)
            self.num_with_forces += 1
            self._f2 += float(np.sum(f * f))
            self._f_count += f.size
        if num_edges is not None:
            self._edges += int(num_edges)
            self._edge_atoms += n

    def _fix_shift(self) -> None:
        A = np.stack([a for a, _ in self._buffer])
        E = np.array([e for _, e in self._buffer])
        N = A.sum(axis=1)
        c0 = float(np.mean(E / N))
        cols = np.flatnonzero(A.sum(axis=0) > 0)
        y, *_ = np.linalg.lstsq(A[:, cols], E - N * c0, rcond=None)
        self._s = np.full(_NZ, c0)
        self._s[cols] += y
        buffer, self._buffer = self._buffer, []
        for a, e in buffer:
            self._accumulate(a, e)

    def _accumulate(self, a: np.ndarray, energy: float) -> None:
        n = a.sum()
        b = energy - a @ self._s
        self._AtA += np.outer(a, a)
        self._Atb += a * b
        self._a_over_n += a / n
        self._aat_over_n2 += np.outer(a, a) / n ** 2
        self._ab_over_n2 += a * b / n ** 2
        self._b_over_n += b / n
        self._b2_over_n2 += (b / n) ** 2

    def add_atoms(self, atoms: Atoms, num_edges: Optional[int] = None) -> None:
        """Add one labelled Atoms (labels read from its calculator)."""
        energy, forces, _ = labels_of(atoms)
        self.add(atoms.get_atomic_numbers(), energy, forces, num_edges)

    def result(self, elements: Optional[Sequence[int]] = None,
               rank_deficient: str = "warn") -> DatasetStatistics:
        """The statistics so far.

        Args:
            elements: atomic numbers to give an E0 even if absent (they get 0.0, with a warning).
            rank_deficient: ``"warn"`` (minimum-norm solution, see module doc) or ``"raise"``.
        """
        if rank_deficient not in ("warn", "raise"):
            raise ValueError(f"rank_deficient must be 'warn' or 'raise' (got {rank_deficient!r})")
        present = [int(z) for z in np.flatnonzero(self._present)]
        stats = DatasetStatistics(
            num_structures=self.num_structures, num_atoms=self.num_atoms, elements=present,
            cutoff=self.cutoff, num_with_energy=self.num_with_energy,
            num_with_forces=self.num_with_forces)
        if self._f_count:
            stats.force_rms = float(np.sqrt(self._f2 / self._f_count))
        if self._edge_atoms:
            stats.avg_num_neighbors = self._edges / self._edge_atoms
        if self.num_with_energy:
            if self._s is None:
                self._fix_shift()
            self._fit(stats, elements, rank_deficient)
        return stats

    def _fit(self, stats: DatasetStatistics, elements, rank_deficient: str) -> None:
        cols = np.flatnonzero(np.diag(self._AtA) > 0)
        k = len(cols)
        m = self.num_with_energy
        s = self._s[cols]
        a_n = self._a_over_n[cols]
        c = (self._b_over_n + self._s @ self._a_over_n) / m  # mean per-atom energy, eV
        # Solve for y = E0 - c (minimum norm: closest to a uniform per-atom energy). With
        # E_k = b_k + a_k.s:  A^T (E - N c) = A^T b + A^T A (s - c).
        AtA = self._AtA[np.ix_(cols, cols)]
        d = s - c
        rhs = self._Atb[cols] + AtA @ d
        w, V = np.linalg.eigh(AtA)
        tol = w.max() * k * np.finfo(np.float64).eps * 10
        keep = w > tol
        rank = int(keep.sum())
        y = V[:, keep] @ ((V[:, keep].T @ rhs) / w[keep])
        if rank < k:
            names = ", ".join(chemical_symbols[z] for z in cols)
            msg = (f"reference energies are not unique: the compositions of the {m} labelled "
                   f"structures span rank {rank} of {k} elements ({names})")
            if rank == 1:
                msg += ", as when every structure has the same composition"
            if rank_deficient == "raise":
                raise ValueError(msg + "; give reference energies explicitly")
            warnings.warn(msg + "; using the solution closest to a uniform per-atom energy "
                          f"({c:.6f} eV/atom)", stacklevel=3)
        delta = y - d  # E0 - s, small: the residual sums keep their precision
        # Per-atom residual r_k / N_k = b_k/N_k - (a_k/N_k) . delta, from the stored sums.
        mean = (self._b_over_n - a_n @ delta) / m
        sq = (self._b2_over_n2 - 2 * delta @ self._ab_over_n2[cols]
              + delta @ self._aat_over_n2[np.ix_(cols, cols)] @ delta) / m
        var = max(sq - mean ** 2, 0.0)
        e0 = {int(z): float(c + v) for z, v in zip(cols, y)}
        for z in elements or ():
            if int(z) not in e0:
                warnings.warn(f"element {chemical_symbols[int(z)]} (Z={int(z)}) is absent from the "
                              f"labelled data: its reference energy is set to 0.0 eV", stacklevel=3)
                e0[int(z)] = 0.0
        stats.reference_energies = dict(sorted(e0.items()))
        stats.e0_rank = rank
        stats.energy_per_atom_mean = float(mean)
        stats.energy_per_atom_std = float(np.sqrt(var))


def compute_statistics(structures: Iterable[Atoms], cutoff: Optional[float] = None,
                       elements: Optional[Sequence[int]] = None,
                       rank_deficient: str = "warn") -> DatasetStatistics:
    """All statistics of labelled structures in one pass.

    Args:
        structures: Atoms with labels on their calculators (see :func:`tfpot.data.read_structures`).
        cutoff: Å; when given, ``avg_num_neighbors`` is counted with :func:`tfpot.graph.neighbor_list`.
        elements: atomic numbers that need an E0 even if absent.
        rank_deficient: ``"warn"`` or ``"raise"`` (see module doc).
    """
    acc = StatisticsAccumulator(cutoff=cutoff)
    for atoms in structures:
        n_edges = None
        if cutoff is not None:
            nl = neighbor_list(atoms.get_positions(), cutoff, atoms.get_cell().array, atoms.get_pbc())
            n_edges = nl.edge_index.shape[1]
        acc.add_atoms(atoms, n_edges)
    return acc.result(elements, rank_deficient)


def fit_reference_energies(structures: Iterable[Atoms], elements: Optional[Sequence[int]] = None,
                           rank_deficient: str = "warn") -> Dict[int, float]:
    """Per-element reference energies E0 (``{Z: eV}``, float64 least squares; see module doc)."""
    stats = compute_statistics(structures, elements=elements, rank_deficient=rank_deficient)
    if stats.reference_energies is None:
        raise ValueError("fit_reference_energies needs structures with energies (none had one)")
    return stats.reference_energies


def average_num_neighbors(structures: Iterable[Atoms], cutoff: float) -> float:
    """Mean number of neighbours within ``cutoff`` (Å) per atom, periodic images included."""
    stats = compute_statistics(structures, cutoff=cutoff)
    if stats.avg_num_neighbors is None:
        raise ValueError("average_num_neighbors needs at least one atom")
    return stats.avg_num_neighbors


def force_rms(structures: Iterable[Atoms]) -> float:
    """sqrt(mean F_ic^2) over all force components, eV/Å."""
    stats = compute_statistics(structures)
    if stats.force_rms is None:
        raise ValueError("force_rms needs structures with forces (none had any)")
    return stats.force_rms
