"""The angular power spectrum against an independent formula, on a cubic site, and invariant.

Reference (addition theorem): sum_m Y_lm(a) Y_lm(b) = (2l+1)/(4 pi) P_l(a . b), so
p_l,kk'(i) = sum_{j,j'} w_kj w_k'j' (2l+1)/(4 pi) P_l(rhat_ij . rhat_ij'),
w_kj = u(r_ij) R_k(r_ij) c_k(z_j) / norm. Float64; tolerances stated per test.
"""

import math

import numpy as np
import torch
from numpy.polynomial import legendre

from tfpot.nn.power_spectrum import AngularPowerSpectrum


def random_neighbourhood(seed, n=7):
    g = torch.Generator().manual_seed(seed)
    vec = torch.randn(n, 3, generator=g, dtype=torch.float64) * 1.5
    r = vec.norm(dim=-1)
    rbf = torch.exp(-((r[:, None] - torch.linspace(0.5, 4, 8, dtype=torch.float64)) ** 2))
    env = torch.rand(n, generator=g, dtype=torch.float64)
    species = torch.randint(0, 2, (n,), generator=g)
    return vec / r[:, None], rbf, env, species


def power_spectrum_reference(ps, unit, rbf, env, species):
    """p (1, (lmax+1) K^2) of one centre from Legendre polynomials (numpy, float64)."""
    with torch.no_grad():
        w = (ps.radial(rbf) * ps.species_weight(species) * (env / ps.norm)[:, None]).numpy()
    cos = np.clip(unit.numpy() @ unit.numpy().T, -1.0, 1.0)
    parts = []
    for l in range(ps.lmax + 1):
        coef = np.zeros(l + 1)
        coef[l] = 1.0
        kernel = (2 * l + 1) / (4 * math.pi) * legendre.legval(cos, coef)
        parts.append((w.T @ kernel @ w).reshape(-1))
    return np.concatenate(parts)[None]


def test_matches_the_addition_theorem_float64():
    # every l block, both species weights and the radial mixing: abs 1e-12
    torch.manual_seed(0)
    ps = AngularPowerSpectrum(2, 8, channels=3, lmax=5).double()
    with torch.no_grad():
        ps.species_weight.weight.uniform_(0.5, 1.5)  # species matter (default: all ones)
    unit, rbf, env, species = random_neighbourhood(1)
    centre = torch.zeros(len(unit), dtype=torch.long)
    got = ps(rbf, env, unit, species, centre, 1).detach().numpy()
    want = power_spectrum_reference(ps, unit, rbf, env, species)
    assert got.shape == (1, 6 * 9)
    assert np.abs(got - want).max() < 1e-12 * max(1.0, np.abs(want).max())


def test_cubic_site_signal_is_in_l4_and_l6_float64():
    # six equal neighbours on +-x, +-y, +-z: p_l = 0 for l = 1, 2, 3, 5 (abs 1e-14), and
    # p_4, p_6 > 0 (a cubic site's only angular signal, DESIGN.md)
    torch.manual_seed(0)
    ps = AngularPowerSpectrum(1, 8, channels=1, lmax=6).double()
    unit = torch.cat([torch.eye(3), -torch.eye(3)]).double()
    rbf = torch.ones(6, 8, dtype=torch.float64)
    p = ps(rbf, torch.ones(6, dtype=torch.float64), unit, torch.zeros(6, dtype=torch.long),
           torch.zeros(6, dtype=torch.long), 1)[0]
    for l in (1, 2, 3, 5):
        assert abs(p[l].item()) < 1e-14 * abs(p[0].item()), (l, p[l].item())
    assert p[4] > 1e-3 * p[0] and p[6] > 1e-3 * p[0]


def test_invariant_under_rotation_and_reflection_float64():
    # abs 1e-13
    torch.manual_seed(0)
    ps = AngularPowerSpectrum(2, 8, channels=4, lmax=4).double()
    unit, rbf, env, species = random_neighbourhood(2, n=12)
    centre = torch.zeros(len(unit), dtype=torch.long)
    q, _ = torch.linalg.qr(torch.randn(3, 3, generator=torch.Generator().manual_seed(3),
                                       dtype=torch.float64))
    p0 = ps(rbf, env, unit, species, centre, 1)
    for Q in (q, -q):  # det +1 and -1 (one of them a reflection)
        assert (p0 - ps(rbf, env, unit @ Q.T, species, centre, 1)).abs().max() < 1e-13


def test_many_centres_in_any_edge_order_match_one_centre_at_a_time_float64():
    # three centres with 7, 0 and 12 neighbours, edges shuffled together: each centre's row equals
    # the single-centre result and the Legendre reference (abs 1e-12); the edgeless one is zero
    torch.manual_seed(0)
    ps = AngularPowerSpectrum(2, 8, channels=3, lmax=6).double()
    hoods = [random_neighbourhood(4, n=7), random_neighbourhood(5, n=12)]
    parts = [torch.cat([h[k] for h in hoods]) for k in range(4)]
    centre = torch.cat([torch.zeros(7, dtype=torch.long), torch.full((12,), 2)])
    perm = torch.randperm(len(centre), generator=torch.Generator().manual_seed(6))
    unit, rbf, env, species = (x[perm] for x in parts)
    got = ps(rbf, env, unit, species, centre[perm], 3).detach().numpy()
    assert np.all(got[1] == 0.0)
    for row, hood in zip((0, 2), hoods):
        want = power_spectrum_reference(ps, *hood)
        assert np.abs(got[row] - want[0]).max() < 1e-12 * max(1.0, np.abs(want).max())
