"""Cost of the weighted frame ensemble: one energy+forces call and one EMT training step of the
small model without it, with the ordered ensemble (tfpot 0.12) and with the bisector ensemble
over unordered pairs (tfpot 0.13), interleaved in one process.

Run: ``python benchmarks/bench_ensemble_cost.py [--rounds 2] [--cells 80]``. Untrained models
(speed does not depend on the weights), small preset, lmax 6, float32. Call: a rattled 256-atom
fcc Cu cell, ``--call-threads`` threads (default 2), best of 5 ``tfpot.predict`` calls after one
warm-up call. Step: ``tfpot.training.fit`` for two epochs on ``--cells`` EMT Cu/Ni/Al cells
(``emt_alloy.py``, 32 atoms, batch 4, forces and stress in the loss, 1 thread); the second epoch's
time per step from its ``timing.csv``. Each round runs every variant once; the table gives the
best round of each (ms) and its ratio to the model without the ensemble.
"""

from __future__ import annotations

import argparse
import csv
import sys
import tempfile
import time
from pathlib import Path
from typing import Dict, List

import numpy as np
import torch
from ase import Atoms
from ase.build import bulk

sys.path.insert(0, str(Path(__file__).resolve().parent))

import tfpot  # noqa: E402
from emt_alloy import emt_splits  # noqa: E402
from tfpot.training import fit  # noqa: E402

VARIANTS = {
    "none": {},
    "ordered, 8 channels": {"ensemble_channels": 8},
    "unordered (bisector), 8": {"ensemble_channels": 8, "ensemble_pairs": "unordered"},
    "unordered (bisector), 4": {"ensemble_channels": 4, "ensemble_pairs": "unordered"},
}
SPECIES = ["Al", "Cu", "Ni"]


def call_ms(model: torch.nn.Module, atoms: Atoms, threads: int) -> float:
    """Best of 5 energy+forces calls after a warm-up call, ms."""
    torch.set_num_threads(threads)
    tfpot.predict(model, atoms, stress=False)
    times = []
    for _ in range(5):
        t = time.perf_counter()
        tfpot.predict(model, atoms, stress=False)
        times.append(time.perf_counter() - t)
    return 1e3 * min(times)


def step_ms(model: torch.nn.Module, cells: List[Atoms]) -> float:
    """ms per training step of the second of two epochs (batch 4, 1 thread)."""
    torch.set_num_threads(1)
    with tempfile.TemporaryDirectory() as out:
        fit(model, cells, None, epochs=2, batch_size=4, lr=1e-2, forces_weight=100,
            stress_weight=100, out_dir=out)
        with open(Path(out) / "timing.csv") as f:
            rows = list(csv.DictReader(f))
    steps = int(rows[1]["step"]) - int(rows[0]["step"])
    return 1e3 * float(rows[1]["epoch_time [s]"]) / steps


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--rounds", type=int, default=2)
    p.add_argument("--cells", type=int, default=80, help="EMT training cells per epoch")
    p.add_argument("--call-threads", type=int, default=2)
    args = p.parse_args()
    train, _, _ = emt_splits()
    for a in train:  # fit reads labels from the calculator: compute them once, here
        a.get_potential_energy(), a.get_forces(), a.get_stress()
    cells = train[:args.cells]
    cu = bulk("Cu", "fcc", a=3.61, cubic=True).repeat((4, 4, 4))
    cu.positions += np.random.default_rng(0).normal(scale=0.05, size=cu.positions.shape)
    best: Dict[str, List[float]] = {k: [float("inf"), float("inf")] for k in VARIANTS}
    for _ in range(args.rounds):
        for name, hyper in VARIANTS.items():
            model = tfpot.build_model(SPECIES, cutoff=5.0, preset="small", dtype="float32",
                                      lmax=6, seed=0, **hyper)
            best[name][0] = min(best[name][0], call_ms(model, cu, args.call_threads))
            best[name][1] = min(best[name][1], step_ms(model, cells))
    base_call, base_step = best["none"]
    print(f"| ensemble | call ms (256 Cu, {args.call_threads} threads) | vs none | "
          f"training step ms (batch 4 x 32 atoms, 1 thread) | vs none |")
    print("|---|---|---|---|---|")
    for name, (c, s) in best.items():
        print(f"| {name} | {c:.1f} | {c / base_call:.2f}x | {s:.1f} | {s / base_step:.2f}x |")


if __name__ == "__main__":
    main()
