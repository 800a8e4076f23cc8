"""Model revisions (tfpot/revisions.py): new models compute the latest; files keep what they did.

Revision 1 (files that record none: tfpot 0.3 and 0.4.0) added the attention output bias on
every edge without the envelope, so the energy jumps where a neighbour crosses the cutoff;
revision 2 scales every message by the envelope (the contract's smoothness test in
tests/test_model.py passes for attention models).
"""

import pytest
import torch
from ase import Atoms
from ase.build import molecule

import tfpot
from tfpot.builder import model_from_config
from tfpot.errors import FileIntegrityError
from tfpot.model_file import save_model
from tfpot.revisions import REVISION, UNRECORDED
from tfpot.testing.checks import assert_smooth_scan
from tfpot.testing.structures import ethanol

from helpers import make_model


def _as_revision(model, revision):
    """The same architecture and weights, as a file of ``revision`` loads (None: no key)."""
    config = {k: v for k, v in model.config.items() if k != "revision"}
    if revision is not None:
        config["revision"] = revision
    old = model_from_config(config).to(torch.float64)
    old.load_state_dict(model.state_dict())
    return old.eval()


def _water_and_cu():
    water = molecule("H2O")
    return water + Atoms("Cu", positions=[[3.0, 0.3, 0.2]])


def test_new_models_are_of_the_latest_revision_and_record_it(tmp_path):
    model = make_model(message="attention")
    assert model.revision == REVISION == 2 and model.config["revision"] == REVISION
    save_model(model, tmp_path / "m.pt")
    assert tfpot.load_model(tmp_path / "m.pt").revision == REVISION


def test_negative_control_revision_1_attention_jumps_at_the_cutoff():
    # the same weights as revision 1 (the behaviour 0.3 files keep): the smoothness check fails
    model = make_model(message="attention")
    old = _as_revision(model, None)
    assert old.revision == UNRECORDED == 1 and old.config["revision"] == 1
    start = _water_and_cu()
    assert_smooth_scan(model, start, 3, [1.0, 0.0, 0.0], length=model.cutoff + 2.0, n_steps=400)
    with pytest.raises(AssertionError, match="energy jumps"):
        assert_smooth_scan(old, start, 3, [1.0, 0.0, 0.0], length=model.cutoff + 2.0,
                           n_steps=400)


def test_revision_changes_attention_only():
    atoms = ethanol()
    mlp = make_model(message="mlp")
    assert tfpot.predict(_as_revision(mlp, 1), atoms)["energy"] == tfpot.predict(mlp, atoms)["energy"]
    att = make_model(message="attention")
    diff = tfpot.predict(_as_revision(att, 1), atoms)["energy"] - tfpot.predict(att, atoms)["energy"]
    assert abs(diff) > 1e-6


def test_a_loaded_revision_1_model_saves_and_scripts_as_revision_1(tmp_path):
    old = _as_revision(make_model(message="attention"), None)
    save_model(old, tmp_path / "old.pt")
    again = tfpot.load_model(tmp_path / "old.pt")
    assert again.config == old.config and again.revision == 1
    atoms = ethanol()
    assert tfpot.predict(again, atoms)["energy"] == tfpot.predict(old, atoms)["energy"]
    scripted = torch.jit.script(again)  # the switch is an attribute of the scripted messages
    assert all(not layer.message.scale_by_envelope for layer in scripted.layers)


@pytest.mark.parametrize("revision", [REVISION + 1, 0, "2", True])
def test_unknown_revisions_are_refused_naming_the_file(tmp_path, revision):
    model = make_model()
    with pytest.raises(FileIntegrityError, match="revision"):
        model_from_config({**model.config, "revision": revision})
    # a file claiming a newer revision (sealed as such: a newer tfpot wrote it)
    model.revision = revision
    save_model(model, tmp_path / "new.pt")
    with pytest.raises(FileIntegrityError, match=r"new\.pt: model revision"):
        tfpot.load_model(tmp_path / "new.pt")


def test_files_without_the_radial_filter_key_load_without_a_filter(tmp_path):
    # Model files of tfpot < 0.5 record no radial_filter and their models have none; a file
    # written today records its filter and loads with it, predicting what it did (float64,
    # abs 1e-12 eV)
    old_config = {k: v for k, v in make_model(radial_filter="none").config.items()
                  if k != "radial_filter"}
    old = model_from_config(old_config)
    assert old.hyperparameters.radial_filter == "none"
    assert not any("radial_filter" in k for k in old.state_dict())
    model = make_model(radial_filter="tanh")
    assert any("radial_filter" in k for k in model.state_dict())
    path = tmp_path / "today.pt"
    save_model(model, path)
    loaded = tfpot.load_model(path)
    assert loaded.hyperparameters.radial_filter == "tanh"
    atoms = ethanol()
    assert abs(tfpot.predict(loaded, atoms)["energy"] - tfpot.predict(model, atoms)["energy"]) < 1e-12
