import math

import numpy as np
import torch
from numpy.polynomial.legendre import legval

from tfpot.nn.harmonics import spherical_harmonics


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


def reference_harmonics(unit, lmax):
    """The recursion evaluated elementwise (tfpot 0.2's implementation), as the reference."""
    x, y, z = unit[:, 0], unit[:, 1], unit[:, 2]
    C, S = [torch.ones_like(x)], [torch.zeros_like(x)]
    for m in range(1, lmax + 1):
        C.append(x * C[m - 1] - y * S[m - 1])
        S.append(x * S[m - 1] + y * C[m - 1])
    Q = [[torch.zeros_like(z) for _ in range(lmax + 1)] for _ in range(lmax + 1)]
    for m in range(lmax + 1):
        Q[m][m] = torch.full_like(z, float(np.prod(np.arange(1, 2 * m, 2))))
        if m + 1 <= lmax:
            Q[m + 1][m] = (2 * m + 1) * z * Q[m][m]
        for l in range(m + 2, lmax + 1):
            Q[l][m] = ((2 * l - 1) * z * Q[l - 1][m] - (l + m - 1) * Q[l - 2][m]) / (l - m)
    out = []
    for l in range(lmax + 1):
        for m in range(-l, l + 1):
            am = abs(m)
            n = math.sqrt((2 * l + 1) / (4 * math.pi) * math.factorial(l - am) / math.factorial(l + am))
            out.append(n * Q[l][0] if m == 0 else math.sqrt(2) * n * Q[l][am] * (C[am] if m > 0 else S[am]))
    return torch.stack(out, -1)


def test_monomial_form_matches_the_recursion_and_known_low_orders():
    # float64, abs 1e-13; l = 1 is sqrt(3 / 4 pi) (y, z, x)
    torch.manual_seed(2)
    a = torch.nn.functional.normalize(torch.randn(200, 3, dtype=torch.float64), dim=-1)
    for lmax in (0, 1, 4, 6):
        assert (spherical_harmonics(a, lmax) - reference_harmonics(a, lmax)).abs().max() < 1e-13, lmax
    Y1 = spherical_harmonics(a, 1)[:, 1:4]
    assert torch.allclose(Y1, math.sqrt(3 / (4 * math.pi)) * a[:, [1, 2, 0]], atol=1e-15)


def test_second_derivatives_finite_on_axes():
    # force training differentiates twice; poles and axes (zeros in x, y or z) must give finite,
    # reference-equal second derivatives (float64, abs 1e-11)
    pts = torch.tensor([[0, 0, 1.0], [0, 0, -1.0], [1.0, 0, 0], [0, 1.0, 0], [0.6, 0, 0.8]],
                       dtype=torch.float64)
    for fn in (spherical_harmonics, reference_harmonics):
        r = pts.clone().requires_grad_(True)
        w = torch.linspace(-1, 1, 25, dtype=torch.float64)
        e = (fn(r / r.norm(dim=-1, keepdim=True), 4) * w).sum()
        (g,) = torch.autograd.grad(e, r, create_graph=True)
        (h,) = torch.autograd.grad((g ** 2).sum(), r)
        assert torch.isfinite(g).all() and torch.isfinite(h).all()
        if fn is spherical_harmonics:
            ours = (g.detach(), h)
    assert torch.allclose(ours[0], g.detach(), atol=1e-11) and torch.allclose(ours[1], h, atol=1e-11)
