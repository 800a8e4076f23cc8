"""``tfpot md STRUCTURE MODEL``: molecular dynamics in ASE with a tfpot model.

Ensembles: ``nve`` (velocity Verlet), ``langevin``, ``nvt-berendsen`` and ``npt`` (Berendsen
barostat and thermostat; needs a cell periodic in 3D). Velocities are drawn from a
Maxwell-Boltzmann distribution at ``--temperature`` (seeded), with the centre-of-mass motion (and,
for molecules, the rotation) removed. The run starts from frame ``--frame`` of STRUCTURE (default
0, the first; -1 is the last), and says so. A progress bar runs while it goes; at the end a
summary gives the speed and, for NVE, the energy drift per atom per ps (slope of a straight-line
fit of the total energy against time) with the largest excursion from the initial energy.
``--thermo FILE.csv`` writes time, energies and temperature of every step to FILE.csv and a plot
of them to FILE.png.

A run that leaves physics stops with one line saying where (step, atom) and exit code 1: a force
above ``--max-force`` (default 50 eV/Å, any ensemble) or, in NVE, a total energy more than
``--max-energy-change`` (default 0.05 eV/atom) from its start. The geometry it stopped at is the
last frame of ``--traj``. 0 switches a check off.

Units on the command line: temperature K, timestep fs, friction 1/fs, pressure GPa (as ``tfpot
relax``; 1 atm = 1.01325e-4 GPa), times fs.
"""

from __future__ import annotations

import argparse
import csv
import sys
import time
from pathlib import Path
from typing import List

import ase.io
import numpy as np
import torch
from ase import units
from ase.calculators.singlepoint import SinglePointCalculator
from ase.io.trajectory import Trajectory
from ase.md import velocitydistribution as vd
from ase.md.langevin import Langevin
from ase.md.nptberendsen import NPTBerendsen
from ase.md.nvtberendsen import NVTBerendsen
from ase.md.verlet import VelocityVerlet
from tqdm import tqdm

from tfpot.calculators.ase_calculator import TFPotCalculator
from tfpot.calculators.md_guard import (DEFAULT_MAX_ENERGY_CHANGE, DEFAULT_MAX_FORCE,
                                        MDRunawayError, RunawayGuard)
from tfpot.errors import InputError, TfpotError, UnknownElementError
from tfpot.inference import require_known_elements
from tfpot.plots import md_trace

ENSEMBLES = ("nve", "langevin", "nvt-berendsen", "npt")


# ---------------------------------------------------------------------------------------------
# helpers shared with relax_cli
def add_model_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("structure", metavar="STRUCTURE",
                        help="structure file readable by ase.io.read (xyz, extxyz, cif, POSCAR, "
                             "traj, ...)")
    parser.add_argument("model", metavar="MODEL", help="tfpot model file")
    parser.add_argument("--frame", "--index", dest="frame", type=int, default=0,
                        help="frame of STRUCTURE to start from: 0 is the first (default), -1 the "
                             "last")
    parser.add_argument("--device", default="cpu", help="torch device (default: cpu)")
    parser.add_argument("--dtype", default="float64", choices=("float64", "float32"),
                        help="model precision (default: float64)")
    parser.add_argument("--threads", type=_positive(int), default=None,
                        help="torch CPU threads (default: torch's choice; 1 is often fastest "
                             "for small molecules)")


def read_frame(path: Path, frame: int):
    """Frame ``frame`` of a structure file (0: first, -1: last); one-line errors."""
    if not path.exists():
        raise FileNotFoundError(f"{path}: no such structure file")
    try:
        return ase.io.read(path, index=frame)
    except Exception as e:  # ase raises many types (IndexError, StopIteration, ...)
        try:
            count = len(ase.io.read(path, index=":"))
        except Exception:  # unreadable as a whole: report the first error
            count = None
        if count is not None and not -count <= frame < count:
            raise InputError(f"{path} has {count} frame(s), no frame {frame}; give --frame "
                             f"between {-count} and {count - 1}") from None
        raise InputError(f"{path}: cannot read a structure ({type(e).__name__}: {e}); give a "
                         f"file that ase.io.read reads (xyz, extxyz, cif, POSCAR, traj, ...)") from e


