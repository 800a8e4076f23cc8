"""The model's contract (DESIGN.md "Required properties") for every model variant, and what is
particular to EnergyModel.

Each variant is a subclass of tfpot.testing.contract.ModelContract, which runs every check in
float64 and float32 with tfpot.testing.TOLERANCES (float64: invariance 1e-10, finite differences
1e-6, reproduction 1e-12; float32: 1e-5, 1e-2, 1e-5).
"""

import pytest
import torch
from ase import Atoms

import tfpot
from tfpot.diagnostics import local_frames
from tfpot.testing import TOLERANCES
from tfpot.testing.contract import ModelContract
from tfpot.testing.structures import ethanol

from helpers import make_model


class TestMLPModel(ModelContract):
    """The default: MLP messages, Z2-equivariant networks (exact O(3) invariance in one pass), no
    radial filter."""

    def build_model(self, dtype):
        return make_model(message="mlp", dtype=dtype)


class TestAttentionModel(ModelContract):
    """Attention messages, Z2-equivariant networks."""

    def build_model(self, dtype):
        return make_model(message="attention", dtype=dtype)


class TestModelWithRadialFilter(ModelContract):
    """MLP messages with the radial filter (``radial_filter="tanh"``, opt-in since tfpot 0.5)."""

    def build_model(self, dtype):
        return make_model(message="mlp", radial_filter="tanh", dtype=dtype)


class TestModelWithFrameEnsemble(ModelContract):
    """MLP messages plus the weighted pair-frame ensemble (``ensemble_channels``, opt-in since
    tfpot 0.12): frames that exist at symmetric sites too."""

    def build_model(self, dtype):
        return make_model(message="mlp", ensemble_channels=8, ensemble_cutoff=3.0, dtype=dtype)


class TestModelWithBisectorFrameEnsemble(ModelContract):
    """The ensemble over unordered pairs (``ensemble_pairs: unordered``, tfpot 0.13): one
    bisector frame per pair, half the frames."""

    def build_model(self, dtype):
        return make_model(message="mlp", ensemble_channels=8, ensemble_cutoff=3.0,
                          ensemble_pairs="unordered", dtype=dtype)


class TestMirrorAveragedModel(ModelContract):
    """The mirror-averaged model of tfpot < 0.2, as loaded from its files."""

    def build_model(self, dtype):
        return make_model(message="mlp", parity="average", dtype=dtype)


def test_frame_path_is_used_on_molecules():
    # The invariance tests only mean something if frames are in play: on ethanol most gates are
    # (partly) open, and switching the frame path off changes the energy by far more than the
    # float64 invariance tolerance (untrained model: ~1e-4 eV of ~2 eV).
    model = make_model()
    atoms = ethanol()
    _, gate = local_frames(model, atoms)
    assert (gate > 0).float().mean() >= 0.5, gate  # (partly) open on most atoms at init
    e_full = tfpot.predict(model, atoms)["energy"]
    closed = make_model(gate_range=(10.0, 20.0))  # same weights, gates always closed
    closed.load_state_dict(model.state_dict())
    assert abs(tfpot.predict(closed, atoms)["energy"] - e_full) > 1e-6


def test_reflection_average_is_exact_mirror_mean_float64():
    # parity="average" equals (f(X) + f(-X)) / 2 of the SO(3)-only model (float64, abs 1e-12 eV),
    # and the SO(3)-only model is not reflection invariant (so the average does real work).
    avg = make_model(parity="average")
    so3 = make_model(parity="none")
    so3.load_state_dict(avg.state_dict())
    atoms = ethanol()
    mirror = atoms.copy()
    mirror.positions *= -1.0
    e_plus = tfpot.predict(so3, atoms)["energy"]
    e_minus = tfpot.predict(so3, mirror)["energy"]
    assert abs(e_plus - e_minus) > 1e-6
    tol = TOLERANCES[torch.float64]["reproduction"]
    assert abs(tfpot.predict(avg, atoms)["energy"] - 0.5 * (e_plus + e_minus)) <= tol * abs(e_plus)


def test_load_refuses_foreign_and_truncated_files(tmp_path):
    bad = tmp_path / "bad.pt"
    bad.write_bytes(b"not a model")
    with pytest.raises(ValueError, match="bad.pt"):
        tfpot.load_model(bad)
    other = tmp_path / "other.pt"
    torch.save({"state_dict": {}}, other)
    with pytest.raises(ValueError, match="not a tfpot model file"):
        tfpot.load_model(other)
    good = tmp_path / "good.pt"
    make_model().save(good)
    trunc = tmp_path / "trunc.pt"
    trunc.write_bytes(good.read_bytes()[:1000])
    with pytest.raises(ValueError, match="trunc.pt"):
        tfpot.load_model(trunc)


def test_model_file_records_what_it_is(tmp_path):
    path = tmp_path / "model.pt"
    model = make_model()
    model.save(path)
    payload = torch.load(path, weights_only=True)
    assert payload["tfpot_version"] == tfpot.__version__
    assert payload["units"]["energy"] == "eV" and payload["dtype"] == "float64"
    assert payload["species"] == [1, 6, 7, 8, 29] and payload["cutoff"] == 4.0
    assert payload["hyperparameters"] == model.config


def test_unknown_element_is_named():
    model = make_model()
    with pytest.raises(ValueError, match=r"not in this model: Fe \(atom 0\); the model knows H, C, N, O, Cu"):
        tfpot.predict(model, Atoms("FeH", positions=[[0, 0, 0], [0, 0, 1.5]]))


def test_build_model_is_reproducible_and_validates():
    a = tfpot.build_model(["H", "O"], seed=7, preset="small")
    b = tfpot.build_model(["H", "O"], seed=7, preset="small")
    for (ka, va), (kb, vb) in zip(a.state_dict().items(), b.state_dict().items()):
        assert torch.equal(va, vb), ka
    with pytest.raises(ValueError, match="did you mean 'hidden'"):
        tfpot.build_model(["H"], hiden=3)
    with pytest.raises(ValueError, match="Unknown element symbol"):
        tfpot.build_model(["Xx"])
    with pytest.raises(ValueError, match="preset"):
        tfpot.build_model(["H"], preset="huge")
