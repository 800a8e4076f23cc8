"""PNG figures of tfpot's reports (matplotlib, Agg backend): parity plots with density, error
histograms, per-element force errors, learning curves and MD energy/temperature traces.

Every figure names what it shows in its title (the data set and which part of it, the model or
run) and carries its numbers (N, MAE, RMSE) on the plot, in meV-based units. Inputs are numpy
arrays in tfpot's units (eV, Å, eV/Å, eV/Å^3, K, ps).
"""

from __future__ import annotations

import csv
import os
import textwrap
from pathlib import Path
from typing import Dict, List, Mapping, Optional, Sequence, Union

import numpy as np
from ase.data import chemical_symbols

PathLike = Union[str, os.PathLike]

#: above this many points a parity plot is a hexagonal-bin density map instead of a scatter
HEXBIN_ABOVE = 1500


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _wrap(title: str, width: int = 80) -> str:
    """Each line of ``title`` wrapped to ``width`` characters (long data and model names)."""
    return "\n".join(textwrap.fill(line, width) for line in title.split("\n"))


def _plain_log_ticks(ax) -> None:
    """Labelled ticks of a log y axis at 1, 2 and 5 times powers of ten, as plain numbers (20,
    50, 100 rather than 2 x 10^1); unlabelled minor ticks in between."""
    from matplotlib.ticker import FuncFormatter, LogLocator, NullFormatter

    ax.yaxis.set_major_locator(LogLocator(base=10, subs=(1.0, 2.0, 5.0)))
    ax.yaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:g}"))
    ax.yaxis.set_minor_formatter(NullFormatter())


def _save(fig, path: PathLike) -> Path:
    path = Path(path)
    fig.tight_layout()
    fig.savefig(path)
    _pyplot().close(fig)
    return path


def error_stats(err: np.ndarray) -> Dict[str, float]:
    """MAE, RMSE and count of the finite entries of ``err`` (same unit as ``err``)."""
    err = np.asarray(err, dtype=np.float64).ravel()
    err = err[np.isfinite(err)]
    if err.size == 0:
        return {"mae": float("nan"), "rmse": float("nan"), "n": 0}
    return {"mae": float(np.abs(err).mean()), "rmse": float(np.sqrt((err ** 2).mean())),
            "n": int(err.size)}


def parity_plot(ref: np.ndarray, pred: np.ndarray, quantity: str, unit: str, path: PathLike,
                title: str, count_label: str) -> Path:
    """Predicted against reference, with the y = x line; a log-density hexbin map above
    :data:`HEXBIN_ABOVE` points, a translucent scatter below. MAE, RMSE (in milli-``unit``) and
    N (``count_label``, e.g. "structures") are printed on the plot.

    Args:
        ref, pred: same shape, in ``unit`` (e.g. eV/atom, eV/Å); non-finite pairs are dropped.
    """
    plt = _pyplot()
    ref = np.asarray(ref, np.float64).ravel()
    pred = np.asarray(pred, np.float64).ravel()
    ok = np.isfinite(ref) & np.isfinite(pred)
    ref, pred = ref[ok], pred[ok]
    stats = error_stats(pred - ref)
    fig, ax = plt.subplots(figsize=(6.0, 5.0), dpi=130)
    lo = float(min(ref.min(), pred.min())) if ref.size else 0.0
    hi = float(max(ref.max(), pred.max())) if ref.size else 1.0
    pad = 0.03 * (hi - lo if hi > lo else 1.0)
    lim = (lo - pad, hi + pad)
    if ref.size > HEXBIN_ABOVE:
        hb = ax.hexbin(ref, pred, gridsize=70, bins="log", mincnt=1, cmap="viridis",
                       extent=(*lim, *lim), linewidths=0)
        fig.colorbar(hb, ax=ax, label=f"{count_label} per hexagon (log scale)")
    else:
        ax.scatter(ref, pred, s=14 if ref.size < 200 else 6, alpha=0.5, lw=0, color="C0")
    ax.plot(lim, lim, "k--", lw=0.8, label="y = x")
    ax.set_xlim(lim)
    ax.set_ylim(lim)
    ax.set_aspect("equal")
    ax.set_xlabel(f"reference {quantity} ({unit})")
    ax.set_ylabel(f"predicted {quantity} ({unit})")
    ax.text(0.03, 0.97, f"N = {stats['n']} {count_label}\nMAE = {stats['mae'] * 1e3:.3g} m{unit}"
            f"\nRMSE = {stats['rmse'] * 1e3:.3g} m{unit}", transform=ax.transAxes, va="top",
            ha="left", fontsize=9, bbox=dict(boxstyle="round", fc="white", ec="0.7", alpha=0.9))
    ax.set_title(_wrap(title), fontsize=9)
    return _save(fig, path)


