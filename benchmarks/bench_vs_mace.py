"""Speed, scaling and efficiency of tfpot next to MACE, measured interleaved in one run.

Run (tfpot's venv; MACE runs in its own venv through ``benchmarks/mace_worker.py``)::

    python benchmarks/bench_vs_mace.py [--mace-python /work/mace-venv/bin/python] [--threads 1]
        [--pairs medium:64:1 small:32:1] [--systems molecule-21 cu-256 cu-4000]
        [--scaling-sizes 100 500 1000 2000 4000 10000 20000] [--time-limit 120] [--json out.json]
        [--tfpot-hyper '{"radial_filter": "tanh", "num_basis": 16}']   # overrides, every tfpot model

Three markdown tables:

1. **Speed**: ms per energy+forces call (median over ``--repeats`` calls after ``--warmup``
   untimed ones: MACE's e3nn/TorchScript parts need ~3 calls to reach their steady speed;
   model call only, the neighbour list is excluded for both; each model as its ASE calculator
   calls it by default: tfpot's ``TFPotCalculator.evaluate`` (the TorchScript-compiled model, run
   unoptimised: bit for bit the module's numbers), MACE's Python module (its calculator's
   ``compile_mode=None``)) and atom-steps/s = atoms / (s/call),
   for each tfpot preset and the MACE it is paired with (``preset:channels:max_L``; MACE has
   ``max_ell`` 3, correlation 3, 2 layers, r_max 5 Å, 8 Bessel, p = 5), float32 and float64.
   ``tfpot/MACE`` is the time ratio (below 1: tfpot is faster). Rows of one system and dtype run
   back to back, tfpot then MACE, repeated ``--rounds`` times (median over rounds), so that load
   from other jobs on the machine hits both alike.
2. **Scaling**: rattled fcc Cu cells from ~100 to ~20000 atoms, first pair, ``--scaling-dtype``:
   time per call and peak resident memory of the process. A size is dropped for a model when
   the previous size, extrapolated linearly, predicts a call above ``--time-limit`` seconds or a
   peak above ``--mem-limit-gb``; every dropped row says why.
3. **Efficiency**: FLOPs per atom-step of one energy+forces call (torch.utils.flop_counter:
   matmul-like ops only, elementwise work is not counted) and the fraction of the machine's
   matrix-multiply throughput, measured in the same run (median of several
   ``torch.matmul`` timings of 2048x2048 matrices interleaved with the rows), that each model
   achieves: (FLOPs / time per call) / matmul FLOP/s.

Each measurement runs in its own process (peak RSS is its own). Set ``--threads`` to the cores
you have; on a shared machine 1 thread is the least noisy.
"""

from __future__ import annotations

import argparse
import functools
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Optional

HERE = Path(__file__).resolve().parent
DEFAULT_MACE_PYTHON = "/work/mace-venv/bin/python"
SCALING_SIZES = [100, 500, 1000, 2000, 4000, 10000, 20000]


# ----------------------------------------------------------------------------- structures

def build_cu(n_target: int):
    """A rattled fcc Cu cell (a = 3.61 Å) of about ``n_target`` atoms (4 n1 n2 n3 atoms)."""
    import numpy as np
    from ase.build import bulk

    cells = max(1, round(n_target / 4))
    best = None
    for n1 in range(1, 40):
        for n2 in range(n1, n1 + 2):
            for n3 in range(n2, n2 + 2):
                err = abs(n1 * n2 * n3 - cells)
                if best is None or err < best[0]:
                    best = (err, (n1, n2, n3))
    atoms = bulk("Cu", "fcc", a=3.61, cubic=True).repeat(best[1])
    atoms.rattle(0.05, seed=0)
    atoms.info["note"] = f"rattled Cu {best[1]}"
    return atoms


def build(system: str):
    """``molecule-21``, ``cu-256``, ``cu-4000`` (as benchmarks/bench_model.py) or ``cu-N``."""
    sys.path.insert(0, str(HERE))
    from bench_model import build_system

    if system in ("molecule-21", "cu-256", "cu-4000"):
        return build_system(system)
    if system.startswith("cu-"):
        return build_cu(int(system[3:]))
    raise ValueError(f"unknown system {system!r}: expected molecule-21, cu-256, cu-4000 or cu-N")


@functools.lru_cache(maxsize=None)
def n_atoms(system: str) -> int:
    return len(build(system))


# ----------------------------------------------------------------------------- workers

def _current_rss_mb() -> float:
    try:
        with open("/proc/self/statm") as fh:
            return int(fh.read().split()[1]) * resource.getpagesize() / 2 ** 20
    except OSError:
        return float("nan")


