"""The generic tensor-frame message-passing layer: any message function becomes equivariant.

For an edge j -> i the layer builds invariant inputs (Lippmann et al. 2024, arXiv 2405.15389):

    x_ij = [ rbf(r_ij),  g_i L_i r_ij/|r_ij|,  g_i g_j U_ij V_j,  g_i g_j U_ij T_j U_ij^T ]

with ``U_ij = L_i L_j^T``, hands them with the node scalars to a message function ``phi``,
sums the messages over neighbours, and updates the node features in frame i:

    M_i = sum_j phi(s, x_ij, u(r_ij))
    (s_i, V_i, T_i) <- (s_i, V_i, T_i) + update(s_i, M_i)

Every input of ``phi`` is an invariant number, so ``phi`` may be any function (an MLP,
attention, ...). ``phi`` must scale its messages by the envelope ``u`` (zero at the cutoff with
two derivatives).
"""

from __future__ import annotations

from typing import Dict

import torch
from torch import Tensor, nn

from tfpot.nn.mlp import MLP
from tfpot.nn.parity import ParityMLP, parity_indices, split_rank2, split_vectors
from tfpot.reps import TensorReps, change_frame_rank2, change_frame_vectors


class TensorFrameConv(nn.Module):
    """One interaction layer.

    Args:
        reps: feature multiplicities (``TensorReps`` or a string like ``"64x0+16x1+4x2"``).
        num_basis: radial basis size.
        message: a message module with attributes ``edge_dim`` (must equal this layer's
            ``edge_dim``) and ``out_dim`` (must equal ``reps.dim``) and
            ``forward(s, centre, neighbour, edge_features, env, num_nodes) -> (E, out_dim)``.
        receives_tensors: False for the first layer, where every V_j, T_j is still zero (the
            frames of neighbours are then not used at all, so a layer's reach is one cutoff).
        hidden: width of the node-update MLP.

    Shapes:
        s (N, mul0), V (N, mul1, 3), T (N, mul2, 3, 3), frames (N, 3, 3) transport U (E, 3, 3),
        local_dir (E, 3) = g_i L_i r_ij/|r_ij|, pair_gate (E,) = g_i g_j, rbf (E, num_basis),
        env (E,) -> updated (s, V, T).
    """

    def __init__(self, reps, num_basis: int, message: nn.Module, receives_tensors: bool = True,
                 hidden: int = 64):
        super().__init__()
        reps = TensorReps(reps)
        self.reps_str = str(reps)
        self.mul0, self.mul1, self.mul2 = reps.muls
        self.receives_tensors = bool(receives_tensors)
        self.num_basis = int(num_basis)
        self.edge_dim = self.num_basis + 3 + (
            (3 * self.mul1 + 9 * self.mul2) if self.receives_tensors else 0)
        # Wiring is checked here, when the model is built, not in the middle of a forward pass.
        if getattr(message, "edge_dim", None) != self.edge_dim:
            raise ValueError(
                f"{type(message).__name__} expects edge_dim={getattr(message, 'edge_dim', None)}, "
                f"but this layer provides {self.edge_dim} (reps {reps}, receives_tensors="
                f"{self.receives_tensors})")
        if getattr(message, "out_dim", None) != reps.dim:
            raise ValueError(
                f"{type(message).__name__} produces out_dim={getattr(message, 'out_dim', None)}, "
                f"but reps {reps} need {reps.dim}")
        self.message = message
        update_in = 2 * self.mul0 + 3 * self.mul1 + 9 * self.mul2
        self.update = MLP(update_in, [hidden], reps.dim)

    def forward(self, s: Tensor, V: Tensor, T: Tensor, U: Tensor, local_dir: Tensor,
                pair_gate: Tensor, rbf: Tensor, env: Tensor, centre: Tensor, neighbour: Tensor):
        n = s.shape[0]
        num_edges = centre.shape[0]
        parts = [rbf, local_dir]
        if self.receives_tensors:
            Ug = U * pair_gate.view(-1, 1, 1)  # g_i g_j U_ij
            if self.mul1 > 0:
                Vt = change_frame_vectors(Ug, V[neighbour])
                parts.append(Vt.reshape(num_edges, 3 * self.mul1))
            if self.mul2 > 0:
                Tt = change_frame_rank2(U, T[neighbour], U_left=Ug)
                parts.append(Tt.reshape(num_edges, 9 * self.mul2))
        edge_features = torch.cat(parts, dim=-1)
        m = self.message(s, centre, neighbour, edge_features, env, n)
        M = torch.zeros(n, m.shape[1], dtype=m.dtype, device=m.device).index_add(0, centre, m)
        rest = M[:, self.mul0:]
        delta = self.update(torch.cat([s, M], dim=-1))
        s = s + delta[:, : self.mul0]
        a = self.mul0
        b = a + 3 * self.mul1
        V = V + rest[:, : 3 * self.mul1].reshape(n, self.mul1, 3) + delta[:, a:b].reshape(n, self.mul1, 3)
        T = T + rest[:, 3 * self.mul1:].reshape(n, self.mul2, 3, 3) + delta[:, b:].reshape(n, self.mul2, 3, 3)
        return s, V, T

    def __repr__(self) -> str:
        n = sum(p.numel() for p in self.parameters())
        return (f"TensorFrameConv({self.reps_str} -> {self.reps_str}, message="
                f"{type(self.message).__name__}, edge_dim={self.edge_dim}, {n} weights)")


