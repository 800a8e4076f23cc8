"""The tensor-frame message-passing layer: any message function becomes equivariant.

For an edge j -> i the layer builds invariant inputs (Lippmann et al. 2024, arXiv 2405.15389):

    x_ij = [ rbf(r_ij),  g_i L_i r_ij/|r_ij|,  g_i g_j U_ij V_j,  g_i g_j U_ij T_j U_ij^T ]

with ``U_ij = L_i L_j^T`` (computed as ``L_i (L_j^T V_j)``: see :class:`FrameEdges`), splits
them into their even and odd parts under the local mirror (:class:`~tfpot.nn.parity.MirrorSplit`),
hands them with the node scalars to a message function ``phi`` (:mod:`tfpot.nn.messages`), sums
the messages over neighbours, and updates the node features in frame i with a Z2-equivariant
network:

    M_i = sum_j phi(s, x_ij, u(r_ij))
    (s_i, V_i, T_i) <- (s_i, V_i, T_i) + update(s_i, M_i) + (0, M_i^V, M_i^T)

Every input of ``phi`` is an invariant number, so ``phi`` may be any function (an MLP,
attention, ...); with the parity split the energy is also exactly reflection invariant (frames
are proper rotations, so a reflection acts on local coordinates as ``z -> -z``). ``phi`` must
scale its messages by the envelope ``u`` (zero at the cutoff with two derivatives).
"""

# no "from __future__ import annotations": TorchScript reads the NamedTuple annotations

from typing import NamedTuple, Tuple

import torch
from torch import Tensor, nn

from tfpot.nn.messages import MessageWiring
from tfpot.nn.parity import MirrorSplit, ParityMLP
from tfpot.reps import TensorReps


class FrameEdges(NamedTuple):
    """What every layer reads (computed once per stage by the model).

    Shapes: frames (N, 3, 3) = L (rows are axes), gated_frames (N, 3, 3) = g L, centre_frames
    (E, 3, 3) = g_i L_i, local_dir (E, 3) = g_i L_i r_ij/|r_ij|, rbf (E, num_basis), env (E,)
    envelope u(r_ij), centre, neighbour (E,) int64.

    ``U_ij = L_i L_j^T`` is never formed: a neighbour's vectors and rank-2 tensors are first
    turned into the global frame once per atom (``g_j L_j^T V_j``, ``g_j L_j^T T_j L_j``), then
    into frame i per edge, all channels in one matrix product.
    """

    frames: Tensor
    gated_frames: Tensor
    centre_frames: Tensor
    local_dir: Tensor
    rbf: Tensor
    env: Tensor
    centre: Tensor
    neighbour: Tensor


