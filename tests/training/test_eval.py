"""`tfpot eval MODEL DATA` and `tfpot eval RUN_DIR`: metrics table, metrics.json (with units),
predictions and PNG plots; a run is evaluated on its own held-out test split."""

import json

import numpy as np
import pytest
from ase.build import bulk
from ase.calculators.emt import EMT
from ase.calculators.singlepoint import SinglePointCalculator

import tfpot
from tfpot.cli import main
from tfpot.training.normalisation import apply_statistics

PNG = b"\x89PNG\r\n\x1a\n"


def emt_cells(n, seed=0):
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(n):
        a = bulk("Cu", "fcc", a=3.6, cubic=True)
        a.symbols[rng.integers(4)] = "Al"
        a.set_cell(a.cell.array @ (np.eye(3) + 0.02 * rng.uniform(-1, 1, (3, 3))), scale_atoms=True)
        a.rattle(0.05, seed=int(rng.integers(1 << 30)))
        a.calc = EMT()
        res = dict(energy=a.get_potential_energy(), forces=a.get_forces(), stress=a.get_stress())
        a.calc = SinglePointCalculator(a, **res)
        out.append(a)
    return out


@pytest.fixture
def model_file(tmp_path):
    model = tfpot.build_model(["Cu", "Al"], cutoff=4.0, preset="small", hidden=16, num_layers=1,
                              reps="16x0+4x1+2x2", seed=0)
    apply_statistics(model, {"e0": {29: -0.1, 13: 0.2}, "energy_scale": 0.5, "energy_shift": 0.0})
    path = tmp_path / "model.pt"
    tfpot.save_model(model, path)
    return path


def test_eval_writes_table_json_and_plots(tmp_path, model_file, capsys):
    import ase.io

    frames = emt_cells(6)
    data = tmp_path / "cells.xyz"
    ase.io.write(data, frames, format="extxyz")
    out = tmp_path / "report"
    assert main(["eval", str(model_file), str(data), "-o", str(out)]) == 0
    table = capsys.readouterr().out
    for label in ("energy MAE", "forces RMSE", "stress MAE", "meV/atom",
                  "cells.xyz: all 6 structures (no split)", "force errors per element"):
        assert label in table
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["num_structures"] == 6 and metrics["split"] is None
    assert metrics["units"]["forces_mae"] == "eV/Å" and metrics["units"]["stress_mae"] == "eV/Å^3"
    for name in ("energy_parity.png", "forces_parity.png", "force_error_hist.png",
                 "forces_per_element.png", "stress_parity.png"):
        assert (out / name).read_bytes()[:8] == PNG, name
    assert not (out / "learning_curve.png").exists()  # no run, no learning curve

    # the numbers are those of tfpot.predict (the ASE-facing path)
    model = tfpot.load_model(model_file)
    preds = np.load(out / "predictions.npz")
    ref = [tfpot.predict(model, a) for a in frames]
    e_err = np.array([(r["energy"] - a.get_potential_energy()) / len(a) for r, a in zip(ref, frames)])
    f_err = np.concatenate([(r["forces"] - a.get_forces()).ravel() for r, a in zip(ref, frames)])
    s_err = np.concatenate([(r["stress"] - a.get_stress(voigt=False)).ravel() for r, a in zip(ref, frames)])
    assert np.allclose(preds["energy"], [r["energy"] for r in ref], rtol=0, atol=1e-9)
    assert metrics["energy_mae"] == pytest.approx(np.abs(e_err).mean(), rel=1e-9)
    assert metrics["forces_rmse"] == pytest.approx(np.sqrt((f_err ** 2).mean()), rel=1e-9)
    assert metrics["stress_mae"] == pytest.approx(np.abs(s_err).mean(), rel=1e-9)


def test_eval_molecules_without_output_dir(tmp_path, capsys):
    model = tfpot.build_model(["H", "C", "O"], cutoff=4.0, preset="small", hidden=16,
                              num_layers=1, reps="16x0+4x1+2x2")
    path = tmp_path / "m.pt"
    tfpot.save_model(model, path)
    assert main(["eval", str(path), "tfpot:demo", "--batch-size", "64"]) == 0
    out = capsys.readouterr().out
    assert "all 400 structures (no split)" in out and "forces MAE" in out and "stress" not in out


def test_eval_unknown_element_is_a_clear_error(tmp_path, model_file, capsys):
    assert main(["eval", str(model_file), "tfpot:demo"]) == 1
    err = capsys.readouterr().err
    assert err.startswith("tfpot eval: error: ethanol_gfn2.npz, frame 0, atom 0: element ")
    assert "is not one the model knows" in err and err.count("\n") == 1



