"""Time per energy+forces call of the small model with and without the frame ensemble, as the
ASE calculator runs it (TorchScript, unoptimised execution), on the systems of
``bench_vs_mace.py``.

Run: ``python benchmarks/bench_ensemble_call.py [--systems molecule-21 cu-256] [--rounds 3]
[--threads 1] [--dtype float32]``. Untrained models (speed does not depend on the weights), small
preset, lmax 6, 4 channels where there is an ensemble. Per system every variant is timed in
each round (median of ``--repeats`` calls after ``--warmup``), the variants interleaved; the
table gives each round's median (ms) and the best round's ratio to the model without the
ensemble. Run it with two checkouts one after the other to compare code versions.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import Dict, List

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))

import tfpot  # noqa: E402
from bench_model import build_system  # noqa: E402
from tfpot.calculators import TFPotCalculator  # noqa: E402
from tfpot.graph import atoms_to_graph  # noqa: E402

VARIANTS = {
    "none": {},
    "bisector 4": {"ensemble_channels": 4, "ensemble_pairs": "unordered"},
    "bisector 4, max angle 110": {"ensemble_channels": 4, "ensemble_pairs": "unordered",
                                  "ensemble_max_angle": 110.0},
    "ordered 4": {"ensemble_channels": 4},
}


def time_calls(calc: TFPotCalculator, graph: Dict[str, torch.Tensor], warmup: int,
               repeats: int) -> float:
    """Median ms of ``repeats`` energy+forces calls after ``warmup`` untimed ones."""
    times = []
    for k in range(warmup + repeats):
        t0 = time.perf_counter()
        calc.evaluate(graph)["forces"].sum().item()
        if k >= warmup:
            times.append(time.perf_counter() - t0)
    return 1e3 * float(np.median(times))


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--systems", nargs="+", default=["molecule-21", "cu-256"])
    p.add_argument("--dtype", default="float32", choices=("float32", "float64"))
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--warmup", type=int, default=10)
    p.add_argument("--repeats", type=int, default=30)
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    print(f"tfpot {tfpot.__version__} ({Path(tfpot.__file__).parent}), {args.dtype}, "
          f"{args.threads} thread(s), median of {args.repeats} calls after {args.warmup}, "
          f"{args.rounds} rounds\n")
    print("| system | ensemble | ms per call (each round) | best vs none |")
    print("|---|---|---|---|")
    for system in args.systems:
        atoms = build_system(system)
        species = sorted(set(atoms.get_chemical_symbols()))
        calcs = {}
        for name, hyper in VARIANTS.items():
            model = tfpot.build_model(species, cutoff=5.0, preset="small", dtype=args.dtype,
                                      seed=0, lmax=6, **hyper).eval()
            calcs[name] = (TFPotCalculator(model, dtype=args.dtype),
                           atoms_to_graph(atoms, model.cutoff))
        rounds: Dict[str, List[float]] = {name: [] for name in VARIANTS}
        for _ in range(args.rounds):
            for name, (calc, graph) in calcs.items():
                rounds[name].append(time_calls(calc, graph, args.warmup, args.repeats))
        for name, ms in rounds.items():
            ratio = min(ms) / min(rounds["none"])
            print(f"| {system} | {name} | {' / '.join(f'{x:.2f}' for x in ms)} | {ratio:.2f}x |")


if __name__ == "__main__":
    main()
