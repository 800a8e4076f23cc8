"""Frame diagnostics: how saturated the frame weights are (tfpot.diagnostics)."""

from __future__ import annotations

import numpy as np
import torch
from ase.build import molecule

import tfpot
from tfpot.diagnostics import frame_weight_saturation


def _rattled_ethanol():
    a = molecule("CH3CH2OH")
    a.positions += np.random.default_rng(0).normal(scale=0.05, size=a.positions.shape)
    return a


def test_fresh_model_frame_weights_are_not_all_saturated():
    model = tfpot.build_model(["H", "C", "O"], preset="small", seed=0)
    sat = frame_weight_saturation(model, [_rattled_ethanol()])
    assert sat.shape == (3,)
    assert np.all(sat < 0.9), sat


def test_saturated_frame_weights_are_reported():
    """Negative control: scaling the last layer by 1e4 saturates every tanh."""
    model = tfpot.build_model(["H", "C", "O"], preset="small", seed=0)
    with torch.no_grad():
        model.frames.weights.net[-1].weight.mul_(1e4)
    sat = frame_weight_saturation(model, [_rattled_ethanol()])
    assert np.all(sat > 0.99), sat
