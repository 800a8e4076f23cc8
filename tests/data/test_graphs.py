"""Graphs: fields, shapes and dtypes of one graph and of PyG batches; the r_ij convention."""

import numpy as np
import pytest
import torch
from ase import Atoms
from torch_geometric.data import Batch

from tfpot import _keys as K
from tfpot.data import AtomsDataset, atoms_to_data, make_loader


def test_single_graph_fields(labelled_structures):
    cu = labelled_structures[1]
    g = atoms_to_data(cu, cutoff=3.0)
    n = len(cu)
    assert g[K.POSITIONS].shape == (n, 3) and g[K.POSITIONS].dtype == torch.float64
    assert g[K.ATOMIC_NUMBERS].dtype == torch.int64 and g[K.ATOMIC_NUMBERS].tolist() == [29] * 4
    assert g[K.CELL].shape == (1, 3, 3) and g[K.PBC].shape == (1, 3) and g[K.PBC].dtype == torch.bool
    assert g[K.ENERGY].shape == (1,) and g[K.ENERGY].dtype == torch.float64
    assert g[K.FORCES].shape == (n, 3) and g[K.STRESS].shape == (1, 3, 3)
    np.testing.assert_array_equal(g[K.STRESS][0].numpy(), cu.get_stress(voigt=False))
    # r_ij = pos[j] - pos[i] + shifts (edge_index[0] = centre i) reproduces ASE's own neighbour
    # list: same (i, j, distance) multiset, distances to 1e-12 Å (float64)
    from ase.neighborlist import neighbor_list as ase_nl

    i, j = g[K.EDGE_INDEX]
    r = (g[K.POSITIONS][j] - g[K.POSITIONS][i] + g[K.SHIFTS]).norm(dim=1)
    assert torch.all(r < 3.0) and r.numel() == 4 * 12  # fcc: 12 neighbours within 3 Å
    ai, aj, ad = ase_nl("ijd", cu, 3.0)
    ours = sorted(zip(i.tolist(), j.tolist(), r.tolist()))
    theirs = sorted(zip(ai.tolist(), aj.tolist(), ad.tolist()))
    assert [(a, b) for a, b, _ in ours] == [(a, b) for a, b, _ in theirs]
    np.testing.assert_allclose([d for *_, d in ours], [d for *_, d in theirs], rtol=0, atol=1e-12)


def test_float32_graph_keeps_float64_energy(labelled_structures):
    g = atoms_to_data(labelled_structures[0], cutoff=2.0, dtype=torch.float32)
    assert g[K.POSITIONS].dtype == torch.float32 and g[K.FORCES].dtype == torch.float32
    assert g[K.ENERGY].dtype == torch.float64
    assert g[K.ENERGY].item() == -24.123456789012345  # no float32 rounding of the energy


def test_batching_offsets_and_shapes(labelled_structures):
    ds = AtomsDataset(labelled_structures, cutoff=3.0)
    graphs = [ds[k] for k in range(3)]
    batch = Batch.from_data_list(graphs)
    sizes = [len(a) for a in labelled_structures]
    assert batch.num_graphs == 3
    assert batch[K.CELL].shape == (3, 3, 3) and batch[K.PBC].shape == (3, 3)
    assert batch[K.ENERGY].shape == (3,) and batch[K.STRESS].shape == (3, 3, 3)
    assert batch[K.BATCH].tolist() == sum(([k] * n for k, n in enumerate(sizes)), [])
    # edges of graph k point into graph k's atoms
    offset = 0
    edge_offset = 0
    for k, g in enumerate(graphs):
        e = g[K.EDGE_INDEX].shape[1]
        block = batch[K.EDGE_INDEX][:, edge_offset:edge_offset + e]
        assert torch.equal(block, g[K.EDGE_INDEX] + offset)
        offset += sizes[k]
        edge_offset += e
    # stress only on the crystal: zero padding plus a mask elsewhere
    assert ds.pad_targets == (K.STRESS,)
    assert batch.has_stress.tolist() == [False, True, False]
    assert torch.all(batch[K.STRESS][0] == 0)


def test_loader_and_atoms_mode(labelled_structures):
    ds = AtomsDataset(labelled_structures * 4, cutoff=3.0)
    batches = list(make_loader(ds, batch_size=5))
    assert [b.num_graphs for b in batches] == [5, 5, 2]
    energies = torch.cat([b[K.ENERGY] for b in batches])
    assert energies.tolist() == [a.get_potential_energy() for a in labelled_structures * 4]
    atoms_ds = AtomsDataset(labelled_structures)
    assert atoms_ds.return_type == "atoms" and atoms_ds[1] is labelled_structures[1]
    with pytest.raises(ValueError, match="needs a cutoff"):
        AtomsDataset(labelled_structures, return_type="graph")


def test_unlabelled_structure_has_no_targets():
    a = Atoms("H2", positions=[[0, 0, 0], [0.74, 0, 0]])
    g = atoms_to_data(a, cutoff=1.0)
    assert K.ENERGY not in g and K.FORCES not in g and K.STRESS not in g
    assert g[K.EDGE_INDEX].tolist() == [[0, 1], [1, 0]]
    assert g.num_nodes == 2
