"""tfpot.graph.neighbor_list against a brute-force reference over periodic images.

Edge sets are compared exactly as sets of (i, j, image shift S) triples; distances of the pairs
that both find agree to 1e-12 Å (float64). Pairs within 1e-9 Å of the cutoff are skipped in
the comparison (a < vs <= choice, not a bug).
"""

import itertools

import numpy as np
import pytest
from ase import Atoms

from tfpot.graph import SkinNeighborList, atoms_to_graph, neighbor_list

EDGE = 1e-9  # Å: pairs this close to the cutoff may go either way


def brute_force(positions, cutoff, cell, pbc):
    """All (i, j, S) with |pos[j] - pos[i] + S @ cell| < cutoff, by looping over enough images.

    Along a periodic axis a, images up to ceil(cutoff / h_a) + 1 cells away are tried, where h_a
    is the spacing of the lattice planes spanned by the other two vectors (positions lie inside
    the cell, the +1 covers that)."""
    positions = np.asarray(positions, float)
    cell = np.asarray(cell, float)
    reps = []
    for a in range(3):
        if pbc[a]:
            b, c = cell[(a + 1) % 3], cell[(a + 2) % 3]
            h = abs(np.linalg.det(cell)) / np.linalg.norm(np.cross(b, c))
            reps.append(range(-int(np.ceil(cutoff / h)) - 1, int(np.ceil(cutoff / h)) + 2))
        else:
            reps.append(range(0, 1))
    found, ambiguous = {}, set()
    for S in itertools.product(*reps):
        shift = np.asarray(S, float) @ cell
        d = positions[None, :, :] - positions[:, None, :] + shift  # (i, j, 3)
        r = np.linalg.norm(d, axis=-1)
        for i, j in zip(*np.nonzero(r < cutoff + EDGE)):
            if i == j and not any(S):
                continue
            key = (int(i), int(j), tuple(S))
            if abs(r[i, j] - cutoff) < EDGE:
                ambiguous.add(key)
            else:
                found[key] = r[i, j]
    return found, ambiguous


def as_set(nl, positions, cell):
    out = {}
    for (i, j), S, sh in zip(nl.edge_index.T, nl.cell_shifts, nl.shifts):
        out[(int(i), int(j), tuple(int(s) for s in S))] = np.linalg.norm(positions[j] - positions[i] + sh)
    return out


def check(positions, cutoff, cell, pbc):
    nl = neighbor_list(positions, cutoff, cell, pbc)
    ref, ambiguous = brute_force(positions, cutoff, cell if cell is not None else np.zeros((3, 3)), pbc)
    got = as_set(nl, np.asarray(positions), cell)
    got_cmp = {k: v for k, v in got.items() if k not in ambiguous}
    assert set(got_cmp) == set(ref), (
        f"missing {sorted(set(ref) - set(got_cmp))[:5]}, extra {sorted(set(got_cmp) - set(ref))[:5]}")
    for k, r in ref.items():
        assert abs(got[k] - r) < 1e-12
    # shifts are the Cartesian form of the integer image shifts
    if cell is not None:
        np.testing.assert_allclose(nl.shifts, nl.cell_shifts @ np.asarray(cell), atol=1e-12)
    # edge_index is (2, E) int64 sorted by centre
    assert nl.edge_index.dtype == np.int64 and nl.edge_index.shape[0] == 2
    assert np.all(np.diff(nl.edge_index[0]) >= 0)
    return nl, ref


def random_triclinic(rng, scale):
    while True:
        cell = scale * (np.eye(3) + 0.35 * rng.standard_normal((3, 3)))
        if abs(np.linalg.det(cell)) > 0.3 * scale ** 3:
            return cell


@pytest.mark.parametrize("seed", range(4))
def test_random_triclinic_cells(seed):
    rng = np.random.default_rng(seed)
    cell = random_triclinic(rng, scale=4.0 + 0.5 * seed)
    frac = rng.random((8, 3))
    nl, ref = check(frac @ cell, 4.0, cell, (True, True, True))
    assert len(ref) > 10  # the test exercises many pairs, not an empty list


@pytest.mark.parametrize("cell_len", [1.3, 2.2])
def test_cell_smaller_than_cutoff_has_many_images(cell_len):
    rng = np.random.default_rng(7)
    cell = cell_len * (np.eye(3) + 0.1 * rng.standard_normal((3, 3)))
    frac = rng.random((2, 3))
    nl, ref = check(frac @ cell, 4.0, cell, (True, True, True))
    # several images per axis: |S| reaches at least 2 along every axis
    assert np.all(np.abs(nl.cell_shifts).max(axis=0) >= 2)
    # every atom sees its own periodic images
    assert any(i == j for i, j, _ in ref)


