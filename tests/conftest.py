"""Fixtures shared by every test directory (sub-directories add their own data fixtures)."""

import pytest
import torch

pytest_plugins = ["pytester"]  # tests/testing runs the model contract on broken models


@pytest.fixture(scope="session", autouse=True)
def one_torch_thread():
    """Torch with one thread for the whole session: fastest on a shared 2-core machine, the same
    for every test, and already in place when session fixtures (trained models) start."""
    old = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(old)
