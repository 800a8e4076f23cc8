"""tfpot training recipes at a fixed wall-clock budget (no MACE): which preset / lr / schedule
gives the lowest test force error in N minutes on one core.

Run after ``bench_accuracy_vs_mace.py`` has written its extxyz splits to ``--data`` (the same
950 / 50 / 100 GFN2-xTB aspirin frames)::

    python benchmarks/bench_recipe.py OUT_DIR --data /tmp/acc30 --preset small --lr 1e-2 \
        [--schedule cosine] [--forces-weight 100] [--minutes 10] [--hyper '{"hidden": 48}']

Prints one JSON line starting with ``RESULT`` (test energy / force MAE, epochs, settings) and
writes it to ``OUT_DIR/result.json``. Two runs side by side (one thread each) is how the recipe
table in ``benchmarks/README.md`` was measured.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from bench_accuracy_vs_mace import read_labelled, tfpot_eval  # noqa: E402


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("out", help="run directory (must not hold a run)")
    p.add_argument("--data", default="/tmp/acc30", help="dir with train/valid/test.extxyz")
    p.add_argument("--preset", default="small")
    p.add_argument("--schedule", default="cosine", choices=("cosine", "plateau", "constant"))
    p.add_argument("--lr", type=float, default=1e-2)
    p.add_argument("--forces-weight", type=float, default=100.0)
    p.add_argument("--batch-size", type=int, default=4)
    p.add_argument("--minutes", type=float, default=10.0)
    p.add_argument("--dtype", default="float64")
    p.add_argument("--ema", type=float, default=0.99)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--hyper", default="{}", help="JSON of extra build_model arguments")
    a = p.parse_args()

    import torch

    import tfpot
    from tfpot.training import fit

    torch.set_num_threads(a.threads)
    d = Path(a.data)
    train, val = read_labelled(str(d / "train.extxyz")), read_labelled(str(d / "valid.extxyz"))
    species = sorted(set(z for x in train for z in x.get_chemical_symbols()))
    model = tfpot.build_model(species, cutoff=5.0, preset=a.preset, dtype=a.dtype, seed=0,
                              **json.loads(a.hyper))
    params = sum(t.numel() for t in model.parameters())
    fit(model, train, val, epochs=10 ** 6, batch_size=a.batch_size, lr=a.lr, energy_weight=1.0,
        forces_weight=a.forces_weight, seed=0, max_time=a.minutes * 60, out_dir=a.out,
        ema_decay=a.ema, schedule=a.schedule)
    best = tfpot.load_model(Path(a.out) / "best_model.pt", dtype="float64")
    res = tfpot_eval(best, str(d / "test.extxyz"))
    summary = json.loads((Path(a.out) / "summary.json").read_text())
    res.update(vars(a), params=params, epochs=summary.get("epochs"))
    line = json.dumps(res)
    print("RESULT", line)
    (Path(a.out) / "result.json").write_text(line)


if __name__ == "__main__":
    main()
