"""Reusable checks of the model contract (as e3nn's ``assert_equivariant``).

Each check takes a model (or an ASE calculator) and an ASE structure, raises ``AssertionError``
with the largest difference next to its tolerance, and returns the measured error so that callers
can report it. Errors are computed in float64. Tolerances are keyed by the model's dtype in
:data:`TOLERANCES`. :class:`tfpot.testing.contract.ModelContract` runs them all on a model variant.
"""

from __future__ import annotations

from typing import Dict, Optional, Sequence, Union

import numpy as np
import torch
from ase import Atoms
from ase.calculators.calculator import Calculator
from ase.stress import voigt_6_to_full_3x3_stress

from tfpot.inference import model_dtype, predict

ModelOrCalculator = Union[torch.nn.Module, Calculator]

# Force errors are relative to max(max|F|, FORCE_FLOOR). An untrained model has |F| ~ 1e-3..5e-2
# eV/Å while the float32 roundoff of its gradients is set by its O(1) eV per-atom energies;
# real data has |F| ~ 1 eV/Å (the bundled GFN2-xTB set: RMS 0.98 eV/Å), ten times the floor.
FORCE_FLOOR = 0.1  # eV/Å

# One table of tolerances, keyed by dtype (relative errors unless stated). "reproduction": the
# same numbers computed another way (TorchScript, a batch, a saved and loaded file, two copies).
TOLERANCES: Dict[torch.dtype, Dict[str, float]] = {
    torch.float64: {"invariance": 1e-10, "finite_difference": 1e-6, "determinism": 0.0,
                    "reproduction": 1e-12},
    torch.float32: {"invariance": 1e-5, "finite_difference": 1e-2, "determinism": 0.0,
                    "reproduction": 1e-5},
}


def _model_of(model: ModelOrCalculator) -> torch.nn.Module:
    return model.model if isinstance(model, Calculator) else model


def tolerance(model: ModelOrCalculator, kind: str) -> float:
    return TOLERANCES[model_dtype(_model_of(model))][kind]


def evaluate(model: ModelOrCalculator, atoms: Atoms, stress: Optional[bool] = None) -> Dict[str, np.ndarray]:
    """energy, energies, forces (and stress 3x3 for 3D cells) of a model, or through an ASE
    calculator (the same keys and units as :func:`tfpot.predict`)."""
    if not isinstance(model, Calculator):
        return predict(model, atoms, stress=stress)
    if stress is None:
        stress = bool(np.all(atoms.get_pbc()))
    atoms = atoms.copy()
    atoms.calc = model
    out = {"energy": atoms.get_potential_energy(), "energies": atoms.get_potential_energies(),
           "forces": atoms.get_forces()}
    if stress:
        out["stress"] = voigt_6_to_full_3x3_stress(atoms.get_stress())
    return out


def random_orthogonal(rng: np.random.Generator, proper: bool = True,
                      axis: Optional[int] = None) -> np.ndarray:
    """A random rotation (det +1) or rotoreflection (det -1), 3x3 float64.

    With ``axis`` (0, 1 or 2): a rotation about that Cartesian axis, or a reflection in a plane
    that contains it (the symmetries of a slab that is open along ``axis``).
    """
    if axis is not None:
        a, b = [k for k in range(3) if k != axis]
        angle = rng.uniform(0.0, 2.0 * np.pi)
        q = np.eye(3)
        q[a, a] = q[b, b] = np.cos(angle)
        q[a, b], q[b, a] = -np.sin(angle), np.sin(angle)
        if not proper:
            q[:, a] = -q[:, a]
        return q
    q, r = np.linalg.qr(rng.normal(size=(3, 3)))
    q = q * np.sign(np.diag(r))
    if np.linalg.det(q) < 0:
        q[:, 0] = -q[:, 0]
    if not proper:
        q = q @ np.diag([1.0, 1.0, -1.0])
    return q


def transform_atoms(atoms: Atoms, Q: np.ndarray, translation: np.ndarray,
                    permutation: Optional[np.ndarray] = None) -> Atoms:
    """x -> Q x + t for positions and cell rows; atoms reordered by ``permutation``."""
    out = atoms.copy()
    out.calc = None
    out.set_positions(atoms.get_positions() @ Q.T + translation)
    if np.any(atoms.get_pbc()) or atoms.cell.rank == 3:
        out.set_cell(np.asarray(atoms.get_cell()) @ Q.T, scale_atoms=False)
    if permutation is not None:
        out = out[permutation]
    return out


