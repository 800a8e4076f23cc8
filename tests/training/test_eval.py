"""`tfpot eval MODEL DATA`: metrics table, metrics.json, predictions and PNG plots."""

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
    for label in ("energy MAE", "forces RMSE", "stress MAE", "meV/atom", "(6 structures)"):
        assert label in table
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["num_structures"] == 6
    for name in ("energy_parity.png", "forces_parity.png", "force_error_hist.png", "stress_parity.png"):
        assert (out / name).read_bytes()[:8] == PNG, name

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
    assert "(400 structures)" in out and "forces MAE" in out and "stress" not in out


def test_eval_unknown_element_is_a_clear_error(tmp_path, model_file, capsys):
    assert main(["eval", str(model_file), "tfpot:demo"]) == 1
    err = capsys.readouterr().err
    assert err.startswith("tfpot eval: error: ethanol_gfn2.npz, frame 0, atom 0: element ")
    assert "is not one the model knows" in err and err.count("\n") == 1
