"""Speed and memory of one energy+forces call, per system and dtype (a benchmark, not a test).

Run: ``python benchmarks/bench_model.py [--preset medium] [--repeats 5] [--parity equivariant
average]``. Each row runs in its own process so that its peak resident memory (ru_maxrss) is its
own. Prints a markdown table. With several ``--parity`` modes, the rows of one system and dtype
run back to back and the last column is the time relative to the first mode.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time


def build_system(name: str):
    import numpy as np
    from ase.build import bulk, molecule

    if name == "molecule-21":
        benzene = molecule("C6H6")
        ethanol = molecule("CH3CH2OH")
        ethanol.positions += np.array([0.0, 0.0, 3.5])
        return benzene + ethanol  # 21 atoms, every pair within 5 Å
    if name == "cu-256":
        a = bulk("Cu", "fcc", a=3.61, cubic=True).repeat((4, 4, 4))
    elif name == "cu-4000":
        a = bulk("Cu", "fcc", a=3.61, cubic=True).repeat((10, 10, 10))
    else:
        raise ValueError(name)
    a.rattle(0.05, seed=0)  # thermal-like displacements
    return a


def run_row(system: str, dtype: str, preset: str, repeats: int, threads: int,
            parity: str = "equivariant") -> dict:
    import resource

    import numpy as np
    import torch

    import tfpot
    from tfpot.graph import atoms_to_graph

    torch.set_num_threads(threads)
    atoms = build_system(system)
    species = sorted(set(atoms.get_chemical_symbols()))
    model = tfpot.build_model(species, cutoff=5.0, preset=preset, dtype=dtype,
                              parity=parity).eval()
    t0 = time.perf_counter()
    graph = atoms_to_graph(atoms, model.cutoff)
    t_graph = time.perf_counter() - t0
    times = []
    for k in range(repeats + 1):
        t0 = time.perf_counter()
        out = model(graph, True, False)
        out["forces"].sum().item()
        if k > 0:  # first call warms up allocators
            times.append(time.perf_counter() - t0)
    return {
        "system": system, "atoms": len(atoms), "edges": int(graph["edge_index"].shape[1]),
        "dtype": dtype, "parity": parity, "ms_model": 1e3 * float(np.median(times)), "ms_graph": 1e3 * t_graph,
        "peak_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0,
    }


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--preset", default="medium")
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--threads", type=int, default=os.cpu_count() or 1)
    p.add_argument("--systems", nargs="+", default=["molecule-21", "cu-256", "cu-4000"])
    p.add_argument("--parity", nargs="+", default=["equivariant"],
                   help="parity modes to compare (equivariant, none; average only before tfpot 0.4)")
    p.add_argument("--row", help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.row:
        system, dtype, parity = args.row.split(":")
        print(json.dumps(run_row(system, dtype, args.preset, args.repeats, args.threads, parity)))
        return
    import torch

    print(f"tfpot model benchmark: preset={args.preset}, torch {torch.__version__}, "
          f"{args.threads} threads, median of {args.repeats} calls (energy + forces)\n")
    print(f"| system | atoms | edges | dtype | parity | ms/call | µs/atom | graph build ms | "
          f"peak RSS MB | time / {args.parity[0]} |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    for system in args.systems:
        for dtype in ("float32", "float64"):
            first = None
            for parity in args.parity:
                res = subprocess.run([sys.executable, __file__, "--row",
                                      f"{system}:{dtype}:{parity}", "--preset", args.preset,
                                      "--repeats", str(args.repeats), "--threads",
                                      str(args.threads)], capture_output=True, text=True)
                if res.returncode != 0:
                    print(f"| {system} | - | - | {dtype} | {parity} | failed: "
                          f"{res.stderr.strip().splitlines()[-1]} |")
                    continue
                r = json.loads(res.stdout.strip().splitlines()[-1])
                first = r["ms_model"] if first is None else first
                print(f"| {r['system']} | {r['atoms']} | {r['edges']} | {r['dtype']} | {parity} | "
                      f"{r['ms_model']:.1f} | {1e3 * r['ms_model'] / r['atoms']:.1f} | "
                      f"{r['ms_graph']:.1f} | {r['peak_mb']:.0f} | "
                      f"{r['ms_model'] / first:.2f} |", flush=True)


if __name__ == "__main__":
    main()
