"""Networks equivariant under the local mirror ``z -> -z``: exact reflection invariance in one pass.

Frames are proper rotations (``e3 = e1 x e2``). Under a reflection of the structure every local
frame becomes ``P L R^T`` with ``P = diag(1, 1, -1)``, so the local coordinates of every feature
transform by ``P``: scalars and the x, y components of vectors are *even*, the z components are
*odd* (they flip sign); of a rank-2 tensor ``T_ab`` the entries with exactly one index z (xz, yz,
zx, zy) are odd, the others even. A network that maps even inputs to even outputs and odd to odd
(a Z2-equivariant network) therefore gives exactly reflection-invariant energies from a single
pass, instead of averaging a structure with its mirror image (twice the cost).

Building block (:class:`ParityLayer`), with ``xe`` even and ``xo`` odd inputs::

    a = W_o xo                                  (odd, no bias)
    [b, c] = W_e [xe, a * a] + bias             (even: a*a is even)
    he = silu(b);  ho = a * sigmoid(c)          (odd times even is odd)

Odd inputs reach the even channels through the squares ``a*a`` and even inputs reach the odd
channels through the gates ``sigmoid(c)``, so every smooth Z2-equivariant function can be
approximated (even functions of xo are functions of products of odd components; odd functions
are odd components times even functions).
"""

from __future__ import annotations

import warnings
from typing import List, Optional, Tuple

import torch
from torch import Tensor, nn

# Flattened 3x3 entries (row-major): even ones have zero or two z indices.
EVEN_RANK2 = (0, 1, 3, 4, 8)   # xx xy yx yy zz
ODD_RANK2 = (2, 5, 6, 7)       # xz yz zx zy


def parity_indices(mul0: int, mul1: int, mul2: int) -> Tuple[List[int], List[int]]:
    """Positions of the even and of the odd numbers in a flat feature vector.

    The flat layout is ``[s (mul0), V (mul1 x 3), T (mul2 x 9)]``, as ``TensorReps.dim``.
    Even: ``mul0 + 2 mul1 + 5 mul2`` numbers, ordered as ``[s, split_vectors(V)[0],
    split_rank2(T)[0]]``; odd: ``mul1 + 4 mul2``, as ``[split_vectors(V)[1], split_rank2(T)[1]]``.
    """
    even = list(range(mul0))
    odd: List[int] = []
    for k in (0, 1):
        even += [mul0 + 3 * c + k for c in range(mul1)]
    odd += [mul0 + 3 * c + 2 for c in range(mul1)]
    base = mul0 + 3 * mul1
    for k in EVEN_RANK2:
        even += [base + 9 * c + k for c in range(mul2)]
    for k in ODD_RANK2:
        odd += [base + 9 * c + k for c in range(mul2)]
    return even, odd


def split_vectors(V: Tensor) -> Tuple[Tensor, Tensor]:
    """(E, C, 3) -> even (E, 2C) ordered [x of all channels, y of all channels], odd (E, C)."""
    n, c = V.shape[0], V.shape[1]
    return V[..., :2].transpose(1, 2).reshape(n, 2 * c), V[..., 2]


def split_rank2(T: Tensor) -> Tuple[Tensor, Tensor]:
    """(E, C, 3, 3) -> even (E, 5C), odd (E, 4C), entry-major (as :func:`parity_indices`)."""
    n, c = T.shape[0], T.shape[1]
    flat = T.reshape(n, c, 9).transpose(1, 2)  # (E, 9, C)
    even = torch.cat([flat[:, 0:2], flat[:, 3:5], flat[:, 8:9]], dim=1)
    odd = torch.cat([flat[:, 2:3], flat[:, 5:8]], dim=1)
    return even.reshape(n, 5 * c), odd.reshape(n, 4 * c)


