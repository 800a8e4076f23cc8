"""The angular power spectrum: rotation/reflection invariance, and harmonic coefficients that stay
exact through dtype changes (a float32 round trip must not leave float32-rounded constants)."""

import torch

from tfpot.nn.harmonics import monomial_table
from tfpot.nn.power_spectrum import AngularPowerSpectrum


def random_environment(n=12, seed=0):
    g = torch.Generator().manual_seed(seed)
    vec = torch.randn(n, 3, generator=g, dtype=torch.float64) * 1.5
    r = vec.norm(dim=-1)
    rbf = torch.exp(-((r[:, None] - torch.linspace(0.5, 4, 8, dtype=torch.float64)) ** 2))
    env = torch.ones(n, dtype=torch.float64)
    species = torch.randint(0, 2, (n,), generator=g)
    centre = torch.zeros(n, dtype=torch.long)
    return vec, rbf, env, species, centre


def test_invariant_under_rotation_and_reflection_float64():
    # O(3): a random orthogonal matrix with det -1 included; float64, abs 1e-13
    torch.manual_seed(0)
    ps = AngularPowerSpectrum(2, 8, channels=4, lmax=4).double()
    vec, rbf, env, species, centre = random_environment()
    unit = vec / vec.norm(dim=-1, keepdim=True)
    q, _ = torch.linalg.qr(torch.randn(3, 3, dtype=torch.float64))
    for Q in (q, -q):
        p0 = ps(rbf, env, unit, species, centre, 1)
        p1 = ps(rbf, env, unit @ Q.T, species, centre, 1)
        assert (p0 - p1).abs().max() < 1e-13


def test_coefficients_exact_after_float32_round_trip():
    ps = AngularPowerSpectrum(2, 8, channels=4, lmax=6)
    ps.float().double()
    exact = monomial_table(6)[1]
    assert ps.harmonic_coefficients.dtype == torch.float64
    assert torch.equal(ps.harmonic_coefficients, exact)
    assert "harmonic_coefficients" not in ps.state_dict()  # derived, not stored in model files
