"""MD speed through the ASE calculator: steps/s and atom-steps/s (a benchmark, not a test).

    python benchmarks/bench_md.py [--preset medium] [--cutoff 5.0] [--threads 2]
                                  [--molecule-steps 200] [--cell-steps 5] [--device cpu]

Systems: the bundled demo molecule (ethanol, 9 atoms; H/C/O model) and a periodic fcc Cu cell of
6x6x7 conventional cells (1008 atoms; Cu model), each in float32 and float64. Velocity-Verlet
steps at 300 K after two warm-up steps, through :class:`TFPotCalculator` with its default skin
(0.5 Å). Models are freshly initialised (speed does not depend on the weights; the molecule is
restarted every ``--segment`` steps since an untrained model does not bind it). The table also
gives the share of the step spent inside the model's forward/backward: the rest is the
calculator (neighbour list, checks, conversions) and ASE. Prints a markdown table.
"""

from __future__ import annotations

import argparse
import time
from typing import Dict, List

import numpy as np
import torch
from ase import units
from ase.build import bulk
from ase.md.verlet import VelocityVerlet

import tfpot
from tfpot.calculators import TFPotCalculator
from tfpot.calculators.md_cli import init_velocities
from tfpot.data import demo_dataset_path, read_structures


class _TimedModel(torch.nn.Module):
    """Wraps the calculator's model and accumulates the wall time of its calls."""

    def __init__(self, model: torch.nn.Module, device: torch.device):
        super().__init__()
        self.inner = model
        self.seconds = 0.0
        self.cuda = device.type == "cuda"

    def forward(self, *args):
        if self.cuda:
            torch.cuda.synchronize()
        t0 = time.perf_counter()
        out = self.inner(*args)
        if self.cuda:
            torch.cuda.synchronize()
        self.seconds += time.perf_counter() - t0
        return out


def systems():
    eth = read_structures(demo_dataset_path())[0]
    eth.calc = None
    cu = bulk("Cu", "fcc", a=3.61, cubic=True).repeat((6, 6, 7))
    cu.rattle(0.05, seed=0)
    return [("ethanol (demo)", eth, ["H", "C", "O"]), ("Cu fcc 6x6x7", cu, ["Cu"])]


def run(atoms, species, dtype: str, steps: int, args) -> Dict[str, float]:
    model = tfpot.build_model(species, cutoff=args.cutoff, preset=args.preset, seed=0)
    calc = TFPotCalculator(model, device=args.device, dtype=dtype)
    timed = _TimedModel(calc.model, calc.device)
    calc.model = timed
    atoms = atoms.copy()
    atoms.calc = calc
    init_velocities(atoms, 300.0, seed=0)
    start_pos, start_mom = atoms.get_positions(), atoms.get_momenta()
    dyn = VelocityVerlet(atoms, 1.0 * units.fs)
    dyn.run(2)  # warm-up (first neighbour list, allocator)
    timed.seconds, builds0 = 0.0, calc.n_builds
    # An untrained model barely holds a molecule together: restart from the initial state every
    # `segment` steps so that the neighbour count stays that of the real molecule (the restart
    # forces a list rebuild, about as often as thermal motion does in a bound molecule).
    segment = args.segment if len(atoms) < 100 else steps
    wall, done, edges = 0.0, 0, []
    while done < steps:
        atoms.set_positions(start_pos)
        atoms.set_momenta(start_mom)
        n = min(segment, steps - done)
        t0 = time.perf_counter()
        dyn.run(n)
        wall += time.perf_counter() - t0
        done += n
        edges.append(int(calc.graph(atoms)["edge_index"].shape[1]))
    edges = int(round(float(np.mean(edges))))
    return {"atoms": len(atoms), "edges": edges, "steps": steps, "s_per_step": wall / steps,
            "steps_per_s": steps / wall, "atom_steps_per_s": len(atoms) * steps / wall,
            "model_share": timed.seconds / wall, "builds": calc.n_builds - builds0}


def main(argv: List[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--preset", default="medium", help="model preset (default: medium)")
    p.add_argument("--cutoff", type=float, default=5.0, help="Å (default: 5.0)")
    p.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's)")
    p.add_argument("--molecule-steps", type=int, default=200)
    p.add_argument("--cell-steps", type=int, default=5)
    p.add_argument("--segment", type=int, default=20,
                   help="molecule: restart from the initial state every N steps (default: 20)")
    p.add_argument("--device", default="cpu")
    p.add_argument("--dtypes", default="float32,float64")
    args = p.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)

    print(f"tfpot MD speed: preset {args.preset}, cutoff {args.cutoff} Å, device {args.device}, "
          f"{torch.get_num_threads()} torch threads, velocity Verlet 1 fs, skin 0.5 Å\n")
    print("| system | atoms | edges | dtype | steps | s/step | steps/s | atom-steps/s | model share | list builds |")
    print("|---|---:|---:|---|---:|---:|---:|---:|---:|---:|")
    for name, atoms, species in systems():
        steps = args.molecule_steps if len(atoms) < 100 else args.cell_steps
        for dtype in args.dtypes.split(","):
            r = run(atoms, species, dtype, steps, args)
            print(f"| {name} | {r['atoms']} | {r['edges']} | {dtype} | {r['steps']} | "
                  f"{r['s_per_step']:.4f} | {r['steps_per_s']:.2f} | {r['atom_steps_per_s']:.0f} | "
                  f"{100 * r['model_share']:.0f} % | {r['builds']} |", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
