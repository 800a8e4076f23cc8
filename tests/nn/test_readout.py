"""EnergyReadout: E_i = scale * MLP(s_i) + shift + E0[z_i], final and float64."""

import torch

from tfpot.nn.readout import EnergyReadout


def test_readout_formula_float64():
    torch.manual_seed(0)
    readout = EnergyReadout(4, 8, 3).double()
    readout.set_statistics([-1.5, 2.0, 10.25], scale=0.5, shift=-0.125)
    s = torch.randn(6, 4, dtype=torch.float64)
    species = torch.tensor([0, 1, 2, 2, 1, 0])
    want = 0.5 * readout.mlp(s).squeeze(-1) - 0.125 + torch.tensor([-1.5, 2.0, 10.25])[species].double()
    got = readout(s, species)
    assert got.dtype == torch.float64
    assert torch.allclose(got, want, rtol=0, atol=1e-15)


def test_float32_network_float64_energies():
    # E0 of -1000 eV keeps its float64 digits behind a float32 network (abs 1e-9 eV).
    # (model.to(torch.float32) casts these buffers too, as torch does for every floating buffer.)
    readout = EnergyReadout(4, 8, 1)
    readout.mlp.float()
    readout.set_statistics([-1000.123456789], scale=1.0, shift=0.0)
    with torch.no_grad():
        e = readout(torch.zeros(1, 4), torch.tensor([0]))
        nn_out = float(readout.network(torch.zeros(1, 4)))
    assert e.dtype == torch.float64
    assert abs(e.item() - (-1000.123456789 + nn_out)) < 1e-9


def test_set_statistics_checks_the_count():
    readout = EnergyReadout(4, 8, 3)
    try:
        readout.set_statistics([1.0, 2.0], 1.0, 0.0)
    except ValueError as e:
        assert "one per model species" in str(e)
    else:
        raise AssertionError("a wrong number of E0 values was accepted")
