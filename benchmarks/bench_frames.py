"""What the tensor frames carry: ablation at equal training, and where the frames are used.

Run (tfpot's venv)::

    python benchmarks/bench_frames.py --data /tmp/aspirin_xtb [--epochs 20] [--seeds 0 1]
        [--materials] [--variants frames frame-free gates-low] [--threads 1]
        [--lr 1e-2] [--batch-size 4] [--hyper '{"num_basis": 16}']

For each data set and each variant it trains the small preset for the same number of epochs
(equal epochs, not equal wall time, so that load from other jobs does not change the result;
the wall seconds are printed for reference) and reports on held-out frames:

* test force and energy MAE of the trained model;
* the same weights with the frame path off at inference ("frame path off": every gate forced shut
  and the frame ensemble, if any, removed): how much the trained model leans on its frame path;
* gate statistics: the share of atoms with closed (g = 0), partial and open (g = 1) gates, and
  the mean |E - E(frame path off)| per atom;
* the share of edges whose three frame weights ``tanh(logit)`` are saturated (|w| > 0.99): 1.00
  means training turned the learned frames into a fixed geometric construction.

Variants (``--variants``):

* ``frames``: the default model (``gate_range`` (0.05, 0.3)).
* ``frame-free``: the ablation, trained with every gate shut (``gate_range`` (1e6, 2e6)): an
  invariant power-spectrum + scalar message-passing model with the same weights count.
* ``gates-low``: gates that open at a tenth of the default thresholds (0.005, 0.03).
* ``ensemble``: the default model plus the weighted pair-frame ensemble (``ensemble_channels``
  16, inner cutoff 3.4 Å), whose frames exist at symmetric sites too.

Data: ``--data DIR`` with ``rmd17_aspirin_gfn2.npz`` and ``splits/`` from
``scripts/make_aspirin_xtb.py`` (train = the first ``--train`` training indices, validation the
next ``--val``, test the first ``--test`` test indices). ``--materials``: an EMT Cu/Ni/Al set made
here (32-atom fcc cells, random composition, strained by up to 3 %, rattled 0.1 Å; energies,
forces and stress), 240 / 30 / 30.

``--aspirin-model FILE`` / ``--materials-model FILE``: evaluate a model trained elsewhere (e.g.
by ``bench_accuracy_vs_mace.py``) in place of training the variants on that set.

After the training rows, a frame-usage table for the trained default models on symmetric and
thermal structures: CH4, benzene (aspirin model), perfect and thermal fcc Cu alloy and pure fcc Cu
(EMT model).
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path
from typing import Dict, List, Optional, Sequence

import numpy as np
import torch
from ase import Atoms
from ase.build import bulk, molecule

import tfpot
from tfpot.data import read_structures
from tfpot.data.md17 import read_rmd17_split
from tfpot.diagnostics import (ensemble_free_model, frame_free_model, frame_weight_saturation,
                               gate_statistics)
from tfpot.training import fit

from emt_alloy import emt_splits

VARIANTS: Dict[str, Dict[str, object]] = {
    "frames": {},
    "frame-free": {"gate_range": (1e6, 2e6)},
    "gates-low": {"gate_range": (0.005, 0.03)},
    "ensemble": {"ensemble_channels": 16},
}
SHUT = (1e6, 2e6)


def aspirin_splits(data: Path, n_train: int, n_val: int, n_test: int):
    npz = next(data.glob("*.npz"))
    train_idx = read_rmd17_split(data / "splits" / "index_train_01.csv")
    test_idx = read_rmd17_split(data / "splits" / "index_test_01.csv")
    frames = read_structures(npz)
    pick = lambda idx: [frames[i] for i in idx]  # noqa: E731
    return (pick(train_idx[:n_train]), pick(train_idx[n_train:n_train + n_val]),
            pick(test_idx[:n_test]))


def errors(model, frames: Sequence[Atoms]) -> Dict[str, float]:
    """Force MAE (meV/Å) and energy MAE (meV/atom) of a model on labelled frames."""
    f_err, e_err = [], []
    for a in frames:
        out = tfpot.predict(model, a, stress=False)
        f_err.append(np.abs(out["forces"] - a.get_forces()).ravel())
        e_err.append(abs(out["energy"] - a.get_potential_energy()) / len(a))
    return {"force_mae": 1e3 * float(np.mean(np.concatenate(f_err))),
            "energy_mae": 1e3 * float(np.mean(e_err))}


def train_variant(name: str, train, val, species, seed: int, epochs: int, stress: bool,
                  threads: int, lr: float = 1e-2, batch_size: int = 4,
                  hyper: Optional[Dict[str, object]] = None):
    torch.set_num_threads(threads)
    model = tfpot.build_model(species, cutoff=5.0, preset="small", dtype="float64", seed=seed,
                              **{**(hyper or {}), **VARIANTS[name]})
    t0 = time.perf_counter()
    model = fit(model, train, val, epochs=epochs, batch_size=batch_size, lr=lr, energy_weight=1.0,
                forces_weight=100.0, stress_weight=(1.0 if stress else 0.0), seed=seed,
                schedule="cosine", ema_decay=0.99)
    return model, time.perf_counter() - t0


def main(argv: List[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data", help="aspirin directory from scripts/make_aspirin_xtb.py")
    p.add_argument("--materials", action="store_true", help="also the EMT Cu/Ni/Al set")
    p.add_argument("--train", type=int, default=950)
    p.add_argument("--val", type=int, default=50)
    p.add_argument("--test", type=int, default=200)
    p.add_argument("--epochs", type=int, default=20)
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1])
    p.add_argument("--variants", nargs="+", default=list(VARIANTS), choices=list(VARIANTS))
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--lr", type=float, default=1e-2, help="peak learning rate (cosine to 1e-6)")
    p.add_argument("--batch-size", type=int, default=4)
    p.add_argument("--hyper", default="{}", help="JSON of hyperparameters on top of the small "
                                                 "preset, e.g. '{\"num_basis\": 16}' (a "
                                                 "variant's gate_range wins)")
    p.add_argument("--aspirin-model", help="a trained model file (e.g. bench_accuracy_vs_mace.py's "
                                           "OUT/tfpot/best_model.pt): ablate it instead of training")
    p.add_argument("--materials-model", help="the same for the EMT set")
    args = p.parse_args(argv)
    given = {"aspirin": args.aspirin_model, "EMT Cu/Ni/Al": args.materials_model}

    sets = []
    if args.data:
        sets.append(("aspirin", aspirin_splits(Path(args.data), args.train, args.val, args.test),
                     False))
    if args.materials:
        sets.append(("EMT Cu/Ni/Al", emt_splits(), True))
    if not sets:
        p.error("give --data DIR and/or --materials")

    trained = {}
    print(f"| data | variant | seed | epochs | wall s | test force MAE meV/Å | energy meV/atom "
          f"| force MAE, frame path off | g = 0 | 0 < g < 1 | g = 1 "
          f"| mean abs(E - E off) meV/atom "
          f"| saturated frame weights | force MAE without the ensemble |")
    print("|---|---|---|---|---|---|---|---|---|---|---|---|---|---|")
    for data_name, (train, val, test), stress in sets:
        species = sorted({s for a in train for s in a.get_chemical_symbols()})
        for name in (["frames"] if given[data_name] else args.variants):
            for seed in (args.seeds[:1] if given[data_name] else args.seeds):
                if given[data_name]:
                    model, wall = tfpot.load_model(given[data_name], dtype="float64"), float("nan")
                else:
                    model, wall = train_variant(name, train, val, species, seed, args.epochs,
                                                stress, args.threads, args.lr, args.batch_size,
                                                json.loads(args.hyper))
                trained[(data_name, name, seed)] = model
                err = errors(model, test)
                shut = errors(frame_free_model(model), test)
                st = gate_statistics(model, test[:50])
                sat = frame_weight_saturation(model, test[:20])
                no_ens = (f"{errors(ensemble_free_model(model), test)['force_mae']:.1f}"
                          if model.frame_ensemble is not None else "-")
                epochs = "given" if given[data_name] else args.epochs
                print(f"| {data_name} | {name} | {seed} | {epochs} | {wall:.0f} | "
                      f"{err['force_mae']:.1f} | {err['energy_mae']:.2f} | {shut['force_mae']:.1f} | "
                      f"{st['fraction_closed']:.2f} | {st['fraction_partial']:.2f} | "
                      f"{st['fraction_open']:.2f} | {1e3 * st['frame_energy_per_atom_eV']:.2f} | "
                      f"{' / '.join(f'{x:.2f}' for x in sat)} | {no_ens} |", flush=True)

    print("\nFrame usage of the trained default models (seed %d):\n" % args.seeds[0])
    print("| structures | atoms | g = 0 | 0 < g < 1 | g = 1 | mean abs(E - E off) meV/atom "
          "| mean abs(E - E without the ensemble) meV/atom |")
    print("|---|---|---|---|---|---|---|")
    rng = np.random.default_rng(0)
    rows = []
    if ("aspirin", "frames", args.seeds[0]) in trained:
        m = trained[("aspirin", "frames", args.seeds[0])]
        rows += [("CH4", m, [molecule("CH4")]), ("benzene", m, [molecule("C6H6")])]
    if ("EMT Cu/Ni/Al", "frames", args.seeds[0]) in trained:
        m = trained[("EMT Cu/Ni/Al", "frames", args.seeds[0])]
        for rms in (0.0, 0.05, 0.1):
            cells = []
            for _ in range(3):
                a = bulk("Cu", "fcc", a=3.6, cubic=True).repeat((2, 2, 2))
                a.set_chemical_symbols(rng.choice(["Cu", "Ni", "Al"], size=len(a), p=[0.5, 0.3, 0.2]))
                a.positions += rng.normal(scale=rms / np.sqrt(3.0), size=a.positions.shape)
                cells.append(a)
            rows.append((f"fcc Cu/Ni/Al, rms displacement {rms} Å", m, cells))
        for rms in (0.0, 0.05, 0.1):  # one element: only the displacements break the symmetry
            cells = []
            for _ in range(3):
                a = bulk("Cu", "fcc", a=3.6, cubic=True).repeat((2, 2, 2))
                a.positions += rng.normal(scale=rms / np.sqrt(3.0), size=a.positions.shape)
                cells.append(a)
            rows.append((f"fcc Cu (one element), rms displacement {rms} Å", m, cells))
    for name, m, structs in rows:
        st = gate_statistics(m, structs)
        print(f"| {name} | {int(st['atoms'])} | {st['fraction_closed']:.2f} | "
              f"{st['fraction_partial']:.2f} | {st['fraction_open']:.2f} | "
              f"{1e3 * st['frame_energy_per_atom_eV']:.2f} | "
              f"{1e3 * st['ensemble_energy_per_atom_eV']:.2f} |", flush=True)


if __name__ == "__main__":
    main()