def _rel(diff: float, ref: float) -> float:
    return diff / max(ref, 1e-12)


def assert_o3_invariant(model: ModelOrCalculator, atoms: Atoms, n_trials: int = 4, seed: int = 0,
                        tol: Optional[float] = None, include_reflections: bool = True,
                        axis: Optional[int] = None) -> float:
    """E invariant and F (and per-atom E, stress) equivariant under random rotations,
    reflections, translations and permutations. Returns the largest relative error seen.

    ``axis``: only the operations that keep that Cartesian axis (for a slab open along it, see
    :func:`random_orthogonal`).
    """
    tol = tolerance(model, "invariance") if tol is None else tol
    rng = np.random.default_rng(seed)
    ref = evaluate(model, atoms)
    scale_e = max(abs(ref["energy"]), float(np.abs(ref["energies"]).sum()), 1e-3)
    scale_f = max(float(np.abs(ref["forces"]).max()), FORCE_FLOOR)
    worst = 0.0
    for trial in range(n_trials):
        proper = (trial % 2 == 0) or not include_reflections
        Q = random_orthogonal(rng, proper=proper, axis=axis)
        t = rng.normal(size=3) * 3.0
        perm = rng.permutation(len(atoms))
        moved = transform_atoms(atoms, Q, t, perm)
        out = evaluate(model, moved)
        err_e = _rel(abs(out["energy"] - ref["energy"]), scale_e)
        err_ea = _rel(float(np.abs(out["energies"] - ref["energies"][perm]).max()), scale_e)
        err_f = _rel(float(np.abs(out["forces"] - ref["forces"][perm] @ Q.T).max()), scale_f)
        errs = {"energy": err_e, "atomic energies": err_ea, "forces": err_f}
        if "stress" in ref:
            s_ref = Q @ ref["stress"] @ Q.T
            errs["stress"] = _rel(float(np.abs(out["stress"] - s_ref).max()),
                                  max(float(np.abs(ref["stress"]).max()), 1e-6))
        for name, err in errs.items():
            worst = max(worst, err)
            if not err <= tol:
                kind = "rotation" if proper else "rotoreflection"
                raise AssertionError(f"{name} not O(3)-invariant/equivariant under a {kind} "
                                     f"(trial {trial}): relative error {err:.3e} > tol {tol:.1e}")
    return worst


def assert_forces_are_gradients(model: ModelOrCalculator, atoms: Atoms, h: float = 1e-4,
                                atom_indices: Optional[Sequence[int]] = None,
                                tol: Optional[float] = None) -> float:
    """Autograd forces equal central finite differences of E (step ``h`` Å).
    Returns max |F - F_fd| / max(|F|)."""
    tol = tolerance(model, "finite_difference") if tol is None else tol
    ref = evaluate(model, atoms, stress=False)
    idx = range(len(atoms)) if atom_indices is None else atom_indices
    worst_abs = 0.0
    for i in idx:
        for k in range(3):
            ep, em = atoms.copy(), atoms.copy()
            p = atoms.get_positions()
            p[i, k] += h
            ep.set_positions(p)
            p[i, k] -= 2 * h
            em.set_positions(p)
            fd = -(evaluate(model, ep, stress=False)["energy"] - evaluate(model, em, stress=False)["energy"]) / (2 * h)
            worst_abs = max(worst_abs, abs(fd - ref["forces"][i, k]))
    scale = max(float(np.abs(ref["forces"]).max()), FORCE_FLOOR)
    err = worst_abs / scale
    if not err <= tol:
        raise AssertionError(f"forces differ from finite differences of E: relative error "
                             f"{err:.3e} > tol {tol:.1e} (max abs {worst_abs:.3e} eV/Å)")
    return err


def assert_stress_is_strain_derivative(model: ModelOrCalculator, atoms: Atoms, h: float = 1e-5,
                                       tol: Optional[float] = None) -> float:
    """Stress equals (1/V) dE/d(strain) by central finite differences of symmetric strains."""
    tol = tolerance(model, "finite_difference") if tol is None else tol
    ref = evaluate(model, atoms, stress=True)["stress"]
    volume = atoms.get_volume()
    fd = np.zeros((3, 3))
    for a in range(3):
        for b in range(3):
            energies = []
            for sign in (1.0, -1.0):
                eps = np.zeros((3, 3))
                eps[a, b] += 0.5 * sign * h
                eps[b, a] += 0.5 * sign * h
                strained = atoms.copy()
                strained.set_cell(np.asarray(atoms.get_cell()) @ (np.eye(3) + eps), scale_atoms=True)
                energies.append(evaluate(model, strained, stress=False)["energy"])
            fd[a, b] = (energies[0] - energies[1]) / (2 * h) / volume
    scale = max(float(np.abs(ref).max()), 1e-6)
    err = float(np.abs(fd - ref).max()) / scale
    if not err <= tol:
        raise AssertionError(f"stress differs from the strain derivative: relative error {err:.3e} "
                             f"> tol {tol:.1e}\nautograd:\n{ref}\nfinite differences:\n{fd}")
    return err