def load_structure_and_calculator(args: argparse.Namespace):
    """(atoms, calculator) from the parsed arguments; one-line errors name the file."""
    if getattr(args, "threads", None):
        torch.set_num_threads(args.threads)
    path = Path(args.structure)
    atoms = read_frame(path, args.frame)
    atoms.calc = None
    calc = TFPotCalculator(args.model, device=args.device, dtype=args.dtype)
    try:
        require_known_elements(calc.species, atoms.numbers)
    except UnknownElementError as e:
        raise UnknownElementError(f"{path}: {e}") from None
    atoms.calc = calc
    print(f"tfpot {getattr(args, 'command', None) or 'md'}: starting from frame {args.frame} of {path} ({len(atoms)} "
          f"atoms, {atoms.get_chemical_formula()})", flush=True)
    return atoms, calc


def first_evaluation(atoms, path: Path) -> None:
    """Evaluate once before a run, so that bad input (overlapping atoms, ...) fails at once with
    the file named, not in the middle of the run."""
    try:
        atoms.get_forces()
    except TfpotError:  # already one line that names the problem (e.g. non-finite output)
        raise
    except ValueError as e:
        raise InputError(f"{path}: {e}") from e


def _positive(kind):
    def parse(text: str):
        value = kind(text)
        if not value > 0:
            raise argparse.ArgumentTypeError(f"must be > 0 (got {text})")
        return value
    return parse


def _non_negative(text: str) -> float:
    value = float(text)
    if not value >= 0:
        raise argparse.ArgumentTypeError(f"must be >= 0 (got {text})")
    return value


# ---------------------------------------------------------------------------------------------
#: one standard atmosphere in GPa
ATM_GPA = 1.01325e-4


def make_dynamics(atoms, ensemble: str, timestep_fs: float, temperature_K: float,
                  friction_per_fs: float, seed: int, pressure_GPa: float = ATM_GPA,
                  taut_fs: float = 100.0, taup_fs: float = 1000.0):
    """An ASE dynamics object for ``ensemble`` (units: fs, K, 1/fs, GPa)."""
    dt = timestep_fs * units.fs
    if ensemble == "nve":
        return VelocityVerlet(atoms, dt)
    if ensemble == "langevin":
        return Langevin(atoms, dt, temperature_K=temperature_K, friction=friction_per_fs / units.fs,
                        rng=np.random.default_rng(seed), fixcm=False)
    if ensemble == "nvt-berendsen":
        return NVTBerendsen(atoms, dt, temperature_K=temperature_K, taut=taut_fs * units.fs)
    if ensemble == "npt":
        if not np.all(atoms.pbc):
            raise InputError(f"--ensemble npt needs a cell periodic in 3D (pbc="
                             f"{atoms.pbc.tolist()}); use nve, langevin or nvt-berendsen for a "
                             f"molecule")

        # compressibility of a typical solid, 0.01 / GPa (1e-6 / bar): with taup it sets the
        # barostat response
        return NPTBerendsen(atoms, dt, temperature_K=temperature_K,
                            pressure_au=pressure_GPa * units.GPa, taut=taut_fs * units.fs,
                            taup=taup_fs * units.fs, compressibility_au=0.01 / units.GPa)
    raise InputError(f"ensemble must be one of {ENSEMBLES} (got {ensemble!r})")


def init_velocities(atoms, temperature_K: float, seed: int) -> None:
    """Maxwell-Boltzmann momenta at ``temperature_K`` without centre-of-mass motion (and
    without rotation for molecules)."""
    if temperature_K <= 0:
        atoms.set_momenta(np.zeros((len(atoms), 3)))
        return
    rng = np.random.default_rng(seed)
    if hasattr(vd, "thermalize_momenta"):
        vd.thermalize_momenta(atoms, temperature_K, rng=rng)
    else:  # ase < 3.29
        vd.MaxwellBoltzmannDistribution(atoms, temperature_K=temperature_K, rng=rng)
    vd.Stationary(atoms)
    if not np.any(atoms.pbc):
        vd.ZeroRotation(atoms)


def energy_drift(times_ps: np.ndarray, total_energy: np.ndarray, n_atoms: int) -> float:
    """Slope of a least-squares line through E_total(t), per atom: eV / atom / ps."""
    if len(times_ps) < 2:
        return 0.0
    return float(np.polyfit(times_ps, total_energy, 1)[0]) / n_atoms


