import math

import numpy as np
import torch
from numpy.polynomial.legendre import legval

from tfpot.nn.harmonics import SphericalHarmonics, spherical_harmonics


def test_addition_theorem_float64():
    # sum_m Y_lm(a) Y_lm(b) = (2l+1)/(4 pi) P_l(a.b) for l <= 6 (float64, abs 1e-13)
    torch.manual_seed(0)
    a = torch.nn.functional.normalize(torch.randn(50, 3, dtype=torch.float64), dim=-1)
    b = torch.nn.functional.normalize(torch.randn(50, 3, dtype=torch.float64), dim=-1)
    Ya, Yb = spherical_harmonics(a, 6), spherical_harmonics(b, 6)
    c = (a * b).sum(-1).numpy()
    for l in range(7):
        s = (Ya[:, l * l:(l + 1) ** 2] * Yb[:, l * l:(l + 1) ** 2]).sum(-1).numpy()
        ref = (2 * l + 1) / (4 * math.pi) * legval(c, [0] * l + [1])
        assert np.abs(s - ref).max() < 1e-13, l


def test_parity():
    torch.manual_seed(1)
    a = torch.nn.functional.normalize(torch.randn(20, 3, dtype=torch.float64), dim=-1)
    Y, Ym = spherical_harmonics(a, 4), spherical_harmonics(-a, 4)
    for l in range(5):
        sl = slice(l * l, (l + 1) ** 2)
        assert torch.allclose(Ym[:, sl], (-1) ** l * Y[:, sl], atol=1e-14)


def test_second_derivatives_finite_on_axes():
    # force training differentiates twice: at the poles and on the axes (zeros in x, y or z) the
    # first and second derivatives must be finite (float64)
    pts = torch.tensor([[0, 0, 1.0], [0, 0, -1.0], [1.0, 0, 0], [0, 1.0, 0], [0.6, 0, 0.8]],
                       dtype=torch.float64, requires_grad=True)
    w = torch.linspace(-1, 1, 25, dtype=torch.float64)
    e = (spherical_harmonics(pts / pts.norm(dim=-1, keepdim=True), 4) * w).sum()
    (g,) = torch.autograd.grad(e, pts, create_graph=True)
    (h,) = torch.autograd.grad((g ** 2).sum(), pts)
    assert torch.isfinite(g).all() and torch.isfinite(h).all()


def test_float32_matches_float64_and_scripts():
    # the polynomial factors evaluated in float32 stay within 1e-5 (abs) of float64 for l <= 6,
    # and the module form compiles with TorchScript (the LAMMPS export) to the same numbers
    torch.manual_seed(2)
    a = torch.nn.functional.normalize(torch.randn(500, 3, dtype=torch.float64), dim=-1)
    Y64 = spherical_harmonics(a, 6)
    assert (spherical_harmonics(a.float(), 6).double() - Y64).abs().max() < 1e-5
    scripted = torch.jit.script(SphericalHarmonics(6).double())
    assert torch.equal(scripted(a), SphericalHarmonics(6).double()(a))
