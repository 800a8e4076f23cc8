"""The per-atom state handed from one stage of the energy computation to the next.

:meth:`tfpot.model.EnergyModel.stage` splits the atomic energies into ``num_layers`` stages, cut
where an atom first needs something its neighbours computed: stage 0 builds each atom's frame,
gate, power spectrum and runs layer 1 (which uses only the neighbours' species), stage t runs
layer t+1, and the last stage adds the readout. Between stages every atom carries

    state_i = [ s_i (mul0) | V_i (mul1 x 3) | T_i (mul2 x 3 x 3) | L_i (3 x 3) | g_i ]

(with ``mirrored=True`` a mirror pass's ``s, V, T`` would follow the first ones: two copies; the
models of tfpot >= 0.2 have one pass, and the mirror-averaged models of tfpot < 0.2 are not
exported), all expressed in atom i's own frame, so invariant: an engine with domain decomposition (LAMMPS)
copies the owners' rows verbatim to their ghost atoms (forward communication) and sums the
ghosts' gradients back into the owners (reverse communication). In one process every atom is
owned and nothing is copied.

All functions are TorchScript-compatible.

Shapes: ``s (R, mul0)``, ``V (R, mul1, 3)``, ``T (R, mul2, 3, 3)`` with ``R = n`` rows, or
``2n`` for the mirrored model (rows ``n..2n`` are the mirror pass), ``frames (n, 3, 3)``,
``gate (n,)``; the packed state is ``(nlocal, state_width)``.
"""

from __future__ import annotations

from typing import Tuple

import torch
from torch import Tensor

FRAME_WIDTH = 10  # L_i (9 numbers) and g_i


def state_width(mul0: int, mul1: int, mul2: int, mirrored: bool) -> int:
    """Numbers per atom in the packed state (what one ghost atom receives per exchange)."""
    copies = 2 if mirrored else 1
    return copies * (mul0 + 3 * mul1 + 9 * mul2) + FRAME_WIDTH


def owned_rows(x: Tensor, n: int, nlocal: int, mirrored: bool) -> Tensor:
    """Rows of the first ``nlocal`` atoms; for a mirrored model both passes, stacked on dim 0."""
    if mirrored:
        return torch.cat([x[:nlocal], x[n:n + nlocal]], dim=0)
    return x[:nlocal]


def pack_state(s: Tensor, V: Tensor, T: Tensor, frames: Tensor, gate: Tensor, n: int,
               nlocal: int, mirrored: bool) -> Tensor:
    """The first ``nlocal`` atoms' state as one (nlocal, state_width) tensor."""
    rows = s.shape[0]
    features = torch.cat([s, V.reshape(rows, -1), T.reshape(rows, -1)], dim=1)
    if mirrored:
        features = torch.cat([features[:nlocal], features[n:n + nlocal]], dim=1)
    else:
        features = features[:nlocal]
    return torch.cat([features, frames[:nlocal].reshape(nlocal, 9), gate[:nlocal].unsqueeze(1)],
                     dim=1)


def unpack_state(state: Tensor, mul0: int, mul1: int, mul2: int,
                 mirrored: bool) -> Tuple[Tensor, Tensor, Tensor, Tensor, Tensor]:
    """Inverse of :func:`pack_state` for every row: (s, V, T, frames, gate)."""
    n = state.shape[0]
    d = mul0 + 3 * mul1 + 9 * mul2
    copies = 2 if mirrored else 1
    features = state[:, : copies * d]
    if mirrored:
        features = torch.cat([features[:, :d], features[:, d:]], dim=0)
    rows = features.shape[0]
    s = features[:, :mul0]
    V = features[:, mul0:mul0 + 3 * mul1].reshape(rows, mul1, 3)
    T = features[:, mul0 + 3 * mul1:].reshape(rows, mul2, 3, 3)
    frames = state[:, copies * d:copies * d + 9].reshape(n, 3, 3)
    gate = state[:, copies * d + 9]
    return s, V, T, frames, gate
