"""Cartesian tensor features of rank 0, 1 and 2, and their change of frame.

Features of an atom are expressed in that atom's local frame (rows of ``L_i`` are its axes), so
they are plain invariant numbers. Moving rank-k features from frame j to frame i uses
``U_ij = L_i L_j^T``: a vector becomes ``U v`` (9 multiply-adds per channel) and a rank-2 tensor
``U T U^T`` (54 multiply-adds per channel). Both are batched matrix products over edges. (The
model itself never forms ``U``: it turns each atom's features into the global frame once and then
applies ``L_i`` per edge; see :class:`tfpot.nn.tensor_frame_conv.FrameEdges`.)
"""

from __future__ import annotations

import re
from typing import Dict, Iterable, Optional, Tuple, Union

import torch
from torch import Tensor

MAX_RANK = 2
_TERM = re.compile(r"^\s*(\d+)\s*x\s*(\d+)\s*$")


class TensorReps:
    """Multiplicities of Cartesian tensor channels, e.g. ``"64x0+32x1+8x2"``.

    Args:
        reps: a string ``"MULxRANK+..."``, a mapping ``{rank: mul}``, a sequence of
            ``(mul, rank)`` pairs, or another ``TensorReps``. Ranks 0, 1, 2; a rank may be absent
            (multiplicity 0). Repeated ranks are added.

    Shapes:
        A feature set is three tensors: scalars (N, mul0), vectors (N, mul1, 3) and rank-2
        tensors (N, mul2, 3, 3).
    """

    def __init__(self, reps: Union[str, "TensorReps", Dict[int, int], Iterable[Tuple[int, int]]]):
        muls = [0] * (MAX_RANK + 1)
        if isinstance(reps, TensorReps):
            muls = list(reps.muls)
        elif isinstance(reps, str):
            for term in reps.split("+"):
                m = _TERM.match(term)
                if m is None:
                    raise ValueError(
                        f"Expected tensor reps like '64x0+32x1+8x2' (got term {term!r} in {reps!r})"
                    )
                mul, rank = int(m.group(1)), int(m.group(2))
                self._check_rank(rank, reps)
                muls[rank] += mul
        elif isinstance(reps, dict):
            for rank, mul in reps.items():
                self._check_rank(int(rank), reps)
                muls[int(rank)] += int(mul)
        else:
            for mul, rank in reps:
                self._check_rank(int(rank), reps)
                muls[int(rank)] += int(mul)
        if any(m < 0 for m in muls):
            raise ValueError(f"Multiplicities must be non-negative (got {muls})")
        if muls[0] == 0:
            raise ValueError(f"At least one scalar channel is needed (got {reps!r})")
        self.muls: Tuple[int, int, int] = (muls[0], muls[1], muls[2])

    @staticmethod
    def _check_rank(rank: int, reps) -> None:
        if rank < 0 or rank > MAX_RANK:
            raise ValueError(f"Tensor rank must be 0, 1 or 2 (got rank {rank} in {reps!r})")

    def mul(self, rank: int) -> int:
        return self.muls[rank]

    @property
    def dim(self) -> int:
        """Numbers per atom: mul0 + 3 mul1 + 9 mul2."""
        return self.muls[0] + 3 * self.muls[1] + 9 * self.muls[2]

    def __eq__(self, other) -> bool:
        return isinstance(other, TensorReps) and self.muls == other.muls

    def __str__(self) -> str:
        return "+".join(f"{m}x{r}" for r, m in enumerate(self.muls) if m > 0)

    def __repr__(self) -> str:
        return f"TensorReps('{self}')"


def change_frame_vectors(U: Tensor, V: Tensor) -> Tensor:
    """``U v`` for every channel: (E, 3, 3) x (E, C, 3) -> (E, C, 3)."""
    return torch.matmul(V, U.transpose(1, 2))


def change_frame_rank2(U: Tensor, T: Tensor, U_left: Optional[Tensor] = None) -> Tensor:
    """``U T U^T`` for every channel: (E, 3, 3) x (E, C, 3, 3) -> (E, C, 3, 3).

    With ``U_left``, ``U_left T U^T`` (e.g. a gated ``g U`` on one side only). Two batched
    matrix products over edges, each covering all channels at once.
    """
    left = U if U_left is None else U_left
    num_edges, channels = T.shape[0], T.shape[1]
    # X_c = T_c U^T for all c: (E, 3C, 3) @ (E, 3, 3)
    X = torch.bmm(T.reshape(num_edges, channels * 3, 3), U.transpose(1, 2))
    # left X_c for all c: (E, 3, 3) @ (E, 3, 3C), columns ordered (c, b)
    X = X.view(num_edges, channels, 3, 3).transpose(1, 2).reshape(num_edges, 3, channels * 3)
    return torch.bmm(left, X).view(num_edges, 3, channels, 3).transpose(1, 2)
