"""The TorchScript export: same numbers as the Python model, with explicit ghost atoms."""

import numpy as np
import pytest
import torch
from ase import Atoms

import tfpot
from tfpot.export import export_model, load_exported
from tfpot.graph import neighbor_list
from tfpot.testing import TOLERANCES
from tfpot.testing.structures import ethanol, triclinic_cu

from helpers import halo_evaluation, make_model

EXACT = TOLERANCES[torch.float64]["reproduction"]  # 1e-12: the same numbers, computed another way


def run_exported(module, model, local: Atoms, ghosts_pos=None, ghost_numbers=None):
    pos = local.get_positions()
    numbers = local.get_atomic_numbers()
    if ghosts_pos is not None:
        pos = np.concatenate([pos, ghosts_pos])
        numbers = np.concatenate([numbers, ghost_numbers])
    nl = neighbor_list(pos, model.cutoff)
    species = model.species_index(torch.tensor(numbers))
    e, ea, f = module(torch.tensor(pos), species, torch.tensor(nl.edge_index), len(local))
    return e.item(), ea.numpy(), f.numpy()


def test_export_metadata_and_molecule_float64(tmp_path):
    # exported == Python model on a molecule (no ghosts): abs 1e-12 eV, 1e-12 eV/Å (float64)
    model = make_model()
    path = tmp_path / "model.pt"
    export_model(model, path)
    module, meta = load_exported(path)
    assert meta["species"] == model.species and meta["units"] == "metal"
    assert meta["num_hops"] == model.num_layers
    assert meta["ghost_cutoff"] == pytest.approx(model.num_layers * model.cutoff)
    atoms = ethanol()
    e, ea, f = run_exported(module, model, atoms)
    ref = tfpot.predict(model, atoms)
    assert abs(e - ref["energy"]) < EXACT
    assert np.abs(f - ref["forces"]).max() < EXACT


@pytest.mark.parametrize("num_layers", [1, 2])
def test_export_with_ghost_images_equals_periodic_model_float64(tmp_path, num_layers):
    # Periodic cell evaluated as LAMMPS does it: local atoms + explicit ghost images out to the
    # ghost cutoff; energy of local atoms and forces folded back onto owners equal the periodic
    # model (float64, rel 1e-12), and a ghost shell thinner by half a cutoff gives a different
    # energy: the receptive field is exactly num_layers * cutoff.
    model = make_model(num_layers=num_layers)
    path = tmp_path / "model.pt"
    meta = export_model(model, path)
    module, _ = load_exported(path)
    atoms = triclinic_cu()
    cell = np.asarray(atoms.get_cell())
    ref = tfpot.predict(model, atoms)

    def images(width):
        pos, owner = [], []
        frac_inv = np.linalg.inv(cell)
        reps = [int(np.ceil(width * np.linalg.norm(frac_inv[:, k]))) + 1 for k in range(3)]
        for a in range(-reps[0], reps[0] + 1):
            for b in range(-reps[1], reps[1] + 1):
                for c in range(-reps[2], reps[2] + 1):
                    if a == b == c == 0:
                        continue
                    shifted = atoms.get_positions() + np.array([a, b, c]) @ cell
                    # keep images within `width` of any local atom
                    d = np.linalg.norm(shifted[:, None, :] - atoms.get_positions()[None], axis=-1).min(1)
                    keep = d < width
                    pos.append(shifted[keep])
                    owner.append(np.nonzero(keep)[0])
        return np.concatenate(pos), np.concatenate(owner)

    gpos, owner = images(meta["ghost_cutoff"])
    e, ea, f = run_exported(module, model, atoms, gpos, atoms.get_atomic_numbers()[owner])
    n = len(atoms)
    folded = f[:n].copy()
    np.add.at(folded, owner, f[n:])
    assert abs(e - ref["energy"]) <= EXACT * abs(ref["energy"])
    assert np.abs(ea[:n] - ref["energies"]).max() < EXACT
    assert np.abs(folded - ref["forces"]).max() < EXACT
    # virial from all atoms' positions and forces equals the model's (f . r over local + ghosts)
    allpos = np.concatenate([atoms.get_positions(), gpos])
    virial = np.einsum("ki,kj->ij", allpos, f)
    assert np.abs(0.5 * (virial + virial.T) - ref["virial"]).max() < 1e-9
    thin, towner = images(meta["ghost_cutoff"] - 0.5 * model.cutoff)
    e_thin, _, f_thin = run_exported(module, model, atoms, thin, atoms.get_atomic_numbers()[towner])
    assert abs(e_thin - ref["energy"]) > 1e-9 or np.abs(f_thin[:n] - f[:n]).max() > 1e-9


def test_load_exported_refuses_foreign_files(tmp_path):
    plain = tmp_path / "plain.pt"
    torch.jit.save(torch.jit.script(torch.nn.Linear(2, 2)), plain)
    with pytest.raises(ValueError, match="not a tfpot export"):
        load_exported(plain)
    junk = tmp_path / "junk.pt"
    junk.write_text("hello")
    with pytest.raises(ValueError, match="not a TorchScript file"):
        load_exported(junk)


