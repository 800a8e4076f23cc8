"""The runaway check of molecular dynamics (tfpot.calculators.md_guard)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from ase import units
from ase.md.verlet import VelocityVerlet

from helpers import make_model
from tfpot.calculators import TFPotCalculator
from tfpot.calculators.md_guard import MDRunawayError, RunawayGuard
from tfpot.testing.structures import ethanol


def forces(largest: float) -> np.ndarray:
    f = np.full((3, 3), 0.1)
    f[1] = [0.0, largest, 0.0]
    return f


def test_a_run_within_the_limits_passes():
    guard = RunawayGuard(["C", "H", "H"], max_force=50.0, max_energy_change=0.05)
    guard.check(10, 0.005, forces(49.0), -10.0 + 3 * 0.0499, -10.0)


def test_a_force_above_the_limit_stops_the_run_and_names_the_atom():
    guard = RunawayGuard(["C", "H", "H"], max_force=50.0, max_energy_change=None)
    with pytest.raises(MDRunawayError, match=r"force above --max-force 50 eV/Å at step 7 "
                                              r"\(0.0035 ps\); largest force 51 eV/Å on atom 1 \(H\)"):
        guard.check(7, 0.0035, forces(51.0), 0.0, 0.0)


def test_the_energy_check_is_per_atom_and_both_ways():
    guard = RunawayGuard(["C", "H", "H"], max_force=None, max_energy_change=0.05)
    for sign in (1.0, -1.0):
        with pytest.raises(MDRunawayError, match=r"moved 0.06 eV/atom"):
            guard.check(3, 0.0015, forces(1.0), -10.0 + sign * 0.18, -10.0)


def test_switched_off_checks_pass_anything_finite_but_not_nan():
    guard = RunawayGuard(["C", "H", "H"], max_force=None, max_energy_change=None)
    guard.check(1, 0.0005, forces(1e6), 1e6, 0.0)
    with pytest.raises(MDRunawayError, match="non-finite"):
        guard.check(1, 0.0005, forces(np.nan), 0.0, 0.0)


def test_watch_checks_every_step_of_ase_dynamics():
    # an untrained model with trained-size forces (~0.1-1 eV/Å), NVE at 4 fs: the total energy
    # runs away within a few dozen steps (float64); tfpot md stops the same run (test_cli_md.py)
    model = make_model()
    with torch.no_grad():
        model.readout.energy_scale.fill_(300.0)
    atoms = ethanol()
    atoms.calc = TFPotCalculator(model, device="cpu")
    rng = np.random.default_rng(0)
    atoms.set_velocities(rng.normal(scale=0.05, size=(len(atoms), 3)))
    dyn = VelocityVerlet(atoms, timestep=4.0 * units.fs)
    RunawayGuard(atoms.get_chemical_symbols()).watch(dyn)
    with pytest.raises(MDRunawayError, match=r"NVE total energy moved .* at step (\d+) "
                                              r"\((\d+\.\d{4}) ps\)") as err:
        dyn.run(200)
    step = int(err.value.args[0].split("at step ")[1].split()[0])
    assert 0 < step < 200 and dyn.nsteps == step
    assert f"({step * 0.004:.4f} ps)" in err.value.args[0]
