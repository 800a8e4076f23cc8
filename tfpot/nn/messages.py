"""Message functions for :class:`~tfpot.nn.tensor_frame_conv.TensorFrameConv`.

A message function sees only invariant numbers, so it can be any network. Each one has
``edge_dim`` and ``out_dim`` and ``forward(s, centre, neighbour, edge_features, env, num_nodes)``
returning (E, out_dim) messages that vanish smoothly at the cutoff.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn


class MLPMessage(nn.Module):
    """``phi(s_i, s_j, x_ij) = u(r_ij) / n_avg * MLP([s_i, s_j, x_ij])`` (the default).

    The first linear layer is split so the node terms are computed per node, then gathered.

    Args:
        node_dim: scalar channels per node; edge_dim: invariant edge inputs; out_dim: message
        size; hidden: width; avg_num_neighbors: fixed normalisation (a constant, so the energy
        stays a sum of local terms).
    """

    def __init__(self, node_dim: int, edge_dim: int, out_dim: int, hidden: int = 64,
                 avg_num_neighbors: float = 10.0):
        super().__init__()
        self.edge_dim = int(edge_dim)
        self.out_dim = int(out_dim)
        self.inv_norm = 1.0 / float(avg_num_neighbors)
        self.lin_centre = nn.Linear(node_dim, hidden, bias=True)
        self.lin_neighbour = nn.Linear(node_dim, hidden, bias=False)
        self.lin_edge = nn.Linear(edge_dim, hidden, bias=False)
        self.net = nn.Sequential(nn.SiLU(), nn.Linear(hidden, hidden), nn.SiLU(),
                                 nn.Linear(hidden, out_dim))

    def forward(self, s: Tensor, centre: Tensor, neighbour: Tensor, edge_features: Tensor,
                env: Tensor, num_nodes: int) -> Tensor:
        h = self.lin_centre(s)[centre] + self.lin_neighbour(s)[neighbour] + self.lin_edge(edge_features)
        return self.net(h) * (env * self.inv_norm).unsqueeze(-1)


class AttentionMessage(nn.Module):
    """Multi-head attention over neighbours, smooth at the cutoff.

    ``alpha_ij^h = u_ij exp(a_ij^h) / (1 + sum_k u_ik exp(a_ik^h))`` with bounded logits
    ``a = 5 tanh(q_i . k_ij / (5 sqrt(d)))``: a neighbour entering the cutoff enters numerator and
    denominator with weight ``u = 0``, so weights and messages are continuous with their
    derivatives; the 1 ("null key") keeps lone neighbours smooth too.
    Message: ``W_o [alpha_ij^h v_ij^h]_h``.
    """

    def __init__(self, node_dim: int, edge_dim: int, out_dim: int, hidden: int = 64,
                 heads: int = 4):
        super().__init__()
        if hidden % heads != 0:
            raise ValueError(f"hidden ({hidden}) must be divisible by heads ({heads})")
        self.edge_dim = int(edge_dim)
        self.out_dim = int(out_dim)
        self.heads = int(heads)
        self.head_dim = hidden // heads
        self.query = nn.Linear(node_dim, hidden)
        self.key_centre = nn.Linear(node_dim, hidden)
        self.key_neighbour = nn.Linear(node_dim, hidden, bias=False)
        self.key_edge = nn.Linear(edge_dim, hidden, bias=False)
        self.key_out = nn.Sequential(nn.SiLU(), nn.Linear(hidden, 2 * hidden))
        self.out = nn.Linear(hidden, out_dim)

    def forward(self, s: Tensor, centre: Tensor, neighbour: Tensor, edge_features: Tensor,
                env: Tensor, num_nodes: int) -> Tensor:
        num_edges = centre.shape[0]
        h = self.key_centre(s)[centre] + self.key_neighbour(s)[neighbour] + self.key_edge(edge_features)
        kv = self.key_out(h).view(num_edges, 2, self.heads, self.head_dim)
        k = kv[:, 0]
        v = kv[:, 1]
        q = self.query(s)[centre].view(num_edges, self.heads, self.head_dim)
        logits = 5.0 * torch.tanh((q * k).sum(-1) / (5.0 * math.sqrt(self.head_dim)))
        w = env.unsqueeze(-1) * torch.exp(logits)  # (E, H)
        denom = torch.ones(num_nodes, self.heads, dtype=w.dtype, device=w.device).index_add(0, centre, w)
        alpha = w / denom[centre]
        return self.out((alpha.unsqueeze(-1) * v).reshape(num_edges, self.heads * self.head_dim))


MESSAGES = {"mlp": MLPMessage, "attention": AttentionMessage}
