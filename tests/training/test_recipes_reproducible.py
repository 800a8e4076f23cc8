"""The reproducibility contract, for every shipped recipe: the same config and seed give the same
``metrics.csv`` (byte for byte), the same models (bit for bit) and the same test report.

Each recipe runs unchanged (schedule, loss, EMA, optimiser, dtype, workers, budget) except for
what makes it small: its YAML is copied next to small data files in its own format, under the
names the recipe expects (so its relative data paths work as written), and ``--set``-style
overrides shrink the split, the model and the number of epochs.
"""

import json
import shutil
import tarfile

import numpy as np
import pytest
import torch
from ase.build import bulk
from ase.calculators.emt import EMT
from ase.calculators.singlepoint import SinglePointCalculator
from ase.io import write

from tfpot.data import demo_dataset_path
from tfpot.training import train_from_config
from tfpot.training.config import list_recipes, load_config, recipes_dir

KCAL = 0.0433641043  # eV per kcal/mol


def _demo_arrays(n):
    with np.load(demo_dataset_path()) as npz:
        return {k: npz[k][:n] if npz[k].ndim and len(npz[k]) == 400 else npz[k] for k in npz.files}


def md17_file(folder):
    shutil.copy(demo_dataset_path(), folder / "md17_ethanol.npz")


def rmd17_files(folder):
    d = _demo_arrays(40)
    (folder / "rmd17" / "npz_data").mkdir(parents=True)
    np.savez(folder / "rmd17" / "npz_data" / "rmd17_aspirin.npz", nuclear_charges=d["z"],
             coords=d["R"], energies=d["E"][:, 0], forces=d["F"], old_indices=np.arange(40))
    (folder / "rmd17" / "splits").mkdir()
    (folder / "rmd17" / "splits" / "index_train_01.csv").write_text(
        "\n".join(str(i) for i in range(0, 32)) + "\n")
    (folder / "rmd17" / "splits" / "index_test_01.csv").write_text(
        "\n".join(str(i) for i in range(32, 40)) + "\n")


def qm9_archive(folder):
    d = _demo_arrays(40)
    symbols = {1: "H", 6: "C", 8: "O"}
    src = folder / "qm9_xyz"
    src.mkdir()
    for k in range(40):
        u0 = float(d["E"][k, 0]) * KCAL / 27.211386245988  # any energy, in Hartree
        props = [k + 1] + [0.0] * 10 + [u0, u0, u0, u0, 0.0]
        lines = [str(len(d["z"])), "gdb " + "\t".join(f"{p}" for p in props)]
        lines += [f"{symbols[int(z)]}\t{x:.6f}\t{y:.6f}\t{w:.6f}\t0.0"
                  for z, (x, y, w) in zip(d["z"], d["R"][k])]
        lines += ["0.0", "C C", "InChI=1S/x InChI=1S/x"]
        (src / f"dsgdb9nsd_{k + 1:06d}.xyz").write_text("\n".join(lines) + "\n")
    with tarfile.open(folder / "dsgdb9nsd.xyz.tar.bz2", "w:bz2") as tar:
        for p in sorted(src.iterdir()):
            tar.add(p, arcname=p.name)


def materials_files(folder):
    frames = []
    for k in range(24):
        a = bulk("Cu", "fcc", a=3.6, cubic=True)
        a.symbols[k % 4] = "Ni" if k % 2 else "Al"
        a.rattle(0.05, seed=k)
        a.set_cell(a.cell * (1 + 0.01 * (k % 5 - 2)), scale_atoms=True)
        a.calc = EMT()
        res = {"energy": a.get_potential_energy(), "forces": a.get_forces(), "stress": a.get_stress()}
        a.calc = SinglePointCalculator(a, **res)
        frames.append(a)
    write(folder / "train.xyz", frames[:20], format="extxyz")
    write(folder / "test.xyz", frames[20:], format="extxyz")


DATA = {"demo": None, "md17": md17_file, "rmd17": rmd17_files, "qm9": qm9_archive,
        "extxyz_materials": materials_files}
SPLITS = {"demo": {"train": 24, "val": 8, "test": 8}, "md17": {"train": 24, "val": 8, "test": 8},
          "rmd17": {"val": 8}, "qm9": {"train": 24, "val": 8, "test": 8},
          "extxyz_materials": {"val": 0.25}}


def test_every_shipped_recipe_is_covered():
    assert set(list_recipes()) == set(DATA)


def small(name, out, tiny_model):
    overrides = {"output_dir": str(out), "data.cutoff": 4.0, "training.max_epochs": 2,
                 "logging.progress_bar": False, "logging.tensorboard": False}
    overrides.update({f"data.split.{k}": v for k, v in SPLITS[name].items()})
    overrides.update({f"model.{k}": v for k, v in tiny_model.items() if k not in ("preset", "dtype")})
    return overrides


@pytest.mark.parametrize("name", sorted(DATA))
def test_same_config_and_seed_give_the_same_run(name, tmp_path, tiny_config):
    folder = tmp_path / "data"
    folder.mkdir()
    if DATA[name] is not None:
        DATA[name](folder)
    recipe = shutil.copy(recipes_dir() / f"{name}.yaml", folder / f"{name}.yaml")
    runs = []
    for k in (1, 2):
        cfg = load_config(recipe, small(name, tmp_path / f"run{k}", tiny_config()["model"]))
        runs.append(train_from_config(cfg, verbose=False))
    a, b = runs
    text = (a / "metrics.csv").read_text()
    assert len(text.splitlines()) == 3  # header + 2 epochs
    assert text == (b / "metrics.csv").read_text()
    assert (a / "test_metrics.json").read_text() == (b / "test_metrics.json").read_text()
    for model in ("best_model.pt", "final_model.pt"):
        sa = torch.load(a / model, weights_only=True)["state_dict"]
        sb = torch.load(b / model, weights_only=True)["state_dict"]
        assert all(torch.equal(sa[k], sb[k]) for k in sa), model
    summary = json.loads((a / "summary.json").read_text())
    assert summary["epochs"] == 2


def test_negative_control_another_seed_gives_another_run(tmp_path, tiny_config):
    recipe = recipes_dir() / "demo.yaml"
    runs = []
    for seed in (0, 1):
        overrides = small("demo", tmp_path / f"seed{seed}", tiny_config()["model"])
        overrides["seed"] = seed
        runs.append(train_from_config(load_config(recipe, overrides), verbose=False))
    assert (runs[0] / "metrics.csv").read_text() != (runs[1] / "metrics.csv").read_text()