def assert_deterministic_at_symmetry(model: ModelOrCalculator, atoms: Atoms, n_calls: int = 3,
                                     n_rotations: int = 3, seed: int = 0,
                                     tol_rotation: Optional[float] = None,
                                     zero_force_atoms: Optional[Sequence[int]] = None,
                                     force_tol: float = 1e-8) -> None:
    """Bit-for-bit identical results across calls; invariant across rotations; zero force on
    ``zero_force_atoms`` (absolute ``force_tol``, eV/Å)."""
    tol_rotation = tolerance(model, "invariance") if tol_rotation is None else tol_rotation
    first = evaluate(model, atoms)
    for _ in range(n_calls - 1):
        again = evaluate(model, atoms)
        if again["energy"] != first["energy"] or not np.array_equal(again["forces"], first["forces"]):
            df = float(np.abs(again["forces"] - first["forces"]).max())
            raise AssertionError("energy/forces differ between identical calls at a symmetric "
                                 f"structure: {first['energy']!r} vs {again['energy']!r} eV, "
                                 f"max |dF| {df:.3e} eV/Å (tolerance: 0, bit for bit)")
    rng = np.random.default_rng(seed)
    for trial in range(n_rotations):
        Q = random_orthogonal(rng, proper=trial % 2 == 0)
        out = evaluate(model, transform_atoms(atoms, Q, rng.normal(size=3)))
        err = abs(out["energy"] - first["energy"]) / max(abs(first["energy"]), 1e-3)
        if not err <= tol_rotation:
            raise AssertionError(f"energy at a symmetric structure changes under rotation: "
                                 f"relative {err:.3e} > {tol_rotation:.1e}")
    if zero_force_atoms is not None and len(zero_force_atoms) > 0:
        f = np.abs(first["forces"][list(zero_force_atoms)]).max()
        if not f <= force_tol:
            raise AssertionError(f"symmetry demands zero force, got |F| = {f:.3e} eV/Å > {force_tol:.1e}")


def assert_smooth_scan(model: ModelOrCalculator, atoms: Atoms, atom_index: int, direction,
                       length: float = 1.0, n_steps: int = 200, jump_factor: float = 10.0,
                       max_force: float = 1e3) -> Dict[str, float]:
    """Move one atom along a line; E must have no jump (a consecutive difference far above the
    others: above ``jump_factor`` times the 99th percentile of differences, plus float noise) and
    |F| must stay below ``max_force`` eV/Å; the force along the path must match dE/ds."""
    direction = np.asarray(direction, dtype=np.float64)
    direction = direction / np.linalg.norm(direction)
    energies, along = [], []
    for s in np.linspace(0.0, length, n_steps + 1):
        moved = atoms.copy()
        p = moved.get_positions()
        p[atom_index] += s * direction
        moved.set_positions(p)
        out = evaluate(model, moved, stress=False)
        if not np.all(np.isfinite(out["forces"])) or not np.isfinite(out["energy"]):
            raise AssertionError(f"non-finite energy/forces at scan step s={s:.4f} Å")
        fmax = float(np.abs(out["forces"]).max())
        if not fmax <= max_force:
            raise AssertionError(f"|F| = {fmax:.3e} eV/Å > {max_force} at scan step s={s:.4f} Å")
        energies.append(out["energy"])
        along.append(-out["forces"][atom_index] @ direction)
    energies = np.array(energies)
    along = np.array(along)
    d = np.abs(np.diff(energies))
    ds = length / n_steps
    # dE/ds from the forces (trapezoid) predicts each step; a jump is a step that does not match.
    predicted = np.abs(0.5 * (along[1:] + along[:-1]) * ds)
    mismatch = np.abs(np.diff(energies) - 0.5 * (along[1:] + along[:-1]) * ds)
    noise = 1e-9 * max(1.0, float(np.abs(energies).max())) if model_dtype(_model_of(model)) == torch.float64 \
        else 1e-4 * max(1.0, float(np.abs(energies).max()))
    limit = jump_factor * (np.percentile(d, 99) + noise)
    if not d.max() <= limit:
        k = int(d.argmax())
        raise AssertionError(f"energy jumps by {d.max():.3e} eV at scan step {k} (limit {limit:.3e})")
    worst_mismatch = float(mismatch.max())
    scale = float(predicted.max()) + noise
    if not worst_mismatch <= 0.1 * scale + noise:
        k = int(mismatch.argmax())
        raise AssertionError(f"energy step {k} ({np.diff(energies)[k]:.3e} eV) does not match the "
                             f"force along the path ({0.5 * (along[k] + along[k + 1]) * ds:.3e} eV)")
    return {"max_step": float(d.max()), "max_force": float(np.abs(along).max()),
            "max_mismatch": worst_mismatch}


