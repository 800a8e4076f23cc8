"""Shared fixtures: one dtype fixture and the model variants."""

import pytest
import torch

from helpers import make_model


@pytest.fixture(params=[torch.float64, torch.float32], ids=["float64", "float32"])
def dtype(request):
    return request.param


VARIANTS = {
    "mlp": dict(message="mlp", parity="equivariant"),
    "attention": dict(message="attention", parity="equivariant"),
    "mlp-average": dict(message="mlp", parity="average"),
}


@pytest.fixture(params=sorted(VARIANTS))
def variant(request):
    """Model variants every contract test runs on: both message functions with the one-pass
    Z2-equivariant networks (the default), and the mirror-averaged MLP model of tfpot < 0.2
    (loaded, not built: see helpers.make_model)."""
    return VARIANTS[request.param]


@pytest.fixture
def model64():
    return make_model()
