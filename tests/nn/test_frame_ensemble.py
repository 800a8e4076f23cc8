"""The weighted pair-frame ensemble: its index lists, exact invariance, smoothness where frames
appear and vanish, and local coordinates at symmetric sites (where the gated frames are shut)."""

import itertools

import numpy as np
import pytest
import torch
from ase import Atoms
from ase.build import bulk, molecule

from tfpot.diagnostics import frame_ensemble_features, frame_free_model, frame_gates
from tfpot.inference import predict
from tfpot.nn.frame_ensemble import BisectorFrameEnsemble, FrameEnsemble, ensemble_indices
from tfpot.testing import assert_smooth_scan, random_orthogonal, transform_atoms

from helpers import make_model


def test_indices_list_every_ordered_pair_and_every_triple_of_one_centre():
    # brute force on a random edge list: pairs = ordered (a, b), a != b, same centre, both inner;
    # triples = (pair, c) for every inner c of that centre
    g = torch.Generator().manual_seed(0)
    centre = torch.randint(0, 5, (40,), generator=g)
    inner = torch.rand(40, generator=g) < 0.7
    pa, pb, tp, tc = ensemble_indices(centre, inner, 6)
    pairs = set(zip(pa.tolist(), pb.tolist()))
    ids = [e for e in range(40) if inner[e]]
    want = {(a, b) for a, b in itertools.permutations(ids, 2) if centre[a] == centre[b]}
    assert pairs == want and len(pairs) == pa.shape[0]
    triples = {(int(pa[p]), int(pb[p]), int(c)) for p, c in zip(tp.tolist(), tc.tolist())}
    want3 = {(a, b, c) for a, b in want for c in ids if centre[c] == centre[a]}
    assert triples == want3 and len(triples) == tp.shape[0]


def test_unordered_indices_list_each_pair_once():
    # unordered: each unordered pair {a, b} of inner edges of one centre exactly once, and the
    # triples (pair, c) for every inner c of that centre
    g = torch.Generator().manual_seed(1)
    centre = torch.randint(0, 5, (40,), generator=g)
    inner = torch.rand(40, generator=g) < 0.7
    pa, pb, tp, tc = ensemble_indices(centre, inner, 6, unordered=True)
    pairs = [frozenset(p) for p in zip(pa.tolist(), pb.tolist())]
    ids = [e for e in range(40) if inner[e]]
    want = {frozenset((a, b)) for a, b in itertools.combinations(ids, 2) if centre[a] == centre[b]}
    assert len(pairs) == len(set(pairs)) and set(pairs) == want
    triples = {(int(pa[p]), int(pb[p]), int(c)) for p, c in zip(tp.tolist(), tc.tolist())}
    assert len(triples) == tp.shape[0] == sum(int((centre[list(ids)] == centre[min(p)]).sum())
                                              for p in want)


@pytest.mark.parametrize("kind", [FrameEnsemble, BisectorFrameEnsemble])
def test_local_coordinates_from_dot_products_equal_the_frame_projections(kind):
    # the ensemble computes (x, y, z) of a third bond c in the frame of the pair (a, b) from
    # r̂_a.r̂_c, r̂_b.r̂_c and (r̂_a x r̂_b).r̂_c; they must equal the projections on the frame's
    # axes built explicitly (float64, 1e-12), for random bonds
    g = torch.Generator().manual_seed(2)
    ua, ub, uc = (torch.nn.functional.normalize(
        torch.randn(50, 3, generator=g, dtype=torch.float64), dim=-1) for _ in range(3))
    cos = (ua * ub).sum(-1)
    if kind is FrameEnsemble:
        e1 = ua
        e2 = torch.nn.functional.normalize(ub - cos.unsqueeze(-1) * ua, dim=-1)
    else:
        e1 = torch.nn.functional.normalize(ua + ub, dim=-1)
        e2 = torch.nn.functional.normalize(ua - ub, dim=-1)
    e3 = torch.linalg.cross(e1, e2)
    ens = kind(2, 4, 4, 4, cutoff=3.0).double()
    x, y, z = ens.coordinates(cos, 1.0 - cos * cos, torch.arange(50), (ua * uc).sum(-1),
                              (ub * uc).sum(-1), (torch.linalg.cross(ua, ub) * uc).sum(-1))
    for got, axis in zip((x, y, z), (e1, e2, e3)):
        torch.testing.assert_close(got, (axis * uc).sum(-1), rtol=0.0, atol=1e-12)


