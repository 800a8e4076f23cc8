"""``tfpot eval MODEL DATA``: error metrics of a model on labelled structures, with plots.

Prints a table (energy MAE/RMSE per atom and total, force MAE/RMSE per component, stress where
the data has it) and, with ``-o DIR``, writes ``metrics.json``, ``predictions.npz`` and PNG plots
(matplotlib, Agg backend): ``energy_parity.png`` (per atom), ``forces_parity.png``,
``force_error_hist.png`` (distribution of the per-component force error) and
``stress_parity.png``.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Dict, Optional

import numpy as np
import torch

from tfpot.builder import load_model
from tfpot.data import iter_structures
from tfpot.data.check import LABELS, DataCheck
from tfpot.data.errors import DataFormatError
from tfpot.training.data import atoms_set, resolve_path
from tfpot.training.distributed import DistContext
from tfpot.training.guard import NonFiniteError, frame_list
from tfpot.training.metrics import evaluate, format_metrics


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "eval", help="metrics and parity plots of a model on a data file",
        description="Error metrics of a model on labelled structures, with parity plots.",
        epilog=__doc__.split("\n\n", 1)[1].replace("``", ""),
        formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("model", help="model file (best_model.pt / final_model.pt)")
    p.add_argument("data", help="labelled structures (any format tfpot.data reads; 'tfpot:demo')")
    p.add_argument("--format", default=None, help="data format (default: detected)")
    p.add_argument("--target", default=None, help="QM9 property used as the energy (default U0)")
    p.add_argument("-o", "--output", default=None, help="directory for metrics.json and plots")
    p.add_argument("--batch-size", type=int, default=16)
    p.add_argument("--device", default="cpu", help="cpu, cuda or cuda:N")
    p.add_argument("--dtype", default=None, choices=("float32", "float64"),
                   help="evaluate in this dtype (default: the model's)")
    p.set_defaults(func=main)


def evaluate_file(model_path, data_path, format: Optional[str] = None, target: Optional[str] = None,
                  batch_size: int = 16, device: str = "cpu", dtype: Optional[str] = None):
    """(metrics, predictions, structure count) of a model file on a data file.

    Every frame is checked first (:mod:`tfpot.data.check`: finite, non-empty, no overlapping
    atoms, elements the model knows, some label); non-finite metrics are refused.
    """
    model = load_model(model_path, device=device, dtype=dtype)
    options = {"target": target} if target is not None else {}
    path = resolve_path(str(data_path))
    check = DataCheck(species=model.species, needs=LABELS)
    atoms = list(check.filter(iter_structures(path, format=format, check=False, **options),
                              path.name))
    check.raise_if_problems("nothing was evaluated; fix or remove these frames")
    if not atoms:
        raise DataFormatError(f"{data_path}: no structures; give a data file with at least one frame")
    dataset = atoms_set(atoms, model.cutoff, "eval")
    metrics, preds = evaluate(model, dataset, batch_size, DistContext.single(torch.device(device)),
                              keep_predictions=True)
    bad = {k: v for k, v in metrics.items() if not np.isfinite(v)}
    if bad:
        frames = np.flatnonzero(~np.isfinite(preds["energy"])).tolist()
        raise NonFiniteError(
            f"{model_path}: predictions on {path.name} are not finite "
            f"({', '.join(f'{k} {v}' for k, v in bad.items())}"
            + (f"; energies of frames {frame_list(frames)}" if frames else "")
            + "); the model file is broken (retrain or use another) or these frames are outside "
              "anything it can describe")
    return metrics, preds, len(atoms)


def parity_plots(preds: Dict[str, np.ndarray], metrics: Dict[str, float], out: Path,
                 title: str = "") -> list:
    """Write the PNG plots; returns their paths."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    written = []

    def parity(ref, pred, label, unit, name, mae_key):
        ok = np.isfinite(ref)
        ref, pred = ref[ok], pred[ok]
        if ref.size == 0:
            return
        fig, ax = plt.subplots(figsize=(4.6, 4.4), dpi=120)
        lo, hi = float(min(ref.min(), pred.min())), float(max(ref.max(), pred.max()))
        pad = 0.03 * (hi - lo if hi > lo else 1.0)
        ax.plot([lo - pad, hi + pad], [lo - pad, hi + pad], "k--", lw=0.8)
        ax.scatter(ref, pred, s=4 if ref.size > 2000 else 9, alpha=0.5, lw=0)
        ax.set_xlabel(f"reference {label} ({unit})")
        ax.set_ylabel(f"predicted {label} ({unit})")
        mae = metrics.get(mae_key)
        if mae is not None:
            ax.set_title(f"{title}{label}: MAE {mae * 1e3:.3g} m{unit}", fontsize=9)
        ax.set_aspect("equal", adjustable="datalim")
        fig.tight_layout()
        fig.savefig(out / name)
        plt.close(fig)
        written.append(out / name)

    n = preds["num_atoms"]
    if preds["energy_ref"].size and np.isfinite(preds["energy_ref"]).any():
        parity(preds["energy_ref"] / n, preds["energy"] / n, "energy per atom", "eV/atom",
               "energy_parity.png", "energy_mae")
    if preds["forces"].size and np.isfinite(preds["forces_ref"]).any():
        parity(preds["forces_ref"].ravel(), preds["forces"].ravel(), "force component", "eV/Å",
               "forces_parity.png", "forces_mae")
        err = (preds["forces"] - preds["forces_ref"]).ravel()
        err = err[np.isfinite(err)] * 1e3
        fig, ax = plt.subplots(figsize=(5, 3.6), dpi=120)
        ax.hist(err, bins=80, color="C1", alpha=0.8)
        ax.set_yscale("log")
        ax.set_xlabel("force error, predicted - reference (meV/Å)")
        ax.set_ylabel("components")
        ax.set_title(f"{title}force errors: MAE {np.abs(err).mean():.1f}, RMSE "
                     f"{np.sqrt((err ** 2).mean()):.1f} meV/Å", fontsize=9)
        fig.tight_layout()
        fig.savefig(out / "force_error_hist.png")
        plt.close(fig)
        written.append(out / "force_error_hist.png")
    if preds["stress"].size and np.isfinite(preds["stress_ref"]).any():
        parity(preds["stress_ref"].ravel(), preds["stress"].ravel(), "stress component", "eV/Å^3",
               "stress_parity.png", "stress_mae")
    return written


def main(args: argparse.Namespace) -> int:
    metrics, preds, n = evaluate_file(args.model, args.data, args.format, args.target,
                                      args.batch_size, args.device, args.dtype)
    print(format_metrics(metrics, f"{args.model} on {args.data} ({n} structures):"))
    if args.output:
        out = Path(args.output)
        out.mkdir(parents=True, exist_ok=True)
        (out / "metrics.json").write_text(json.dumps({"model": str(args.model), "data": str(args.data),
                                                      "num_structures": n, **metrics}, indent=2))
        np.savez_compressed(out / "predictions.npz", **preds)
        for path in parity_plots(preds, metrics, out):
            print(f"wrote {path}")
        print(f"wrote {out / 'metrics.json'}, {out / 'predictions.npz'}")
    return 0
