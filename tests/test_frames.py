"""Local frames: equivariance where defined, gate closed at symmetric sites, finite derivatives."""

import numpy as np
import pytest
import torch
from ase.build import molecule

from tfpot import _keys as K
from tfpot.frames import captured_gates, captured_shortfalls, rotated_frames, smoothstep_c2
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


def test_rotation_noise_turns_each_frame_in_training_mode_only_float64():
    # Training-time frame noise (training.frame_noise): every frame turned by its own rotation of
    # angle ~ sigma; gates unchanged; evaluation mode and the block's end leave frames as they are.
    model = make_model()
    atoms = ethanol()
    clean, gate = local_frames(model, atoms)
    sigma = 0.1
    model.train()
    with rotated_frames(model, sigma):
        torch.manual_seed(0)
        noisy, gate_noisy = local_frames(model, atoms)
        torch.manual_seed(0)
        again, _ = local_frames(model, atoms)
        model.eval()
        eval_frames, _ = local_frames(model, atoms)
        model.train()
    assert torch.equal(gate_noisy, gate)
    assert torch.equal(noisy, again)  # drawn from torch's generator: seeded runs repeat
    assert torch.equal(eval_frames, clean)
    open_ = gate > 0
    R = noisy[open_] @ clean[open_].transpose(1, 2)  # the rotation applied to each frame
    eye = torch.eye(3, dtype=R.dtype).expand_as(R)
    assert torch.allclose(R @ R.transpose(1, 2), eye, atol=1e-12)
    assert torch.allclose(torch.linalg.det(R), torch.ones(R.shape[0], dtype=R.dtype), atol=1e-12)
    angle = torch.arccos(((R.diagonal(dim1=1, dim2=2).sum(-1) - 1) / 2).clamp(-1, 1))
    # |w| of w ~ N(0, sigma^2 I): mean 1.6 sigma; every angle well inside (0, 6 sigma)
    assert bool((angle > 1e-4).all()) and bool((angle < 6 * sigma).all())
    assert 0.8 * sigma < float(angle.mean()) < 2.4 * sigma
    assert model.frames.rotation_noise == 0.0  # restored at the block's end
    model.eval()
    assert torch.equal(local_frames(model, atoms)[0], clean)


def test_forces_with_rotated_frames_are_the_energy_gradient_float64():
    # With the rotations of a pass fixed (same seed), F = -dE/dx by central differences
    # (float64, h = 1e-5 Å, abs 1e-9 eV/Å; the untrained model's forces are 1e-6 to 1e-3): the noise does not break
    # energy-force consistency.
    model = make_model()
    atoms = ethanol()
    graph = atoms_to_graph(atoms, model.cutoff)
    model.train()

    def energy_and_forces(pos):
        torch.manual_seed(7)
        out = model({**graph, "pos": pos}, compute_forces=True)
        return float(out["energy"].detach().sum()), out["forces"].detach()

    with rotated_frames(model, 0.2):
        pos = graph["pos"].clone()
        _, forces = energy_and_forces(pos)
        h = 1e-5
        for i, k in ((0, 0), (3, 2), (7, 1)):
            plus, minus = pos.clone(), pos.clone()
            plus[i, k] += h
            minus[i, k] -= h
            fd = -(energy_and_forces(plus)[0] - energy_and_forces(minus)[0]) / (2 * h)
            assert abs(fd - float(forces[i, k])) < 1e-9, (i, k, fd, float(forces[i, k]))
    model.eval()
    clean_forces = model(graph, compute_forces=True)["forces"].detach()
    # the noise changes the forces (by ~4 % of their norm at sigma = 0.2 here)
    assert float((forces - clean_forces).norm()) > 0.01 * float(clean_forces.norm())


