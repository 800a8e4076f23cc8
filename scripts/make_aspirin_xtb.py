"""Generate an rMD17-style aspirin data set labelled with GFN2-xTB (tblite).

Aspirin (acetylsalicylic acid, C9H8O4, 21 atoms) starts from the GFN2-xTB-optimised geometry
written below (built atom by atom, then relaxed with BFGS; ``ase.build.molecule`` has no aspirin).
Langevin MD at 500 K (0.5 fs step, friction 0.01/fs, centre of mass fixed) samples one frame every
``--every`` steps after an equilibration. The output follows the revised-MD17 npz layout, so it
is read by the same code path as the published files (``tfpot.data.read_structures``)::

    nuclear_charges (N,) | coords (n, N, 3) Å | energies (n,) kcal/mol | forces (n, N, 3) kcal/mol/Å
    old_indices (n,) | old_energies (n,) | old_forces (n, N, 3)   (copies: there is no "old" MD17)

plus split files ``splits/index_train_01.csv`` (the first ``--train`` + ``--val`` frames of a
seeded permutation: tfpot's rMD17 reader takes validation from these) and
``splits/index_test_01.csv`` (the rest), one index per line, as in the official archive.

Usage (about 4 minutes on one CPU core for 1100 frames)::

    python scripts/make_aspirin_xtb.py -o /tmp/aspirin_xtb [--frames 1100]

Set before tblite loads, ``OMP_NUM_THREADS=1`` (the default here) is ~25x faster for 21 atoms.
"""

from __future__ import annotations

import argparse
import os
import time

# tblite's OpenMP threads thrash on small molecules (0.4 s instead of 15 ms per call here).
os.environ.setdefault("OMP_NUM_THREADS", "1")
from pathlib import Path

import numpy as np
from ase import Atoms, units
from ase.constraints import FixCom
from ase.md.langevin import Langevin
from ase.md.velocitydistribution import Stationary, ZeroRotation

try:  # ASE >= 3.28
    from ase.md.velocitydistribution import thermalize_momenta as _thermalize
except ImportError:  # older ASE
    from ase.md.velocitydistribution import MaxwellBoltzmannDistribution as _thermalize

KCAL_PER_MOL = units.kcal / units.mol  # eV per (kcal/mol)

# GFN2-xTB minimum of aspirin, Å, centre of mass at the origin.
# Ring C0..C5; C6(=O7)-O8-H9 carboxylic acid on C0; O10-C11(=O12)-C13H3 acetoxy on C1.
ASPIRIN = [
    ("C", 0.00481, -0.96324, -0.49703),
    ("C", -0.58941, 0.27230, -0.22282),
    ("C", -1.96580, 0.37028, -0.06493),
    ("C", -2.75890, -0.75769, -0.16744),
    ("C", -2.18108, -1.99208, -0.41980),
    ("C", -0.81361, -2.08871, -0.58179),
    ("C", 1.47729, -1.17955, -0.69379),
    ("O", 1.96867, -2.26909, -0.57190),
    ("O", 2.21750, -0.12098, -1.02618),
    ("H", 1.71218, 0.70939, -1.05501),
    ("O", 0.18462, 1.42497, -0.16374),
    ("C", 0.41422, 2.09339, 1.00558),
    ("O", 0.98505, 3.13949, 0.94824),
    ("C", -0.04070, 1.41443, 2.26656),
    ("H", 0.36547, 1.95443, 3.11691),
    ("H", -1.12716, 1.41507, 2.32925),
    ("H", 0.30293, 0.38103, 2.28331),
    ("H", -2.40339, 1.33993, 0.12185),
    ("H", -3.82803, -0.66932, -0.05007),
    ("H", -2.79794, -2.87380, -0.49387),
    ("H", -0.33812, -3.03680, -0.78107),
]


def aspirin() -> Atoms:
    return Atoms([s for s, *_ in ASPIRIN], positions=[xyz for _, *xyz in ASPIRIN])


def generate(frames: int = 1100, every: int = 10, equilibration: int = 1000,
             temperature_K: float = 500.0, timestep_fs: float = 0.5, seed: int = 0,
             verbose: bool = True) -> dict:
    """Run the MD and return the rMD17-layout arrays (kcal/mol units, like the published files)."""
    from tblite.ase import TBLite

    atoms = aspirin()
    atoms.calc = TBLite(method="GFN2-xTB", verbosity=0)
    _thermalize(atoms, temperature_K=temperature_K, rng=np.random.default_rng(seed))
    Stationary(atoms)
    ZeroRotation(atoms)
    atoms.set_constraint(FixCom())
    dyn = Langevin(atoms, timestep_fs * units.fs, temperature_K=temperature_K, friction=0.01,
                   fixcm=False, rng=np.random.default_rng(seed + 1))
    t0 = time.perf_counter()
    dyn.run(equilibration)
    R, E, F = [], [], []

    def sample() -> None:
        R.append(atoms.get_positions().copy())
        E.append(atoms.get_potential_energy())
        F.append(atoms.get_forces(apply_constraint=False).copy())
        if verbose and len(R) % 100 == 0:
            print(f"  {len(R)} frames, {time.perf_counter() - t0:.0f} s, "
                  f"T = {atoms.get_temperature():.0f} K", flush=True)

    dyn.attach(sample, interval=every)
    while len(R) < frames:
        dyn.run(every)
    coords = np.asarray(R[:frames], dtype=np.float64)
    energies = np.asarray(E[:frames], dtype=np.float64) / KCAL_PER_MOL
    forces = np.asarray(F[:frames], dtype=np.float64) / KCAL_PER_MOL
    return {
        "nuclear_charges": atoms.get_atomic_numbers().astype(np.int64),
        "coords": coords,
        "energies": energies,
        "forces": forces,
        "old_indices": np.arange(frames, dtype=np.int64),
        "old_energies": energies.copy(),
        "old_forces": forces.copy(),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-o", "--output", type=Path, default=Path("/tmp/aspirin_xtb"),
                        help="output directory (keep it outside the repository)")
    parser.add_argument("--frames", type=int, default=1100)
    parser.add_argument("--every", type=int, default=10)
    parser.add_argument("--equilibration", type=int, default=1000)
    parser.add_argument("--train", type=int, default=950)
    parser.add_argument("--val", type=int, default=50)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    if args.train + args.val >= args.frames:
        parser.error(f"--train + --val ({args.train + args.val}) must be below --frames ({args.frames})")
    t0 = time.perf_counter()
    data = generate(args.frames, args.every, args.equilibration, seed=args.seed)
    out = args.output
    (out / "splits").mkdir(parents=True, exist_ok=True)
    npz = out / "rmd17_aspirin_gfn2.npz"
    np.savez_compressed(npz, **data)
    # Frames are time-correlated; a seeded permutation spreads train and test over the run.
    perm = np.random.default_rng(args.seed).permutation(args.frames)
    n_fit = args.train + args.val
    np.savetxt(out / "splits" / "index_train_01.csv", np.sort(perm[:n_fit]), fmt="%d")
    np.savetxt(out / "splits" / "index_test_01.csv", np.sort(perm[n_fit:]), fmt="%d")
    e_ev = data["energies"] * KCAL_PER_MOL
    print(f"wrote {npz} and {out / 'splits'} in {time.perf_counter() - t0:.0f} s: "
          f"{args.frames} frames x {len(data['nuclear_charges'])} atoms, energy range "
          f"{e_ev.max() - e_ev.min():.3f} eV, |F| max {np.abs(data['forces']).max() * KCAL_PER_MOL:.2f} eV/Å")


if __name__ == "__main__":
    main()