class _GlobalOnly:
    """Stands in for FlopCounterMode's module tracker, whose backward hooks break on
    ``autograd.grad`` w.r.t. leaf positions (as in force calls); all counts go to 'Global'."""

    parents = {"Global"}

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False


def count_flops(fn) -> int:
    """FLOPs of ``fn()`` (torch.utils.flop_counter: matmul-like ops, einsum after decomposition)."""
    from torch.utils.flop_counter import FlopCounterMode

    counter = FlopCounterMode(display=False)
    counter.mod_tracker = _GlobalOnly()
    with counter:
        fn()
    return int(counter.get_total_flops())


def tfpot_row(system: str, dtype: str, preset: str, warmup: int, repeats: int, threads: int,
              time_limit: float, flops: bool, hyper: str = "{}") -> dict:
    """One tfpot measurement (runs in its own process)."""
    import numpy as np
    import torch

    import tfpot
    from tfpot.calculators import TFPotCalculator
    from tfpot.graph import atoms_to_graph

    torch.set_num_threads(threads)
    atoms = build(system)
    species = sorted(set(atoms.get_chemical_symbols()))
    model = tfpot.build_model(species, cutoff=5.0, preset=preset, dtype=dtype,
                              **json.loads(hyper)).eval()
    # timed as the ASE calculator evaluates it (TorchScript, unoptimised execution); MACE as its
    # calculator does by default (the Python module)
    calc = TFPotCalculator(model, dtype=dtype)
    t0 = time.perf_counter()
    graph = atoms_to_graph(atoms, model.cutoff)  # float64 positions: the recommended input
    t_graph = time.perf_counter() - t0
    base_mb = _current_rss_mb()
    times, exceeded = [], False
    for k in range(warmup + repeats):
        t0 = time.perf_counter()
        out = calc.evaluate(graph)
        out["forces"].sum().item()
        dt = time.perf_counter() - t0
        if k >= warmup or repeats == 0:  # warm-up calls (allocator etc.) are not timed
            times.append(dt)
        if time_limit and dt > time_limit:
            exceeded = True
            times = times or [dt]
            break
    row = {"atoms": len(atoms), "edges": int(graph["edge_index"].shape[1]),
           "ms_model": 1e3 * float(np.median(times)),
           "ms_each": [round(1e3 * t, 2) for t in times], "calls": len(times),
           "ms_graph": 1e3 * t_graph, "base_mb": base_mb,
           "peak_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0,
           "exceeded_time_limit": exceeded}
    if flops:
        row["flops"] = count_flops(
            lambda: model(graph, compute_forces=True, compute_stress=False)["forces"].sum().item())
    return {"impl": "tfpot", "preset": preset, "dtype": dtype, "threads": torch.get_num_threads(),
            "params": int(sum(p.numel() for p in model.parameters())), "rows": [row]}


def matmul_row(dtype: str, threads: int, n: int = 2048, repeats: int = 5) -> dict:
    """FLOP/s of a large dense matmul: the machine's practical ceiling for these models."""
    import numpy as np
    import torch

    torch.set_num_threads(threads)
    dt = {"float32": torch.float32, "float64": torch.float64}[dtype]
    a = torch.randn(n, n, dtype=dt)
    b = torch.randn(n, n, dtype=dt)
    torch.matmul(a, b)
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        torch.matmul(a, b)
        times.append(time.perf_counter() - t0)
    return {"dtype": dtype, "n": n, "gflops": 2 * n ** 3 / float(np.median(times)) / 1e9}


# ----------------------------------------------------------------------------- driver

