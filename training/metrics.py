"""Error metrics accumulated as sums (so that ranks and batches combine exactly) and the
evaluation of a model on a set of structures.

Metrics (float64, SI-free units of the package):

==================  =========  ==============================================
key                 unit       meaning
==================  =========  ==============================================
energy_mae          eV/atom    mean |E_pred - E_ref| / N over structures
energy_rmse         eV/atom    root mean square of (E_pred - E_ref) / N
total_energy_mae    eV         mean |E_pred - E_ref|
forces_mae          eV/Å       mean |F_pred - F_ref| over force components
forces_rmse         eV/Å       root mean square over force components
stress_mae          eV/Å^3     over the 9 stress components of periodic cells
stress_rmse         eV/Å^3
loss                --         the training loss on these structures
==================  =========  ==============================================
"""

from __future__ import annotations

import math
from typing import Dict, List, Optional, Sequence

import numpy as np
import torch
from torch import Tensor

from tfpot import _keys as K
from tfpot.data.datasets import model_inputs
from tfpot.training.distributed import DistContext, ShardedBatchSampler, sharded_loader
from tfpot.training.losses import Targets, WeightedLoss, errors

FIELDS = ("e_abs", "e_sq", "e_n", "etot_abs", "etot_sq", "f_abs", "f_sq", "f_n", "s_abs", "s_sq",
          "s_n", "loss_e", "loss_f", "loss_s")
_IDX = {k: i for i, k in enumerate(FIELDS)}

UNITS = {"energy_mae": "eV/atom", "energy_rmse": "eV/atom", "total_energy_mae": "eV",
         "forces_mae": "eV/Å", "forces_rmse": "eV/Å", "stress_mae": "eV/Å^3",
         "stress_rmse": "eV/Å^3", "loss": ""}


def unit_of(key: str) -> str:
    """The unit of a metric key, with or without a ``train_`` / ``val_`` / ``test_`` prefix
    ('' for dimensionless ones: loss, lr, counts)."""
    for prefix in ("train_", "val_", "test_"):
        if key.startswith(prefix):
            key = key[len(prefix):]
            break
    return UNITS.get(key, "")


def with_units(row: Dict[str, object]) -> Dict[str, object]:
    """Column names with their units, for CSV files: ``val_forces_mae [eV/Å]``."""
    return {(f"{k} [{unit_of(k)}]" if unit_of(k) else k): v for k, v in row.items()}


def units_of(metrics: Dict[str, object]) -> Dict[str, str]:
    """``{key: unit}`` for the keys of a metrics dict that have a unit (for JSON files)."""
    return {k: unit_of(k) for k in metrics if unit_of(k)}


class MetricAccumulator:
    """Running sums of errors; ``all_reduce`` adds them over ranks, ``compute`` gives metrics."""

    def __init__(self, device: torch.device | str = "cpu") -> None:
        self.sums = torch.zeros(len(FIELDS), dtype=torch.float64, device=device)

    def reset(self) -> None:
        self.sums.zero_()

    @torch.no_grad()
    def add(self, err: Dict[str, Tensor], loss_fn: Optional[WeightedLoss] = None) -> None:
        s = self.sums
        if "energy" in err:
            pa = err["energy_per_atom"].detach()
            tot = err["energy"].detach()
            s[_IDX["e_abs"]] += pa.abs().sum()
            s[_IDX["e_sq"]] += (pa * pa).sum()
            s[_IDX["e_n"]] += pa.numel()
            s[_IDX["etot_abs"]] += tot.abs().sum()
            s[_IDX["etot_sq"]] += (tot * tot).sum()
        if "forces" in err:
            f = err["forces"].detach()
            s[_IDX["f_abs"]] += f.abs().sum()
            s[_IDX["f_sq"]] += (f * f).sum()
            s[_IDX["f_n"]] += f.numel()
        if "stress" in err:
            st = err["stress"].detach()
            s[_IDX["s_abs"]] += st.abs().sum()
            s[_IDX["s_sq"]] += (st * st).sum()
            s[_IDX["s_n"]] += st.numel()
        if loss_fn is not None:
            s[_IDX["loss_e"]: _IDX["loss_s"] + 1] += loss_fn.sums(
                {k: v.detach() for k, v in err.items()})

    def all_reduce(self, ctx) -> None:
        ctx.all_reduce_(self.sums)

    def state(self) -> List[float]:
        return self.sums.cpu().tolist()

    def load_state(self, values: Sequence[float]) -> None:
        self.sums.copy_(torch.tensor(list(values), dtype=torch.float64))

    def compute(self, loss_fn: Optional[WeightedLoss] = None) -> Dict[str, float]:
        s = {k: float(v) for k, v in zip(FIELDS, self.sums.cpu().tolist())}
        out: Dict[str, float] = {}
        if s["e_n"] > 0:
            out["energy_mae"] = s["e_abs"] / s["e_n"]
            out["energy_rmse"] = math.sqrt(s["e_sq"] / s["e_n"])
            out["total_energy_mae"] = s["etot_abs"] / s["e_n"]
        if s["f_n"] > 0:
            out["forces_mae"] = s["f_abs"] / s["f_n"]
            out["forces_rmse"] = math.sqrt(s["f_sq"] / s["f_n"])
        if s["s_n"] > 0:
            out["stress_mae"] = s["s_abs"] / s["s_n"]
            out["stress_rmse"] = math.sqrt(s["s_sq"] / s["s_n"])
        if loss_fn is not None:
            counts = torch.tensor([s["e_n"], s["f_n"], s["s_n"]], dtype=torch.float64)
            sums = torch.tensor([s["loss_e"], s["loss_f"], s["loss_s"]], dtype=torch.float64)
            out["loss"] = float(loss_fn.combine(sums, counts))
        return out


