"""The layer's neighbour-tensor path (tfpot.nn.tensor_frame_conv) against the textbook form with
``U_ij = L_i L_j^T`` (tfpot.reps): the layer never forms U, so this checks it computes the same."""

from __future__ import annotations

import torch

from tfpot.nn.messages import MESSAGES
from tfpot.nn.tensor_frame_conv import FrameEdges, TensorFrameConv
from tfpot.reps import TensorReps, change_frame_rank2, change_frame_vectors

TOL_FLOAT64 = 1e-12  # absolute, float64, entries of size ~1


def _random_rotations(n: int, gen: torch.Generator) -> torch.Tensor:
    q, r = torch.linalg.qr(torch.randn(n, 3, 3, generator=gen, dtype=torch.float64))
    q = q * torch.sign(torch.diagonal(r, dim1=1, dim2=2)).unsqueeze(1)
    return q * torch.sign(torch.linalg.det(q)).view(-1, 1, 1)  # proper rotations


def test_neighbour_tensors_equal_the_U_form_float64():
    gen = torch.Generator().manual_seed(0)
    reps = TensorReps("8x0+3x1+2x2")
    n, num_edges = 6, 20
    layer = TensorFrameConv(reps, 4, MESSAGES["mlp"](TensorFrameConv.wiring(reps, 4, True), 16, 8,
                                                     10.0), True, 16, 8).double()
    frames = _random_rotations(n, gen)
    gate = torch.rand(n, generator=gen, dtype=torch.float64)
    centre = torch.randint(0, n, (num_edges,), generator=gen)
    neighbour = torch.randint(0, n, (num_edges,), generator=gen)
    V = torch.randn(n, 3, 3, generator=gen, dtype=torch.float64)
    T = torch.randn(n, 2, 3, 3, generator=gen, dtype=torch.float64)
    gated = frames * gate.view(-1, 1, 1)
    edges = FrameEdges(frames, gated, gated[centre], torch.zeros(num_edges, 3, dtype=torch.float64),
                       torch.zeros(num_edges, 4, dtype=torch.float64),
                       torch.ones(num_edges, dtype=torch.float64), centre, neighbour)
    ve, vo, te, to = layer._neighbour_tensors(V, T, edges)

    U = frames[centre] @ frames[neighbour].transpose(1, 2)
    Ug = U * (gate[centre] * gate[neighbour]).view(-1, 1, 1)
    ref_ve, ref_vo = layer.split.vectors(change_frame_vectors(Ug, V[neighbour]))
    ref_te, ref_to = layer.split.rank2(change_frame_rank2(U, T[neighbour], U_left=Ug))
    for got, ref in ((ve, ref_ve), (vo, ref_vo), (te, ref_te), (to, ref_to)):
        assert got.shape == ref.shape
        assert (got - ref).abs().max() < TOL_FLOAT64