class ThermoLog:
    """Every MD step as a CSV row with units in the header: ``step``, ``time [ps]``,
    ``epot [eV]``, ``ekin [eV]``, ``etot [eV]``, ``temperature [K]`` (flushed as it goes)."""

    HEADER = ("step", "time [ps]", "epot [eV]", "ekin [eV]", "etot [eV]", "temperature [K]")

    def __init__(self, path: str):
        self.path = Path(path)
        if self.path.suffix.lower() != ".csv":
            raise InputError(f"--thermo {path}: give a .csv file name (the plot goes next to it "
                             f"as .png)")
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._file = open(self.path, "w", newline="")
        self._csv = csv.writer(self._file)
        self._csv.writerow(self.HEADER)

    def write(self, step: int, time_ps: float, epot: float, ekin: float, temp: float) -> None:
        self._csv.writerow([step, f"{time_ps:.6f}", repr(float(epot)), repr(float(ekin)),
                            repr(float(epot + ekin)), f"{temp:.4f}"])
        if step % 100 == 0:
            self._file.flush()

    def close(self) -> None:
        self._file.close()


class TrajectoryWriter:
    """Frames with energy, forces (and stress) to ``.traj`` (ASE) or extxyz (any other name)."""

    def __init__(self, path: str):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._traj = None
        if self.path.suffix == ".traj":
            self._traj = Trajectory(str(self.path), "w")
        elif self.path.exists():
            self.path.unlink()

    def write(self, atoms) -> None:
        if self._traj is not None:
            self._traj.write(atoms)
            return
        frame = atoms.copy()
        results = {k: atoms.calc.results[k] for k in ("energy", "forces", "stress")
                   if k in atoms.calc.results}
        frame.calc = SinglePointCalculator(frame, **results)
        ase.io.write(str(self.path), frame, format="extxyz", append=True)

    def close(self) -> None:
        if self._traj is not None:
            self._traj.close()


# ---------------------------------------------------------------------------------------------
def run_md(args: argparse.Namespace) -> int:
    atoms, calc = load_structure_and_calculator(args)
    init_velocities(atoms, args.temperature, args.seed)
    dyn = make_dynamics(atoms, args.ensemble, args.timestep, args.temperature, args.friction,
                        args.seed, pressure_GPa=args.pressure)
    first_evaluation(atoms, Path(args.structure))  # fail before the progress bar starts

    n = len(atoms)
    times: List[float] = []
    etot: List[float] = []
    temps: List[float] = []
    epots: List[float] = []
    writer = TrajectoryWriter(args.traj) if args.traj else None
    thermo = ThermoLog(args.thermo) if args.thermo else None
    bar = tqdm(total=args.steps, unit="step", disable=args.quiet, file=sys.stderr,
               dynamic_ncols=True)
    state = {"step": 0}
    guard = RunawayGuard(atoms.get_chemical_symbols(), max_force=args.max_force or None,
                         max_energy_change=(args.max_energy_change or None)
                         if args.ensemble == "nve" else None)

    def observe() -> None:
        step = state["step"]
        epot = atoms.get_potential_energy()  # cached: no extra evaluation
        ekin = atoms.get_kinetic_energy()
        temp = ekin / (1.5 * units.kB * n)
        times.append(step * args.timestep / 1000.0)
        etot.append(epot + ekin)
        temps.append(temp)
        epots.append(epot)
        if thermo is not None:
            thermo.write(step, times[-1], epot, ekin, temp)
        if step % args.log_every == 0:
            if writer is not None:
                writer.write(atoms)
            bar.set_postfix_str(f"Epot={epot:.4f} eV T={temp:.0f} K", refresh=False)
            if args.verbose:
                tqdm.write(f"step {step:8d}  t={times[-1]:9.4f} ps  Epot={epot:14.6f} eV  "
                           f"Ekin={ekin:10.6f} eV  Etot={epot + ekin:14.6f} eV  T={temp:8.1f} K",
                           file=sys.stderr)
        if step > 0:
            bar.update(1)
        state["step"] += 1

    dyn.attach(observe, interval=1)
    guard.watch(dyn)  # after observe: a stopped step is in the thermo log too
    t0 = time.perf_counter()
    try:
        dyn.run(args.steps)
    except MDRunawayError as e:
        bar.close()
        if writer is not None:  # the geometry it stopped at, for a look or for training
            writer.write(atoms)
        raise MDRunawayError(f"stopped: {e}") from None
    except ValueError as e:  # e.g. atoms overlapping during the run
        bar.close()
        raise TfpotError(f"stopped at step {state['step']}: {e}") from e
    finally:
        if writer is not None:
            writer.close()
        if thermo is not None:
            thermo.close()
    wall = time.perf_counter() - t0
    bar.close()

    t_arr, e_arr = np.asarray(times), np.asarray(etot)
    print(f"tfpot md: {args.ensemble}, {n} atoms, {args.steps} steps of {args.timestep} fs "
          f"({args.steps * args.timestep / 1000:.4g} ps) in {wall:.2f} s: "
          f"{args.steps / max(wall, 1e-12):.1f} steps/s, {n * args.steps / max(wall, 1e-12):.3g} "
          f"atom-steps/s; {calc.n_builds} neighbour-list builds")
    print(f"  temperature: mean {np.mean(temps):.1f} K, final {temps[-1]:.1f} K; final Epot "
          f"{atoms.get_potential_energy():.6f} eV")
    if args.ensemble == "nve":
        drift = energy_drift(t_arr, e_arr, n)
        excursion = float(np.abs(e_arr - e_arr[0]).max()) / n
        print(f"  energy drift: {drift:.3e} eV/atom/ps (max |Etot - Etot(0)| = "
              f"{excursion:.3e} eV/atom)")
    if args.traj:
        print(f"  trajectory: {args.traj} (every {args.log_every} steps)")
    if thermo is not None:
        png = md_trace(t_arr, np.asarray(epots), e_arr, np.asarray(temps), n, thermo.path.with_suffix(".png"),
                       f"tfpot md: {args.ensemble}, {n} atoms, frame {args.frame} of "
                       f"{args.structure}, {args.timestep} fs steps\nmodel: {args.model}")
        print(f"  energies and temperature: {thermo.path} (every step), plot {png}")
    return 0


