"""Local frames: equivariance where defined, gate closed at symmetric sites, finite derivatives."""

import numpy as np
import pytest
import torch
from ase.build import molecule

from tfpot.frames import smoothstep_c2
from tfpot.graph import atoms_to_graph
from tfpot.diagnostics import local_frames
from tfpot.testing import random_orthogonal, transform_atoms
from tfpot.testing.structures import ethanol

from helpers import make_model


def test_frames_rotate_with_the_structure_float64():
    # L(QX) = L(X) Q^T for proper rotations, where the gate is open (float64, abs 1e-12)
    model = make_model()
    atoms = ethanol()
    L, g = local_frames(model, atoms)
    assert (g > 0).sum() >= 6, f"frames should be defined on a generic molecule, gates {g}"
    Q = random_orthogonal(np.random.default_rng(0))
    L2, g2 = local_frames(model, transform_atoms(atoms, Q, np.array([1.0, -2.0, 0.5])))
    Qt = torch.tensor(Q)
    open_ = g > 0
    assert torch.allclose(g, g2, atol=1e-12)
    assert torch.allclose(L2[open_], L[open_] @ Qt.T, atol=1e-12)
    # proper rotations: det L = +1 wherever defined (no handedness choice)
    assert torch.allclose(torch.linalg.det(L[open_]), torch.ones(int(open_.sum()), dtype=L.dtype))


@pytest.mark.parametrize("name", ["CH4", "CO2", "N2"])
def test_gate_closed_at_symmetric_centres(name):
    model = make_model()
    L, g = local_frames(model, molecule(name))
    assert g[0].item() == 0.0  # central atom (C of CH4/CO2, any N of N2): no frame, gate exactly 0


def test_no_nan_in_second_derivatives_at_degenerate_sites_float64():
    # Training differentiates forces; NaN x 0 would poison it. CH4 exact and slightly distorted.
    model = make_model()
    for delta in (0.0, 1e-6, 1e-3):
        atoms = molecule("CH4")
        atoms.positions[1, 0] += delta
        g = atoms_to_graph(atoms, model.cutoff)
        model.train()
        out = model(g)
        loss = (out["forces"] ** 2).sum() + out["energy"].sum()
        grads = torch.autograd.grad(loss, [p for p in model.parameters()], allow_unused=True)
        for p in grads:
            if p is not None:
                assert torch.isfinite(p).all()
        model.eval()


def test_smoothstep_is_c2():
    t = torch.tensor([0.0, 1.0], dtype=torch.float64, requires_grad=True)
    y = smoothstep_c2(t)
    (d1,) = torch.autograd.grad(y.sum(), t, create_graph=True)
    (d2,) = torch.autograd.grad(d1.sum(), t)
    assert y.tolist() == [0.0, 1.0] and d1.abs().max() == 0 and d2.abs().max() < 1e-12
