"""How often frames are usable, and how much energy the frame path carries.

Run: ``python benchmarks/bench_gates.py [--model best_model.pt] [--data frames.npz]``.
Rows: molecular MD frames (the bundled GFN2-xTB ethanol set, or --data) with the given trained
model (or a fresh one), symmetric molecules, and fcc Cu at increasing thermal displacement
(fresh Cu model). Prints a markdown table.
"""

from __future__ import annotations

import argparse

import numpy as np
from ase.build import bulk, molecule

import tfpot
from tfpot.diagnostics import gate_statistics


def thermal_cu(rms: float, seed: int = 0):
    a = bulk("Cu", "fcc", a=3.61, cubic=True).repeat((3, 3, 3))
    rng = np.random.default_rng(seed)
    a.positions += rng.normal(scale=rms / np.sqrt(3.0), size=a.positions.shape)
    return a


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--model", help="trained model file for the molecular rows")
    p.add_argument("--data", help="structures for the molecular row (default: bundled demo data)")
    p.add_argument("--frames", type=int, default=50)
    args = p.parse_args()
    from tfpot.data import demo_dataset_path, read_structures

    frames = read_structures(args.data or demo_dataset_path())[: args.frames]
    species = sorted(set(s for a in frames for s in a.get_chemical_symbols()))
    model = tfpot.load_model(args.model) if args.model else tfpot.build_model(species)
    label = "trained" if args.model else "untrained"
    rows = [(f"MD frames ({len(frames)}, {label})", model, frames)]
    from ase.data import chemical_symbols

    known = {chemical_symbols[z] for z in model.species}
    sym = [m for m in (molecule("CH4"), molecule("CO2"), molecule("C6H6"), molecule("H2O"))
           if set(m.get_chemical_symbols()) <= known]
    if sym:
        rows.append(("symmetric molecules (CH4, CO2, C6H6, H2O)", model, sym))
    cu_model = tfpot.build_model(["Cu"])
    for rms in (0.0, 0.05, 0.1, 0.2):
        rows.append((f"fcc Cu 3x3x3, rms displacement {rms} Å (untrained)", cu_model,
                     [thermal_cu(rms, s) for s in range(3)]))
    print("| structures | atoms | g = 0 | 0 < g < 1 | g = 1 | mean |E - E(gates closed)| per atom, eV |")
    print("|---|---|---|---|---|---|")
    for name, m, structs in rows:
        st = gate_statistics(m, structs)
        print(f"| {name} | {int(st['atoms'])} | {st['fraction_closed']:.2f} | "
              f"{st['fraction_partial']:.2f} | {st['fraction_open']:.2f} | "
              f"{st['frame_energy_per_atom_eV']:.2e} |", flush=True)


if __name__ == "__main__":
    main()
