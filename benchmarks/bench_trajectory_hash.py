"""Is a training run the same on two set-ups? Train the aspirin budget recipe briefly, print a hash.

Run (tfpot's venv; the split files of ``bench_accuracy_vs_mace.py``, its ``--out`` directory)::

    python benchmarks/bench_trajectory_hash.py --split /tmp/acc_vs_mace [--frames 200]
        [--epochs 2] [--seed 0]

It builds the budget model (small, 16 radial functions, ``radial_filter: tanh``, ``lmax: 6``,
``ps_channels: 12``, float32), trains it with the recipe of ``bench_accuracy_vs_mace.py`` (lr
1e-2, cosine, batch 4, E/F weights 1/100, weight decay 0.01, frame noise 0.1 rad, EMA 0.99)
on the first ``--frames`` training frames for a fixed number of epochs, one thread, and prints
one JSON line: the versions of the packages a run can depend on, the CPU, and SHA-256 prefixes
of the weights before and after. Two set-ups with the same ``trained`` hash run the same
trajectory bit for bit; different hashes mean a 50-minute run there is another sample of the
recipe (float32 rounding differences grow over tens of thousands of steps). Kernels can be held
to an older instruction set for a comparison with
``ATEN_CPU_CAPABILITY=avx2 MKL_ENABLE_INSTRUCTIONS=AVX2 ONEDNN_MAX_CPU_ISA=AVX2``.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import tempfile
from pathlib import Path

import torch

import tfpot
from tfpot.training import fit

from bench_accuracy_vs_mace import TFPOT_BUDGET_HYPER, environment, read_labelled


def weights_hash(model: torch.nn.Module) -> str:
    """First 16 hex digits of the SHA-256 of every parameter's bytes, in order."""
    digest = hashlib.sha256()
    for p in model.parameters():
        digest.update(p.detach().cpu().numpy().tobytes())
    return digest.hexdigest()[:16]


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--split", required=True,
                   help="directory with train.extxyz and valid.extxyz (bench_accuracy_vs_mace.py)")
    p.add_argument("--frames", type=int, default=200, help="training frames used")
    p.add_argument("--epochs", type=int, default=2)
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args()
    torch.set_num_threads(1)
    split = Path(args.split)
    for name in ("train.extxyz", "valid.extxyz"):
        if not (split / name).exists():
            raise SystemExit(f"{split / name} not found: run bench_accuracy_vs_mace.py with "
                             f"--out {split} first (it writes the split files)")
    train = read_labelled(str(split / "train.extxyz"))[:args.frames]
    val = read_labelled(str(split / "valid.extxyz"))
    species = sorted(set(z for a in train for z in a.get_chemical_symbols()))
    model = tfpot.build_model(species, cutoff=5.0, preset="small", dtype="float32",
                              seed=args.seed, **json.loads(TFPOT_BUDGET_HYPER))
    before = weights_hash(model)
    with tempfile.TemporaryDirectory() as out:
        model = fit(model, train, val, epochs=args.epochs, batch_size=4, lr=1e-2,
                    energy_weight=1.0, forces_weight=100.0, seed=args.seed, weight_decay=0.01,
                    frame_noise=0.1, out_dir=out, ema_decay=0.99, schedule="cosine")
    print(json.dumps({"init": before, "trained": weights_hash(model), "epochs": args.epochs,
                      "frames": len(train), "seed": args.seed, **environment()}))


if __name__ == "__main__":
    main()