def test_per_element_force_errors_match_a_direct_computation(tmp_path, model_file):
    import ase.io

    frames = emt_cells(4, seed=3)
    data = tmp_path / "cells.xyz"
    ase.io.write(data, frames, format="extxyz")
    out = tmp_path / "report"
    assert main(["eval", str(model_file), str(data), "-o", str(out)]) == 0
    table = json.loads((out / "metrics.json").read_text())["per_element"]
    model = tfpot.load_model(model_file)
    frames = ase.io.read(data, ":")  # the references as written (extxyz rounds them)
    for symbol in ("Cu", "Al"):
        err = np.concatenate([(tfpot.predict(model, a)["forces"] - a.get_forces())[
            np.array(a.get_chemical_symbols()) == symbol] for a in frames])
        assert table[symbol]["atoms"] == len(err)
        assert table[symbol]["forces_mae"] == pytest.approx(np.abs(err).mean(), rel=1e-9)
        assert table[symbol]["forces_rmse"] == pytest.approx(np.sqrt((err ** 2).mean()), rel=1e-9)


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    """A tiny finished training run on the demo data: 24 train, 8 val, 8 test structures."""
    from tfpot.training import train_from_config

    cfg = {"seed": 1, "device": "cpu", "num_threads": 1,
           "output_dir": str(tmp_path_factory.mktemp("evalrun") / "run"),
           "data": {"path": "tfpot:demo", "split": {"train": 24, "val": 8, "test": 8},
                    "cutoff": 4.0},
           "model": {"preset": "small", "hidden": 16, "num_layers": 1, "reps": "16x0+4x1+2x2"},
           "training": {"max_epochs": 3, "batch_size": 4},
           "logging": {"progress_bar": False, "tensorboard": False}}
    return train_from_config(cfg, verbose=False)


def test_eval_of_a_run_reports_its_held_out_test_split(run_dir, capsys):
    assert main(["eval", str(run_dir)]) == 0
    text = capsys.readouterr().out
    out = run_dir / "eval_test"
    report = json.loads((out / "metrics.json").read_text())
    assert report["split"] == "test" and report["num_structures"] == 8
    assert report["data_description"] == ("ethanol_gfn2.npz: held-out test split, 8 of 400 "
                                          "structures (split seed 1)")
    assert report["data_description"] in text
    # the same numbers as the trainer's own test report of the best model
    trainer_test = json.loads((run_dir / "test_metrics.json").read_text())
    for key in ("energy_mae", "energy_rmse", "forces_mae", "forces_rmse"):
        assert report[key] == pytest.approx(trainer_test[key], rel=1e-12), key
    # the frames are the run's test indices
    preds = np.load(out / "predictions.npz")
    test_idx = np.load(run_dir / "splits.npz")["test"]
    from tfpot.data import demo_dataset_path, read_structures

    ref = read_structures(demo_dataset_path(), indices=test_idx)
    assert np.allclose(preds["energy_ref"], [a.get_potential_energy() for a in ref], rtol=0,
                       atol=1e-9)
    for name in ("energy_parity.png", "forces_parity.png", "force_error_hist.png",
                 "forces_per_element.png", "learning_curve.png"):
        assert (out / name).read_bytes()[:8] == PNG, name
    assert set(report["per_element"]) == {"H", "C", "O"}


def test_eval_of_a_run_other_splits_and_model_file_inside_it(run_dir, tmp_path, capsys):
    out = tmp_path / "val"
    assert main(["eval", str(run_dir / "best_model.pt"), "--split", "val", "-o", str(out)]) == 0
    report = json.loads((out / "metrics.json").read_text())
    assert report["split"] == "val" and report["num_structures"] == 8
    # validation of the best epoch (EMA weights = best_model.pt) is what the trainer logged
    best = json.loads((run_dir / "summary.json").read_text())["best_validation"]
    assert report["forces_mae"] == pytest.approx(best["forces_mae"], rel=1e-12)
    capsys.readouterr()
    assert main(["eval", str(run_dir), "--split", "train", "-o", str(tmp_path / "tr")]) == 0
    assert "training split, 24 of 400 structures" in capsys.readouterr().out


def test_eval_errors_are_one_line(tmp_path, model_file, capsys):
    assert main(["eval", str(model_file)]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert err == [f"tfpot eval: error: {model_file} is not inside a training run (no config.yaml "
                   f"next to it); give the data to evaluate on: tfpot eval {model_file} DATA"]
    assert main(["eval", str(tmp_path / "nothere")]) == 1
    assert capsys.readouterr().err.strip() == (f"tfpot eval: error: {tmp_path / 'nothere'}: no "
                                               f"such run directory or model file")
    assert main(["eval", str(model_file), "tfpot:demo", "--split", "val"]) == 1
    assert "--split needs a training run" in capsys.readouterr().err
