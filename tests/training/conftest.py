"""Fixtures of the training tests: tiny configs on small data, one CPU thread.

Tiny means: preset small with hidden 16, one or two layers, a few dozen structures, a few epochs;
every training run here takes seconds. (Torch runs on one thread: tests/conftest.py.)
"""

import copy

import pytest

TINY_MODEL = dict(preset="small", dtype="float64", hidden=16, num_layers=1, reps="16x0+4x1+2x2",
                  num_basis=8, lmax=4, ps_channels=6)


@pytest.fixture
def tiny_config(tmp_path):
    """A factory of small, valid config dicts on the bundled demo data (ethanol, GFN2-xTB)."""

    def make(**sections):
        cfg = {
            "seed": 1,
            "device": "cpu",
            "output_dir": str(tmp_path / "run"),
            "data": {"path": "tfpot:demo", "split": {"train": 24, "val": 8, "test": 8}, "cutoff": 4.0},
            "model": copy.deepcopy(TINY_MODEL),
            "loss": {"energy_weight": 1.0, "forces_weight": 10.0},
            "optimizer": {"lr": 3e-2},
            "training": {"max_epochs": 3, "batch_size": 4, "checkpoint_every": 4},
            "logging": {"progress_bar": False, "tensorboard": False},
        }
        for key, value in sections.items():
            if isinstance(value, dict) and isinstance(cfg.get(key), dict):
                cfg[key].update(value)
            else:
                cfg[key] = value
        return cfg

    return make
