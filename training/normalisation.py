"""Normalisation of a model to its training data, before training: per-element reference
energies E0, the scale of the network output and a per-atom shift (the readout's buffers), and the
average neighbour count (message normalisation). The data-set statistics they come from are
:mod:`tfpot.data.statistics`.

    E_i = scale * NN_i + shift + E0[z_i]

E0 comes from a float64 least-squares fit of the training energies on the compositions
(:class:`tfpot.data.StatisticsAccumulator`); scale is the force RMS (or the spread of the per-atom
energy left after E0 when there are no forces); shift the mean of that per-atom energy.
"""

from __future__ import annotations

import json
import math
import warnings
from typing import Any, Dict, List, Mapping, Sequence, Union

import numpy as np
from ase.data import atomic_numbers as symbol_to_z
from ase.data import chemical_symbols

from tfpot.data import StatisticsAccumulator
from tfpot.model import EnergyModel
from tfpot.training.config import ConfigError
from tfpot.training.data import StructureSet


def training_statistics(train: StructureSet, species: Sequence[int], e0: Union[str, Mapping],
                        energy_scale: Union[str, float] = "auto",
                        energy_shift: Union[str, float] = "auto",
                        neighbour_samples: int = 1000, seed: int = 0) -> Dict[str, Any]:
    """E0, scale, shift and the average neighbour count from the training set.

    Args:
        train: training structures.
        species: the model's atomic numbers (every one gets an E0).
        e0: ``"least_squares"`` (float64 least squares of E on composition; for a single
            composition, as MD17, the solution closest to a uniform per-atom energy), ``"zero"``,
            or ``{symbol or Z: eV}``.
        energy_scale: ``"auto"`` (force RMS, or per-atom energy std without forces) or eV.
        energy_shift: ``"auto"`` (mean per-atom energy left after E0) or eV.
        neighbour_samples: structures used to count neighbours.

    Returns:
        dict with ``e0`` ({Z: eV}), ``energy_scale``, ``energy_shift``, ``avg_num_neighbors``,
        ``force_rms``, ``energy_per_atom_std``, ``notes`` (messages for the log).
    """

    notes: List[str] = []
    acc = StatisticsAccumulator()
    for numbers, energy, forces, _ in train.iter_labels():
        acc.add(numbers, energy, forces)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        stats = acc.result(elements=list(species))
    notes += [f"E0: {w.message}" for w in caught] if e0 == "least_squares" else []

    if e0 == "least_squares":
        if stats.reference_energies is None:
            raise ConfigError("model.e0 = least_squares needs training structures with "
                              "energies; use e0: zero or give E0 values")
        ref = {int(z): float(v) for z, v in stats.reference_energies.items()}
    elif e0 == "zero":
        ref = {int(z): 0.0 for z in species}
    elif isinstance(e0, Mapping):
        ref = {}
        for k, v in e0.items():
            z = int(k) if str(k).isdigit() else symbol_to_z[str(k)]
            ref[z] = float(v)
        missing = [chemical_symbols[z] for z in species if z not in ref]
        if missing:
            raise ConfigError(f"model.e0 gives no reference energy for {', '.join(missing)}; "
                              f"add them to model.e0")
    else:
        raise ConfigError(f"model.e0 must be least_squares, zero or a mapping (got {e0!r})")

    residual = []
    for numbers, energy, _, _ in train.iter_labels():
        if energy is not None and len(numbers):
            residual.append((energy - sum(ref.get(int(z), 0.0) for z in numbers)) / len(numbers))
    residual = np.asarray(residual, dtype=np.float64)
    mean = float(residual.mean()) if residual.size else 0.0
    std = float(residual.std()) if residual.size else 0.0

    if energy_scale == "auto":
        scale = stats.force_rms if stats.force_rms else std
        if not scale or not math.isfinite(scale) or scale < 1e-8:
            scale = 1.0
            notes.append("energy scale: no force or energy spread in the data; using 1 eV")
    else:
        scale = float(energy_scale)
    shift = mean if energy_shift == "auto" else float(energy_shift)

    n = len(train)
    pick = np.random.default_rng(seed).permutation(n)[:neighbour_samples]
    edges = atoms = 0
    for i in pick:
        g = train[int(i)]
        edges += int(g.edge_index.shape[1])
        atoms += int(g.num_nodes)
    avg_nn = edges / atoms if atoms else 1.0
    return {"e0": ref, "energy_scale": float(scale), "energy_shift": float(shift),
            "avg_num_neighbors": max(float(avg_nn), 1.0), "force_rms": stats.force_rms,
            "energy_per_atom_std": std, "notes": notes}


def apply_statistics(model: EnergyModel, stats: Mapping[str, Any]) -> None:
    """Write E0 (per model species), scale and shift into the model's float64 buffers."""
    model.readout.set_statistics([stats["e0"].get(int(z), 0.0) for z in model.species],
                                 stats["energy_scale"], stats["energy_shift"])


#: units of the entries of statistics.json
STATISTICS_UNITS = {"e0": "eV (per atom of the element)", "energy_scale": "eV",
                    "energy_shift": "eV/atom", "avg_num_neighbors": "neighbours per atom",
                    "force_rms": "eV/Å", "energy_per_atom_std": "eV/atom"}


def statistics_json(stats: Mapping[str, Any]) -> str:
    """``statistics.json``: the statistics (E0 keyed by atomic number as text) and their units."""
    plain = {k: ({str(z): e for z, e in v.items()} if k == "e0" else v) for k, v in stats.items()}
    return json.dumps({**plain, "units": STATISTICS_UNITS}, indent=2)


def describe_statistics(stats: Mapping[str, Any]) -> str:
    """One log line: E0 per element, scale, shift and the average neighbour count."""
    e0 = ", ".join(f"{chemical_symbols[z]}: {v:.4f}" for z, v in sorted(stats["e0"].items()))
    return (f"statistics: E0 {{{e0}}}, scale {stats['energy_scale']:.4g} eV, shift "
            f"{stats['energy_shift']:.4g} eV/atom, avg neighbours {stats['avg_num_neighbors']:.2f}")
