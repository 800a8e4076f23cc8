"""Energy conservation of trained models: NVE from several starts, tfpot next to MACE.

Run (tfpot's venv; MACE runs in its own venv through ``mace_worker.py``)::

    python benchmarks/bench_nve.py --tfpot-model RUN/best_model.pt --data DIR \
        [--mace-model RUN/mace.model] [--starts 3] [--ps 10] [--dt-fs 0.5] \
        [--temperature 500] [--seed 0] [--threads 1] [--only-starts K ...]
    python benchmarks/bench_nve.py --tfpot-model RUN/best_model.pt --data DIR \
        --only-starts 1 --replay 11716     # a jump of the table, integrated with dt/2, dt/4, ...

Models come from a training run, e.g. the two that ``bench_accuracy_vs_mace.py`` writes
(``OUT/tfpot/best_model.pt`` and ``OUT/mace/mace.model``). Starts: ``--starts`` held-out frames of
the aspirin set (``DIR`` from ``scripts/make_aspirin_xtb.py``; test indices 0, 100, 200, ...), with
seeded Maxwell-Boltzmann velocities at ``--temperature`` (zero momentum and angular momentum);
both codes start from the same positions and velocities. Velocity Verlet (ASE), ``--dt-fs``,
for ``--ps`` picoseconds, the total energy recorded at every step.

Per run it reports (criteria of the accuracy issue in brackets):

* largest step-to-step change of the total energy, meV (<= 10 meV);
* drift: slope of a linear fit of the total energy against time, meV/atom/ps (|drift| <= 0.1);
* largest |E_tot(t) - E_tot(0)| per atom, meV; highest temperature, K;
* the step of the largest jump, so that a failing run can be replayed;
* a run that leaves physics fails, and its row ends with the step and the reason: ``tfpot md``'s
  runaway check (:mod:`tfpot.calculators.md_guard`: a force above 50 eV/Å, or the total energy
  0.05 eV/atom from its start), or the calculator refusing atoms on top of each other.

Prints a markdown table; ``--json FILE`` also writes the raw numbers. Either model may be given
alone; ``--only-starts`` picks starts (e.g. one per process, since runs are independent).

``--replay STEP`` (tfpot): reruns a start to just before STEP, then integrates the 25 fs around
it from that state with dt, dt/2, dt/4 and dt/8. On a smooth potential velocity Verlet's energy
error falls like dt^2; a jump that does not shrink is a discontinuity of the potential.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Dict, List, Optional, Sequence

import numpy as np
import torch
from ase import Atoms, units
from ase.io import write
from ase.md.verlet import VelocityVerlet

import tfpot
from tfpot.calculators import TFPotCalculator
from tfpot.calculators.md_guard import MDRunawayError, RunawayGuard
from tfpot.calculators.md_cli import energy_drift, init_velocities
from tfpot.data import read_structures
from tfpot.data.md17 import read_rmd17_split

HERE = Path(__file__).resolve().parent
DEFAULT_MACE_PYTHON = "/work/mace-venv/bin/python"
MAX_JUMP_MEV = 10.0
MAX_DRIFT_MEV_ATOM_PS = 0.1


def starts(data: Path, count: int, temperature: float, seed: int,
           only: Optional[Sequence[int]] = None) -> Dict[int, Atoms]:
    """Start k (k < ``count``, or the ``only`` ones): held-out frame 100 k with seeded thermal
    velocities (seed + k)."""
    frames = read_structures(next(data.glob("*.npz")))
    test_idx = read_rmd17_split(data / "splits" / "index_test_01.csv")
    out = {}
    for k in (range(count) if only is None else only):
        atoms = frames[test_idx[(100 * k) % len(test_idx)]].copy()
        atoms.calc = None
        init_velocities(atoms, temperature, seed + k)
        out[k] = atoms
    return out


def conservation(etot: np.ndarray, temperature: np.ndarray, dt_fs: float,
                 num_atoms: int) -> Dict[str, float]:
    """Jumps and drift of a total-energy series sampled every step (eV)."""
    if len(etot) < 2 or not np.all(np.isfinite(etot)):
        nan = float("nan")
        return {"max_jump_meV": nan, "jump_step": -1, "drift_meV_atom_ps": nan,
                "max_dev_meV_atom": nan, "max_T_K": nan}
    t_ps = np.arange(len(etot)) * dt_fs / 1000.0
    steps = np.abs(np.diff(etot))
    return {"max_jump_meV": 1e3 * float(steps.max()), "jump_step": int(steps.argmax()) + 1,
            "drift_meV_atom_ps": 1e3 * energy_drift(t_ps, etot, num_atoms),
            "max_dev_meV_atom": 1e3 * float(np.abs(etot - etot[0]).max()) / num_atoms,
            "max_T_K": float(temperature.max())}


def replay(model_file: str, start: Atoms, step: int, dt_fs: float, window_fs: float = 25.0,
           refinements: int = 4) -> List[Dict[str, float]]:
    """Run to ``step - window/2`` (steps of ``dt_fs``), then integrate ``window_fs`` from that
    state with dt, dt/2, dt/4, ...: on a smooth potential Verlet's energy error shrinks like dt^2;
    an error that does not shrink is a discontinuity. Rows: dt_fs, largest step jump and largest
    |E - E0| (meV)."""
    atoms = start.copy()
    atoms.calc = TFPotCalculator(tfpot.load_model(model_file), device="cpu")
    VelocityVerlet(atoms, timestep=dt_fs * units.fs).run(max(step - int(window_fs / dt_fs / 2), 0))
    rows = []
    for r in range(refinements):
        dt = dt_fs / 2 ** r
        a = atoms.copy()
        a.calc = atoms.calc
        dyn = VelocityVerlet(a, timestep=dt * units.fs)
        etot: List[float] = []
        dyn.attach(lambda: etot.append(a.get_potential_energy() + a.get_kinetic_energy()), 1)
        dyn.run(int(round(window_fs / dt)))
        e = np.asarray(etot)
        rows.append({"dt_fs": dt, "max_jump_meV": 1e3 * float(np.abs(np.diff(e)).max()),
                     "max_dev_meV": 1e3 * float(np.abs(e - e[0]).max())})
    return rows


def tfpot_nve(model_file: str, start: Atoms, steps: int, dt_fs: float) -> Dict[str, object]:
    atoms = start.copy()
    atoms.calc = TFPotCalculator(tfpot.load_model(model_file), device="cpu")
    dyn = VelocityVerlet(atoms, timestep=dt_fs * units.fs)
    etot, temp = [], []

    def sample() -> None:
        etot.append(atoms.get_potential_energy() + atoms.get_kinetic_energy())
        temp.append(atoms.get_temperature())

    dyn.attach(sample, interval=1)
    RunawayGuard(atoms.get_chemical_symbols()).watch(dyn)  # tfpot md's defaults
    t0 = time.perf_counter()
    stopped = ""
    try:
        dyn.run(steps)
    except MDRunawayError as err:
        stopped = f"stopped: {err}"
    except ValueError as err:  # the calculator refuses the geometry: atoms on top of each other
        stopped = f"stopped at step {len(etot)}: {err}"
    return {"etot": np.asarray(etot), "temperature": np.asarray(temp),
            "seconds": time.perf_counter() - t0, "stopped": stopped}


def mace_nve(python: str, model_file: str, start: Atoms, steps: int, dt_fs: float,
             threads: int) -> Dict[str, object]:
    with tempfile.TemporaryDirectory() as tmp:
        xyz = Path(tmp) / "start.extxyz"
        write(xyz, start, format="extxyz")
        res = subprocess.run([python, str(HERE / "mace_worker.py"), "md", "--model", model_file,
                              "--xyz", str(xyz), "--steps", str(steps), "--dt-fs", str(dt_fs),
                              "--every", "1", "--threads", str(threads), "--dtype", "float64"],
                             stdout=subprocess.PIPE, text=True, check=True)
    out = json.loads(res.stdout.strip().splitlines()[-1])
    return {"etot": np.asarray(out["etot"]), "temperature": np.asarray(out["temperature"]),
            "seconds": out["seconds"]}


def main(argv: List[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--tfpot-model", help="a tfpot model file")
    p.add_argument("--mace-model", help="a MACE .model file (optional)")
    p.add_argument("--mace-python", default=DEFAULT_MACE_PYTHON)
    p.add_argument("--data", required=True, help="aspirin directory (scripts/make_aspirin_xtb.py)")
    p.add_argument("--starts", type=int, default=3)
    p.add_argument("--only-starts", type=int, nargs="+", metavar="K",
                   help="run these starts only (e.g. one per process)")
    p.add_argument("--replay", type=int, metavar="STEP",
                   help="tfpot: replay a jump at STEP (from bench_nve's table) with dt, dt/2, "
                        "dt/4, dt/8 over a 25 fs window around it, instead of the NVE runs")
    p.add_argument("--ps", type=float, default=10.0)
    p.add_argument("--dt-fs", type=float, default=0.5)
    p.add_argument("--temperature", type=float, default=500.0)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--json", help="also write the raw numbers here")
    args = p.parse_args(argv)
    if not (args.tfpot_model or args.mace_model):
        p.error("give --tfpot-model and/or --mace-model")
    if args.replay is not None and not args.tfpot_model:
        p.error("--replay needs --tfpot-model")
    torch.set_num_threads(args.threads)
    chosen = starts(Path(args.data), args.starts, args.temperature, args.seed, args.only_starts)
    if args.replay is not None:
        print(f"replay of step {args.replay}, 25 fs window: | start | dt fs | largest step jump "
              f"meV | largest abs(E - E0) meV |\n|---|---|---|---|")
        for k, start in chosen.items():
            for row in replay(args.tfpot_model, start, args.replay, args.dt_fs):
                print(f"| {k} | {row['dt_fs']:g} | {row['max_jump_meV']:.3f} | "
                      f"{row['max_dev_meV']:.3f} |", flush=True)
        return
    steps = int(round(1000.0 * args.ps / args.dt_fs))
    print(f"NVE, velocity Verlet {args.dt_fs} fs, {args.ps} ps ({steps} steps) from "
          f"starts {sorted(chosen)} at {args.temperature} K (seed {args.seed}); criteria: jump <= "
          f"{MAX_JUMP_MEV} meV, |drift| <= {MAX_DRIFT_MEV_ATOM_PS} meV/atom/ps\n")
    print("| model | start | max step jump meV (at step) | drift meV/atom/ps | "
          "max abs(E - E0) meV/atom | max T K | meets both | MD s |")
    print("|---|---|---|---|---|---|---|---|")
    raw = []
    for k, start in chosen.items():
        runs = []
        if args.tfpot_model:
            runs.append(("tfpot", tfpot_nve(args.tfpot_model, start, steps, args.dt_fs)))
        if args.mace_model:
            runs.append(("MACE", mace_nve(args.mace_python, args.mace_model, start, steps,
                                          args.dt_fs, args.threads)))
        for name, run in runs:
            c = conservation(run["etot"], run["temperature"], args.dt_fs, len(start))
            stopped = str(run.get("stopped", ""))
            ok = (not stopped and c["max_jump_meV"] <= MAX_JUMP_MEV
                  and abs(c["drift_meV_atom_ps"]) <= MAX_DRIFT_MEV_ATOM_PS)
            print(f"| {name} | {k} | {c['max_jump_meV']:.2f} ({c['jump_step']}) | "
                  f"{c['drift_meV_atom_ps']:.4f} | {c['max_dev_meV_atom']:.3f} | "
                  f"{c['max_T_K']:.0f} | {'yes' if ok else 'no'} | {run['seconds']:.0f} |"
                  + (f" {stopped}" if stopped else ""), flush=True)
            raw.append({"model": name, "start": k, **c, "seconds": run["seconds"],
                        "stopped": stopped})
    if args.json:
        Path(args.json).write_text(json.dumps(raw, indent=1))


if __name__ == "__main__":
    main(sys.argv[1:])
