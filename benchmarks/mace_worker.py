"""MACE side of the tfpot-vs-MACE benchmarks; runs in the MACE virtual environment (no tfpot).

Run with the MACE venv's interpreter (mace-torch 0.3.16, e3nn 0.4.4), one JSON object on the
last line of stdout::

    mace-venv/bin/python benchmarks/mace_worker.py speed --xyz cells.extxyz --dtype float64 \
        [--channels 64 --max-L 1 --max-ell 3 --correlation 3 --warmup 3 --repeats 5] \
        [--threads 1 --flops]
    mace-venv/bin/python benchmarks/mace_worker.py eval --model run/mace.model --xyz test.extxyz
    mace-venv/bin/python benchmarks/mace_worker.py md --model run/mace.model --xyz start.extxyz \
        --steps 2000 --dt-fs 0.5

``speed`` builds an untrained ``ScaleShiftMACE`` (RealAgnosticResidualInteractionBlock, Bessel
radial basis with polynomial cutoff, hidden irreps ``Cx0e + Cx1o + ...`` up to ``max_L``,
spherical harmonics up to ``max_ell``) for the elements of the structures and times
energy + forces calls (model call only; the neighbour list is timed apart as ``ms_graph``).
Timings do not depend on the weights, so an untrained model is as fast as a trained one.

Units: ms per call, MB of resident memory (ru_maxrss, whole process), eV, eV/Å and eV/Å^3.
"""

from __future__ import annotations

import argparse
import json
import resource
import sys
import time

import numpy as np


def _rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def _current_rss_mb() -> float:
    try:
        with open("/proc/self/statm") as fh:
            return int(fh.read().split()[1]) * resource.getpagesize() / 2 ** 20
    except OSError:
        return float("nan")


def hidden_irreps(channels: int, max_L: int) -> str:
    """MACE's convention (``--num_channels C --max_L L``): ``Cx0e + Cx1o + Cx2e + ...``."""
    if max_L < 0 or max_L > 3:
        raise ValueError(f"max_L must be 0..3 (got {max_L})")
    parity = "eoeo"
    return " + ".join(f"{channels}x{l}{parity[l]}" for l in range(max_L + 1))


def build_mace(atomic_numbers, *, channels: int, max_L: int, max_ell: int, correlation: int,
               num_interactions: int, r_max: float, num_bessel: int, num_poly_cutoff: int,
               avg_num_neighbors: float):
    """A ScaleShiftMACE with residual interaction blocks in every layer (zero E0s, scale 1).

    ``mace_run_train --model MACE`` differs only in its first block (a plain
    RealAgnosticInteractionBlock: ~9k more weights at 32 channels, the same kind of work).
    """
    from mace import modules  # first: mace's __init__ sets what e3nn's torch.load needs
    from e3nn import o3

    zs = sorted(set(int(z) for z in atomic_numbers))
    return modules.ScaleShiftMACE(
        r_max=r_max,
        num_bessel=num_bessel,
        num_polynomial_cutoff=num_poly_cutoff,
        max_ell=max_ell,
        interaction_cls=modules.interaction_classes["RealAgnosticResidualInteractionBlock"],
        interaction_cls_first=modules.interaction_classes["RealAgnosticResidualInteractionBlock"],
        num_interactions=num_interactions,
        num_elements=len(zs),
        hidden_irreps=o3.Irreps(hidden_irreps(channels, max_L)),
        MLP_irreps=o3.Irreps("16x0e"),
        atomic_energies=np.zeros(len(zs)),
        avg_num_neighbors=avg_num_neighbors,
        atomic_numbers=zs,
        correlation=correlation,
        gate=modules.gate_dict["silu"],
        radial_MLP=[64, 64, 64],
        radial_type="bessel",
        atomic_inter_scale=1.0,
        atomic_inter_shift=0.0,
    )