def test_single_atom_in_tiny_cubic_cell_counts_shells():
    # one atom, cubic cell a = 1 Å, cutoff 1.5 Å: neighbours at distance 1 (6), sqrt2 (12)
    nl = neighbor_list(np.zeros((1, 3)), 1.5, np.eye(3), (True, True, True))
    assert nl.edge_index.shape[1] == 18


@pytest.mark.parametrize("pbc", [(True, False, True), (False, True, False), (True, True, False)])
def test_mixed_pbc(pbc):
    rng = np.random.default_rng(11)
    cell = random_triclinic(rng, 3.0)
    frac = rng.random((6, 3))
    frac[:, ~np.asarray(pbc)] *= 2.5  # atoms may sit outside the cell along open axes
    nl, ref = check(frac @ cell, 3.2, cell, pbc)
    open_axes = ~np.asarray(pbc)
    assert np.all(nl.cell_shifts[:, open_axes] == 0)  # no images along non-periodic axes


def test_molecule_without_cell():
    rng = np.random.default_rng(3)
    pos = rng.standard_normal((12, 3)) * 2.0
    nl, ref = check(pos, 2.5, None, (False, False, False))
    assert np.all(nl.shifts == 0)
    # symmetric: (i, j) present iff (j, i) present
    pairs = set(map(tuple, nl.edge_index.T.tolist()))
    assert pairs == {(j, i) for i, j in pairs}


def test_far_apart_molecule_has_no_edges_and_atoms_to_graph_shapes():
    atoms = Atoms("H2", positions=[[0, 0, 0], [10, 0, 0]])
    g = atoms_to_graph(atoms, cutoff=5.0)
    assert g["edge_index"].shape == (2, 0)
    assert g["cell"].shape == (1, 3, 3) and g["pbc"].shape == (1, 3)


def test_skin_list_gives_the_fresh_pairs_in_the_same_order():
    # a random walk of a periodic cell: at every step the skin list's pairs (and their order)
    # equal a fresh neighbor_list's, with far fewer builds
    rng = np.random.default_rng(5)
    cell = random_triclinic(rng, 4.0)
    pos = rng.random((10, 3)) @ cell
    skin = SkinNeighborList(3.0, 0.6)
    numbers = np.full(10, 29)
    for _ in range(40):
        pos = pos + 0.03 * rng.standard_normal(pos.shape)
        edges, shifts, d2 = skin.pairs(pos, cell, (True, True, True), numbers)
        fresh = neighbor_list(pos, 3.0, cell, (True, True, True))
        assert np.array_equal(edges.numpy(), fresh.edge_index)
        assert np.allclose(shifts.numpy(), fresh.shifts, rtol=0, atol=1e-12)
        vec = pos[fresh.edge_index[1]] - pos[fresh.edge_index[0]] + fresh.shifts
        assert np.allclose(d2.numpy(), (vec * vec).sum(1), rtol=0, atol=1e-12)
    assert 1 < skin.n_builds < 20, skin.n_builds
    # any change of cell, pbc or numbers rebuilds
    before = skin.n_builds
    skin.pairs(pos, cell * 1.01, (True, True, True), numbers)
    assert skin.n_builds == before + 1


def test_one_builder_behind_prediction_calculator_and_data_pipeline():
    # atoms_to_graph (tfpot.predict), the ASE calculator's skin list and the data pipeline
    # (PyG Data -> Batch -> model_inputs) give the model the same tensors, bit for bit
    import torch
    from torch_geometric.data import Batch

    from tfpot.calculators import TFPotCalculator
    from tfpot.data.datasets import atoms_to_data, model_inputs

    from helpers import make_model
    from tfpot.testing.structures import triclinic_cu

    atoms = triclinic_cu()
    model = make_model()
    direct = atoms_to_graph(atoms, model.cutoff)
    calc = TFPotCalculator(model, skin=0.5)
    calc.get_potential_energy(atoms)  # builds with the skin, then filters to the cutoff
    via_calc = calc.graph(atoms)
    via_data = model_inputs(Batch.from_data_list([atoms_to_data(atoms, model.cutoff)]))
    for key in ("pos", "atomic_numbers", "edge_index", "shifts", "cell", "batch"):
        assert torch.equal(via_calc[key], direct[key]), key
        assert torch.equal(via_data[key], direct[key]), key