class Runner:
    def __init__(self, args, tmp: Path):
        self.args = args
        self.tmp = tmp
        self.xyz_cache: dict = {}
        self.matmul: dict = {"float32": [], "float64": []}
        self.env = dict(os.environ, OMP_NUM_THREADS=str(args.threads),
                        MKL_NUM_THREADS=str(args.threads), PYTHONWARNINGS="ignore")

    def _limits(self):
        gb = self.args.mem_limit_gb
        if gb > 0:  # address-space guard: a runaway row fails instead of starving other jobs
            lim = int((gb + 4) * 2 ** 30)
            resource.setrlimit(resource.RLIMIT_AS, (lim, lim))

    def _run(self, cmd: list, timeout: float) -> dict:
        try:
            res = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout,
                                 env=self.env, preexec_fn=self._limits)
        except subprocess.TimeoutExpired:
            return {"error": f"killed after {timeout:.0f} s"}
        if res.returncode != 0:
            tail = (res.stderr.strip().splitlines() or ["?"])[-1]
            if "allocate memory" in tail or "MemoryError" in tail or res.returncode == -9:
                return {"error": f"out of memory (limit {self.args.mem_limit_gb:g} GB + 4 GB "
                                 f"address space)"}
            return {"error": f"exit {res.returncode}: {tail[:160]}"}
        return json.loads(res.stdout.strip().splitlines()[-1])

    def xyz(self, system: str) -> str:
        if system not in self.xyz_cache:
            from ase.io import write

            path = self.tmp / f"{system}.extxyz"
            write(path, build(system))
            self.xyz_cache[system] = str(path)
        return self.xyz_cache[system]

    def timeout(self) -> float:
        return 600.0 + (self.args.repeats + 2) * max(self.args.time_limit, 60.0)

    def warmup(self, system: str) -> int:
        return self.args.warmup if n_atoms(system) <= 1000 else min(self.args.warmup, 1)

    def tfpot(self, system: str, dtype: str, preset: str, repeats: int,
              flops: bool = False) -> dict:
        cmd = [sys.executable, __file__, "--tfpot-row", f"{system}:{dtype}:{preset}",
               "--warmup", str(self.warmup(system)), "--repeats", str(repeats),
               "--threads", str(self.args.threads), "--time-limit", str(self.args.time_limit),
               "--tfpot-hyper", self.args.tfpot_hyper]
        cmd += ["--flops"] if flops else []
        return self._run(cmd, self.timeout())

    def mace(self, system: str, dtype: str, channels: int, max_L: int, repeats: int,
             flops: bool = False) -> dict:
        cmd = [self.args.mace_python, str(HERE / "mace_worker.py"), "speed", "--xyz",
               self.xyz(system), "--dtype", dtype, "--channels", str(channels), "--max-L",
               str(max_L), "--max-ell", str(self.args.mace_max_ell), "--repeats", str(repeats),
               "--warmup", str(self.warmup(system)),
               "--threads", str(self.args.threads), "--time-limit", str(self.args.time_limit)]
        return self._run(cmd + (["--flops"] if flops else []), self.timeout())

    def sample_matmul(self) -> None:
        for dtype in ("float32", "float64"):
            r = self._run([sys.executable, __file__, "--matmul-row", dtype,
                           "--threads", str(self.args.threads)], 600)
            if "gflops" in r:
                self.matmul[dtype].append(r["gflops"])


def _median(xs):
    xs = sorted(xs)
    if not xs:
        return float("nan")
    m = len(xs) // 2
    return xs[m] if len(xs) % 2 else 0.5 * (xs[m - 1] + xs[m])


def _merge(results: list) -> Optional[dict]:
    """Median over rounds of one measurement; None if every round failed."""
    ok = [r for r in results if "rows" in r]
    if not ok:
        return None
    row = dict(ok[0]["rows"][0])
    row["ms_model"] = _median([r["rows"][0]["ms_model"] for r in ok])
    row["peak_mb"] = max(r["rows"][0]["peak_mb"] for r in ok)
    row["rounds"] = len(ok)
    return {**ok[0], "row": row}


def _err(results: list) -> str:
    return "; ".join(r.get("error", "") for r in results if "error" in r) or "failed"


def parse_pairs(pairs: list) -> list:
    out = []
    for p in pairs:
        try:
            preset, ch, L = p.split(":")
            out.append((preset, int(ch), int(L)))
        except ValueError as e:
            raise SystemExit(f"--pairs entries look like medium:64:1 (tfpot preset : MACE "
                             f"channels : MACE max_L), got {p!r}") from e
    return out


def speed_table(run: Runner, pairs: list, log: dict) -> list:
    a = run.args
    lines = ["| system | atoms | dtype | tfpot | ms/call | atom-steps/s | MACE | ms/call | "
             "atom-steps/s | tfpot/MACE |", "|---|---|---|---|---|---|---|---|---|---|"]
    print("\n".join(lines), flush=True)
    for system in a.systems:
        run.sample_matmul()
        for dtype in a.dtypes:
            flops = n_atoms(system) <= a.flops_max_atoms
            for preset, ch, L in pairs:
                tf, mc = [], []
                for _ in range(a.rounds):  # interleaved: tfpot, MACE, tfpot, MACE, ...
                    tf.append(run.tfpot(system, dtype, preset, a.repeats, flops))
                    mc.append(run.mace(system, dtype, ch, L, a.repeats, flops))
                t, m = _merge(tf), _merge(mc)
                key = f"{system}:{dtype}:{preset}:{ch}:{L}"
                log["speed"][key] = {"tfpot": t or _err(tf), "mace": m or _err(mc)}
                mace_name = f"{ch}x L{L}"
                n = (t or m or {"row": {"atoms": "-"}})["row"]["atoms"]
                tcol = (f"{t['row']['ms_model']:.1f} | {1e3 * n / t['row']['ms_model']:.0f}"
                        if t else f"failed: {_err(tf)} | -")
                mcol = (f"{m['row']['ms_model']:.1f} | {1e3 * n / m['row']['ms_model']:.0f}"
                        if m else f"failed: {_err(mc)} | -")
                ratio = f"{t['row']['ms_model'] / m['row']['ms_model']:.2f}" if t and m else "-"
                lines.append(f"| {system} | {n} | {dtype} | {preset} | {tcol} | {mace_name} | "
                             f"{mcol} | {ratio} |")
                print(lines[-1], flush=True)
    return lines