def add_engine_parser(subparsers, name: str, help: str, doc: str) -> argparse.ArgumentParser:
    """A sub-command that runs a model on a structure in ASE (``md``, ``relax``): its parser,
    described by the module docstring ``doc`` (after its first paragraph), with the structure,
    model and device arguments (:func:`add_model_arguments`)."""
    p = subparsers.add_parser(name, help=help, description=doc.split("\n\n", 1)[1],
                              formatter_class=argparse.RawDescriptionHelpFormatter)
    add_model_arguments(p)
    return p


def register(subparsers) -> None:
    """Add ``tfpot md STRUCTURE MODEL [--ensemble ...] [--temperature K] [--steps N] ...``."""
    p = add_engine_parser(subparsers, "md", "molecular dynamics in ASE with a tfpot model", __doc__)
    p.add_argument("--ensemble", default="nve", choices=ENSEMBLES, help="default: nve")
    p.add_argument("--temperature", type=_non_negative, default=300.0,
                   help="initial-velocity and thermostat temperature, K (default: 300)")
    p.add_argument("--steps", type=_positive(int), default=1000, help="MD steps (default: 1000)")
    p.add_argument("--timestep", type=_positive(float), default=0.5, help="fs (default: 0.5)")
    p.add_argument("--friction", type=_positive(float), default=0.01,
                   help="Langevin friction, 1/fs (default: 0.01)")
    p.add_argument("--pressure", type=float, default=ATM_GPA,
                   help="npt pressure, GPa (default: 1 atm = 1.01325e-4 GPa)")
    p.add_argument("--max-force", type=_non_negative, default=DEFAULT_MAX_FORCE, metavar="EV_PER_A",
                   help="stop when a force exceeds this, eV/Å; 0: never (default: "
                        f"{DEFAULT_MAX_FORCE:g})")
    p.add_argument("--max-energy-change", type=_non_negative, default=DEFAULT_MAX_ENERGY_CHANGE,
                   metavar="EV_PER_ATOM",
                   help="nve: stop when the total energy moves this far from its start, "
                        f"eV/atom; 0: never (default: {DEFAULT_MAX_ENERGY_CHANGE:g})")
    p.add_argument("--traj", default=None,
                   help="write frames here: .traj (ASE trajectory) or extxyz (.xyz/.extxyz)")
    p.add_argument("--thermo", default=None, metavar="FILE.csv",
                   help="write step, time, energies and temperature of every step to FILE.csv "
                        "and plot them to FILE.png")
    p.add_argument("--log-every", type=_positive(int), default=10,
                   help="trajectory/log interval in steps (default: 10)")
    p.add_argument("--seed", type=int, default=0, help="velocity and Langevin seed (default: 0)")
    p.add_argument("--verbose", "-v", action="store_true", help="print a log line every --log-every steps")
    p.add_argument("--quiet", "-q", action="store_true", help="no progress bar")
    p.set_defaults(func=run_md)