def assert_extensive(model: ModelOrCalculator, atoms: Atoms, separation: Optional[float] = None,
                     tol: Optional[float] = None) -> float:
    """Two copies of a molecule far apart (``separation``, default 3 cutoffs + 5 Å, along x) have
    twice its energy and its per-atom energies and forces: the energy is a sum of local terms.
    Returns the relative energy error."""
    tol = tolerance(model, "reproduction") if tol is None else tol
    if np.any(atoms.get_pbc()):
        raise ValueError("assert_extensive needs a molecule (no periodic axis)")
    if separation is None:
        separation = 3.0 * float(_model_of(model).cutoff) + 5.0
    far = atoms.copy()
    far.positions += np.array([separation, 0.0, 0.0])
    one = evaluate(model, atoms)
    two = evaluate(model, atoms + far)
    n = len(atoms)
    err = abs(two["energy"] - 2.0 * one["energy"]) / max(abs(two["energy"]), 1e-3)
    err_ea = float(np.abs(two["energies"] - np.concatenate([one["energies"]] * 2)).max()) / \
        max(abs(one["energy"]), 1e-3)
    err_f = float(np.abs(two["forces"] - np.concatenate([one["forces"]] * 2)).max()) / \
        max(float(np.abs(one["forces"]).max()), FORCE_FLOOR)
    worst = max(err, err_ea, err_f)
    if not worst <= tol:
        raise AssertionError(f"two copies {separation:.1f} Å apart are not twice one copy ({n} "
                             f"atoms): relative errors energy {err:.3e}, per-atom energies "
                             f"{err_ea:.3e}, forces {err_f:.3e} > tol {tol:.1e}")
    return worst


def assert_bounded_near_symmetry(model: ModelOrCalculator, atoms: Atoms, atom_index: int = 0,
                                 displacements: Sequence[float] = (1e-6, 1e-5, 1e-4, 1e-3, 1e-2),
                                 max_force: float = 10.0, lipschitz: float = 50.0,
                                 seed: int = 0) -> float:
    """Displace one atom of a symmetric structure by each of ``displacements`` (Å, a random
    direction): forces stay finite and below ``max_force`` eV/Å, and converge to the symmetric
    forces, ``|F(delta) - F(0)| <= lipschitz * delta + 1e-9`` (eV/Å): no 1/delta blow-up where a
    frame degenerates. Returns the largest |F| seen."""
    base = evaluate(model, atoms)["forces"]
    rng = np.random.default_rng(seed)
    d = rng.normal(size=3)
    d /= np.linalg.norm(d)
    worst = 0.0
    for delta in displacements:
        moved = atoms.copy()
        moved.positions[atom_index] += delta * d
        f = evaluate(model, moved)["forces"]
        if not np.all(np.isfinite(f)):
            raise AssertionError(f"non-finite forces {delta:.0e} Å from the symmetric structure")
        fmax = float(np.abs(f).max())
        change = float(np.abs(f - base).max())
        worst = max(worst, fmax)
        if not fmax <= max_force:
            raise AssertionError(f"|F| = {fmax:.3e} eV/Å > {max_force} eV/Å at {delta:.0e} Å "
                                 f"from the symmetric structure")
        if not change <= lipschitz * delta + 1e-9:
            raise AssertionError(f"forces change by {change:.3e} eV/Å for a {delta:.0e} Å "
                                 f"displacement (> {lipschitz} eV/Å^2 x delta + 1e-9)")
    return worst
