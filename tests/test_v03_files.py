"""Files written by tfpot 0.3.0 still load and predict what 0.3.0 predicted.

``tests/fixtures/v03_*.pt`` were written by ``tests/fixtures/make_v03_models.py`` with tfpot 0.3.0
(tiny models of every 0.3 variant, with non-trivial E0, scale and shift), and
``v03_reference.json`` holds that version's energies, per-atom energies, forces and stress.
Tolerance: float64, absolute 1e-12 (eV, eV/Å, eV/Å^3), and relative 1e-12 on total energies
(~ -6000 eV, where one unit in the last place is ~1e-12 eV).
"""

import json
from pathlib import Path

import numpy as np
import pytest
import torch

import tfpot
from tfpot.builder import model_from_config
from tfpot.export import export_model, load_exported
from tfpot.graph import neighbor_list
from tfpot.revisions import REVISION

from fixtures.make_v03_models import MODELS, structures
from helpers import halo_evaluation

FIXTURES = Path(__file__).resolve().parent / "fixtures"
REFERENCE = json.loads((FIXTURES / "v03_reference.json").read_text())
ABS = 1e-12
REL_ENERGY = 1e-12


def assert_matches(got, want):
    assert abs(got["energy"] - want["energy"]) <= REL_ENERGY * abs(want["energy"]), (
        got["energy"], want["energy"])
    for key in ("energies", "forces", "stress"):
        if key in want:
            diff = np.abs(np.asarray(got[key]) - np.asarray(want[key])).max()
            assert diff <= ABS, f"{key}: max difference {diff:.3e} > {ABS:.0e}"


@pytest.mark.parametrize("name", sorted(MODELS))
@pytest.mark.parametrize("structure", ["ethanol", "cu_cell"])
def test_v03_model_file_predicts_recorded_numbers_float64(name, structure):
    model = tfpot.load_model(FIXTURES / f"v03_{name}.pt")
    got = tfpot.predict(model, structures()[structure])
    assert_matches(got, REFERENCE["models"][name][structure])


def test_v03_attention_file_keeps_its_numbers_float64():
    # 0.3 attention models added the output bias on every edge without the envelope (revision 1,
    # tfpot.revisions): the file loads as revision 1 and reproduces 0.3's numbers exactly, while
    # the same weights as a new model (revision 2, smooth at the cutoff) predict others
    model = tfpot.load_model(FIXTURES / "v03_attention.pt")
    assert model.revision == 1 and "revision" not in torch.load(
        FIXTURES / "v03_attention.pt", weights_only=True)["hyperparameters"]
    for name, atoms in structures().items():
        assert_matches(tfpot.predict(model, atoms), REFERENCE["models"]["attention"][name])
    new = model_from_config({**model.config, "revision": REVISION}).to(torch.float64).eval()
    new.load_state_dict(model.state_dict())
    want = REFERENCE["models"]["attention"]["ethanol"]["energy"]
    assert abs(tfpot.predict(new, structures()["ethanol"])["energy"] - want) > 1e-6


def test_v03_attention_file_exported_today_keeps_its_numbers_float64(tmp_path):
    # the export carries revision 1: the forward entry (explicit ghosts) and the stages of the
    # LAMMPS pair style (one-cutoff halo, states exchanged) give 0.3's numbers
    meta = export_model(FIXTURES / "v03_attention.pt", tmp_path / "attention.pt")
    module, _ = load_exported(tmp_path / "attention.pt")
    got = _run_export(module, meta["species"], structures()["ethanol"], meta["cutoff"])
    assert_matches(got, REFERENCE["models"]["attention"]["ethanol"])
    model = tfpot.load_model(FIXTURES / "v03_attention.pt")
    e, ea, f = halo_evaluation(module, model, structures()["cu_cell"])
    assert_matches({"energy": e, "energies": ea, "forces": f},
                   {k: v for k, v in REFERENCE["models"]["attention"]["cu_cell"].items()
                    if k != "stress"})


def _run_export(module, model_species, atoms, cutoff):
    nl = neighbor_list(atoms.get_positions(), cutoff)
    index = {z: k for k, z in enumerate(model_species)}
    species = torch.tensor([index[int(z)] for z in atoms.get_atomic_numbers()])
    e, ea, f = module(torch.tensor(atoms.get_positions()), species, torch.tensor(nl.edge_index),
                      len(atoms))
    return {"energy": e.item(), "energies": ea.numpy(), "forces": f.numpy()}


def test_v03_export_loads_and_predicts_recorded_numbers_float64():
    module, meta = load_exported(FIXTURES / "v03_mlp_export.pt")
    assert meta["tfpot_version"] == "0.3.0" and meta["num_hops"] == 2
    got = _run_export(module, meta["species"], structures()["ethanol"], meta["cutoff"])
    assert_matches(got, REFERENCE["exports"]["mlp"]["ethanol"])


def test_v03_model_exported_today_matches_the_v03_export_float64(tmp_path):
    # today's export of the 0.3 model file gives the 0.3 export's numbers and metadata keys
    # (plus the checksum that exports carry since 0.4, and format 2's stages for LAMMPS' per-layer
    # halo exchange)
    path = tmp_path / "today.pt"
    meta = export_model(FIXTURES / "v03_mlp.pt", path)
    _, old_meta = load_exported(FIXTURES / "v03_mlp_export.pt")
    assert set(meta) == set(old_meta) | {"checksum", "num_stages", "state_widths"}
    assert {k: meta[k] for k in ("species", "cutoff", "num_hops", "ghost_cutoff", "units", "dtype")} \
        == {k: old_meta[k] for k in ("species", "cutoff", "num_hops", "ghost_cutoff", "units", "dtype")}
    module, _ = load_exported(path)
    got = _run_export(module, meta["species"], structures()["ethanol"], meta["cutoff"])
    assert_matches(got, REFERENCE["exports"]["mlp"]["ethanol"])


@pytest.mark.parametrize("name", sorted(set(MODELS) - {"mlp-average"}))
def test_same_seed_gives_the_v03_initial_weights(name):
    # Building with 0.3's seed and settings reproduces its initial weights bit for bit (the
    # fixtures are untrained; only E0, scale and shift were set): recipes stay reproducible.
    # (0.3 had no radial filter: radial_filter="none" is its architecture.)
    from fixtures.make_v03_models import TINY

    from tfpot.state_dict_upgrade import upgrade_state_dict

    new = tfpot.build_model(["H", "C", "O", "Cu"], cutoff=3.0, seed=11, preset="small", **TINY,
                            radial_filter="none", **MODELS[name]).state_dict()
    old = torch.load(FIXTURES / f"v03_{name}.pt", weights_only=True)["state_dict"]
    old = upgrade_state_dict(old, new)
    assert set(old) == set(new)
    readout = ("atomic_reference", "energy_scale", "energy_shift")
    for key, value in new.items():
        if not key.endswith(readout):
            assert torch.equal(value, old[key]), key
