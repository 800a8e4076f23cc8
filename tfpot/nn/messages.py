"""Message functions for :class:`~tfpot.nn.tensor_frame_conv.TensorFrameConv`.

A message function sees only invariant numbers, so it can be any network. Each one has
``edge_dim`` and ``out_dim`` and ``forward(s, centre, neighbour, edge_features, env, num_nodes)``
returning (E, out_dim) messages that vanish smoothly at the cutoff.

The ``Parity*`` variants (for :class:`~tfpot.nn.tensor_frame_conv.ParityTensorFrameConv`) take the
edge inputs split into even and odd numbers under the local mirror z -> -z and return even and
odd messages, equivariantly (see :mod:`tfpot.nn.parity`): ``edge_even_dim``, ``edge_odd_dim``,
``out_even``, ``out_odd`` and ``forward(s, centre, neighbour, edge_even, edge_odd, env,
num_nodes) -> (me (E, out_even), mo (E, out_odd))``.
"""

from __future__ import annotations

import math

from typing import Optional, Tuple

import torch
from torch import Tensor, nn

from tfpot.nn.parity import ParityLayer, ParityLinear


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

    @staticmethod
    def width_error(hidden: int, hidden_odd: int) -> Optional[str]:
        """Why these widths do not fit this message function (None: they do)."""
        return None

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

    @staticmethod
    def width_error(hidden: int, hidden_odd: int, heads: int = 4) -> Optional[str]:
        """Why these widths do not fit this message function (None: they do)."""
        if hidden % heads != 0 or hidden_odd % heads != 0:
            return (f"hidden ({hidden}) and its odd width ({hidden_odd}) must be divisible by "
                    f"the {heads} attention heads")
        return None

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


class ParityMLPMessage(nn.Module):
    """:class:`MLPMessage` as a Z2-equivariant network: same depth, even width ``hidden`` and odd
    width ``hidden_odd``; node terms enter the first even pre-activation, per node then gathered.
    """

    def __init__(self, node_dim: int, edge_even_dim: int, edge_odd_dim: int, out_even: int,
                 out_odd: int, hidden: int = 64, hidden_odd: int = 32,
                 avg_num_neighbors: float = 10.0):
        super().__init__()
        self.edge_even_dim = int(edge_even_dim)
        self.edge_odd_dim = int(edge_odd_dim)
        self.out_even = int(out_even)
        self.out_odd = int(out_odd)
        self.inv_norm = 1.0 / float(avg_num_neighbors)
        self.lin_centre = nn.Linear(node_dim, hidden + hidden_odd, bias=True)
        self.lin_neighbour = nn.Linear(node_dim, hidden + hidden_odd, bias=False)
        self.first = ParityLayer(edge_even_dim, edge_odd_dim, hidden, hidden_odd, bias=False)
        self.hidden = ParityLayer(hidden, hidden_odd, hidden, hidden_odd)
        self.out = ParityLinear(hidden, hidden_odd, out_even, out_odd)

    def forward(self, s: Tensor, centre: Tensor, neighbour: Tensor, edge_even: Tensor,
                edge_odd: Tensor, env: Tensor, num_nodes: int) -> Tuple[Tensor, Tensor]:
        node_terms = self.lin_centre(s)[centre] + self.lin_neighbour(s)[neighbour]
        he, ho = self.first(edge_even, edge_odd, node_terms)
        he, ho = self.hidden(he, ho)
        me, mo = self.out(he, ho)
        w = (env * self.inv_norm).unsqueeze(-1)
        return me * w, mo * w


class ParityAttentionMessage(nn.Module):
    """:class:`AttentionMessage` as a Z2-equivariant network: attention weights come from even
    queries and keys; values have even and odd parts, each weighted per head.
    """

    def __init__(self, node_dim: int, edge_even_dim: int, edge_odd_dim: int, out_even: int,
                 out_odd: int, hidden: int = 64, hidden_odd: int = 32, heads: int = 4):
        super().__init__()
        if hidden % heads != 0 or hidden_odd % heads != 0:
            raise ValueError(f"hidden ({hidden}) and hidden_odd ({hidden_odd}) must be divisible "
                             f"by heads ({heads})")
        self.edge_even_dim = int(edge_even_dim)
        self.edge_odd_dim = int(edge_odd_dim)
        self.out_even = int(out_even)
        self.out_odd = int(out_odd)
        self.heads = int(heads)
        self.head_dim = hidden // heads
        self.head_dim_odd = hidden_odd // heads
        self.query = nn.Linear(node_dim, hidden)
        self.key_centre = nn.Linear(node_dim, hidden + hidden_odd)
        self.key_neighbour = nn.Linear(node_dim, hidden + hidden_odd, bias=False)
        self.first = ParityLayer(edge_even_dim, edge_odd_dim, hidden, hidden_odd, bias=False)
        self.key_value = nn.Linear(hidden, 2 * hidden)
        self.value_odd = nn.Linear(hidden_odd, hidden_odd, bias=False)
        self.out_e = nn.Linear(hidden, out_even)
        self.out_o = nn.Linear(hidden_odd, out_odd, bias=False)

    def forward(self, s: Tensor, centre: Tensor, neighbour: Tensor, edge_even: Tensor,
                edge_odd: Tensor, env: Tensor, num_nodes: int) -> Tuple[Tensor, Tensor]:
        num_edges = centre.shape[0]
        node_terms = self.key_centre(s)[centre] + self.key_neighbour(s)[neighbour]
        he, ho = self.first(edge_even, edge_odd, node_terms)
        kv = self.key_value(he).view(num_edges, 2, self.heads, self.head_dim)
        k = kv[:, 0]
        v = kv[:, 1]
        vo = self.value_odd(ho).view(num_edges, self.heads, self.head_dim_odd)
        q = self.query(s)[centre].view(num_edges, self.heads, self.head_dim)
        logits = 5.0 * torch.tanh((q * k).sum(-1) / (5.0 * math.sqrt(self.head_dim)))
        w = env.unsqueeze(-1) * torch.exp(logits)  # (E, H)
        denom = torch.ones(num_nodes, self.heads, dtype=w.dtype, device=w.device).index_add(0, centre, w)
        alpha = (w / denom[centre]).unsqueeze(-1)
        me = self.out_e((alpha * v).reshape(num_edges, self.heads * self.head_dim))
        mo = self.out_o((alpha * vo).reshape(num_edges, self.heads * self.head_dim_odd))
        return me, mo


MESSAGES = {"mlp": MLPMessage, "attention": AttentionMessage}
PARITY_MESSAGES = {"mlp": ParityMLPMessage, "attention": ParityAttentionMessage}
