"""Relaxations through TFPotCalculator converge: a molecule with BFGS and FIRE (trained ethanol
model), and a Cu cell with stress through FrechetCellFilter (model trained on EMT labels by the
example script, shortened)."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
import pytest

from tfpot.calculators import TFPotCalculator
from tfpot.calculators.relax_cli import relax
from tfpot.data import demo_dataset_path, read_structures

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


def _load_example(name: str):
    spec = importlib.util.spec_from_file_location(f"tfpot_example_{name}", EXAMPLES / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _max_force(atoms) -> float:
    return float(np.linalg.norm(atoms.get_forces(), axis=1).max())


@pytest.mark.parametrize("optimizer", ["BFGS", "FIRE"])
def test_molecule_relaxation_converges(trained_ethanol, optimizer):
    atoms = read_structures(demo_dataset_path())[0]
    atoms.calc = TFPotCalculator(trained_ethanol)
    e0, f0 = atoms.get_potential_energy(), _max_force(atoms)
    converged, nsteps, fmax = relax(atoms, fmax=0.02, steps=400, optimizer=optimizer)
    print(f"\n{optimizer}: {nsteps} steps, max force {f0:.3f} -> {fmax:.4f} eV/Å, "
          f"E {e0:.4f} -> {atoms.get_potential_energy():.4f} eV")
    assert converged and fmax < 0.02
    assert _max_force(atoms) < 0.02  # the calculator agrees with the optimiser
    assert atoms.get_potential_energy() < e0
    # a relaxed molecule: no bond broken (C-H, C-C, C-O, O-H all below 1.6 Å)
    d = atoms.get_all_distances()
    np.fill_diagonal(d, np.inf)
    assert d.min(axis=1).max() < 1.6


def test_relax_molecule_example(trained_ethanol, tmp_path, capsys):
    example = _load_example("relax_molecule")
    out = tmp_path / "relaxed.xyz"
    rc = example.main([str(trained_ethanol), "--optimizer", "FIRE", "--fmax", "0.05",
                       "-o", str(out)])
    assert rc == 0, capsys.readouterr().out
    assert "converged" in capsys.readouterr().out
    assert out.exists()


def test_cell_relaxation_with_stress_emt_example(tmp_path, capsys):
    """The example trains a Cu model on EMT energies, forces and stress (shortened here), then
    relaxes a 3 % expanded, sheared, rattled 32-atom cell; the cell filter must converge and the
    lattice constant must land near EMT's own (3.590 Å)."""
    example = _load_example("relax_cell_emt")
    model_path = tmp_path / "cu_emt.pt"
    rc = example.main(["--structures", "24", "--epochs", "25", "--fmax", "0.03",
                       "--expand", "0.03", "--model-out", str(model_path)])
    out = capsys.readouterr().out
    print(out)
    assert rc == 0, out
    assert "tfpot: converged" in out
    a_model = float(out.split("lattice constant: tfpot ")[1].split(" Å")[0])
    a_emt = float(out.split(", EMT ")[1].split(" Å")[0])
    assert abs(a_emt - 3.590) < 2e-3
    assert abs(a_model - a_emt) < 0.05, (a_model, a_emt)
    assert model_path.exists()
