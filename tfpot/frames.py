"""Learned local frames, with a smooth gate that closes where a frame is not defined.

Each atom gets two equivariant vectors from its neighbourhood,

    v1(i) = sum_j w_1j u_ij rhat_ij / sqrt(eps + sum_j (w_1j u_ij)^2)
    v2(i) = sum_j (w_2j + w_3j rhat_ij . v1(i)) u_ij rhat_ij / sqrt(2 eps + sum_j (w_2j u_ij)^2 + (w_3j u_ij)^2)
    w_aj = tanh(MLP_a(z_i, z_j, rbf(r_ij))),   u_ij = envelope(r_ij)

(scale-free: |v_a| is O(1) on a generic environment, whatever the amplitude of w, and at most
sqrt(neighbours)), Gram-Schmidt gives ``e1, e2``, and ``e3 = e1 x e2`` (a proper rotation: no
sign choice, so no handedness flip on planar environments). ``L_i`` has rows ``e1, e2, e3`` and
satisfies ``L_i(QX) = L_i(X) Q^T`` for every rotation Q.

At a site with point symmetry (fcc/bcc atoms, CH4, CO2, the O of water) ``v1 x v2`` vanishes and
no frame exists. Instead of random fallbacks, the gate

    g_i = smoothstep((|v1 x v2| - a_lo) / (a_hi - a_lo)),   smoothstep C2, clamped to [0, 1]

is exactly 0, with zero slope, whenever ``|v1 x v2| <= a_lo``. Every frame-dependent quantity is
multiplied by the gate of each frame it uses, so near degeneracy the frame turns like 1/delta but
is switched off smoothly: energies stay deterministic, smooth and exactly invariant, and first and
second derivatives are finite everywhere (masked ``where`` forms: no NaN). The ramp is linear in
``|v1 x v2|`` over a wide range, so the gate's own slope (which multiplies the energy carried by
the frame path) stays moderate: about 1.9 |d|v1 x v2|/dx| / (a_hi - a_lo).

Training only, :func:`rotated_frames` (``training.frame_noise``) turns every frame by its own
small random rotation in each forward pass in training mode, so that the networks reading local
coordinates learn functions smooth in the frame's orientation (on aspirin: 24.2 -> 19.1 meV/Å
test force MAE at 0.1 rad; benchmarks/README.md). Evaluation mode never rotates.
:func:`captured_gates` hands a training step the gates of its forward pass, for the open-frame
term ``loss.frame_gate_weight`` (``w * mean(1 - g)``), which keeps training from closing gates
that the environment lets open (on aspirin: every gate open, 25.2 -> 19.2 meV/Å at 50 minutes).
That term has no gradient where a gate is shut (the gate is flat at 0 below ``a_lo``);
:func:`captured_shortfalls` gives the closed-frame term ``loss.frame_closed_weight``
(``w * mean(1 - min(1, |v1 x v2|^2 / a_lo^2))``), which has one wherever ``v1 x v2 != 0``, so
it can reopen a frame that training shut (at an exactly symmetric site it has none either:
there only a weighted ensemble of frames exists, :mod:`tfpot.nn.frame_ensemble`).
"""

from __future__ import annotations

from contextlib import contextmanager
from typing import Callable, Iterator, List, Tuple

import torch
from torch import Tensor, nn

from tfpot.nn.mlp import MLP


def smoothstep_c2(t: Tensor) -> Tensor:
    """``6t^5 - 15t^4 + 10t^3`` on [0, 1], 0 below, 1 above: C2 everywhere."""
    t = t.clamp(0.0, 1.0)
    return t * t * t * (t * (6.0 * t - 15.0) + 10.0)


def _safe_normalize(v: Tensor, eps_sq: float) -> Tuple[Tensor, Tensor]:
    """Unit vector where ``|v|^2 > eps_sq``, else zero; finite gradients everywhere."""
    sq = (v * v).sum(-1, keepdim=True)
    ok = sq > eps_sq
    n = torch.sqrt(torch.where(ok, sq, torch.ones_like(sq)))
    return torch.where(ok, v / n, torch.zeros_like(v)), ok.squeeze(-1)


