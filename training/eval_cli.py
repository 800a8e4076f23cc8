"""``tfpot eval RUN_DIR`` or ``tfpot eval MODEL DATA``: error metrics of a model, with plots.

``tfpot eval RUN_DIR`` evaluates the run's best model (``best_model.pt``) on the run's own
held-out test split (``--split val`` / ``train`` for the others), read from its
``config.yaml`` and ``splits.npz``, and writes the report to ``RUN_DIR/eval_<split>/``
(or ``-o DIR``), with the run's learning curve. ``tfpot eval MODEL DATA`` evaluates a model file
on every structure of a data file (``-o DIR`` for files).

Prints a table (energy MAE/RMSE per atom and total, force MAE/RMSE per component, stress where
the data has it, force errors per element). Files: ``metrics.json`` (with units),
``predictions.npz`` and PNG plots (matplotlib): ``energy_parity.png`` (per atom),
``forces_parity.png`` (density map), ``force_error_hist.png``, ``forces_per_element.png``,
``stress_parity.png``; with a run, ``learning_curve.png``. Every plot names the data set and
the part of it that it shows.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Dict, List, Optional, Tuple

import numpy as np
import torch
from ase.data import chemical_symbols

from tfpot import plots
from tfpot.atomic_io import atomic_write_text
from tfpot.builder import load_model
from tfpot.data import iter_structures
from tfpot.data.check import LABELS, DataCheck
from tfpot.data.errors import DataFormatError
from tfpot.errors import TfpotError
from tfpot.plots import learning_curve, read_metrics_csv
from tfpot.training.data import atoms_set, resolve_path, run_split
from tfpot.training.distributed import DistContext
from tfpot.training.guard import NonFiniteError, frame_list
from tfpot.training.metrics import evaluate, format_metrics, units_of


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "eval", help="metrics and plots of a model on its run's test set or on a data file",
        description="Error metrics of a model on labelled structures, with parity plots.",
        epilog=__doc__.split("\n\n", 1)[1].replace("``", ""),
        formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("model", metavar="RUN_DIR|MODEL",
                   help="a training run's output directory (its best model on its held-out test "
                        "split), or a model file (best_model.pt / final_model.pt / model.save)")
    p.add_argument("data", nargs="?", default=None, metavar="DATA",
                   help="labelled structures (any format tfpot.data reads; 'tfpot:demo'); not "
                        "needed for a run directory or a model file inside one")
    p.add_argument("--split", choices=("test", "val", "train"), default=None,
                   help="with a run: which part of its data (default: test, the held-out frames)")
    p.add_argument("--format", default=None, help="data format (default: detected)")
    p.add_argument("--target", default=None, help="QM9 property used as the energy (default U0)")
    p.add_argument("-o", "--output", default=None,
                   help="directory for metrics.json and plots (default with a run: "
                        "RUN_DIR/eval_<split>; without: no files)")
    p.add_argument("--batch-size", type=int, default=16)
    p.add_argument("--device", default="cpu", help="cpu, cuda or cuda:N")
    p.add_argument("--dtype", default=None, choices=("float32", "float64"),
                   help="evaluate in this dtype (default: the model's)")
    p.set_defaults(func=main)


def _check_elements(model, model_path, numbers: List[int], data_label: str) -> None:
    missing = sorted(set(numbers) - set(model.species))
    if missing:
        raise DataFormatError(
            f"{data_label} has elements {', '.join(chemical_symbols[z] for z in missing)} that "
            f"the model ({model_path}) does not know (it knows "
            f"{', '.join(chemical_symbols[z] for z in model.species)}); use a model trained on them")


def evaluate_file(model_path, data_path, format: Optional[str] = None, target: Optional[str] = None,
                  batch_size: int = 16, device: str = "cpu", dtype: Optional[str] = None):
    """(metrics, predictions, structure count) of a model file on every structure of a data file.

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
    refuse_nonfinite(metrics, preds, model_path, path.name)
    return metrics, preds, len(atoms)


def refuse_nonfinite(metrics: Dict[str, float], preds: Dict[str, np.ndarray], model_path,
                     data_name: str) -> None:
    """Raise :class:`~tfpot.training.guard.NonFiniteError` if a metric is not finite, naming
    the frames whose predicted energy is not."""
    bad = {k: v for k, v in metrics.items() if not np.isfinite(v)}
    if bad:
        frames = np.flatnonzero(~np.isfinite(preds["energy"])).tolist()
        raise NonFiniteError(
            f"{model_path}: predictions on {data_name} are not finite "
            f"({', '.join(f'{k} {v}' for k, v in bad.items())}"
            + (f"; energies of frames {frame_list(frames)}" if frames else "")
            + "); the model file is broken (retrain or use another) or these frames are outside "
              "anything it can describe")


def evaluate_run(run_dir, split: str = "test", batch_size: int = 16, device: str = "cpu",
                 dtype: Optional[str] = None, model_name: str = "best_model.pt"):
    """(metrics, predictions, description) of a run's model on one part of the run's data
    (see :func:`tfpot.training.data.run_split`)."""
    run_dir = Path(run_dir)
    model_path = run_dir / model_name
    model = load_model(model_path, device=device, dtype=dtype)
    structures, description = run_split(run_dir, split, float(model.cutoff))
    _check_elements(model, model_path, structures.elements(), description)
    metrics, preds = evaluate(model, structures, batch_size,
                              DistContext.single(torch.device(device)), keep_predictions=True)
    refuse_nonfinite(metrics, preds, model_path, description)
    return metrics, preds, description


