"""Reusable checks of the model contract (as e3nn's ``assert_equivariant``).

Each check takes a model and an ASE structure, raises ``AssertionError`` with the largest
difference next to its tolerance, and returns the measured error so that callers can report it.
Errors are computed in float64. Tolerances are keyed by the model's dtype in :data:`TOLERANCES`.
"""

from __future__ import annotations

from typing import Dict, Optional, Sequence

import numpy as np
import torch
from ase import Atoms

from tfpot.inference import model_dtype, predict

# Force errors are relative to max(max|F|, FORCE_FLOOR). An untrained model has |F| ~ 1e-3..5e-2
# eV/Å while the float32 roundoff of its gradients is set by its O(1) eV per-atom energies;
# real data has |F| ~ 1 eV/Å (the bundled GFN2-xTB set: RMS 0.98 eV/Å), ten times the floor.
FORCE_FLOOR = 0.1  # eV/Å

# One table of tolerances, keyed by dtype (relative errors unless stated).
TOLERANCES: Dict[torch.dtype, Dict[str, float]] = {
    torch.float64: {"invariance": 1e-10, "finite_difference": 1e-6, "determinism": 0.0},
    torch.float32: {"invariance": 1e-5, "finite_difference": 1e-2, "determinism": 0.0},
}


def tolerance(model: torch.nn.Module, kind: str) -> float:
    return TOLERANCES[model_dtype(model)][kind]


def random_orthogonal(rng: np.random.Generator, proper: bool = True) -> np.ndarray:
    """A random rotation (det +1) or rotoreflection (det -1), 3x3 float64."""
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


def assert_o3_invariant(model: torch.nn.Module, atoms: Atoms, n_trials: int = 4, seed: int = 0,
                        tol: Optional[float] = None, include_reflections: bool = True) -> float:
    """E invariant and F (and per-atom E, stress) equivariant under random rotations,
    reflections, translations and permutations. Returns the largest relative error seen."""
    tol = tolerance(model, "invariance") if tol is None else tol
    rng = np.random.default_rng(seed)
    ref = predict(model, atoms)
    scale_e = max(abs(ref["energy"]), float(np.abs(ref["energies"]).sum()), 1e-3)
    scale_f = max(float(np.abs(ref["forces"]).max()), FORCE_FLOOR)
    worst = 0.0
    for trial in range(n_trials):
        proper = (trial % 2 == 0) or not include_reflections
        Q = random_orthogonal(rng, proper=proper)
        t = rng.normal(size=3) * 3.0
        perm = rng.permutation(len(atoms))
        moved = transform_atoms(atoms, Q, t, perm)
        out = predict(model, moved)
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


def assert_forces_are_gradients(model: torch.nn.Module, atoms: Atoms, h: float = 1e-4,
                                atom_indices: Optional[Sequence[int]] = None,
                                tol: Optional[float] = None) -> float:
    """Autograd forces equal central finite differences of E (step ``h`` Å).
    Returns max |F - F_fd| / max(|F|)."""
    tol = tolerance(model, "finite_difference") if tol is None else tol
    ref = predict(model, atoms, stress=False)
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
            fd = -(predict(model, ep, stress=False)["energy"] - predict(model, em, stress=False)["energy"]) / (2 * h)
            worst_abs = max(worst_abs, abs(fd - ref["forces"][i, k]))
    scale = max(float(np.abs(ref["forces"]).max()), FORCE_FLOOR)
    err = worst_abs / scale
    if not err <= tol:
        raise AssertionError(f"forces differ from finite differences of E: relative error "
                             f"{err:.3e} > tol {tol:.1e} (max abs {worst_abs:.3e} eV/Å)")
    return err


def assert_stress_is_strain_derivative(model: torch.nn.Module, atoms: Atoms, h: float = 1e-5,
                                       tol: Optional[float] = None) -> float:
    """Stress equals (1/V) dE/d(strain) by central finite differences of symmetric strains."""
    tol = tolerance(model, "finite_difference") if tol is None else tol
    ref = predict(model, atoms, stress=True)["stress"]
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
                energies.append(predict(model, strained, stress=False)["energy"])
            fd[a, b] = (energies[0] - energies[1]) / (2 * h) / volume
    scale = max(float(np.abs(ref).max()), 1e-6)
    err = float(np.abs(fd - ref).max()) / scale
    if not err <= tol:
        raise AssertionError(f"stress differs from the strain derivative: relative error {err:.3e} "
                             f"> tol {tol:.1e}\nautograd:\n{ref}\nfinite differences:\n{fd}")
    return err


def assert_deterministic_at_symmetry(model: torch.nn.Module, atoms: Atoms, n_calls: int = 3,
                                     n_rotations: int = 3, seed: int = 0,
                                     tol_rotation: Optional[float] = None,
                                     zero_force_atoms: Optional[Sequence[int]] = None,
                                     force_tol: float = 1e-8) -> None:
    """Bit-for-bit identical results across calls; invariant across rotations; zero force on
    ``zero_force_atoms`` (absolute ``force_tol`` eV/Å, scaled by max |F| when that is larger)."""
    tol_rotation = tolerance(model, "invariance") if tol_rotation is None else tol_rotation
    first = predict(model, atoms)
    for _ in range(n_calls - 1):
        again = predict(model, atoms)
        if again["energy"] != first["energy"] or not np.array_equal(again["forces"], first["forces"]):
            raise AssertionError("energy/forces differ between identical calls at a symmetric "
                                 f"structure: {first['energy']!r} vs {again['energy']!r}")
    rng = np.random.default_rng(seed)
    for trial in range(n_rotations):
        Q = random_orthogonal(rng, proper=trial % 2 == 0)
        out = predict(model, transform_atoms(atoms, Q, rng.normal(size=3)))
        err = abs(out["energy"] - first["energy"]) / max(abs(first["energy"]), 1e-3)
        if not err <= tol_rotation:
            raise AssertionError(f"energy at a symmetric structure changes under rotation: "
                                 f"relative {err:.3e} > {tol_rotation:.1e}")
    if zero_force_atoms is not None and len(zero_force_atoms) > 0:
        f = np.abs(first["forces"][list(zero_force_atoms)]).max()
        if not f <= force_tol:
            raise AssertionError(f"symmetry demands zero force, got |F| = {f:.3e} eV/Å > {force_tol:.1e}")


def assert_smooth_scan(model: torch.nn.Module, atoms: Atoms, atom_index: int, direction,
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
        out = predict(model, moved, stress=False)
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
    noise = 1e-9 * max(1.0, float(np.abs(energies).max())) if model_dtype(model) == torch.float64 \
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
