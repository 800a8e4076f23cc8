"""Fixtures of the calculator tests: a model trained once per session on the demo data, and the
LAMMPS plugin and exported models."""

from pathlib import Path

import numpy as np
import pytest

import tfpot
from tfpot.data import demo_dataset_path, read_structures
from tfpot.training import fit


@pytest.fixture(scope="session")
def trained_ethanol(tmp_path_factory) -> Path:
    """Model file fitted (tfpot.training.fit) to 60 frames of the bundled demo set (ethanol,
    GFN2-xTB labels, 500 K MD) for 30 epochs: test force RMSE ~0.2 eV/Å against a label spread
    of ~1 eV/Å, enough for stable room-temperature MD. Trained once per session (on one torch
    thread: tests/conftest.py), then read by test_md.py and test_relax.py."""
    path = tmp_path_factory.getbasetemp() / "trained_ethanol_gfn2.pt"
    frames = read_structures(demo_dataset_path())
    idx = np.random.default_rng(0).permutation(len(frames))
    train = [frames[i] for i in idx[:60]]
    model = tfpot.build_model(["H", "C", "O"], cutoff=4.0, preset="small", seed=0)
    fit(model, train, epochs=30, batch_size=10, lr=5e-3, forces_weight=10.0, seed=0)
    tfpot.save_model(model, path)
    return path


# ---------------------------------------------------------------------------------------------
# LAMMPS: the plugin and exported models, built once per session (only when a test asks)


@pytest.fixture(scope="session")
def plugin():
    """Path of tfpotplugin.so (built or taken from the cache; a build failure is an error)."""
    from tfpot.calculators.lammps_build import build_plugin

    return build_plugin()


@pytest.fixture(scope="session")
def model_dir(tmp_path_factory):
    return tmp_path_factory.mktemp("models")


def _export(model, path):
    from tfpot.export import export_model

    export_model(model, path)
    return path


@pytest.fixture(scope="session")
def exported64(model_dir):
    """(export path, eager model): two layers (one halo exchange), float64."""
    from lammps_support import small_model

    model = small_model("float64")
    return _export(model, model_dir / "model64.pt"), model


@pytest.fixture(scope="session")
def exported32(model_dir):
    """(export path, eager model): the float64 model's weights in float32."""
    from lammps_support import small_model

    model = small_model("float32")
    return _export(model, model_dir / "model32.pt"), model


@pytest.fixture(scope="session")
def exported_ensemble(model_dir):
    """(export path, eager model): two layers with the weighted frame ensemble, float64."""
    from lammps_support import small_model

    model = small_model("float64", ensemble_channels=4)
    return _export(model, model_dir / "model_ensemble.pt"), model


@pytest.fixture(scope="session")
def exported_bisector_ensemble(model_dir):
    """(export path, eager model): as ``exported_ensemble``, with the ensemble over unordered
    pairs (bisector frames)."""
    from lammps_support import small_model

    model = small_model("float64", ensemble_channels=4, ensemble_pairs="unordered")
    return _export(model, model_dir / "model_bisector_ensemble.pt"), model


@pytest.fixture(scope="session")
def exported_deep(model_dir):
    """(export path, eager model): three layers (two exchanges), float64."""
    from lammps_support import small_model

    model = small_model("float64", num_layers=3)
    return _export(model, model_dir / "model_deep.pt"), model