class TensorFrameConv(nn.Module):
    """One interaction layer.

    Args:
        reps: feature multiplicities (``TensorReps`` or a string like ``"64x0+16x1+4x2"``).
        num_basis: radial basis size.
        message: a message module (:mod:`tfpot.nn.messages`) whose ``wiring`` equals
            :meth:`wiring` of this layer (checked here).
        receives_tensors: False for the first layer, where every V_j, T_j is still zero (the
            frames of neighbours are then not used at all, so a layer's reach is one cutoff).
        hidden, hidden_odd: even and odd widths of the node-update network.
        equivariant: split numbers by parity (exact reflection invariance) or not (SO(3) only;
            ``hidden_odd`` must then be 0).

    Shapes:
        s (N, mul0), V (N, mul1, 3), T (N, mul2, 3, 3), edges :class:`FrameEdges` -> updated
        (s, V, T).
    """

    def __init__(self, reps, num_basis: int, message: nn.Module, receives_tensors: bool = True,
                 hidden: int = 64, hidden_odd: int = 32, equivariant: bool = True):
        super().__init__()
        reps = TensorReps(reps)
        if not equivariant and hidden_odd != 0:
            raise ValueError(f"hidden_odd must be 0 without the parity split (got {hidden_odd})")
        self.reps_str = str(reps)
        self.mul0, self.mul1, self.mul2 = reps.muls
        self.receives_tensors = bool(receives_tensors)
        self.num_basis = int(num_basis)
        self.split = MirrorSplit(self.mul0, self.mul1, self.mul2, equivariant)
        wiring = self.wiring(reps, self.num_basis, self.receives_tensors, equivariant)
        # Wiring is checked here, when the model is built, not in the middle of a forward pass.
        got = getattr(message, "wiring", None)
        if got != wiring:
            raise ValueError(f"{type(message).__name__} has wiring {got}, but this layer needs "
                             f"{wiring} (reps {reps}, receives_tensors={self.receives_tensors}, "
                             f"equivariant={bool(equivariant)})")
        self.message = message
        # 0 on the scalars, 1 on the even vector and tensor numbers: which messages are added
        # to the features as they are (the scalars' messages only feed the update)
        self.register_buffer("tensor_messages", torch.cat(
            [torch.zeros(self.mul0), torch.ones(wiring.out_even - self.mul0)]), persistent=False)
        self.update = ParityMLP(self.mul0 + wiring.out_even, wiring.out_odd, [hidden], hidden_odd,
                                wiring.out_even, wiring.out_odd)

    @staticmethod
    def wiring(reps: TensorReps, num_basis: int, receives_tensors: bool,
               equivariant: bool = True) -> MessageWiring:
        """Sizes a message module must have: node scalars, even/odd edge inputs (the even ones
        start with the ``num_basis`` radial basis values) and messages."""
        mul0, mul1, mul2 = reps.muls
        if not equivariant:
            return MessageWiring(mul0, num_basis + 3 + ((3 * mul1 + 9 * mul2) if receives_tensors
                                                         else 0), 0, reps.dim, 0, num_basis)
        return MessageWiring(mul0, num_basis + 2 + ((2 * mul1 + 5 * mul2) if receives_tensors
                                                    else 0),
                             1 + ((mul1 + 4 * mul2) if receives_tensors else 0),
                             mul0 + 2 * mul1 + 5 * mul2, mul1 + 4 * mul2, num_basis)

    def forward(self, s: Tensor, V: Tensor, T: Tensor,
                edges: FrameEdges) -> Tuple[Tensor, Tensor, Tensor]:
        n = s.shape[0]
        neighbour = edges.neighbour
        de, do = self.split.direction(edges.local_dir)
        even_parts = [edges.rbf, de]
        odd_parts = [do]
        if self.receives_tensors and (self.mul1 > 0 or self.mul2 > 0):
            ve, vo, te, to = self._neighbour_tensors(V, T, edges)
            if self.mul1 > 0:
                even_parts.append(ve)
                odd_parts.append(vo)
            if self.mul2 > 0:
                even_parts.append(te)
                odd_parts.append(to)
        # messages summed over neighbours (M_i, per atom)
        Me, Mo = self.message(s, edges.centre, neighbour, torch.cat(even_parts, dim=-1),
                              torch.cat(odd_parts, dim=-1), edges.env, n)
        de, do = self.update(torch.cat([s, Me], dim=-1), Mo)
        # scalars take the update only (their messages feed the update); V and T take both
        inc = self.split.unsplit(torch.cat([de + Me * self.tensor_messages, do + Mo], dim=-1))
        ds, dV, dT = torch.split(inc, [self.mul0, 3 * self.mul1, 9 * self.mul2], dim=1)
        s = s + ds
        V = V + dV.reshape(n, self.mul1, 3)
        T = T + dT.reshape(n, self.mul2, 3, 3)
        return s, V, T

    def _neighbour_tensors(self, V: Tensor, T: Tensor,
                           edges: FrameEdges) -> Tuple[Tensor, Tensor, Tensor, Tensor]:
        """``g_i g_j U_ij V_j`` and ``g_i g_j U_ij T_j U_ij^T`` split by parity: (ve, vo, te, to).

        Per atom j, the columns ``g_j L_j^T v_jc`` and ``g_j L_j^T T_jc L_j`` (global frame),
        side by side: (N, 3, mul1 + 3 mul2). Per edge, one product with ``g_i L_i`` gives every
        vector in frame i and the rank-2 tensors' left half; the right half ``(.) L_i^T`` is one
        more product. Results are component-major (E, 3, C), the layout the parity split reads.
        """
        n = V.shape[0]
        c1, c2 = self.mul1, self.mul2
        Lg = edges.gated_frames
        cols = []
        if c1 > 0:
            cols.append(V.transpose(1, 2))  # (N, 3, C1): column c = v_c
        if c2 > 0:
            # T_c L for all c: (N, 3 C2, 3), rows (c, p); then columns (c, b) per row p
            TL = torch.bmm(T.reshape(n, 3 * c2, 3), edges.frames)
            cols.append(TL.view(n, c2, 3, 3).transpose(1, 2).reshape(n, 3, 3 * c2))
        R = cols[0] if len(cols) == 1 else torch.cat(cols, dim=2)
        k = R.shape[2]
        G = torch.bmm(Lg.transpose(1, 2), R)  # (N, 3, K): g_j L_j^T [V^T | T L]
        num_edges = edges.neighbour.shape[0]
        X = G.reshape(n, 3 * k).index_select(0, edges.neighbour).view(num_edges, 3, k)
        Y = torch.bmm(edges.centre_frames, X)  # g_i L_i (.): (E, 3, K)
        empty = Y[:, 0, :0]
        ve, vo, te, to = empty, empty, empty, empty
        Y1, Y2 = torch.split(Y, [c1, 3 * c2], dim=2)
        if c1 > 0:
            ve, vo = self.split.vectors_component_major(Y1)
        if c2 > 0:
            Fc = edges.frames.index_select(0, edges.centre)  # L_i (E, 3, 3)
            # (g_i g_j L_i T_c' L_i^T) for all c: rows (a, c), columns d
            Y2 = Y2.reshape(num_edges, 3 * c2, 3)
            Z = torch.bmm(Y2, Fc.transpose(1, 2)).view(num_edges, 3, c2, 3)
            te, to = self.split.rank2_component_major(Z)
        return ve, vo, te, to

    def __repr__(self) -> str:
        n = sum(p.numel() for p in self.parameters())
        return (f"TensorFrameConv({self.reps_str} -> {self.reps_str}, message="
                f"{type(self.message).__name__}, {self.split.extra_repr()}, edge even/odd="
                f"{self.message.wiring.edge_even}/{self.message.wiring.edge_odd}, {n} weights)")
