"""Neighbour sums of per-edge outer products through a padded table (tfpot.nn.neighbour_sums)."""

import torch

from tfpot.nn.neighbour_sums import neighbour_outer_sums, padded_rows


def test_padded_rows_place_every_edge_once_by_centre():
    # edges in any order, atoms with no edges: each edge gets its own row, inside its centre's
    # block of `width` rows, in edge order within the block
    centre = torch.tensor([3, 0, 3, 1, 0, 3, 3])
    rows, width = padded_rows(centre, 5)
    assert width == 4
    assert rows.tolist() == [12, 0, 13, 4, 1, 14, 15]
    empty_rows, empty_width = padded_rows(torch.zeros(0, dtype=torch.long), 3)
    assert empty_rows.shape == (0,) and empty_width == 0


def test_outer_sums_equal_the_scattered_outer_products_float64():
    # against index_add of the per-edge outer products (abs 1e-13), with gradients (abs 1e-12);
    # no edges at all gives zeros
    g = torch.Generator().manual_seed(0)
    centre = torch.randint(0, 6, (40,), generator=g)
    R = torch.randn(40, 3, generator=g, dtype=torch.float64, requires_grad=True)
    Y = torch.randn(40, 5, generator=g, dtype=torch.float64, requires_grad=True)
    got = neighbour_outer_sums(R, Y, centre, 7)
    want = torch.zeros(7, 15, dtype=torch.float64).index_add(
        0, centre, (R.unsqueeze(-1) * Y.unsqueeze(1)).reshape(40, 15)).view(7, 3, 5)
    assert (got - want).abs().max() < 1e-13
    w = torch.randn(7, 3, 5, generator=g, dtype=torch.float64)
    g_got = torch.autograd.grad((got * w).sum(), (R, Y))
    g_want = torch.autograd.grad((want * w).sum(), (R, Y))
    assert all((a - b).abs().max() < 1e-12 for a, b in zip(g_got, g_want))
    none = neighbour_outer_sums(R[:0], Y[:0], centre[:0], 3)
    assert none.shape == (3, 3, 5) and torch.all(none == 0)