class MirrorSplit(nn.Module):
    """Splits a layer's numbers into the even and the odd part that its networks take.

    ``equivariant=True``: even and odd under the local mirror ``z -> -z`` (as above), for
    Z2-equivariant networks and exact reflection invariance. ``equivariant=False``: every number
    counts as even and the odd parts are empty (zero columns), so the same networks are plain
    MLPs: SO(3) invariance only. The even part keeps the flat order ``[s, V, T]`` then.

    Args:
        mul0, mul1, mul2: channels of rank 0, 1, 2.
        equivariant: split by parity (True) or not at all (False).

    Shapes:
        direction (E, 3) -> even (E, 2 | 3), odd (E, 1 | 0); vectors (E, C, 3) -> even
        (E, 2C | 3C), odd (E, C | 0); rank2 (E, C, 3, 3) -> even (E, 5C | 9C), odd (E, 4C | 0);
        unsplit: [even, odd] (N, dim) -> flat ``[s, V, T]`` (N, dim).
    """

    def __init__(self, mul0: int, mul1: int, mul2: int, equivariant: bool = True):
        super().__init__()
        self.equivariant = bool(equivariant)
        dim = mul0 + 3 * mul1 + 9 * mul2
        even, odd = parity_indices(mul0, mul1, mul2) if equivariant else (list(range(dim)), [])
        self.num_even = len(even)
        self.num_odd = len(odd)
        # [even, odd] -> the flat (s, V, T) layout
        self.register_buffer("order", torch.argsort(torch.tensor(even + odd)), persistent=False)
        # the nine entries of a rank-2 tensor, even ones first
        self.register_buffer("rank2_order", torch.tensor(EVEN_RANK2 + ODD_RANK2),
                             persistent=False)

    def direction(self, d: Tensor) -> Tuple[Tensor, Tensor]:
        k = 2 if self.equivariant else 3
        even, odd = torch.split(d, [k, 3 - k], dim=1)
        return even, odd

    def vectors(self, V: Tensor) -> Tuple[Tensor, Tensor]:
        if self.equivariant:
            return split_vectors(V)
        flat = V.reshape(V.shape[0], 3 * V.shape[1])
        return flat, flat[:, :0]

    def rank2(self, T: Tensor) -> Tuple[Tensor, Tensor]:
        if self.equivariant:
            return split_rank2(T)
        flat = T.reshape(T.shape[0], 9 * T.shape[1])
        return flat, flat[:, :0]

    def vectors_component_major(self, Y: Tensor) -> Tuple[Tensor, Tensor]:
        """As :meth:`vectors` for vectors stored component-major: Y (E, 3, C), ``Y[:, a, c]``
        = component a of channel c."""
        n, c = Y.shape[0], Y.shape[2]
        if self.equivariant:
            xy, z = torch.split(Y, [2, 1], dim=1)
            return xy.reshape(n, 2 * c), z.reshape(n, c)
        flat = Y.transpose(1, 2).reshape(n, 3 * c)
        return flat, flat[:, :0]

    def rank2_component_major(self, Z: Tensor) -> Tuple[Tensor, Tensor]:
        """As :meth:`rank2` for tensors stored as Z (E, 3, C, 3), ``Z[:, a, c, b]`` = entry
        (a, b) of channel c."""
        n, c = Z.shape[0], Z.shape[2]
        if self.equivariant:
            flat = Z.transpose(2, 3).reshape(n, 9, c)  # (E, 9 entries (a, b), C)
            even, odd = torch.split(flat.index_select(1, self.rank2_order), [5, 4], dim=1)
            return even.reshape(n, 5 * c), odd.reshape(n, 4 * c)
        flat = Z.transpose(1, 2).reshape(n, 9 * c)
        return flat, flat[:, :0]

    def unsplit(self, x: Tensor) -> Tensor:
        return x.index_select(1, self.order) if self.equivariant else x

    def extra_repr(self) -> str:
        return (f"{self.num_even} even + {self.num_odd} odd" if self.equivariant
                else f"{self.num_even} numbers, no parity split (SO(3) only)")


class OddLinear(nn.Linear):
    """``y = W x`` on odd channels (no bias, so odd inputs give odd outputs).

    Either width may be 0 (no parity split: the odd part is empty); the output is then an empty
    or zero tensor, and neither the weights' initialisation nor TorchScript's autodiff (whose
    linear backward cannot reshape a zero-width weight) ever sees the empty matrix.

    Shapes: (..., in_features) -> (..., out_features).
    """

    def __init__(self, in_features: int, out_features: int):
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", "Initializing zero-element tensors is a no-op")
            super().__init__(in_features, out_features, bias=False)

    def forward(self, x: Tensor) -> Tensor:
        if self.in_features == 0 or self.out_features == 0:
            return torch.zeros(list(x.shape[:-1]) + [self.out_features], dtype=x.dtype,
                               device=x.device)
        return torch.nn.functional.linear(x, self.weight)


