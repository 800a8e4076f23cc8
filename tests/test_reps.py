import numpy as np
import pytest
import torch

from tfpot.reps import TensorReps, change_frame_rank2, change_frame_vectors
from tfpot.testing import random_orthogonal


def test_parse_forms_are_equal():
    assert TensorReps("64x0+32x1+8x2") == TensorReps({0: 64, 1: 32, 2: 8})
    assert TensorReps([(64, 0), (32, 1), (8, 2)]) == TensorReps("64x0 + 32x1 + 8x2")
    assert TensorReps("4x0+2x0").mul(0) == 6
    assert TensorReps("8x0+2x1+1x2").dim == 8 + 6 + 9
    assert str(TensorReps("8x0+2x1")) == "8x0+2x1"


@pytest.mark.parametrize("bad, msg", [("64x3", "rank"), ("64y0", "Expected tensor reps"),
                                      ("4x1", "scalar channel")])
def test_bad_reps(bad, msg):
    with pytest.raises(ValueError, match=msg):
        TensorReps(bad)


def test_change_of_frame_matches_rotation_float64():
    # U v and U T U^T equal the explicit rotation of each channel (float64, abs 1e-14).
    rng = np.random.default_rng(0)
    U = torch.tensor(np.stack([random_orthogonal(rng) for _ in range(5)]))
    V = torch.randn(5, 4, 3, dtype=torch.float64)
    T = torch.randn(5, 2, 3, 3, dtype=torch.float64)
    Vt = change_frame_vectors(U, V)
    Tt = change_frame_rank2(U, T)
    for e in range(5):
        for c in range(4):
            assert torch.allclose(Vt[e, c], U[e] @ V[e, c], atol=1e-14)
        for c in range(2):
            assert torch.allclose(Tt[e, c], U[e] @ T[e, c] @ U[e].T, atol=1e-14)
    # a different left factor (a gated g U): A T U^T
    A = 0.3 * U + torch.randn(5, 3, 3, dtype=torch.float64)
    Tl = change_frame_rank2(U, T, U_left=A)
    for e in range(5):
        for c in range(2):
            assert torch.allclose(Tl[e, c], A[e] @ T[e, c] @ U[e].T, atol=1e-14)
