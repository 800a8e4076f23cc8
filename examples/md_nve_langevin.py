"""Langevin equilibration, then NVE molecular dynamics of the demo molecule with a tfpot model.

    python examples/md_nve_langevin.py MODEL.pt [--temperature 300] [--equilibration-steps 1000]
                                                [--steps 2000] [--timestep 0.5]

The molecule is the first frame of the bundled demo set (ethanol, GFN2-xTB labels; train a model
on it with ``tfpot train training/configs/demo.yaml``). Langevin dynamics brings it to the
temperature; the NVE run that follows reports the energy drift per atom per ps, the number that
says whether a potential is smooth enough for MD (velocity Verlet conserves a shadow energy
exactly, so any drift beyond round-off comes from non-smooth forces or a too-long timestep).
"""

from __future__ import annotations

import argparse
import sys
import time
from typing import List, Optional

import numpy as np
from ase import units
from ase.md.langevin import Langevin
from ase.md.verlet import VelocityVerlet

from tfpot.calculators import TFPotCalculator
from tfpot.calculators.md_cli import energy_drift, init_velocities
from tfpot.data import demo_dataset_path, read_structures


def main(argv: Optional[List[str]] = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("model", help="tfpot model file for H, C, O")
    p.add_argument("--temperature", type=float, default=300.0, help="K (default: 300)")
    p.add_argument("--equilibration-steps", type=int, default=1000, help="Langevin steps (default: 1000)")
    p.add_argument("--steps", type=int, default=2000, help="NVE steps (default: 2000)")
    p.add_argument("--timestep", type=float, default=0.5, help="fs (default: 0.5)")
    p.add_argument("--friction", type=float, default=0.01, help="Langevin friction, 1/fs (default: 0.01)")
    p.add_argument("--dtype", default="float64", choices=("float64", "float32"))
    p.add_argument("--device", default="cpu")
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args(argv)

    atoms = read_structures(demo_dataset_path())[0]
    atoms.calc = TFPotCalculator(args.model, device=args.device, dtype=args.dtype)
    init_velocities(atoms, args.temperature, seed=args.seed)
    n = len(atoms)
    dt = args.timestep * units.fs

    # 1. Langevin (NVT) equilibration
    langevin = Langevin(atoms, dt, temperature_K=args.temperature, friction=args.friction / units.fs,
                        rng=np.random.default_rng(args.seed), fixcm=False)
    t0 = time.perf_counter()
    langevin.run(args.equilibration_steps)
    print(f"Langevin: {args.equilibration_steps} steps at {args.temperature} K, "
          f"T = {atoms.get_temperature():.1f} K at the end "
          f"({args.equilibration_steps / (time.perf_counter() - t0):.1f} steps/s)")

    # 2. NVE (velocity Verlet), total energy recorded every step
    nve = VelocityVerlet(atoms, dt)
    etot: List[float] = []
    temps: List[float] = []
    nve.attach(lambda: (etot.append(atoms.get_total_energy()), temps.append(atoms.get_temperature())),
               interval=1)
    t0 = time.perf_counter()
    nve.run(args.steps)
    wall = time.perf_counter() - t0
    e = np.asarray(etot)
    t_ps = np.arange(len(e)) * args.timestep / 1000.0
    drift = energy_drift(t_ps, e, n)
    print(f"NVE: {args.steps} steps of {args.timestep} fs ({t_ps[-1]:.3f} ps), mean T "
          f"{np.mean(temps):.1f} K, {args.steps / wall:.1f} steps/s")
    print(f"  energy drift {drift:.3e} eV/atom/ps; max |Etot - Etot(0)| "
          f"{np.abs(e - e[0]).max() / n:.3e} eV/atom; fluctuation (std) {e.std() / n:.3e} eV/atom")
    return 0


if __name__ == "__main__":
    sys.exit(main())