class ParityLayer(nn.Module):
    """One hidden layer of a Z2-equivariant MLP (see the module docstring).

    Shapes: xe (..., in_even), xo (..., in_odd), optional ``extra`` (..., out_even + out_odd) added
    to the even pre-activation (for inputs computed elsewhere, e.g. per node then gathered)
    -> he (..., out_even), ho (..., out_odd).
    """

    def __init__(self, in_even: int, in_odd: int, out_even: int, out_odd: int,
                 bias: bool = True):
        super().__init__()
        self.out_even = int(out_even)
        self.odd = OddLinear(in_odd, out_odd)
        self.even = nn.Linear(in_even + out_odd, out_even + out_odd, bias=bias)

    def forward(self, xe: Tensor, xo: Tensor,
                extra: Optional[Tensor] = None) -> Tuple[Tensor, Tensor]:
        a = self.odd(xo)
        x = torch.cat([xe, a * a], dim=-1)
        if extra is not None and self.even.bias is None and x.dim() == 2:
            bc = torch.addmm(extra, x, self.even.weight.t())  # the sum in the product's output
        else:
            bc = self.even(x)
            if extra is not None:
                bc = bc + extra
        # one split (its backward is one concatenation, not a zero-filled gradient per slice)
        b, c = torch.split(bc, [self.out_even, bc.shape[-1] - self.out_even], dim=-1)
        he = torch.nn.functional.silu(b)
        # (sigmoid of a strided slice is ~2x slower than of a contiguous copy in float32)
        ho = a * torch.sigmoid(c.contiguous())
        return he, ho


def weighted_sums(x: Tensor, w: Tensor, index: Tensor, num_out: int) -> Tuple[Tensor, Tensor]:
    """``X_i = sum_{e: index[e] = i} w_e x_e`` and ``wsum_i = sum_{e: index[e] = i} w_e``: what a
    linear layer needs to give ``sum_e w_e (W x_e + b) = W X_i + b wsum_i`` per output row, so
    that it runs on ``num_out`` rows instead of one per e.

    Shapes: x (E, F), w (E, 1), index (E,) -> X (num_out, F), wsum (num_out, 1).
    """
    xw = x * w
    X = torch.zeros(num_out, xw.shape[1], dtype=xw.dtype, device=xw.device).index_add(0, index, xw)
    wsum = torch.zeros(num_out, 1, dtype=w.dtype, device=w.device).index_add(0, index, w)
    return X, wsum


class ParityLinear(nn.Module):
    """The output layer: ``ye = W_e [xe, xo * xo] + b`` (even), ``yo = W_o xo`` (odd, no bias).

    Shapes: xe (..., in_even), xo (..., in_odd) -> ye (..., out_even), yo (..., out_odd).
    """

    def __init__(self, in_even: int, in_odd: int, out_even: int, out_odd: int):
        super().__init__()
        self.even = nn.Linear(in_even + in_odd, out_even)
        self.odd = OddLinear(in_odd, out_odd)

    def forward(self, xe: Tensor, xo: Tensor) -> Tuple[Tensor, Tensor]:
        return self.even(torch.cat([xe, xo * xo], dim=-1)), self.odd(xo)

    def summed(self, xe: Tensor, xo: Tensor, w: Tensor, index: Tensor,
               num_out: int) -> Tuple[Tensor, Tensor]:
        """``sum_{e: index[e] = i} w_e forward(xe_e, xo_e)`` for i < num_out, with the sum taken
        before the (linear) layer: ``W sum_e w_e x_e + b sum_e w_e``; the layer runs on
        ``num_out`` rows instead of one per e.

        Shapes: xe (E, in_even), xo (E, in_odd), w (E, 1), index (E,) -> (num_out, out_even),
        (num_out, out_odd).
        """
        X, wsum = weighted_sums(torch.cat([xe, xo * xo, xo], dim=-1), w, index, num_out)
        k = self.even.in_features
        Xe, Xo = torch.split(X, [k, X.shape[1] - k], dim=1)
        ye = torch.nn.functional.linear(Xe, self.even.weight)
        bias = self.even.bias
        if bias is not None:
            ye = torch.addcmul(ye, wsum, bias)
        return ye, self.odd(Xo)


class ParityMLP(nn.Module):
    """``ParityLayer -> ... -> ParityLinear``: a Z2-equivariant MLP.

    Args:
        in_even, in_odd: input sizes; hidden: even widths of the hidden layers; hidden_odd: odd
        width of every hidden layer; out_even, out_odd: output sizes.
    """

    def __init__(self, in_even: int, in_odd: int, hidden: List[int], hidden_odd: int,
                 out_even: int, out_odd: int):
        super().__init__()
        layers = []
        de, do = int(in_even), int(in_odd)
        for h in hidden:
            layers.append(ParityLayer(de, do, int(h), int(hidden_odd)))
            de, do = int(h), int(hidden_odd)
        self.layers = nn.ModuleList(layers)
        self.out = ParityLinear(de, do, out_even, out_odd)

    def forward(self, xe: Tensor, xo: Tensor) -> Tuple[Tensor, Tensor]:
        for layer in self.layers:
            xe, xo = layer(xe, xo)
        return self.out(xe, xo)
