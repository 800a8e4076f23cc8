"""Radial functions: the envelope's formula and smoothness, the Bessel basis's values and
orthonormality (float64; tolerances stated per test)."""

import math

import numpy as np
import pytest
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


@pytest.mark.parametrize("p", [2, 6, 9])
def test_envelope_formula_and_monotone_float64(p):
    # u(x) = 1 - (p+1)(p+2)/2 x^p + p(p+2) x^(p+1) - p(p+1)/2 x^(p+2), abs 1e-14 against the
    # formula in extended precision (float64 sums of the expanded terms lose ~1e-14 near x = 1);
    # it falls monotonically from 1 to 0 on [0, cutoff] (a wrong coefficient breaks one of them)
    env = PolynomialEnvelope(cutoff=3.0, p=p)
    r = torch.linspace(0.0, 3.0, 301, dtype=torch.float64)
    x = r.numpy().astype(np.longdouble) / 3
    half = np.longdouble(2)
    want = (1 - (p + 1) * (p + 2) / half * x ** p + p * (p + 2) * x ** (p + 1)
            - p * (p + 1) / half * x ** (p + 2))
    u = env(r).numpy()
    assert np.abs(u - want).max() < 1e-14
    assert np.all(np.diff(u) <= 1e-15) and u[0] == 1.0 and abs(u[-1]) < 1e-14


def test_envelope_refuses_p_below_2():
    with pytest.raises(ValueError, match="p must be >= 2"):
        PolynomialEnvelope(cutoff=3.0, p=1)


def test_bessel_basis_values_float64():
    # b_n(r) = sqrt(2/rc) sin(n pi r / rc) / r, n = 1..8: abs 1e-14 at arbitrary radii
    b = BesselBasis(cutoff=5.0, num_basis=8)
    r = torch.tensor([0.3, 1.1, 2.5, 4.9, 5.0], dtype=torch.float64)
    out = b(r).numpy()
    n = np.arange(1, 9)
    want = math.sqrt(2.0 / 5.0) * np.sin(n[None] * math.pi * r.numpy()[:, None] / 5.0) / r.numpy()[:, None]
    assert out.shape == (5, 8)
    assert np.abs(out - want).max() < 1e-14
    assert np.abs(out[-1]).max() < 1e-14  # sin(n pi) = 0 at the cutoff


def test_bessel_basis_is_orthonormal_with_weight_r2_float64():
    # int_0^rc b_n b_m r^2 dr = delta_nm (trapezoid on 20001 points: abs 1e-6)
    b = BesselBasis(cutoff=5.0, num_basis=6)
    r = torch.linspace(1e-9, 5.0, 20001, dtype=torch.float64)
    f = b(r) * r[:, None]
    gram = np.trapezoid(f.numpy()[:, :, None] * f.numpy()[:, None, :], r.numpy(), axis=0)
    assert np.abs(gram - np.eye(6)).max() < 1e-6
