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