class LocalFrames(nn.Module):
    """Gated SO(3) local frames.

    Args:
        num_species: number of elements.
        num_basis: size of the radial basis it receives.
        embed_dim: width of its own species embedding.
        hidden: width of the weight MLP.
        gate_range: ``(a_lo, a_hi)``, in the (dimensionless) units of ``|v1 x v2|``.

    Shapes:
        species (N,), rbf (E, num_basis), env (E,), unit (E, 3), centre/neighbour (E,) ->
        frames (N, 3, 3) (rows are axes; zero rows where the gate is closed), gate (N,) in [0, 1].
    """

    def __init__(self, num_species: int, num_basis: int, embed_dim: int = 16, hidden: int = 32,
                 gate_range: Tuple[float, float] = (0.05, 0.3), eps: float = 1e-2):
        super().__init__()
        a_lo, a_hi = float(gate_range[0]), float(gate_range[1])
        if not (0.0 < a_lo < a_hi):
            raise ValueError(f"gate_range must satisfy 0 < a_lo < a_hi (got {gate_range})")
        self.a_lo = a_lo
        self.a_hi = a_hi
        self.eps = float(eps)
        #: training only: std (rad) of a random rotation of every frame in each forward pass
        #: in training mode (:func:`rotated_frames`); 0: the frames as they are
        self.rotation_noise = 0.0
        self.embed = nn.Embedding(num_species, embed_dim)
        # No bias on the last layer: a shared constant would add the same common mode
        # sum_j u r_ij/|r_ij| to both vectors and make them nearly parallel. Weights start spread
        # over tanh's range (std ~0.6), so frames open on generic environments from step 0.
        self.weights = MLP(2 * embed_dim + num_basis, [hidden], 3, bias_last=False)
        with torch.no_grad():
            self.weights.net[-1].weight.mul_(8.0)

    def weight_logits(self, species: Tensor, rbf: Tensor, centre: Tensor,
                      neighbour: Tensor) -> Tensor:
        """Pre-activations of the frame weights, ``w = tanh(logits)``; shapes (E, 3).

        The MLP on [e_i, e_j, rbf] has its first layer split by parts: the species parts per atom
        (then gathered), so the per-edge product is over the radial basis only.
        """
        e = self.embed(species)
        first = self.weights.net[0]
        k = e.shape[1]
        W = first.weight
        h = (torch.nn.functional.linear(e, W[:, :k], first.bias).index_select(0, centre)
             + torch.nn.functional.linear(e, W[:, k:2 * k]).index_select(0, neighbour)
             + torch.nn.functional.linear(rbf, W[:, 2 * k:]))
        return self.weights.net[2](self.weights.net[1](h))

    def forward(self, species: Tensor, rbf: Tensor, env: Tensor, unit: Tensor, centre: Tensor,
                neighbour: Tensor) -> Tuple[Tensor, Tensor]:
        frames, gate = self.frames_and_gates(species, rbf, env, unit, centre, neighbour)
        if self.training and self.rotation_noise > 0.0:
            rotations = random_rotations(frames.shape[0], self.rotation_noise, frames.dtype,
                                         frames.device)
            frames = torch.bmm(rotations, frames)
        return frames, gate

    def frames_and_gates(self, species: Tensor, rbf: Tensor, env: Tensor, unit: Tensor,
                         centre: Tensor, neighbour: Tensor) -> Tuple[Tensor, Tensor]:
        """The frames and gates of the environment, never rotated (shapes as the class)."""
        v1, v2 = self.frame_vectors(species, rbf, env, unit, centre, neighbour)
        area_sq = (torch.linalg.cross(v1, v2) ** 2).sum(-1)
        # |v1 x v2| where it exceeds a_lo; a constant below (no gradient: sqrt is safe).
        above = area_sq > self.a_lo * self.a_lo
        area = torch.sqrt(torch.where(above, area_sq,
                                      torch.full_like(area_sq, self.a_lo * self.a_lo)))
        gate = smoothstep_c2((area - self.a_lo) / (self.a_hi - self.a_lo))
        tiny = 1e-12 * self.a_lo ** 2
        e1, _ = _safe_normalize(v1, tiny)
        u2 = v2 - (v2 * e1).sum(-1, keepdim=True) * e1
        e2, _ = _safe_normalize(u2, tiny)
        e3 = torch.linalg.cross(e1, e2)
        frames = torch.stack([e1, e2, e3], dim=1)
        return frames, gate

    def shortfall(self, species: Tensor, rbf: Tensor, env: Tensor, unit: Tensor, centre: Tensor,
                  neighbour: Tensor) -> Tensor:
        """How far each frame is below the gate's threshold, ``1 - min(1, |v1 x v2|^2 / a_lo^2)``,
        shape (N,) in [0, 1]: 0 wherever the gate can be open, 1 where ``v1 x v2 = 0``. Smooth in
        the weights, with a gradient where the gate (flat at 0 below ``a_lo``) has none (training
        only: the closed-frame term ``loss.frame_closed_weight``)."""
        v1, v2 = self.frame_vectors(species, rbf, env, unit, centre, neighbour)
        area_sq = (torch.linalg.cross(v1, v2) ** 2).sum(-1)
        return 1.0 - (area_sq / (self.a_lo * self.a_lo)).clamp(max=1.0)

    def frame_vectors(self, species: Tensor, rbf: Tensor, env: Tensor, unit: Tensor,
                      centre: Tensor, neighbour: Tensor) -> Tuple[Tensor, Tensor]:
        """The two equivariant vectors ``v1, v2`` (N, 3) of each environment (class docstring)."""
        n = species.shape[0]
        w = torch.tanh(self.weight_logits(species, rbf, centre, neighbour))  # (E, 3)
        we = w * env.unsqueeze(-1)
        norm_sq = torch.zeros(n, 3, dtype=unit.dtype, device=unit.device).index_add(0, centre, we * we)
        norm = torch.sqrt(self.eps + norm_sq)
        v1 = torch.zeros(n, 3, dtype=unit.dtype, device=unit.device).index_add(
            0, centre, we[:, 0:1] * unit) / norm[:, 0:1]
        # The second vector mixes a plain weighted sum with one weighted by the projection on
        # v1 (the rank-2 moment applied to v1): the two are not parallel on generic
        # environments whatever the learned weights, so frames open from the first step.
        proj = (unit * v1.index_select(0, centre)).sum(-1, keepdim=True)
        v2 = torch.zeros(n, 3, dtype=unit.dtype, device=unit.device).index_add(
            0, centre, (we[:, 1:2] + we[:, 2:3] * proj) * unit)
        v2 = v2 / torch.sqrt(norm[:, 1:2] ** 2 + norm[:, 2:3] ** 2)
        return v1, v2

    def extra_repr(self) -> str:
        return f"gate_range=({self.a_lo}, {self.a_hi}), SO(3) Gram-Schmidt frames"


