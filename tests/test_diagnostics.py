"""Frame diagnostics: how saturated the frame weights are, and what the frame path carries
(tfpot.diagnostics)."""

from __future__ import annotations

import numpy as np
import torch
import pytest
from ase.build import bulk, molecule

import tfpot
from tfpot.diagnostics import ensemble_free_model, frame_weight_saturation, gate_statistics


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


def test_gate_statistics_measure_the_energy_of_the_frame_ensemble_at_a_cubic_site_float64():
    # perfect fcc Cu: every gate shut, so without an ensemble the frame path carries exactly 0;
    # with one it carries energy there, all of it through the ensemble (float64)
    cu = bulk("Cu", "fcc", a=3.61, cubic=True)
    plain = tfpot.build_model(["Cu"], preset="small", seed=0, cutoff=4.0)
    st = gate_statistics(plain, [cu])
    assert st["fraction_closed"] == 1.0 and st["frame_energy_per_atom_eV"] == 0.0
    assert np.isnan(st["ensemble_energy_per_atom_eV"])
    with pytest.raises(ValueError, match="no frame ensemble"):
        ensemble_free_model(plain)
    model = tfpot.build_model(["Cu"], preset="small", seed=0, cutoff=4.0, ensemble_channels=8)
    st = gate_statistics(model, [cu])
    assert st["fraction_closed"] == 1.0
    assert st["frame_energy_per_atom_eV"] > 1e-4
    assert st["ensemble_energy_per_atom_eV"] == pytest.approx(st["frame_energy_per_atom_eV"],
                                                              rel=1e-9)