def test_rotated_frames_rejects_negative_noise_and_models_without_frames():
    with pytest.raises(ValueError, match="must be >= 0"):
        with rotated_frames(make_model(), -0.1):
            pass
    with pytest.raises(ValueError, match="needs a model with local frames"):
        with rotated_frames(torch.nn.Linear(3, 3), 0.1):
            pass
    with rotated_frames(torch.nn.Linear(3, 3), 0.0):  # off: nothing to turn, nothing to check
        pass


def frame_inputs(model, atoms):
    """The arguments of ``model.local_frames`` for ``atoms``."""
    g = atoms_to_graph(atoms, model.cutoff)
    return (g[K.POSITIONS], model.species_index(g[K.ATOMIC_NUMBERS]), g[K.EDGE_INDEX],
            g[K.SHIFTS])


def test_captured_gates_hold_each_pass_gates_with_their_graph_float64():
    # The open-frame term (loss.frame_gate_weight) is made of the gates of the step's forward
    # pass: the block collects exactly the gates local_frames returns, differentiable in the
    # frame weights, and stops collecting at its end.
    model = make_model()
    inputs = frame_inputs(model, ethanol())
    with captured_gates(model) as gates:
        _, gate = model.local_frames(*inputs)
    assert len(gates) == 1 and torch.equal(gates[0], gate)
    assert bool(((gate > 0) & (gate < 1)).any())  # some partly open: a gradient to follow
    (1.0 - gates[0]).sum().backward()
    grads = [p.grad for p in model.frames.weights.parameters()]
    assert any(p is not None and float(p.abs().max()) > 0 for p in grads)
    model.local_frames(*inputs)
    assert len(gates) == 1
    with pytest.raises(ValueError, match="has no local frames"):
        with captured_gates(torch.nn.Linear(2, 2)):
            pass


def test_shortfall_has_a_gradient_where_the_gate_is_shut_and_none_at_symmetry_float64():
    # The closed-frame term (loss.frame_closed_weight) is made of LocalFrames.shortfall,
    # 1 - min(1, |v1 x v2|^2 / a_lo^2): 0 wherever the gate can be open, and differentiable in the
    # frame weights where the gate is shut (flat at 0, so 1 - gate gives no gradient there). At
    # CH4, a symmetric environment for every atom, it is exactly 1 with no gradient.
    model = make_model()
    inputs = frame_inputs(model, ethanol())
    with captured_shortfalls(model) as short:
        _, gate = model.local_frames(*inputs)
    assert len(short) == 1 and short[0].shape == gate.shape
    assert bool(((short[0] >= 0) & (short[0] <= 1)).all())
    assert torch.equal(short[0][gate > 0], torch.zeros_like(short[0][gate > 0]))
    # a gate range above every frame's area: every gate shut, so only the shortfall has a slope
    model.frames.a_lo, model.frames.a_hi = 5.0, 6.0
    with captured_gates(model) as gates, captured_shortfalls(model) as short:
        model.local_frames(*inputs)
    assert torch.equal(gates[0], torch.zeros_like(gates[0]))
    assert bool((short[0] < 1).all())
    weights = list(model.frames.weights.parameters())
    closed_grad = torch.autograd.grad((1.0 - gates[0]).sum(), weights, allow_unused=True)
    assert all(gr is None or float(gr.abs().max()) == 0.0 for gr in closed_grad)
    short_grad = torch.autograd.grad(short[0].sum(), weights, allow_unused=True)
    assert any(gr is not None and float(gr.abs().max()) > 0 for gr in short_grad)
    model = make_model()
    with captured_shortfalls(model) as short:
        model.local_frames(*frame_inputs(model, molecule("CH4")))
    assert torch.allclose(short[0], torch.ones_like(short[0]), rtol=0, atol=1e-12)
    weights = list(model.frames.weights.parameters())
    grads = torch.autograd.grad(short[0].sum(), weights, allow_unused=True)
    assert all(gr is None or float(gr.abs().max()) < 1e-12 for gr in grads)
    with pytest.raises(ValueError, match="has no local frames"):
        with captured_shortfalls(torch.nn.Linear(2, 2)):
            pass
