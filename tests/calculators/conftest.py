"""Fixtures of the calculator tests."""

import pytest
import torch


@pytest.fixture(autouse=True, scope="module")
def _one_torch_thread():
    """Single-threaded torch for these small systems: intra-op threads only add overhead here
    (and thrash when the 2 cores are shared); restored afterwards."""
    old = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(old)


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
def exported_deep(model_dir):
    """(export path, eager model): three layers (two exchanges) with parity="average" (the
    state carries the mirror pass too: twice the features), float64."""
    from lammps_support import small_model

    model = small_model("float64", num_layers=3, parity="average")
    return _export(model, model_dir / "model_deep.pt"), model
