"""Generate the demo data set: ethanol MD with GFN2-xTB labels, stored in the MD17 npz layout.

Langevin MD at 500 K (0.5 fs step, friction 0.01 /fs) with energies and forces from GFN2-xTB
(tblite, SCF accuracy 0.01). After a short
equilibration, one frame is kept every ``--every`` steps. The output follows the original MD17
layout exactly, so it is read by the same code path as the published files:

    R (n, N, 3) float64 Å | z (N,) int64 | E (n, 1) float64 kcal/mol | F (n, N, 3) float64 kcal/mol/Å
    name, theory, type, md5 (0-d strings)

Usage::

    python scripts/make_demo_data.py [-o tfpot/data/demo/ethanol_gfn2.npz] [--frames 400]
"""

from __future__ import annotations

import os

# One thread: a 9-atom SCF gains nothing from OpenMP, and spinning threads slow it down ~5x on
# a busy 2-core machine. Must be set before tblite is loaded.
os.environ.setdefault("OMP_NUM_THREADS", "1")

import argparse
import hashlib
import time
from pathlib import Path

import numpy as np
from ase import units
from ase.build import molecule
from ase.md.langevin import Langevin
from ase.constraints import FixCom
from ase.md.velocitydistribution import Stationary, ZeroRotation

try:  # ASE >= 3.28
    from ase.md.velocitydistribution import thermalize_momenta as _thermalize
except ImportError:  # older ASE
    from ase.md.velocitydistribution import MaxwellBoltzmannDistribution as _thermalize

KCAL_PER_MOL = units.kcal / units.mol  # eV per (kcal/mol)


def generate(frames: int = 400, every: int = 10, equilibration: int = 1000,
             temperature_K: float = 500.0, timestep_fs: float = 0.5, seed: int = 0) -> dict:
    """Run the MD and return the MD17-layout arrays (kcal/mol units, like the published files)."""
    from tblite.ase import TBLite

    atoms = molecule("CH3CH2OH")  # 9 atoms
    # accuracy=0.01 (SCF 100x tighter than the default): forces then do not depend on the
    # previous step's wavefunction guess by more than ~1e-6 eV/Å (default: ~2e-4 eV/Å)
    atoms.calc = TBLite(method="GFN2-xTB", accuracy=0.01, verbosity=0)
    rng = np.random.default_rng(seed)
    _thermalize(atoms, temperature_K=temperature_K, rng=rng)
    Stationary(atoms)
    ZeroRotation(atoms)
    atoms.set_constraint(FixCom())  # keep the centre of mass still (thermostat kicks are random)
    dyn = Langevin(atoms, timestep_fs * units.fs, temperature_K=temperature_K, friction=0.01,
                   fixcm=False, rng=np.random.default_rng(seed + 1))
    dyn.run(equilibration)

    R, E, F = [], [], []

    def sample() -> None:
        R.append(atoms.get_positions().copy())
        E.append(atoms.get_potential_energy())
        F.append(atoms.get_forces(apply_constraint=False).copy())  # raw labels

    dyn.attach(sample, interval=every)
    while len(R) < frames:  # observers may or may not fire at step 0, depending on the ASE version
        dyn.run(every)
    R_arr = np.asarray(R[:frames], dtype=np.float64)
    E_arr = np.asarray(E[:frames], dtype=np.float64).reshape(-1, 1) / KCAL_PER_MOL
    F_arr = np.asarray(F[:frames], dtype=np.float64) / KCAL_PER_MOL
    md5 = hashlib.md5(R_arr.tobytes() + E_arr.tobytes() + F_arr.tobytes()).hexdigest()
    return {
        "R": R_arr,
        "z": atoms.get_atomic_numbers().astype(np.int64),
        "E": E_arr,
        "F": F_arr,
        "name": np.array("ethanol"),
        "theory": np.array("GFN2-xTB"),
        "type": np.array("d"),
        "md5": np.array(md5),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-o", "--output", type=Path,
                        default=Path(__file__).resolve().parents[1] / "tfpot/data/demo/ethanol_gfn2.npz")
    parser.add_argument("--frames", type=int, default=400)
    parser.add_argument("--every", type=int, default=10)
    parser.add_argument("--equilibration", type=int, default=1000)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    t0 = time.perf_counter()
    data = generate(args.frames, args.every, args.equilibration, seed=args.seed)
    args.output.parent.mkdir(parents=True, exist_ok=True)
    np.savez_compressed(args.output, **data)
    e_ev = data["E"][:, 0] * KCAL_PER_MOL
    print(f"wrote {args.output} ({args.output.stat().st_size / 1024:.0f} KiB) in "
          f"{time.perf_counter() - t0:.1f} s: {len(e_ev)} frames x {len(data['z'])} atoms, "
          f"E in [{e_ev.min():.4f}, {e_ev.max():.4f}] eV (range {e_ev.max() - e_ev.min():.3f} eV), "
          f"|F| max {np.abs(data['F']).max() * KCAL_PER_MOL:.3f} eV/Å")


if __name__ == "__main__":
    main()