PAIRS = ["ordered", "unordered"]


def _ensemble_model(dtype=torch.float64, pairs="ordered", **hyper):
    return make_model(ensemble_channels=8, ensemble_cutoff=3.0, ensemble_pairs=pairs, dtype=dtype,
                      **hyper).eval()


def test_unordered_pairs_build_the_bisector_ensemble_with_half_the_frames():
    ordered, unordered = _ensemble_model(), _ensemble_model(pairs="unordered")
    assert isinstance(ordered.frame_ensemble, FrameEnsemble)
    assert isinstance(unordered.frame_ensemble, BisectorFrameEnsemble)


@pytest.mark.parametrize("pairs", PAIRS)
def test_features_are_invariant_and_follow_a_permutation_float64(pairs):
    # rotation + reflection (random orthogonal, det -1 included) and a shuffle of the atoms:
    # features move with their atoms, to 1e-10 (float64)
    model = _ensemble_model(pairs=pairs)
    atoms = molecule("CH3CH2OH")
    h = frame_ensemble_features(model, atoms)
    assert h.abs().max() > 1e-3, "the ensemble should produce features on ethanol"
    rng = np.random.default_rng(1)
    for det in (1.0, -1.0):
        Q = random_orthogonal(rng)
        if np.linalg.det(Q) * det < 0:
            Q = -Q
        moved = transform_atoms(atoms, Q, np.array([0.3, -1.0, 2.0]))
        perm = rng.permutation(len(atoms))
        h2 = frame_ensemble_features(model, moved[perm])
        assert torch.allclose(h2, h[perm], atol=1e-10, rtol=0), f"det {det}"


@pytest.mark.parametrize("pairs", PAIRS)
def test_frames_exist_at_cubic_and_tetrahedral_sites_where_the_gates_are_shut_float64(pairs):
    # perfect fcc Cu and the C of CH4: every gate is shut (no equivariant vector), yet the
    # ensemble gives each atom local-coordinate features, the same for symmetry-equivalent atoms,
    # and they change when the site is distorted; the energy differs from the frame-free model's
    model = _ensemble_model(pairs=pairs)
    cu = bulk("Cu", "fcc", a=3.61, cubic=True).repeat((2, 2, 2))
    assert np.all(frame_gates(model, cu) == 0.0)
    h = frame_ensemble_features(model, cu)
    assert h.abs().max() > 1e-3
    assert torch.allclose(h, h[:1].expand_as(h), atol=1e-10)  # all fcc sites alike
    ch4 = molecule("CH4")
    assert frame_gates(model, ch4)[0] == 0.0
    assert frame_ensemble_features(model, ch4)[0].abs().max() > 1e-3
    rattled = cu.copy()
    rattled.positions += np.random.default_rng(0).normal(scale=0.05, size=rattled.positions.shape)
    assert (frame_ensemble_features(model, rattled) - h).abs().max() > 1e-4
    e = predict(model, cu, stress=False)["energy"]
    e_free = predict(frame_free_model(model), cu, stress=False)["energy"]
    assert abs(e - e_free) > 1e-4 * len(cu)


@pytest.mark.parametrize("pairs", PAIRS)
@pytest.mark.parametrize("path", ["through_inner_cutoff", "through_collinear",
                                  "through_angle_window"])