def predict_batch(model: torch.nn.Module, batch, forces: bool, stress: bool) -> Dict[str, Tensor]:
    """Model outputs for a PyG batch (stress is 0 for molecules: cells of zero volume)."""
    return model(model_inputs(batch), compute_forces=forces or stress, compute_stress=stress)


def evaluate(model: torch.nn.Module, dataset, batch_size: int = 16, ctx=None,
             loss_fn: Optional[WeightedLoss] = None, keep_predictions: bool = False,
             forces: Optional[bool] = None, stress: Optional[bool] = None):
    """Errors of ``model`` on ``dataset`` (a Dataset of PyG graphs), in eval mode.

    Args:
        batch_size: structures per forward pass (per rank).
        ctx: :class:`~tfpot.training.distributed.DistContext`; each rank evaluates its shard and
            the sums are reduced. None: one process.
        loss_fn: also report the loss.
        keep_predictions: also return per-structure / per-atom predictions and references
            (this rank's shard, numpy): energy, energy_ref (G,) eV; num_atoms (G,); numbers
            (N,) atomic numbers; forces, forces_ref (N, 3) eV/Å; stress, stress_ref (G, 3, 3)
            eV/Å^3; NaN where a structure has no reference.
        forces, stress: compute them (default: when the data has the labels).

    Returns:
        ``metrics`` dict (see the module table), or ``(metrics, predictions)``.
    """

    ctx = ctx or DistContext.single(next(model.parameters()).device)
    was_training = model.training
    model.eval()
    acc = MetricAccumulator(ctx.device)
    preds: Dict[str, list] = {k: [] for k in ("energy", "energy_ref", "num_atoms", "numbers",
                                              "forces", "forces_ref", "stress", "stress_ref")}
    sampler = ShardedBatchSampler(len(dataset), batch_size * ctx.world_size, ctx.rank,
                                  ctx.world_size, shuffle=False)
    try:
        for batch in sharded_loader(dataset, sampler):
            if batch is None:
                continue
            batch = batch.to(ctx.device)
            t = Targets.from_batch(batch)
            do_f = (t.forces is not None) if forces is None else forces
            do_s = (t.stress is not None) if stress is None else stress
            with torch.enable_grad():
                out = predict_batch(model, batch, do_f, do_s)
            out = {k: v.detach() for k, v in out.items()}
            err = errors(out, t, loss_fn.per_atom_energy if loss_fn else True)
            acc.add(err, loss_fn)
            if keep_predictions:
                _keep(preds, out, t)
                preds["numbers"].append(batch[K.ATOMIC_NUMBERS].cpu().numpy())
    finally:
        model.train(was_training)
    acc.all_reduce(ctx)
    metrics = acc.compute(loss_fn)
    if not keep_predictions:
        return metrics
    arrays = {k: (np.concatenate(v) if v else np.zeros(0)) for k, v in preds.items()}
    return metrics, arrays


def _keep(preds: Dict[str, list], out: Dict[str, Tensor], t: Targets) -> None:
    n = t.num_atoms.cpu().numpy()
    preds["num_atoms"].append(n)
    preds["energy"].append(out[K.ENERGY].double().cpu().numpy())
    ref = t.energy.cpu().numpy().copy() if t.energy is not None else np.full(len(n), np.nan)
    if t.energy is not None:
        ref[~t.energy_mask.cpu().numpy()] = np.nan
    preds["energy_ref"].append(ref)
    if K.FORCES in out:
        f = out[K.FORCES].double().cpu().numpy()
        preds["forces"].append(f)
        fr = t.forces.cpu().numpy().copy() if t.forces is not None else np.full_like(f, np.nan)
        if t.forces is not None:
            fr[~t.forces_mask.cpu().numpy()] = np.nan
        preds["forces_ref"].append(fr)
    if K.STRESS in out and t.stress is not None:
        preds["stress"].append(out[K.STRESS].double().cpu().numpy())
        sr = t.stress.cpu().numpy().copy()
        sr[~t.stress_mask.cpu().numpy()] = np.nan
        preds["stress_ref"].append(sr)


def format_metrics(metrics: Dict[str, float], title: str = "") -> str:
    """A small text table in meV units (energies per atom, forces per Å, stress per Å^3)."""
    rows = []
    for key, label, factor, unit in (
            ("energy_mae", "energy MAE", 1e3, "meV/atom"), ("energy_rmse", "energy RMSE", 1e3, "meV/atom"),
            ("total_energy_mae", "total energy MAE", 1e3, "meV"),
            ("forces_mae", "forces MAE", 1e3, "meV/Å"), ("forces_rmse", "forces RMSE", 1e3, "meV/Å"),
            ("stress_mae", "stress MAE", 1e3, "meV/Å^3"), ("stress_rmse", "stress RMSE", 1e3, "meV/Å^3"),
            ("loss", "loss", 1.0, "")):
        if key in metrics:
            rows.append(f"  {label:<18s} {metrics[key] * factor:12.4f}  {unit}")
    head = f"{title}\n" if title else ""
    return head + "\n".join(rows)


def short_metrics(metrics: Dict[str, float]) -> str:
    """One-line summary: E (meV/atom), F (meV/Å), S (meV/Å^3) MAEs."""
    parts = []
    if "energy_mae" in metrics:
        parts.append(f"E {metrics['energy_mae'] * 1e3:.3f} meV/at")
    if "forces_mae" in metrics:
        parts.append(f"F {metrics['forces_mae'] * 1e3:.2f} meV/Å")
    if "stress_mae" in metrics:
        parts.append(f"S {metrics['stress_mae'] * 1e3:.3f} meV/Å³")
    if "loss" in metrics:
        parts.append(f"loss {metrics['loss']:.4g}")
    return ", ".join(parts)
