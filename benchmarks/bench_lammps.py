"""LAMMPS speed of pair_style tfpot: timesteps/s and atom-steps/s for fcc Cu/Ni/Al cells.

Runs NVE MD (300 K, 1 fs) for each cell size and MPI rank count, after one warm-up step (model
loading and TorchScript optimisation), and reads LAMMPS' own "Loop time". Threads per rank are
cores / ranks (OMP_NUM_THREADS), so every row uses the whole machine.

    python benchmarks/bench_lammps.py                         # builds a small model, 1k and 10k atoms
    python benchmarks/bench_lammps.py --model model.pt --sizes 1000 --ranks 1 2 4 --steps 10

Without ``--model`` a freshly initialised model is exported (``--preset``, ``--cutoff``,
``--num-layers``): speed does not depend on the weights.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import sys
import tempfile
import time
from pathlib import Path

from tfpot.calculators.lammps_build import build_plugin, run_lammps

INPUT = """
plugin load {plugin}
units metal
atom_style atomic
boundary p p p
lattice fcc 3.61
region box block 0 {n} 0 {n} 0 {n}
create_box 3 box
create_atoms 1 box
set type 1 type/fraction 2 0.30 4928459
set type 1 type/fraction 3 0.286 4928460
mass 1 63.546
mass 2 58.693
mass 3 26.982
pair_style tfpot
pair_coeff * * {model} Cu Ni Al
neighbor 1.0 bin
velocity all create 300 4928459 mom yes rot yes dist gaussian
fix 1 all nve
timestep 0.001
thermo {steps}
run 1
run {steps}
"""

LOOP = re.compile(r"Loop time of ([0-9.eE+-]+) on (\d+) procs for (\d+) steps with (\d+) atoms")


def export_model(args, workdir: Path) -> Path:
    import tfpot
    from tfpot.export import export_model as _export

    model = tfpot.build_model(["Cu", "Ni", "Al"], cutoff=args.cutoff, seed=0, preset=args.preset,
                              num_layers=args.num_layers, dtype=args.dtype)
    path = workdir / "bench_model.pt"
    meta = _export(model, path)
    print(f"model: {model!r}\nmetadata: {json.dumps(meta)}")
    return path


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", help="exported model (tfpot export); default: build one")
    p.add_argument("--preset", default="small")
    p.add_argument("--cutoff", type=float, default=4.0)
    p.add_argument("--num-layers", type=int, default=2)
    p.add_argument("--dtype", default="float64", choices=["float32", "float64"])
    p.add_argument("--sizes", type=int, nargs="+", default=[1000, 10000], help="approximate atom counts")
    p.add_argument("--ranks", type=int, nargs="+", default=[1, 2])
    p.add_argument("--steps", type=int, default=5, help="timed steps per run (after 1 warm-up)")
    p.add_argument("--cores", type=int, default=os.cpu_count() or 1)
    p.add_argument("--threads", type=int, default=None,
                   help="torch threads per rank (default: cores // ranks)")
    p.add_argument("--timeout", type=float, default=3600)
    args = p.parse_args(argv)

    plugin = build_plugin()
    rows = []
    with tempfile.TemporaryDirectory(prefix="tfpot-bench-") as tmp:
        tmp = Path(tmp)
        model = Path(args.model).resolve() if args.model else export_model(args, tmp)
        for size in args.sizes:
            n = max(1, round((size / 4) ** (1 / 3)))
            for ranks in args.ranks:
                threads = args.threads or max(1, args.cores // ranks)
                (tmp / "in.bench").write_text(INPUT.format(plugin=plugin, model=model, n=n, steps=args.steps))
                t0 = time.perf_counter()
                proc = run_lammps("in.bench", nprocs=ranks, cwd=tmp, threads=threads, timeout=args.timeout)
                wall = time.perf_counter() - t0
                loops = LOOP.findall(proc.stdout)
                if proc.returncode != 0 or len(loops) < 2:
                    print(proc.stdout[-3000:], proc.stderr[-2000:], file=sys.stderr)
                    raise SystemExit(f"LAMMPS failed for {4 * n**3} atoms on {ranks} ranks")
                loop_time, _, steps, atoms = loops[-1]
                loop_time, steps, atoms = float(loop_time), int(steps), int(atoms)
                ghosts = re.findall(r"Nghost:\s+([0-9.e+]+) ave", proc.stdout)
                rows.append((atoms, ranks, threads, steps / loop_time, atoms * steps / loop_time,
                             float(ghosts[-1]) if ghosts else float("nan"), wall))
                print(f"  {atoms} atoms, {ranks} rank(s) x {threads} thread(s): "
                      f"{steps / loop_time:.4g} steps/s ({wall:.0f} s wall)", flush=True)

    print()
    print(f"{'atoms':>7} {'ranks':>5} {'thr/rank':>8} {'steps/s':>10} {'atom-steps/s':>13} "
          f"{'ghosts/rank':>11}")
    for atoms, ranks, threads, sps, asps, ghosts, _ in rows:
        print(f"{atoms:>7d} {ranks:>5d} {threads:>8d} {sps:>10.4g} {asps:>13.4g} {ghosts:>11.0f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