def report_plots(preds: Dict[str, np.ndarray], out: Path, data_label: str,
                 model_label: str) -> Tuple[List[Path], Dict[str, Dict[str, float]]]:
    """Write the parity / error / per-element PNGs; returns (paths, per-element force table).

    ``data_label`` says what the data is ("ethanol_gfn2.npz: held-out test split, 40 of 400
    structures"); it heads every plot, with ``model_label`` under it.
    """
    title = f"{data_label}\nmodel: {model_label}"
    written: List[Path] = []
    n = preds["num_atoms"]
    if preds["energy_ref"].size and np.isfinite(preds["energy_ref"]).any():
        written.append(plots.parity_plot(preds["energy_ref"] / n, preds["energy"] / n,
                                         "energy per atom", "eV/atom", out / "energy_parity.png",
                                         title, "structures"))
    table: Dict[str, Dict[str, float]] = {}
    if preds["forces"].size and np.isfinite(preds["forces_ref"]).any():
        written.append(plots.parity_plot(preds["forces_ref"], preds["forces"], "force component",
                                         "eV/Å", out / "forces_parity.png", title, "components"))
        err = preds["forces"] - preds["forces_ref"]
        written.append(plots.error_histogram(err, "eV/Å", out / "force_error_hist.png",
                                             f"force errors\n{title}", "force components"))
        table = plots.per_element_force_errors(preds["numbers"], err)
        written.append(plots.per_element_plot(table, out / "forces_per_element.png",
                                              f"force errors per element\n{title}"))
    if preds["stress"].size and np.isfinite(preds["stress_ref"]).any():
        written.append(plots.parity_plot(preds["stress_ref"], preds["stress"], "stress component",
                                         "eV/Å^3", out / "stress_parity.png", title, "components"))
    return written, table


def format_per_element(table: Dict[str, Dict[str, float]]) -> str:
    lines = ["force errors per element:", f"  {'element':<8s} {'atoms':>8s} {'MAE':>10s} "
                                           f"{'RMSE':>10s}  (meV/Å)"]
    for sym, row in table.items():
        lines.append(f"  {sym:<8s} {int(row['atoms']):8d} {row['forces_mae'] * 1e3:10.3f} "
                     f"{row['forces_rmse'] * 1e3:10.3f}")
    return "\n".join(lines)


def _run_dir_of(model: Path) -> Optional[Path]:
    """The run directory of a RUN_DIR argument or of a model file inside one, else None."""
    if model.is_dir():
        return model
    if (model.parent / "config.yaml").is_file():
        return model.parent
    return None


def main(args: argparse.Namespace) -> int:
    model = Path(args.model)
    run_dir = _run_dir_of(model) if args.data is None else None
    if args.data is None and run_dir is None:
        if not model.exists():
            raise FileNotFoundError(f"{model}: no such run directory or model file")
        raise TfpotError(f"{model} is not inside a training run (no config.yaml next to it); "
                         f"give the data to evaluate on: tfpot eval {model} DATA")
    if args.split is not None and run_dir is None:
        raise TfpotError("--split needs a training run (tfpot eval RUN_DIR); with DATA, every "
                         "structure of the file is evaluated")
    if run_dir is not None:
        split = args.split or "test"
        name = model.name if model.is_file() else "best_model.pt"
        metrics, preds, data_label = evaluate_run(run_dir, split, args.batch_size, args.device,
                                                  args.dtype, name)
        model_path = run_dir / name
        out = Path(args.output) if args.output else run_dir / f"eval_{split}"
        source = {"run": str(run_dir), "split": split}
    else:
        metrics, preds, count = evaluate_file(model, args.data, args.format, args.target,
                                              args.batch_size, args.device, args.dtype)
        data_label = f"{Path(str(args.data)).name}: all {count} structures (no split)"
        model_path = model
        out = Path(args.output) if args.output else None
        source = {"data": str(args.data), "split": None}
    print(format_metrics(metrics, f"{model_path} on {data_label}:"))
    if out is None:
        if preds["forces"].size and np.isfinite(preds["forces_ref"]).any():
            print(format_per_element(plots.per_element_force_errors(
                preds["numbers"], preds["forces"] - preds["forces_ref"])))
        return 0
    out.mkdir(parents=True, exist_ok=True)
    written, table = report_plots(preds, out, data_label, str(model_path))
    if table:
        print(format_per_element(table))
    if run_dir is not None and (run_dir / "metrics.csv").is_file():
        rows = read_metrics_csv(run_dir / "metrics.csv")
        if rows:
            written.append(learning_curve(rows, out / "learning_curve.png",
                                          f"learning curve of {run_dir} (metrics.csv)"))
    report = {"model": str(model_path), **source, "data_description": data_label,
              "num_structures": int(len(preds["num_atoms"])), **metrics,
              "per_element": table,
              "units": {**units_of(metrics), "per_element.forces_mae": "eV/Å",
                        "per_element.forces_rmse": "eV/Å"}}
    atomic_write_text(json.dumps(report, indent=2), out / "metrics.json")
    np.savez_compressed(out / "predictions.npz", **preds)
    for path in written:
        print(f"wrote {path}")
    print(f"wrote {out / 'metrics.json'}, {out / 'predictions.npz'}")
    return 0
