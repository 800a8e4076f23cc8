"""Speed cost of the radial filter: one energy+forces call of the small model without it, with
it, and with it and 16 radial functions (the aspirin budget model), interleaved in one process.

Run: ``python benchmarks/bench_radial_filter.py [--rounds 7] [--calls 5]``. Untrained models
(speed does not depend on the weights), 1 thread, median over rounds of the mean of ``--calls``
calls after 2 warm-up calls; prints a markdown table with each time relative to the first model.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))

import tfpot  # noqa: E402
from bench_model import build_system  # noqa: E402
from tfpot.inference import atoms_to_graph  # noqa: E402

VARIANTS = {"small (default, no filter)": dict(radial_filter="none"),
            "small + radial filter": dict(radial_filter="tanh"),
            "small + radial filter + 16 radial": dict(radial_filter="tanh", num_basis=16)}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--rounds", type=int, default=7)
    p.add_argument("--calls", type=int, default=5)
    p.add_argument("--systems", nargs="+", default=["molecule-21", "cu-256"])
    args = p.parse_args()
    torch.set_num_threads(1)
    print("| system | dtype | model | ms per call | vs first |")
    print("|---|---|---|---|---|")
    for dtype in ("float32", "float64"):
        for system in args.systems:
            atoms = build_system(system)
            species = sorted(set(atoms.get_chemical_symbols()))
            models = {k: tfpot.build_model(species, cutoff=5.0, preset="small", dtype=dtype,
                                           seed=0, **v).eval() for k, v in VARIANTS.items()}
            graph = atoms_to_graph(atoms, 5.0)
            times = {k: [] for k in models}
            for _ in range(args.rounds):
                for name, model in models.items():
                    for _ in range(2):
                        model(dict(graph))
                    t0 = time.perf_counter()
                    for _ in range(args.calls):
                        model(dict(graph))
                    times[name].append((time.perf_counter() - t0) / args.calls)
            first = statistics.median(next(iter(times.values())))
            for name, t in times.items():
                m = statistics.median(t)
                print(f"| {system} | {dtype} | {name} | {1e3 * m:.2f} | {m / first:.2f}x |",
                      flush=True)


if __name__ == "__main__":
    main()