def error_histogram(err: np.ndarray, unit: str, path: PathLike, title: str,
                    count_label: str) -> Path:
    """Distribution of ``err`` (prediction - reference, in ``unit``; shown in milli-``unit``)
    on a log count axis, with MAE, RMSE and N."""
    plt = _pyplot()
    stats = error_stats(err)
    err = np.asarray(err, np.float64).ravel()
    err = err[np.isfinite(err)] * 1e3
    fig, ax = plt.subplots(figsize=(6.0, 4.2), dpi=130)
    ax.hist(err, bins=80, color="C1", alpha=0.85)
    ax.set_yscale("log")
    ax.set_xlabel(f"error, predicted - reference (m{unit})")
    ax.set_ylabel(count_label)
    ax.text(0.03, 0.97, f"N = {stats['n']}\nMAE = {stats['mae'] * 1e3:.3g} m{unit}\n"
            f"RMSE = {stats['rmse'] * 1e3:.3g} m{unit}", transform=ax.transAxes, va="top",
            fontsize=9, bbox=dict(boxstyle="round", fc="white", ec="0.7", alpha=0.9))
    ax.set_title(_wrap(title), fontsize=9)
    return _save(fig, path)


def per_element_plot(table: Mapping[str, Mapping[str, float]], path: PathLike, title: str) -> Path:
    """Force MAE and RMSE per element (bars, meV/Å) with the number of atoms of each.

    Args:
        table: ``{symbol: {"atoms": n, "forces_mae": eV/Å, "forces_rmse": eV/Å}}``.
    """
    plt = _pyplot()
    symbols = list(table)
    x = np.arange(len(symbols))
    mae = np.array([table[s]["forces_mae"] for s in symbols]) * 1e3
    rmse = np.array([table[s]["forces_rmse"] for s in symbols]) * 1e3
    fig, ax = plt.subplots(figsize=(max(6.0, 1.1 * len(symbols) + 2.0), 4.2), dpi=130)
    ax.bar(x - 0.2, mae, 0.4, label="MAE", color="C0")
    ax.bar(x + 0.2, rmse, 0.4, label="RMSE", color="C3")
    for xi, s, top in zip(x, symbols, np.maximum(mae, rmse)):
        ax.text(xi, top, f"{int(table[s]['atoms'])} atoms", ha="center", va="bottom", fontsize=8)
    ax.set_xticks(x, symbols)
    ax.set_ylabel("force component error (meV/Å)")
    ax.set_ylim(0, 1.18 * float(np.max(np.maximum(mae, rmse))) if len(symbols) else 1.0)
    ax.legend(fontsize=8, loc="upper right")
    ax.set_title(_wrap(title), fontsize=9)
    return _save(fig, path)


