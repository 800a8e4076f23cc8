"""Z2 (local mirror) equivariance of the parity networks and the even/odd split (float64, exact)."""

import torch

from tfpot.nn.messages import MESSAGES, MessageWiring
from tfpot.nn.parity import ParityMLP, parity_indices, split_rank2, split_vectors

P = torch.tensor([1.0, 1.0, -1.0], dtype=torch.float64)


def test_split_matches_parity_indices_and_signs():
    mul0, mul1, mul2 = 3, 4, 2
    g = torch.Generator().manual_seed(0)
    s = torch.randn(5, mul0, generator=g, dtype=torch.float64)
    V = torch.randn(5, mul1, 3, generator=g, dtype=torch.float64)
    T = torch.randn(5, mul2, 3, 3, generator=g, dtype=torch.float64)
    flat = torch.cat([s, V.reshape(5, -1), T.reshape(5, -1)], dim=1)
    even, odd = parity_indices(mul0, mul1, mul2)
    assert sorted(even + odd) == list(range(flat.shape[1]))
    ve, vo = split_vectors(V)
    te, to = split_rank2(T)
    assert torch.equal(flat[:, even], torch.cat([s, ve, te], dim=1))
    assert torch.equal(flat[:, odd], torch.cat([vo, to], dim=1))
    # under the mirror V -> P V, T -> P T P: even numbers unchanged, odd ones flip
    ve2, vo2 = split_vectors(V * P)
    te2, to2 = split_rank2(P.view(3, 1) * T * P.view(1, 3))
    assert torch.equal(ve2, ve) and torch.equal(vo2, -vo)
    assert torch.equal(te2, te) and torch.equal(to2, -to)


def test_parity_mlp_is_equivariant_and_uses_both_parts():
    torch.manual_seed(0)
    net = ParityMLP(6, 4, [16, 16], 8, 5, 3).double()
    xe = torch.randn(10, 6, dtype=torch.float64)
    xo = torch.randn(10, 4, dtype=torch.float64)
    ye, yo = net(xe, xo)
    ye2, yo2 = net(xe, -xo)
    assert torch.allclose(ye2, ye, rtol=0, atol=1e-14)
    assert torch.allclose(yo2, -yo, rtol=0, atol=1e-14)
    # odd inputs reach the even outputs, even inputs the odd ones (not a block-diagonal network)
    ye3, _ = net(xe, 2.0 * xo)
    _, yo3 = net(2.0 * xe, xo)
    assert (ye3 - ye).abs().max() > 1e-3
    assert (yo3 - yo).abs().max() > 1e-3


def test_parity_messages_are_equivariant():
    torch.manual_seed(1)
    n, e = 4, 12
    s = torch.randn(n, 8, dtype=torch.float64)
    centre = torch.randint(0, n, (e,))
    neighbour = torch.randint(0, n, (e,))
    xe = torch.randn(e, 7, dtype=torch.float64)
    xo = torch.randn(e, 3, dtype=torch.float64)
    env = torch.rand(e, dtype=torch.float64)
    for cls in MESSAGES.values():
        msg = cls(MessageWiring(8, 7, 3, 9, 5), 16, 8, 10.0).double()
        me, mo = msg(s, centre, neighbour, xe, xo, env, n)
        me2, mo2 = msg(s, centre, neighbour, xe, -xo, env, n)
        assert me.shape == (n, 9) and mo.shape == (n, 5)  # summed over neighbours
        assert torch.allclose(me2, me, rtol=0, atol=1e-14), cls.__name__
        assert torch.allclose(mo2, -mo, rtol=0, atol=1e-14), cls.__name__