def atoms_to_batch(atoms, zs, r_max: float):
    """MACE's own data path (as MACECalculator): Configuration -> AtomicData -> Batch."""
    from mace import data as mace_data
    from mace.tools import torch_geometric, utils

    config = mace_data.config_from_atoms(atoms)
    graph = mace_data.AtomicData.from_config(config, z_table=utils.AtomicNumberTable(list(zs)),
                                             cutoff=r_max)
    return torch_geometric.Batch.from_data_list([graph])


class _GlobalOnly:
    """Stands in for FlopCounterMode's module tracker, whose backward hooks break on
    ``autograd.grad`` w.r.t. leaf positions (as in force calls); all counts go to 'Global'."""

    parents = {"Global"}

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False


def count_flops(fn) -> int:
    """FLOPs of ``fn()`` by torch.utils.flop_counter (matmul-like ops: mm, bmm, addmm, einsum
    after decomposition, convolutions; elementwise ops are not counted)."""
    from torch.utils.flop_counter import FlopCounterMode

    counter = FlopCounterMode(display=False)
    counter.mod_tracker = _GlobalOnly()
    with counter:
        fn()
    return int(counter.get_total_flops())


def cmd_speed(args) -> dict:
    import torch
    from ase.io import read

    torch.set_num_threads(args.threads)
    dtype = {"float32": torch.float32, "float64": torch.float64}[args.dtype]
    torch.set_default_dtype(dtype)
    frames = read(args.xyz, index=":")
    zs = sorted(set(int(z) for a in frames for z in a.get_atomic_numbers()))
    base_mb = _current_rss_mb()
    rows = []
    model = None
    for atoms in frames:
        t0 = time.perf_counter()
        batch = atoms_to_batch(atoms, zs, args.r_max)
        t_graph = time.perf_counter() - t0
        n_edges = int(batch["edge_index"].shape[1])
        if model is None:
            torch.manual_seed(0)
            model = build_mace(zs, channels=args.channels, max_L=args.max_L, max_ell=args.max_ell,
                               correlation=args.correlation,
                               num_interactions=args.num_interactions, r_max=args.r_max,
                               num_bessel=args.num_bessel, num_poly_cutoff=args.num_poly_cutoff,
                               avg_num_neighbors=n_edges / len(atoms)).to(dtype).eval()
            base_mb = _current_rss_mb()
        batch_dict = batch.to_dict()
        times = []
        exceeded = False
        for k in range(args.warmup + args.repeats):
            t0 = time.perf_counter()
            out = model(batch_dict, training=False, compute_force=True)
            out["forces"].sum().item()
            dt = time.perf_counter() - t0
            # warm-up calls (allocator, e3nn/TorchScript profiling runs) are not timed
            if k >= args.warmup or args.repeats == 0:
                times.append(dt)
            if args.time_limit and dt > args.time_limit:
                exceeded = True
                times = times or [dt]
                break
        row = {"atoms": len(atoms), "edges": n_edges, "ms_model": 1e3 * float(np.median(times)),
           "ms_each": [round(1e3 * t, 2) for t in times],
               "calls": len(times), "ms_graph": 1e3 * t_graph, "peak_mb": _rss_mb(),
               "base_mb": base_mb, "exceeded_time_limit": exceeded}
        if args.flops:
            row["flops"] = count_flops(lambda: model(batch_dict, training=False,
                                                     compute_force=True)["forces"].sum().item())
        rows.append(row)
    return {"impl": "mace", "config": {
        "hidden_irreps": hidden_irreps(args.channels, args.max_L), "max_ell": args.max_ell,
        "correlation": args.correlation, "num_interactions": args.num_interactions,
        "r_max": args.r_max, "num_bessel": args.num_bessel,
        "num_poly_cutoff": args.num_poly_cutoff},
        "params": int(sum(p.numel() for p in model.parameters())) if model is not None else 0,
        "dtype": args.dtype, "threads": torch.get_num_threads(), "torch": torch.__version__,
        "rows": rows}