def learning_curve(rows: Sequence[Mapping[str, str]], path: PathLike, title: str) -> Path:
    """Loss, energy and force errors per epoch, training (live weights, averaged over the
    epoch's batches) against validation (EMA weights), from the rows of ``metrics.csv``; the
    best validation epoch is marked and the learning rate drawn on the loss panel."""
    plt = _pyplot()
    from matplotlib.ticker import MaxNLocator

    epochs = np.array([float(r["epoch"]) for r in rows])

    def col(name: str) -> Optional[np.ndarray]:
        key = next((k for k in rows[0] if k == name or k.startswith(name + " [")), None) \
            if rows else None
        if key is None or any(r.get(key, "") == "" for r in rows):
            return None
        return np.array([float(r[key]) for r in rows])

    panels = [("loss", "loss (weighted, dimensionless)", 1.0)]
    if col("val_energy_mae") is not None or col("train_energy_mae") is not None:
        panels.append(("energy_mae", "energy MAE (meV/atom)", 1e3))
    if col("val_forces_mae") is not None or col("train_forces_mae") is not None:
        panels.append(("forces_mae", "force MAE (meV/Å)", 1e3))
    if col("val_stress_mae") is not None or col("train_stress_mae") is not None:
        panels.append(("stress_mae", "stress MAE (meV/Å³)", 1e3))
    fig, axes = plt.subplots(1, len(panels), figsize=(4.2 * len(panels), 3.8), dpi=130,
                             squeeze=False)
    val_loss = col("val_loss")
    best = int(np.argmin(val_loss)) if val_loss is not None and len(val_loss) else None
    for ax, (name, label, factor) in zip(axes[0], panels):
        for prefix, style, what in (("train_", "-", "training batches (live weights)"),
                                    ("val_", "-", "validation (EMA weights)")):
            y = col(prefix + name)
            if y is not None:
                ax.plot(epochs, y * factor, style, marker="o" if len(epochs) < 30 else None,
                        ms=3, label=what, color="C0" if prefix == "train_" else "C3")
        if best is not None:
            ax.axvline(epochs[best], color="0.5", ls=":", lw=1,
                       label=f"best validation (epoch {int(epochs[best])})")
        ax.set_yscale("log")
        _plain_log_ticks(ax)
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.set_xlabel("epoch")
        ax.set_ylabel(label)
        ax.grid(alpha=0.3, which="both")
    lr = col("lr")
    if lr is not None:
        twin = axes[0][0].twinx()
        twin.plot(epochs, lr, "--", color="0.4", lw=1, label="learning rate (right axis)")
        twin.set_yscale("log")
        twin.set_ylabel("learning rate", fontsize=8)
    handles, labels = axes[0][0].get_legend_handles_labels()
    if lr is not None:
        h2, l2 = twin.get_legend_handles_labels()
        handles, labels = handles + h2, labels + l2
    fig.legend(handles, labels, loc="lower center", ncol=len(labels), fontsize=8, frameon=False)
    fig.suptitle(_wrap(title, 120), fontsize=9)
    fig.tight_layout(rect=(0, 0.07, 1, 1))
    fig.savefig(Path(path))
    plt.close(fig)
    return Path(path)


def md_trace(times_ps: np.ndarray, epot: np.ndarray, etot: np.ndarray, temperature: np.ndarray,
             n_atoms: int, path: PathLike, title: str) -> Path:
    """Energies (relative to the first step, meV/atom) and temperature (K) against time (ps)
    of an MD run; the total energy's drift (slope of a straight-line fit) is printed."""
    plt = _pyplot()
    t = np.asarray(times_ps, np.float64)
    e0 = float(etot[0])
    fig, (ax1, ax2) = plt.subplots(2, 1, figsize=(6.4, 5.2), dpi=130, sharex=True)
    ax1.plot(t, (np.asarray(epot) - float(epot[0])) / n_atoms * 1e3, color="C0", lw=0.8,
             label="potential energy")
    ax1.plot(t, (np.asarray(etot) - e0) / n_atoms * 1e3, color="C3", lw=1.0,
             label="total energy")
    if len(t) > 1:
        slope = np.polyfit(t, etot, 1)[0] / n_atoms * 1e3
        ax1.text(0.02, 0.04, f"total-energy drift {slope:+.3g} meV/atom/ps",
                 transform=ax1.transAxes, fontsize=8,
                 bbox=dict(boxstyle="round", fc="white", ec="0.7", alpha=0.9))
    ax1.set_ylabel("E - E(t=0) (meV/atom)")
    ax1.legend(fontsize=8, loc="upper right")
    ax1.grid(alpha=0.3)
    ax2.plot(t, temperature, color="C2", lw=0.8)
    ax2.set_xlabel("time (ps)")
    ax2.set_ylabel("temperature (K)")
    ax2.grid(alpha=0.3)
    ax1.set_title(_wrap(title), fontsize=9)
    return _save(fig, path)


def per_element_force_errors(numbers: np.ndarray, err: np.ndarray) -> Dict[str, Dict[str, float]]:
    """``{symbol: {"atoms", "forces_mae", "forces_rmse"}}`` from per-atom atomic numbers (N,) and
    force errors (N, 3) in eV/Å (atoms without reference forces, NaN, are skipped)."""
    numbers = np.asarray(numbers).ravel()
    err = np.asarray(err, np.float64).reshape(len(numbers), -1)
    table: Dict[str, Dict[str, float]] = {}
    for z in sorted(set(int(v) for v in numbers)):
        rows = err[numbers == z]
        rows = rows[np.isfinite(rows).all(axis=1)]
        if rows.size == 0:
            continue
        s = error_stats(rows)
        table[chemical_symbols[z]] = {"atoms": int(len(rows)), "forces_mae": s["mae"],
                                      "forces_rmse": s["rmse"]}
    return table


def read_metrics_csv(path: PathLike) -> List[Dict[str, str]]:
    """Rows of a ``metrics.csv`` (column names carry units: ``val_forces_mae [eV/Å]``)."""
    with open(path, newline="") as f:
        return list(csv.DictReader(f))