def scaling_table(run: Runner, pair: tuple, log: dict) -> list:
    a = run.args
    preset, ch, L = pair
    dtype = a.scaling_dtype
    lines = ["| N atoms | edges | tfpot ms/call | tfpot peak MB (model idle) | MACE ms/call | "
             "MACE peak MB (model idle) | tfpot/MACE |", "|---|---|---|---|---|---|---|"]
    print(f"tfpot {preset} vs MACE {ch}x L{L}, {dtype}\n\n" + "\n".join(lines), flush=True)
    last = {"tfpot": None, "mace": None}  # (atoms, ms, peak, base) of the previous size
    dropped = {"tfpot": None, "mace": None}
    for n_target in a.scaling_sizes:
        system = f"cu-{n_target}"
        n = n_atoms(system)
        res = {}
        for impl in ("tfpot", "mace"):
            if dropped[impl] is None and last[impl] is not None:
                n0, ms0, peak0, base0 = last[impl]
                t_pred = ms0 / 1e3 * n / n0
                mem_pred = base0 + (peak0 - base0) * n / n0
                if t_pred > a.time_limit:
                    dropped[impl] = (f"dropped: ~{t_pred:.0f} s/call predicted > "
                                     f"{a.time_limit:.0f} s limit")
                elif a.mem_limit_gb > 0 and mem_pred > 1024 * a.mem_limit_gb:
                    dropped[impl] = (f"dropped: ~{mem_pred / 1024:.1f} GB predicted > "
                                     f"{a.mem_limit_gb:g} GB limit")
            if dropped[impl] is not None:
                res[impl] = dropped[impl]
                continue
            r = (run.tfpot(system, dtype, preset, a.scaling_repeats) if impl == "tfpot"
                 else run.mace(system, dtype, ch, L, a.scaling_repeats))
            if "rows" not in r:
                res[impl] = f"failed: {r.get('error')}"
                dropped[impl] = f"dropped after failure at N={n}"
                continue
            row = r["rows"][0]
            res[impl] = row
            last[impl] = (row["atoms"], row["ms_model"], row["peak_mb"], row["base_mb"])
            if row["exceeded_time_limit"]:
                dropped[impl] = f"dropped: N={n} already took {row['ms_model'] / 1e3:.0f} s/call"
        log["scaling"][str(n)] = res

        def cols(x):
            if isinstance(x, str):
                return f"{x} | -"
            return f"{x['ms_model']:.0f} | {x['peak_mb']:.0f} ({x['base_mb']:.0f})"

        edges = next((x["edges"] for x in res.values() if isinstance(x, dict)), "-")
        t, m = res["tfpot"], res["mace"]
        ratio = (f"{t['ms_model'] / m['ms_model']:.2f}"
                 if isinstance(t, dict) and isinstance(m, dict) else "-")
        lines.append(f"| {n} | {edges} | {cols(t)} | {cols(m)} | {ratio} |")
        print(lines[-1], flush=True)
    return lines


