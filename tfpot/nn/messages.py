"""Message functions for :class:`~tfpot.nn.tensor_frame_conv.TensorFrameConv`, and their registry.

A message function sees only invariant numbers, so it can be any network. It takes the node
scalars and the edge inputs split into an even and an odd part (:class:`~tfpot.nn.parity.MirrorSplit`:
even and odd under the local mirror ``z -> -z``, or everything even and an empty odd part for an
SO(3)-only model) and returns even and odd messages, equivariantly (see :mod:`tfpot.nn.parity`),
scaled by the envelope so that they vanish smoothly at the cutoff.

Every message class has the same constructor, so :data:`MESSAGES` dispatches by name::

    message = MESSAGES[name](wiring, hidden, hidden_odd, avg_num_neighbors, radial_filter)

and ``forward(s, centre, neighbour, edge_even, edge_odd, env, num_nodes) -> (Me (N, out_even),
Mo (N, out_odd))``: the messages summed over each atom's neighbours (``M_i = sum_j phi_ij``).
Messages end in a linear layer, so the sum is taken before it (``sum_j w_ij (W h_ij + b) =
W sum_j w_ij h_ij + b sum_j w_ij``): the last layer runs per atom, not per edge.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Dict, List, Optional, Tuple, Type

import torch
from torch import Tensor, nn

from tfpot.nn.parity import OddLinear, ParityLayer, ParityLinear, weighted_sums
from tfpot.nn.radial import RADIAL_FILTERS, RadialFilter


@dataclass(frozen=True)
class MessageWiring:
    """Sizes a message function must have to fit its layer (checked when the layer is built).

    Attributes:
        node_dim: scalar channels per node; edge_even, edge_odd: even/odd invariant edge inputs;
        out_even, out_odd: even/odd message sizes; radial: how many of the even edge inputs, at
        their start, are the radial basis (what a radial filter reads).
    """

    node_dim: int
    edge_even: int
    edge_odd: int
    out_even: int
    out_odd: int
    radial: int = 0


def radial_filter_for(wiring: MessageWiring, kind: str,
                      widths: List[int]) -> Optional[RadialFilter]:
    """The :class:`~tfpot.nn.radial.RadialFilter` of a message whose hidden layers have
    ``widths`` channels (even and odd together), or None for ``kind="none"``."""
    if kind not in RADIAL_FILTERS:
        raise ValueError(f"radial_filter must be one of {', '.join(RADIAL_FILTERS)} (got {kind!r})")
    if kind == "none":
        return None
    return RadialFilter(wiring.radial, widths)


class MLPMessage(nn.Module):
    """``phi(s_i, s_j, x_ij) = u(r_ij) / n_avg * MLP([s_i, s_j, x_ij])`` (the default), as a
    Z2-equivariant network: even width ``hidden``, odd width ``hidden_odd``; the node terms enter
    the first even pre-activation, computed per node and then gathered. With a radial filter,
    both hidden layers' activations are multiplied channel by channel by ``f(r_ij)``
    (:class:`~tfpot.nn.radial.RadialFilter`).

    Args:
        wiring: sizes (:class:`MessageWiring`); hidden, hidden_odd: widths;
        avg_num_neighbors: fixed normalisation (a constant, so the energy stays a sum of local
        terms); radial_filter: ``"tanh"`` or ``"none"``.
    """

    __jit_ignored_attributes__ = ["wiring"]

    def __init__(self, wiring: MessageWiring, hidden: int = 64, hidden_odd: int = 32,
                 avg_num_neighbors: float = 10.0, radial_filter: str = "none"):
        super().__init__()
        self.wiring = wiring
        self.inv_norm = 1.0 / float(avg_num_neighbors)
        self.num_radial = int(wiring.radial)
        self.radial_filter = radial_filter_for(wiring, radial_filter,
                                               [int(hidden), int(hidden_odd)] * 2)
        self.lin_centre = nn.Linear(wiring.node_dim, hidden + hidden_odd, bias=True)
        self.lin_neighbour = nn.Linear(wiring.node_dim, hidden + hidden_odd, bias=False)
        self.first = ParityLayer(wiring.edge_even, wiring.edge_odd, hidden, hidden_odd, bias=False)
        self.hidden = ParityLayer(hidden, hidden_odd, hidden, hidden_odd)
        self.out = ParityLinear(hidden, hidden_odd, wiring.out_even, wiring.out_odd)

    @staticmethod
    def width_error(hidden: int, hidden_odd: int) -> Optional[str]:
        """Why these widths do not fit this message function (None: they do)."""
        return None

    def forward(self, s: Tensor, centre: Tensor, neighbour: Tensor, edge_even: Tensor,
                edge_odd: Tensor, env: Tensor, num_nodes: int) -> Tuple[Tensor, Tensor]:
        node_terms = (self.lin_centre(s).index_select(0, centre)
                      + self.lin_neighbour(s).index_select(0, neighbour))
        he, ho = self.first(edge_even, edge_odd, node_terms)
        if self.radial_filter is not None:
            f = self.radial_filter(edge_even[:, : self.num_radial])
            he, ho = self.hidden(he * f[0], ho * f[1])
            he, ho = he * f[2], ho * f[3]
        else:
            he, ho = self.hidden(he, ho)
        w = (env * self.inv_norm).unsqueeze(-1)
        return self.out.summed(he, ho, w, centre, num_nodes)


def attention_weights(q: Tensor, k: Tensor, env: Tensor, centre: Tensor,
                      num_nodes: int) -> Tensor:
    """``alpha_ij^h = u_ij exp(a_ij^h) / (1 + sum_k u_ik exp(a_ik^h))``, smooth at the cutoff.

    Bounded logits ``a = 5 tanh(q_i . k_ij / (5 sqrt(d)))``: a neighbour entering the cutoff
    enters numerator and denominator with weight ``u = 0``, so weights are continuous with their
    derivatives; the 1 ("null key") keeps lone neighbours smooth too.

    Shapes: q, k (E, H, d), env (E,), centre (E,) -> alpha (E, H).
    """
    logits = 5.0 * torch.tanh((q * k).sum(-1) / (5.0 * math.sqrt(q.shape[-1])))
    w = env.unsqueeze(-1) * torch.exp(logits)  # (E, H)
    denom = torch.ones(num_nodes, w.shape[1], dtype=w.dtype, device=w.device).index_add(0, centre, w)
    return w / denom.index_select(0, centre)


class AttentionMessage(nn.Module):
    """Multi-head attention over neighbours (:func:`attention_weights`), Z2-equivariant: weights
    come from even queries and keys; values have even and odd parts, each weighted per head.
    Message: ``u(r_ij) W_o [alpha_ij^h v_ij^h]_h`` (with the bias of ``W_o``; without the
    envelope ``u`` in models of revision 1, see :mod:`tfpot.revisions`).

    Args: as :class:`MLPMessage` (``avg_num_neighbors`` is accepted for the common constructor;
    attention normalises by its weights instead; a radial filter scales its one hidden layer),
    and ``heads``.
    """

    __jit_ignored_attributes__ = ["wiring"]

    def __init__(self, wiring: MessageWiring, hidden: int = 64, hidden_odd: int = 32,
                 avg_num_neighbors: float = 10.0, radial_filter: str = "none", heads: int = 4):
        super().__init__()
        problem = self.width_error(hidden, hidden_odd, heads)
        if problem is not None:
            raise ValueError(problem)
        self.wiring = wiring
        self.heads = int(heads)
        self.head_dim = hidden // heads
        self.head_dim_odd = hidden_odd // heads
        node_dim = wiring.node_dim
        self.query = nn.Linear(node_dim, hidden)
        self.key_centre = nn.Linear(node_dim, hidden + hidden_odd)
        self.key_neighbour = nn.Linear(node_dim, hidden + hidden_odd, bias=False)
        self.first = ParityLayer(wiring.edge_even, wiring.edge_odd, hidden, hidden_odd, bias=False)
        self.num_radial = int(wiring.radial)
        self.radial_filter = radial_filter_for(wiring, radial_filter, [hidden, hidden_odd])
        self.key_value = nn.Linear(hidden, 2 * hidden)
        self.value_odd = OddLinear(hidden_odd, hidden_odd)
        self.out_e = nn.Linear(hidden, wiring.out_even)
        self.out_o = OddLinear(hidden_odd, wiring.out_odd)
        #: messages times the envelope; False only in models loaded from files of revision 1,
        #: whose output bias reached every edge unscaled (:mod:`tfpot.revisions`)
        self.scale_by_envelope = True

    @staticmethod
    def width_error(hidden: int, hidden_odd: int, heads: int = 4) -> Optional[str]:
        """Why these widths do not fit this message function (None: they do)."""
        if hidden % heads != 0 or hidden_odd % heads != 0:
            return (f"hidden ({hidden}) and its odd width ({hidden_odd}) must be divisible by "
                    f"the {heads} attention heads")
        return None

    def forward(self, s: Tensor, centre: Tensor, neighbour: Tensor, edge_even: Tensor,
                edge_odd: Tensor, env: Tensor, num_nodes: int) -> Tuple[Tensor, Tensor]:
        num_edges = centre.shape[0]
        node_terms = (self.key_centre(s).index_select(0, centre)
                      + self.key_neighbour(s).index_select(0, neighbour))
        he, ho = self.first(edge_even, edge_odd, node_terms)
        if self.radial_filter is not None:
            f = self.radial_filter(edge_even[:, : self.num_radial])
            he, ho = he * f[0], ho * f[1]
        kv = self.key_value(he).view(num_edges, 2, self.heads, self.head_dim)
        vo = self.value_odd(ho).view(num_edges, self.heads, self.head_dim_odd)
        q = self.query(s).index_select(0, centre).view(num_edges, self.heads, self.head_dim)
        alpha = attention_weights(q, kv[:, 0], env, centre, num_nodes).unsqueeze(-1)
        xe = (alpha * kv[:, 1]).reshape(num_edges, self.heads * self.head_dim)
        xo = (alpha * vo).reshape(num_edges, self.heads * self.head_dim_odd)
        # sum_j w_ij (W x_ij + b) = W sum_j w_ij x_ij + b sum_j w_ij: the output layers per atom
        if self.scale_by_envelope:
            w = env.unsqueeze(-1)
        else:
            w = torch.ones_like(env).unsqueeze(-1)
        de = xe.shape[1]
        X, wsum = weighted_sums(torch.cat([xe, xo], dim=-1), w, centre, num_nodes)
        Me = torch.nn.functional.linear(X[:, :de], self.out_e.weight) + wsum * self.out_e.bias
        return Me, self.out_o(X[:, de:])


#: Message functions by name (the ``message`` hyperparameter); one constructor for all.
MESSAGES: Dict[str, Type[nn.Module]] = {"mlp": MLPMessage, "attention": AttentionMessage}
