"""Molecular dynamics through TFPotCalculator with a trained model: energy conservation (NVE),
the Verlet-skin neighbour list against fresh lists along a trajectory, and the MD examples.

The model is fitted once per session (``trained_ethanol``, conftest.py) to 60 frames of the demo set
(ethanol, GFN2-xTB labels, 500 K MD) for 30 epochs: test force RMSE ~0.2 eV/Å against a label
spread of ~1 eV/Å, enough for stable room-temperature MD.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
from ase import units
from ase.md.langevin import Langevin
from ase.md.verlet import VelocityVerlet

import tfpot
from tfpot.calculators import TFPotCalculator
from tfpot.calculators.md_cli import energy_drift, init_velocities
from tfpot.data import demo_dataset_path, read_structures

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"

# NVE energy-drift bound, eV/atom/ps. Velocity Verlet is symplectic: with a smooth (C1 or
# better) potential the total energy only fluctuates (here ~5e-4 eV/atom at 0.5 fs) and drifts
# from round-off, ~1e-6..1e-5 eV/atom/ps. A slope fitted over 0.3 ps of those fluctuations
# scatters by ~1e-4 eV/atom/ps. A force discontinuity (cutoff truncation, a frame or handedness
# jump) kicks the energy at each event and random-walks it far beyond that. 5e-4 eV/atom/ps is
# a heating rate of 5e-4 / (3 k_B) ~ 2 K/ps; the measured drift is printed by the test.
NVE_DRIFT_BOUND = 5e-4
# Largest excursion |E_tot(t) - E_tot(0)| per atom: ~10x the Verlet fluctuation seen at 0.5 fs.
NVE_EXCURSION_BOUND = 5e-3


def _demo_start():
    atoms = read_structures(demo_dataset_path())[0]
    atoms.calc = None
    return atoms


def test_nve_energy_drift(trained_ethanol):
    atoms = _demo_start()
    atoms.calc = TFPotCalculator(trained_ethanol)
    init_velocities(atoms, 300.0, seed=0)
    dt_fs, steps = 0.5, 600
    dyn = VelocityVerlet(atoms, dt_fs * units.fs)
    etot = []
    dyn.attach(lambda: etot.append(atoms.get_total_energy()), interval=1)
    dyn.run(steps)
    etot = np.asarray(etot)
    n = len(atoms)
    t_ps = np.arange(len(etot)) * dt_fs / 1000.0
    drift = energy_drift(t_ps, etot, n)
    excursion = float(np.abs(etot - etot[0]).max()) / n
    print(f"\nNVE ethanol 300 K, {steps} x {dt_fs} fs: drift {drift:.3e} eV/atom/ps "
          f"(bound {NVE_DRIFT_BOUND:.0e}), max |Etot - Etot0| {excursion:.3e} eV/atom, "
          f"{atoms.calc.n_builds} neighbour-list builds")
    assert np.isfinite(etot).all()
    assert abs(drift) < NVE_DRIFT_BOUND, f"energy drift {drift:.3e} eV/atom/ps > {NVE_DRIFT_BOUND}"
    assert excursion < NVE_EXCURSION_BOUND, (f"total energy excursion {excursion:.3e} eV/atom > "
                                             f"{NVE_EXCURSION_BOUND}")


def test_skin_list_matches_fresh_list_along_md(trained_ethanol):
    """Langevin MD at 800 K driven by the skin calculator; at every one of 200 steps the forces
    equal those of a fresh neighbour list (tfpot.predict) to 1e-12 eV/Å."""
    atoms = _demo_start()
    calc = TFPotCalculator(trained_ethanol, skin=0.5)
    model = calc.model
    atoms.calc = calc
    init_velocities(atoms, 800.0, seed=1)
    dyn = Langevin(atoms, 1.0 * units.fs, temperature_K=800.0, friction=0.02 / units.fs,
                   rng=np.random.default_rng(1), fixcm=False)
    worst = {"forces": 0.0, "energy": 0.0}

    def compare():
        ref = tfpot.predict(model, atoms)
        worst["forces"] = max(worst["forces"], float(np.abs(atoms.get_forces() - ref["forces"]).max()))
        worst["energy"] = max(worst["energy"], abs(atoms.get_potential_energy() - ref["energy"]))

    dyn.attach(compare, interval=1)
    dyn.run(200)
    print(f"\nskin list vs fresh over 200 steps: max |dF| {worst['forces']:.1e} eV/Å, "
          f"max |dE| {worst['energy']:.1e} eV, {calc.n_builds} builds")
    assert worst["forces"] <= 1e-12 and worst["energy"] <= 1e-12, worst
    assert 1 < calc.n_builds < 100, "the run should reuse the list and also rebuild it"


def _load_example(name: str):
    spec = importlib.util.spec_from_file_location(f"tfpot_example_{name}", EXAMPLES / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_md_nve_langevin_example(trained_ethanol, capsys):
    example = _load_example("md_nve_langevin")
    rc = example.main([str(trained_ethanol), "--equilibration-steps", "20", "--steps", "40"])
    out = capsys.readouterr().out
    assert rc == 0
    assert "drift" in out and "eV/atom/ps" in out


def test_md_trajectory_example(trained_ethanol, tmp_path):
    import ase.io

    example = _load_example("md_trajectory")
    for name in ("run.traj", "run.extxyz"):
        out = tmp_path / name
        rc = example.main([str(trained_ethanol), "--steps", "20", "--interval", "5",
                           "--output", str(out)])
        assert rc == 0
        frames = ase.io.read(out, ":")
        assert len(frames) == 5  # steps 0, 5, 10, 15, 20
        assert frames[-1].get_forces().shape == (9, 3)
        assert np.isfinite(frames[-1].get_potential_energy())