def efficiency_table(run: Runner, log: dict) -> list:
    lines = ["| system | dtype | model | FLOPs/atom-step (M) | achieved GFLOP/s | matmul GFLOP/s "
             "(median, n) | fraction of matmul |", "|---|---|---|---|---|---|---|"]
    for key, entry in log["speed"].items():
        system, dtype, preset, ch, L = key.split(":")
        mm = _median(run.matmul[dtype])
        for impl, name in (("tfpot", f"tfpot {preset}"), ("mace", f"MACE {ch}x L{L}")):
            r = entry[impl]
            if not isinstance(r, dict) or "flops" not in r["row"]:
                continue
            row = r["row"]
            gflops = row["flops"] / (row["ms_model"] / 1e3) / 1e9
            per_atom = row["flops"] / row["atoms"] / 1e6
            lines.append(f"| {system} | {dtype} | {name} | {per_atom:.2f} | "
                         f"{gflops:.2f} | {mm:.1f} ({len(run.matmul[dtype])}) | "
                         f"{gflops / mm:.1%} |")
    return lines


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--mace-python", default=DEFAULT_MACE_PYTHON)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--repeats", type=int, default=5, help="timed calls per measurement")
    p.add_argument("--warmup", type=int, default=3,
                   help="untimed calls before them (1 for systems above 1000 atoms)")
    p.add_argument("--rounds", type=int, default=1, help="interleaved tfpot/MACE rounds per row")
    p.add_argument("--pairs", nargs="+", default=["medium:64:1", "small:32:1"],
                   help="tfpot preset : MACE channels : MACE max_L")
    p.add_argument("--mace-max-ell", type=int, default=3)
    p.add_argument("--systems", nargs="+", default=["molecule-21", "cu-256", "cu-4000"])
    p.add_argument("--dtypes", nargs="+", default=["float32", "float64"])
    p.add_argument("--flops-max-atoms", type=int, default=300,
                   help="count FLOPs on systems up to this size (one extra call each)")
    p.add_argument("--scaling-sizes", nargs="*", type=int, default=SCALING_SIZES)
    p.add_argument("--scaling-dtype", default="float32")
    p.add_argument("--scaling-repeats", type=int, default=2)
    p.add_argument("--time-limit", type=float, default=120.0,
                   help="seconds per call above which a model's larger sizes are dropped")
    p.add_argument("--mem-limit-gb", type=float, default=10.0)
    p.add_argument("--tfpot-hyper", default="{}",
                   help="hyperparameter overrides (JSON) for every tfpot model, e.g. "
                        "'{\"radial_filter\": \"tanh\", \"num_basis\": 16}'")
    p.add_argument("--skip-speed", action="store_true")
    p.add_argument("--json", help="write all raw measurements here")
    p.add_argument("--tfpot-row", help=argparse.SUPPRESS)
    p.add_argument("--matmul-row", help=argparse.SUPPRESS)
    p.add_argument("--flops", action="store_true", help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.tfpot_row:
        system, dtype, preset = args.tfpot_row.split(":")
        print(json.dumps(tfpot_row(system, dtype, preset, args.warmup, args.repeats, args.threads,
                                   args.time_limit, args.flops, args.tfpot_hyper)))
        return
    if args.matmul_row:
        print(json.dumps(matmul_row(args.matmul_row, args.threads)))
        return
    if not Path(args.mace_python).exists():
        raise SystemExit(f"MACE interpreter {args.mace_python} not found: create the MACE venv "
                         f"(benchmarks/README.md) or pass --mace-python")
    pairs = parse_pairs(args.pairs)
    import torch

    load = os.getloadavg()
    print(f"tfpot vs MACE: torch {torch.__version__}, {args.threads} thread(s), "
          f"{os.cpu_count()} cores, load average at start {load[0]:.1f}; median of "
          f"{args.repeats} energy+forces calls after {args.warmup} warm-up calls (1 above 1000 "
          f"atoms; scaling: {args.scaling_repeats} calls), {args.rounds} round(s); tfpot "
          f"hyperparameter overrides {args.tfpot_hyper}\n", flush=True)
    log: dict = {"args": vars(args), "load_start": load, "speed": {}, "scaling": {}}
    t_start = time.time()
    with tempfile.TemporaryDirectory() as tmp:
        run = Runner(args, Path(tmp))
        out = []
        if not args.skip_speed:
            print("## Speed\n", flush=True)
            out += ["## Speed", ""] + speed_table(run, pairs, log) + [""]
        if args.scaling_sizes:
            print("\n## Scaling\n", flush=True)
            run.sample_matmul()
            out += ["## Scaling", ""] + scaling_table(run, pairs[0], log) + [""]
        run.sample_matmul()
        if log["speed"]:
            eff = efficiency_table(run, log)
            out += ["## Efficiency", ""] + eff + [""]
            print("\n## Efficiency\n\n" + "\n".join(eff), flush=True)
        log["matmul_gflops"] = run.matmul
    log["load_end"] = os.getloadavg()
    log["wall_s"] = time.time() - t_start
    print(f"\nload average at end {log['load_end'][0]:.1f}; wall {log['wall_s'] / 60:.1f} min")
    if args.json:
        Path(args.json).write_text(json.dumps(log, indent=1))


if __name__ == "__main__":
    main()