def test_energy_is_smooth_where_frames_appear_and_vanish_float64(path, pairs):
    # O at the origin, H on +x; a second H moves (a) radially out through the inner switch
    # (2.5 -> 3.0 Å), (b) past the line from O through the first H (the pair's sin^2 passes 0.2
    # and 0.05 on both sides), (c) from 162° to 78° seen from O (the angle switch, 120° -> 90°):
    # no jump in E, forces = -dE/ds (assert_smooth_scan, float64)
    model = _ensemble_model(pairs=pairs)
    if path == "through_inner_cutoff":
        start, direction, length = [0.3, 2.3, 0.2], [0.13, 1.0, 0.09], 1.0
    elif path == "through_collinear":
        start, direction, length = [1.6, -0.8, 0.05], [0.0, 1.0, 0.0], 1.6
    else:
        start, direction, length = [-1.5, 0.5, 0.1], [1.8, 1.0, 0.0], 2.06
    atoms = Atoms("OHH", positions=[[0, 0, 0], [1.0, 0, 0], start])
    assert_smooth_scan(model, atoms, 2, direction, length=length, n_steps=400)


@pytest.mark.parametrize("pairs", PAIRS)
def test_a_wider_angle_window_gives_the_sp2_bond_pairs_a_frame_float64(pairs):
    # benzene with an inner cutoff that holds only the bonds: every pair at a C is at 120°, so the
    # default window (no frame from 120°) leaves the carbons without a frame (features 0 but for
    # the rounding of 120°: < 1e-12), and ensemble_max_angle 150 gives them one (float64)
    benzene = molecule("C6H6")
    carbons = [i for i, z in enumerate(benzene.numbers) if z == 6]
    narrow = make_model(ensemble_channels=8, ensemble_cutoff=2.0, ensemble_pairs=pairs).eval()
    wide = make_model(ensemble_channels=8, ensemble_cutoff=2.0, ensemble_pairs=pairs,
                      ensemble_max_angle=150.0).eval()
    assert frame_ensemble_features(narrow, benzene)[carbons].abs().max() < 1e-12
    assert (frame_ensemble_features(wide, benzene)[carbons].abs().amax(-1) > 1e-4).all()


@pytest.mark.parametrize("pairs", PAIRS)
def test_energy_is_smooth_through_a_wider_angle_window_float64(pairs):
    # the second H of OHH moves from ~165° to ~100° seen from O, through the window of
    # ensemble_max_angle 150 (o: 0 at 150°, 1 at 120°): no jump, forces = -dE/ds (float64)
    model = _ensemble_model(pairs=pairs, ensemble_max_angle=150.0)
    atoms = Atoms("OHH", positions=[[0, 0, 0], [1.0, 0, 0], [-1.55, 0.4, 0.1]])
    assert_smooth_scan(model, atoms, 2, [1.2, 1.0, 0.0], length=1.6, n_steps=400)


@pytest.mark.parametrize("kind", [FrameEnsemble, BisectorFrameEnsemble])
def test_no_inner_pair_gives_zero_features_float64(kind):
    # an atom with fewer than two inner neighbours has no frame: features exactly 0
    ens = kind(2, 8, channels=4, out_dim=5, cutoff=3.0).double()
    species = torch.tensor([0, 1, 1])
    r = torch.tensor([1.0, 3.5, 1.0], dtype=torch.float64)
    unit = torch.tensor([[1.0, 0, 0], [0, 1.0, 0], [-1.0, 0, 0]], dtype=torch.float64)
    rbf = torch.rand(3, 8, dtype=torch.float64)
    centre = torch.tensor([0, 0, 1])
    neighbour = torch.tensor([1, 2, 0])
    h = ens(species, r, unit, rbf, centre, neighbour)
    assert torch.count_nonzero(h) == 0


def test_refuses_an_inner_cutoff_beyond_the_cutoff():
    with pytest.raises(ValueError, match="ensemble_cutoff 4.5 Å exceeds the cutoff 4.0 Å"):
        make_model(ensemble_channels=8, ensemble_cutoff=4.5)