def _calculator(path: str, dtype: str):
    from mace.calculators import MACECalculator

    return MACECalculator(model_paths=path, device="cpu", default_dtype=dtype)


def cmd_eval(args) -> dict:
    """Energy, force (and, where labelled, stress) errors of a trained MACE model on the
    labelled extxyz that ``bench_accuracy_vs_mace.py`` writes (``REF_*`` keys)."""
    import torch

    from bench_accuracy_vs_mace import label_errors, predicted, read_labelled

    torch.set_num_threads(args.threads)
    calc = _calculator(args.model, args.dtype)
    t0 = time.perf_counter()
    pairs = [(ref, predicted(ref, calc)) for ref in read_labelled(args.xyz)]
    params = int(sum(q.numel() for q in calc.models[0].parameters()))
    return {"impl": "mace", "params": params, **label_errors(pairs),
            "seconds": time.perf_counter() - t0}


def cmd_md(args) -> dict:
    """NVE velocity Verlet from the positions and momenta in ``--xyz``; total energy per sample."""
    import torch
    from ase import units
    from ase.io import read
    from ase.md.verlet import VelocityVerlet

    torch.set_num_threads(args.threads)
    atoms = read(args.xyz, index=0)
    atoms.calc = _calculator(args.model, args.dtype)
    dyn = VelocityVerlet(atoms, timestep=args.dt_fs * units.fs)
    t_fs, etot, temp = [], [], []

    def sample() -> None:
        t_fs.append(dyn.nsteps * args.dt_fs)
        etot.append(float(atoms.get_potential_energy() + atoms.get_kinetic_energy()))
        temp.append(float(atoms.get_temperature()))

    dyn.attach(sample, interval=args.every)
    t0 = time.perf_counter()
    dyn.run(args.steps)
    return {"impl": "mace", "atoms": len(atoms), "t_fs": t_fs, "etot": etot, "temperature": temp,
            "seconds": time.perf_counter() - t0}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = p.add_subparsers(dest="cmd", required=True)
    s = sub.add_parser("speed", help="time energy+forces calls of an untrained MACE")
    s.add_argument("--xyz", required=True, help="extxyz file; every frame is timed")
    s.add_argument("--dtype", choices=["float32", "float64"], default="float64")
    s.add_argument("--channels", type=int, default=64)
    s.add_argument("--max-L", dest="max_L", type=int, default=1, help="hidden irreps up to L")
    s.add_argument("--max-ell", type=int, default=3, help="spherical harmonics order")
    s.add_argument("--correlation", type=int, default=3)
    s.add_argument("--num-interactions", type=int, default=2)
    s.add_argument("--r-max", type=float, default=5.0)
    s.add_argument("--num-bessel", type=int, default=8)
    s.add_argument("--num-poly-cutoff", type=int, default=5)
    s.add_argument("--repeats", type=int, default=5, help="timed calls")
    s.add_argument("--warmup", type=int, default=3, help="untimed calls before them")
    s.add_argument("--time-limit", type=float, default=0.0,
                   help="seconds; stop repeating once one call takes longer (0: no limit)")
    s.add_argument("--flops", action="store_true", help="count FLOPs of one call")
    for name in ("eval", "md"):
        q = sub.add_parser(name)
        q.add_argument("--model", required=True, help="a .model file written by mace_run_train")
        q.add_argument("--xyz", required=True)
        q.add_argument("--dtype", choices=["float32", "float64"], default="float64")
        if name == "md":
            q.add_argument("--steps", type=int, default=2000)
            q.add_argument("--dt-fs", type=float, default=0.5)
            q.add_argument("--every", type=int, default=10)
    for q in sub.choices.values():
        q.add_argument("--threads", type=int, default=1)
    args = p.parse_args()
    out = {"speed": cmd_speed, "eval": cmd_eval, "md": cmd_md}[args.cmd](args)
    sys.stdout.flush()
    print(json.dumps(out))


if __name__ == "__main__":
    main()
