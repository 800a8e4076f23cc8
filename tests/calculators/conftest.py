"""Fixtures of the calculator tests: a model trained once per session on the demo data."""

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
