"""Data-layer throughput: LMDB conversion and DataLoader reading, with peak memory.

A synthetic set of small molecules (perturbed copies of H2O, CH4, C2H6, ethanol, benzene,
acetic acid; fake energies and forces) is converted to LMDB and read back as PyG batches.

Columns: structures/s (wall clock), and for conversion the peak Python heap (tracemalloc, a
separate run) and the process's peak RSS (resource.getrusage; includes torch itself).

Usage::

    python benchmarks/bench_data.py [--n 20000] [--cutoff 5.0] [--batch-size 32]
"""

from __future__ import annotations

import argparse
import resource
import tempfile
import time
import tracemalloc
from pathlib import Path
from typing import Iterator

import numpy as np
from ase import Atoms
from ase.build import molecule
from ase.calculators.singlepoint import SinglePointCalculator

from tfpot.data import LmdbDataset, make_loader, write_lmdb

MOLECULES = ("H2O", "CH4", "C2H6", "CH3CH2OH", "C6H6", "CH3COOH")


def synthetic(n: int, seed: int = 0) -> Iterator[Atoms]:
    """n perturbed small molecules with fake labels, generated lazily (nothing kept)."""
    rng = np.random.default_rng(seed)
    bases = [molecule(name) for name in MOLECULES]
    for k in range(n):
        base = bases[k % len(bases)]
        atoms = Atoms(base.numbers, positions=base.positions + 0.05 * rng.standard_normal((len(base), 3)))
        atoms.calc = SinglePointCalculator(
            atoms, energy=-5.0 * len(atoms) + 0.1 * rng.standard_normal(),
            forces=rng.standard_normal((len(atoms), 3)))
        yield atoms


def peak_rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux: KiB


def bench_convert(n: int, path: Path, cutoff, traced: bool = False):
    if traced:
        tracemalloc.start()
    t0 = time.perf_counter()
    write_lmdb(synthetic(n), path, cutoff=cutoff)
    dt = time.perf_counter() - t0
    peak = None
    if traced:
        peak = tracemalloc.get_traced_memory()[1] / 2 ** 20
        tracemalloc.stop()
    return n / dt, peak


def bench_load(path: Path, cutoff: float, workers: int, batch_size: int) -> float:
    ds = LmdbDataset(path, cutoff=cutoff)
    loader = make_loader(ds, batch_size=batch_size, shuffle=True, num_workers=workers)
    t0 = time.perf_counter()
    count = 0
    for batch in loader:
        count += batch.num_graphs
    dt = time.perf_counter() - t0
    assert count == len(ds)
    return count / dt


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=20000)
    parser.add_argument("--cutoff", type=float, default=5.0)
    parser.add_argument("--batch-size", type=int, default=32)
    args = parser.parse_args()
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        plain, cached = Path(tmp) / "plain.lmdb", Path(tmp) / "cached.lmdb"
        rss0 = peak_rss_mib()
        rate, _ = bench_convert(args.n, plain, None)
        rows.append(("convert (no edges)", rate, None, peak_rss_mib() - rss0))
        rate, _ = bench_convert(args.n, cached, args.cutoff)
        rows.append((f"convert (edges cached, {args.cutoff} Å)", rate, None, peak_rss_mib() - rss0))
        for n in (args.n // 4, args.n):  # streaming: heap peak must not grow with n
            _, peak = bench_convert(n, Path(tmp) / f"traced{n}.lmdb", args.cutoff, traced=True)
            rows.append((f"convert, heap peak, n={n}", None, peak, None))
        sizes = {p.name: p.stat().st_size / 2 ** 20 for p in (plain, cached)}
        for workers in (0, 1, 2):
            rows.append((f"load graphs, cached edges, {workers} workers",
                         bench_load(cached, args.cutoff, workers, args.batch_size), None, None))
        for workers in (0, 2):
            rows.append((f"load graphs, edges computed, {workers} workers",
                         bench_load(plain, args.cutoff, workers, args.batch_size), None, None))
    print(f"\n{args.n} structures ({', '.join(MOLECULES)}), batch size {args.batch_size}; "
          f"store size: {sizes['plain.lmdb']:.1f} MiB plain, {sizes['cached.lmdb']:.1f} MiB with edges")
    print(f"{'task':48s} {'structures/s':>13s} {'heap peak MiB':>14s} {'RSS growth MiB':>15s}")
    for name, rate, heap, rss in rows:
        fmt = lambda v, f: f"{v:{f}}" if v is not None else "-"
        print(f"{name:48s} {fmt(rate, '13.0f'):>13s} {fmt(heap, '14.1f'):>14s} {fmt(rss, '15.1f'):>15s}")


if __name__ == "__main__":
    main()
