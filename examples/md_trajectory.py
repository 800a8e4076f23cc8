"""MD with a tfpot model writing an ASE trajectory (.traj) or extended XYZ (.extxyz / .xyz).

    python examples/md_trajectory.py MODEL.pt [--structure FILE] [--steps 500] [--interval 10]
                                     [--output md.traj] [--temperature 300] [--timestep 0.5]

Without ``--structure`` the first frame of the bundled demo set (ethanol) is used. Frames are
written every ``--interval`` steps (step 0 included) with energy and forces (and stress for
cells periodic in 3D), then read back to show how to analyse them.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import List, Optional

import ase.io
import numpy as np
from ase import units
from ase.calculators.singlepoint import SinglePointCalculator
from ase.io.trajectory import Trajectory
from ase.md.langevin import Langevin

from tfpot.calculators import TFPotCalculator
from tfpot.calculators.md_cli import init_velocities
from tfpot.data import demo_dataset_path, read_structures


def main(argv: Optional[List[str]] = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("model", help="tfpot model file")
    p.add_argument("--structure", default=None, help="start structure (default: demo ethanol)")
    p.add_argument("--steps", type=int, default=500)
    p.add_argument("--interval", type=int, default=10, help="write every N steps (default: 10)")
    p.add_argument("--output", default="md.traj", help=".traj or .extxyz/.xyz (default: md.traj)")
    p.add_argument("--temperature", type=float, default=300.0, help="K")
    p.add_argument("--timestep", type=float, default=0.5, help="fs")
    p.add_argument("--friction", type=float, default=0.01, help="1/fs")
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args(argv)

    if args.structure:
        atoms = ase.io.read(args.structure)
    else:
        atoms = read_structures(demo_dataset_path())[0]
    atoms.calc = TFPotCalculator(args.model)
    init_velocities(atoms, args.temperature, seed=args.seed)
    dyn = Langevin(atoms, args.timestep * units.fs, temperature_K=args.temperature,
                   friction=args.friction / units.fs, rng=np.random.default_rng(args.seed),
                   fixcm=False)

    out = Path(args.output)
    out.parent.mkdir(parents=True, exist_ok=True)
    if out.suffix == ".traj":
        # ASE's binary trajectory stores positions, momenta, cell and the calculator's results.
        traj = Trajectory(str(out), "w", atoms)
        dyn.attach(traj.write, interval=args.interval)
    else:
        # extxyz: one frame appended per call; a SinglePointCalculator carries the results.
        if out.exists():
            out.unlink()

        def write_extxyz():
            frame = atoms.copy()
            frame.calc = SinglePointCalculator(frame, **{k: v for k, v in atoms.calc.results.items()
                                                         if k in ("energy", "forces", "stress")})
            ase.io.write(str(out), frame, format="extxyz", append=True)

        dyn.attach(write_extxyz, interval=args.interval)
        traj = None
    dyn.run(args.steps)
    if traj is not None:
        traj.close()

    frames = ase.io.read(str(out), ":")
    energies = np.array([f.get_potential_energy() for f in frames])
    fmax = max(float(np.linalg.norm(f.get_forces(), axis=1).max()) for f in frames)
    print(f"wrote {len(frames)} frames to {out}: Epot {energies.min():.4f} .. {energies.max():.4f} eV, "
          f"largest force {fmax:.3f} eV/Å")
    return 0


if __name__ == "__main__":
    sys.exit(main())
