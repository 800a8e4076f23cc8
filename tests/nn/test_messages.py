"""Message functions with a radial filter (tfpot.nn.messages, tfpot.nn.radial.RadialFilter):
what the filter computes, in float64 (tolerance per test)."""

import pytest
import torch

from tfpot.nn.messages import MESSAGES, MessageWiring
from tfpot.nn.radial import RadialFilter

WIRING = MessageWiring(8, 7, 3, 9, 5, radial=4)  # the first 4 even edge inputs are the basis


def _inputs(seed=0, n=4, e=12):
    g = torch.Generator().manual_seed(seed)
    return dict(s=torch.randn(n, 8, generator=g, dtype=torch.float64),
                centre=torch.randint(0, n, (e,), generator=g),
                neighbour=torch.randint(0, n, (e,), generator=g),
                edge_even=torch.randn(e, 7, generator=g, dtype=torch.float64),
                edge_odd=torch.randn(e, 3, generator=g, dtype=torch.float64),
                env=torch.rand(e, generator=g, dtype=torch.float64), num_nodes=n)


@pytest.mark.parametrize("name", sorted(MESSAGES))
def test_a_unit_filter_is_the_message_without_one_float64(name):
    # factors tanh(W b + c) with W = 0, c = 40 (tanh(40) is 1.0 in float64) leave the message
    # exactly what it is without a filter (abs 1e-14); with the filter's own weights the messages
    # differ (it is not idle)
    plain = MESSAGES[name](WIRING, 16, 8, 10.0, "none").double()
    filtered = MESSAGES[name](WIRING, 16, 8, 10.0, "tanh").double()
    missing, unexpected = filtered.load_state_dict(plain.state_dict(), strict=False)
    assert not unexpected and all(k.startswith("radial_filter.") for k in missing) and missing
    x = _inputs()
    learned = filtered(**x)
    with torch.no_grad():
        filtered.radial_filter.linear.weight.zero_()
        filtered.radial_filter.linear.bias.fill_(40.0)
    for a, b in zip(filtered(**x), plain(**x)):
        assert torch.allclose(a, b, rtol=0, atol=1e-14)
    assert (learned[0] - plain(**x)[0]).abs().max() > 1e-3


def test_the_filter_is_a_bounded_function_of_the_radial_basis_float64():
    # f = tanh(W b + c), one (E, width) part per group of rows of W, c (abs 1e-15: tanh is
    # computed as 2 sigmoid(2x) - 1); |f| <= 1 whatever the weights, so a filtered network never
    # amplifies more than the same network without the filter
    f = RadialFilter(4, [16, 8, 16, 8]).double()
    b = torch.randn(5, 4, dtype=torch.float64)
    expected = torch.tanh(torch.nn.functional.linear(b, f.linear.weight, f.linear.bias))
    parts = f(b)
    assert [p.shape for p in parts] == [(5, 16), (5, 8), (5, 16), (5, 8)]
    assert (torch.cat(parts, dim=1) - expected).abs().max() < 1e-15
    with torch.no_grad():
        f.linear.weight.mul_(1e6)
    big = torch.cat(f(b), dim=1)
    assert big.abs().max() <= 1.0 and big.abs().max() > 0.999


def test_a_filter_needs_the_radial_basis():
    with pytest.raises(ValueError, match="radial basis"):
        RadialFilter(0, [8])
    with pytest.raises(ValueError, match="radial_filter must be one of tanh, none"):
        MESSAGES["mlp"](WIRING, 16, 8, 10.0, "quadratic")


@pytest.mark.parametrize("name", sorted(MESSAGES))
def test_filtered_messages_are_parity_equivariant_float64(name):
    # the factors depend on r only (even): flipping the odd inputs flips the odd messages and
    # leaves the even ones (abs 1e-14)
    msg = MESSAGES[name](WIRING, 16, 8, 10.0, "tanh").double()
    x = _inputs(1)
    me, mo = msg(**x)
    me2, mo2 = msg(**{**x, "edge_odd": -x["edge_odd"]})
    assert torch.allclose(me2, me, rtol=0, atol=1e-14)
    assert torch.allclose(mo2, -mo, rtol=0, atol=1e-14)