@pytest.mark.parametrize("num_layers,parity,radial_filter,ensemble_channels,ensemble_pairs",
                         [(2, "equivariant", "none", 0, "ordered"),
                          (3, "equivariant", "none", 0, "ordered"),
                          (2, "none", "none", 0, "ordered"), (2, "equivariant", "tanh", 0, "ordered"),
                          (2, "equivariant", "none", 8, "ordered"),
                          (2, "equivariant", "none", 8, "unordered")])
def test_stages_with_a_one_cutoff_halo_equal_the_periodic_model_float64(tmp_path, num_layers, parity,
                                                                        radial_filter,
                                                                        ensemble_channels,
                                                                        ensemble_pairs):
    # The LAMMPS algorithm without LAMMPS: a ghost shell of ONE cutoff, owned centres only,
    # states copied to ghosts between stages. Equals the periodic model to 1e-12 (eV, eV/Å);
    # without the copy (ghost states zero) the energy changes: the exchange is what carries the
    # second hop.
    model = make_model(num_layers=num_layers, parity=parity, radial_filter=radial_filter,
                       ensemble_channels=ensemble_channels, ensemble_pairs=ensemble_pairs)
    path = tmp_path / "model.pt"
    meta = export_model(model, path)
    assert meta["format_version"] == 2 and meta["num_stages"] == num_layers
    assert meta["state_widths"] == [model.state_width] * (num_layers - 1)
    module, _ = load_exported(path)
    atoms = triclinic_cu()
    ref = tfpot.predict(model, atoms)
    e, ea, f = halo_evaluation(module, model, atoms)
    assert abs(e - ref["energy"]) <= 1e-12 * abs(ref["energy"])
    assert np.abs(ea - (ref["energies"])).max() < 1e-12
    assert np.abs(f - ref["forces"]).max() < 1e-12
    e_cut, _, _ = halo_evaluation(module, model, atoms, exchange=False)
    assert abs(e_cut - ref["energy"]) > 1e-6


def test_load_exported_reads_format_1_files(tmp_path):
    # tfpot 0.3 exports (format 1: forward only) still load in Python; LAMMPS refuses them
    import json

    path = tmp_path / "old.pt"
    meta = {"format": "tfpot-lammps", "format_version": 1, "species": [29]}
    torch.jit.save(torch.jit.script(torch.nn.Linear(2, 2)), path,
                   _extra_files={"metadata.json": json.dumps(meta)})
    _, got = load_exported(path)
    assert got["format_version"] == 1
    meta["format_version"] = 3
    torch.jit.save(torch.jit.script(torch.nn.Linear(2, 2)), path,
                   _extra_files={"metadata.json": json.dumps(meta)})
    with pytest.raises(ValueError, match="export the model again"):
        load_exported(path)


def test_cli_export_writes_a_format_2_file(tmp_path, capsys):
    # `tfpot export MODEL -o FILE` stays one command and writes what the pair style reads
    from tfpot.cli import main

    model = make_model()
    model.save(tmp_path / "model.tfp")
    assert main(["export", str(tmp_path / "model.tfp"), "-o", str(tmp_path / "model.pt")]) == 0
    _, meta = load_exported(tmp_path / "model.pt")
    assert meta["format_version"] == 2 and meta["num_stages"] == 2
    assert "ghost shell is the cutoff (4.000 Å) + skin" in capsys.readouterr().out


def test_python_path_and_stages_are_one_implementation():
    # atomic_energies runs the stages with every atom owned: stage by stage by hand, the same bits
    model = make_model(num_layers=3)
    atoms = triclinic_cu()
    nl = neighbor_list(atoms.get_positions(), model.cutoff, cell=atoms.get_cell(), pbc=atoms.pbc)
    pos = torch.tensor(atoms.get_positions())
    ei = torch.tensor(nl.edge_index)
    shifts = torch.tensor(nl.shifts)
    species = model.species_index(torch.tensor(atoms.get_atomic_numbers()))
    vec = pos[ei[1]] - pos[ei[0]] + shifts
    state = torch.zeros(len(atoms), 0, dtype=torch.float64)
    with torch.no_grad():
        for t in range(model.num_layers):
            state = model.stage(t, vec, species, ei, len(atoms), state)
        assert torch.equal(state, model.atomic_energies(pos, species, ei, shifts))


def test_export_refuses_mirror_averaged_models_of_tfpot_before_0_2(tmp_path, capsys):
    # the staged export has no mirror pass: a one-line refusal, from Python and from the CLI
    from tfpot.cli import main
    from tfpot.errors import TfpotError

    msg = ("model file from tfpot < 0.2 (parity='average'): LAMMPS export needs a model trained "
           "with tfpot >= 0.2; retrain")
    model = make_model(parity="average")
    with pytest.raises(TfpotError) as info:
        export_model(model, tmp_path / "model.pt")
    assert str(info.value) == msg
    assert not (tmp_path / "model.pt").exists()
    model.save(tmp_path / "old.tfp")
    assert main(["export", str(tmp_path / "old.tfp"), "-o", str(tmp_path / "model.pt")]) != 0
    assert msg in capsys.readouterr().err
    assert not (tmp_path / "model.pt").exists()
