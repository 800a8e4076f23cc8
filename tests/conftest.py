"""Shared fixtures: one dtype fixture and the message-function variants."""

import pytest
import torch

from helpers import make_model


@pytest.fixture(params=[torch.float64, torch.float32], ids=["float64", "float32"])
def dtype(request):
    return request.param


@pytest.fixture(params=["mlp", "attention"])
def message(request):
    return request.param


@pytest.fixture
def model64():
    return make_model()
