"""The angular power spectrum: invariant under rotations and reflections (float64, abs 1e-13)."""

import torch

from tfpot.nn.power_spectrum import AngularPowerSpectrum


def test_invariant_under_rotation_and_reflection_float64():
    g = torch.Generator().manual_seed(0)
    torch.manual_seed(0)
    ps = AngularPowerSpectrum(2, 8, channels=4, lmax=4).double()
    vec = torch.randn(12, 3, generator=g, dtype=torch.float64) * 1.5
    r = vec.norm(dim=-1)
    rbf = torch.exp(-((r[:, None] - torch.linspace(0.5, 4, 8, dtype=torch.float64)) ** 2))
    env = torch.ones(12, dtype=torch.float64)
    species = torch.randint(0, 2, (12,), generator=g)
    centre = torch.zeros(12, dtype=torch.long)
    unit = vec / r[:, None]
    q, _ = torch.linalg.qr(torch.randn(3, 3, generator=g, dtype=torch.float64))
    p0 = ps(rbf, env, unit, species, centre, 1)
    for Q in (q, -q):  # det +1 and -1 (one of them a reflection)
        assert (p0 - ps(rbf, env, unit @ Q.T, species, centre, 1)).abs().max() < 1e-13