def random_rotations(n: int, sigma: float, dtype: torch.dtype, device: torch.device) -> Tensor:
    """``n`` rotations ``exp([w]_x)`` with rotation vectors ``w ~ N(0, sigma^2 I)`` (rad), from
    torch's global generator (seeded runs repeat them). Shape (n, 3, 3)."""
    w = torch.randn(n, 3, dtype=dtype, device=device) * sigma
    zero = torch.zeros_like(w[:, 0])
    skew = torch.stack([torch.stack([zero, -w[:, 2], w[:, 1]], dim=-1),
                        torch.stack([w[:, 2], zero, -w[:, 0]], dim=-1),
                        torch.stack([-w[:, 1], w[:, 0], zero], dim=-1)], dim=1)
    return torch.linalg.matrix_exp(skew)


@contextmanager
def rotated_frames(model: nn.Module, sigma: float) -> Iterator[None]:
    """Within the block, every local frame of ``model`` is turned by its own random rotation
    (angle ~ ``sigma`` rad, :func:`random_rotations`) in each forward pass made in training mode:
    a regulariser that keeps the networks reading local coordinates from depending on the exact
    orientation of a frame. The energy stays a function of the positions and of rotations drawn
    once per pass, so forces are still its exact derivatives; evaluation mode is unaffected.

    Raises:
        ValueError: ``sigma`` is negative, or positive for a model without local frames.
    """
    if sigma < 0:
        raise ValueError(f"frame rotation noise must be >= 0 rad (got {sigma})")
    modules = [m for m in model.modules() if isinstance(m, LocalFrames)]
    if sigma > 0 and not modules:
        raise ValueError(f"frame rotation noise {sigma} rad needs a model with local frames "
                         f"({type(model).__name__} has none)")
    before = [m.rotation_noise for m in modules]
    for m in modules:
        m.rotation_noise = float(sigma)
    try:
        yield
    finally:
        for m, value in zip(modules, before):
            m.rotation_noise = value


@contextmanager
def captured_gates(model: nn.Module) -> Iterator[List[Tensor]]:
    """Within the block, the gates (N,) of every forward pass of ``model``'s local frames are
    appended to the yielded list (with their graph, so a loss can be made of them: the
    training-time open-frame term, ``loss.frame_gate_weight``).

    Raises:
        ValueError: ``model`` has no local frames.
    """
    with _captured(model, lambda _m, _inp, out: out[1]) as gates:
        yield gates


@contextmanager
def captured_shortfalls(model: nn.Module) -> Iterator[List[Tensor]]:
    """Within the block, :meth:`LocalFrames.shortfall` (N,) of every forward pass of ``model``'s
    local frames is appended to the yielded list, with its graph (the training-time closed-frame
    term, ``loss.frame_closed_weight``). Each pass computes the frame vectors once more.

    Raises:
        ValueError: ``model`` has no local frames.
    """
    with _captured(model, lambda m, inp, _out: m.shortfall(*inp)) as shortfalls:
        yield shortfalls


@contextmanager
def _captured(model: nn.Module, take: Callable[[LocalFrames, Tuple[Tensor, ...],
                                               Tuple[Tensor, Tensor]], Tensor]
              ) -> Iterator[List[Tensor]]:
    """Forward hooks on every :class:`LocalFrames` of ``model`` that append ``take(module,
    inputs, outputs)`` to the yielded list; removed at the end of the block."""
    modules = [m for m in model.modules() if isinstance(m, LocalFrames)]
    if not modules:
        raise ValueError(f"{type(model).__name__} has no local frames, so it has no gates")
    taken: List[Tensor] = []
    handles = [m.register_forward_hook(lambda mod, inp, out: taken.append(take(mod, inp, out)))
               for m in modules]
    try:
        yield taken
    finally:
        for h in handles:
            h.remove()
