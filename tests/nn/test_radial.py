import torch

from tfpot.nn.radial import BesselBasis, PolynomialEnvelope


def test_envelope_vanishes_with_two_derivatives_at_cutoff_float64():
    env = PolynomialEnvelope(cutoff=4.0, p=6)
    r = torch.tensor([4.0 - 1e-7, 4.0, 4.5], dtype=torch.float64, requires_grad=True)
    u = env(r)
    (g,) = torch.autograd.grad(u.sum(), r, create_graph=True)
    (h,) = torch.autograd.grad(g.sum(), r)
    # value, slope and curvature ~0 at the cutoff (abs 1e-10, float64) and exactly 0 beyond
    assert u.abs().max() < 1e-10 and g.abs().max() < 1e-10 and h[:2].abs().max() < 1e-5
    assert u[2] == 0 and g[2] == 0
    assert abs(env(torch.tensor([0.0], dtype=torch.float64)).item() - 1.0) < 1e-15


def test_bessel_basis_shape_and_values():
    b = BesselBasis(cutoff=5.0, num_basis=8)
    r = torch.linspace(0.5, 5.0, 10, dtype=torch.float64)
    out = b(r)
    assert out.shape == (10, 8)
    assert torch.allclose(out[-1], torch.zeros(8, dtype=torch.float64), atol=1e-14)  # sin(n pi)=0