class ParityTensorFrameConv(nn.Module):
    """:class:`TensorFrameConv` made equivariant under the local mirror (see :mod:`tfpot.nn.parity`).

    The same inputs and update as :class:`TensorFrameConv`, with every number split into its even
    and odd part under ``z -> -z`` (local coordinates of a reflected structure). The message
    function and the node update are Z2-equivariant networks, so the energy is exactly
    reflection invariant from one pass: no mirror average.

    Args:
        reps, num_basis, receives_tensors, hidden: as :class:`TensorFrameConv`.
        message: a ``Parity*`` message module from :mod:`tfpot.nn.messages` with
            ``edge_even_dim``/``edge_odd_dim`` equal to this layer's and ``out_even``/``out_odd``
            equal to the even/odd sizes of ``reps``.
        hidden_odd: odd width of the node-update network.

    Shapes: as :class:`TensorFrameConv`.
    """

    def __init__(self, reps, num_basis: int, message: nn.Module, receives_tensors: bool = True,
                 hidden: int = 64, hidden_odd: int = 32):
        super().__init__()
        reps = TensorReps(reps)
        self.reps_str = str(reps)
        self.mul0, self.mul1, self.mul2 = reps.muls
        self.receives_tensors = bool(receives_tensors)
        self.num_basis = int(num_basis)
        wiring = self.wiring(reps, self.num_basis, self.receives_tensors)
        self.out_even = wiring["out_even"]
        self.out_odd = wiring["out_odd"]
        for key, want in wiring.items():
            got = getattr(message, key, None)
            if got != want:
                raise ValueError(f"{type(message).__name__} has {key}={got}, but this layer needs "
                                 f"{want} (reps {reps}, receives_tensors={self.receives_tensors})")
        self.message = message
        self.update = ParityMLP(self.mul0 + self.out_even, self.out_odd, [hidden], hidden_odd,
                                self.out_even, self.out_odd)
        even, odd = parity_indices(self.mul0, self.mul1, self.mul2)
        # [even, odd] -> the flat (s, V, T) layout
        self.register_buffer("unsplit", torch.argsort(torch.tensor(even + odd)), persistent=False)

    @staticmethod
    def wiring(reps: TensorReps, num_basis: int, receives_tensors: bool) -> Dict[str, int]:
        """Sizes a message module must have: even/odd edge inputs and even/odd messages."""
        mul0, mul1, mul2 = reps.muls
        return {"edge_even_dim": num_basis + 2 + ((2 * mul1 + 5 * mul2) if receives_tensors else 0),
                "edge_odd_dim": 1 + ((mul1 + 4 * mul2) if receives_tensors else 0),
                "out_even": mul0 + 2 * mul1 + 5 * mul2, "out_odd": mul1 + 4 * mul2}

    def forward(self, s: Tensor, V: Tensor, T: Tensor, U: Tensor, local_dir: Tensor,
                pair_gate: Tensor, rbf: Tensor, env: Tensor, centre: Tensor, neighbour: Tensor):
        n = s.shape[0]
        even_parts = [rbf, local_dir[:, :2]]
        odd_parts = [local_dir[:, 2:]]
        if self.receives_tensors:
            Ug = U * pair_gate.view(-1, 1, 1)  # g_i g_j U_ij
            if self.mul1 > 0:
                ve, vo = split_vectors(change_frame_vectors(Ug, V[neighbour]))
                even_parts.append(ve)
                odd_parts.append(vo)
            if self.mul2 > 0:
                te, to = split_rank2(change_frame_rank2(U, T[neighbour], U_left=Ug))
                even_parts.append(te)
                odd_parts.append(to)
        me, mo = self.message(s, centre, neighbour, torch.cat(even_parts, dim=-1),
                              torch.cat(odd_parts, dim=-1), env, n)
        Me = torch.zeros(n, me.shape[1], dtype=me.dtype, device=me.device).index_add(0, centre, me)
        Mo = torch.zeros(n, mo.shape[1], dtype=mo.dtype, device=mo.device).index_add(0, centre, mo)
        de, do = self.update(torch.cat([s, Me], dim=-1), Mo)
        # scalars take the update only (their messages feed the update); V and T take both
        inc = torch.cat([de[:, : self.mul0], de[:, self.mul0:] + Me[:, self.mul0:], do + Mo], dim=-1)
        inc = inc.index_select(1, self.unsplit)
        a = self.mul0
        b = a + 3 * self.mul1
        s = s + inc[:, :a]
        V = V + inc[:, a:b].reshape(n, self.mul1, 3)
        T = T + inc[:, b:].reshape(n, self.mul2, 3, 3)
        return s, V, T

    def __repr__(self) -> str:
        n = sum(p.numel() for p in self.parameters())
        return (f"ParityTensorFrameConv({self.reps_str} -> {self.reps_str}, message="
                f"{type(self.message).__name__}, edge even/odd={self.message.edge_even_dim}/"
                f"{self.message.edge_odd_dim}, {n} weights)")
