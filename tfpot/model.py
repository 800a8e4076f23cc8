"""The tensor-frame energy model: species, frames, interactions, readout, E0 and scale/shift.

    s_i^0 = embed(z_i)
    (L_i, g_i) = LocalFrames(neighbourhood of i)          (gated SO(3) frames)
    (s, V, T)^{t+1} = TensorFrameConv_t((s, V, T)^t)      t = 0..num_layers-1
    s_i^1 += MLP(p(i))                                    (frame-free power spectrum, after t=0)
    s_i^1 += FrameEnsemble(i)                             (opt-in: weighted pair frames, after t=0)
    E_i = scale * MLP_out(s_i) + shift + E0[z_i]          (float64)
    E = sum_i E_i;  F = -dE/dx;  stress = (1/V) dE/d(strain)

Exact reflection invariance: frames are proper rotations, so for the mirror image -X,
``L -> diag(-1,-1,1) L``: local directions flip their third component and ``U -> P U P`` with
``P = diag(1,1,-1)``. With ``parity="equivariant"`` (the default) every network maps even numbers
under this flip to even and odd to odd (:mod:`tfpot.nn.parity`), so the scalar energy is exactly
invariant from one pass. ``parity="none"`` gives plain networks (SO(3) only); the mirror average
of such a model, the ``"average"`` mode of tfpot < 0.2, is :mod:`tfpot.legacy_average`.

Units: positions Å, energies eV, forces eV/Å, stress eV/Å^3, virial eV.
"""

from __future__ import annotations

import os
from typing import Any, Dict, List, Mapping, Optional, Sequence, Tuple, Union

import torch
from torch import Tensor, nn

from tfpot import _keys as K
from tfpot.energy_derivatives import apply_strain, energy_gradients, stress_from_virial
from tfpot.frames import LocalFrames
from tfpot.geometry import EdgeGeometry, edge_geometry, edge_vectors_geometry
from tfpot.halo import pack_state, state_width, unpack_state
from tfpot.hyperparameters import ModelHyperparameters
from tfpot.model_file import save_model
from tfpot.nn.frame_ensemble import BisectorFrameEnsemble, FrameEnsemble
from tfpot.nn.messages import MESSAGES
from tfpot.nn.mlp import MLP
from tfpot.nn.power_spectrum import AngularPowerSpectrum
from tfpot.nn.radial import BesselBasis, PolynomialEnvelope
from tfpot.nn.readout import EnergyReadout
from tfpot.nn.tensor_frame_conv import FrameEdges, TensorFrameConv
from tfpot.revisions import REVISION
from tfpot.state_dict_upgrade import upgrade_state_dict

class EnergyModel(nn.Module):
    """Tensor-frame interatomic potential.

    Args:
        species: atomic numbers the model knows, in the model's own order.
        cutoff: radial cutoff, Å.
        hyperparameters: the architecture (:class:`~tfpot.hyperparameters.ModelHyperparameters`;
            default: the medium preset).

    Inputs: a dict with the keys of :mod:`tfpot._keys` (pos, atomic_numbers, edge_index, shifts,
    batch, and cell for stress). Positions and shifts may be float64 for a float32 model (the
    recommended form): edge vectors are formed in float64 and then cast.
    Outputs: energy (G,) float64 eV, energies (N,) float64 eV, forces (N, 3) eV/Å, and with
    ``compute_stress`` virial (G, 3, 3) eV and stress (G, 3, 3) eV/Å^3.
    """

    __jit_ignored_attributes__ = ["hyperparameters", "revision"]
    __jit_unused_properties__ = ["config"]

    def __init__(self, species: Sequence[int], cutoff: float = 5.0,
                 hyperparameters: Optional[ModelHyperparameters] = None):
        super().__init__()
        species = [int(z) for z in species]
        if len(species) == 0:
            raise ValueError("species must list at least one atomic number")
        if len(set(species)) != len(species):
            raise ValueError(f"species has repeated elements: {species}")
        for z in species:
            if not 1 <= z <= 118:
                raise ValueError(f"species must be atomic numbers 1..118 (got {z})")
        if not cutoff > 0:
            raise ValueError(f"cutoff must be positive (got {cutoff})")
        hp = ModelHyperparameters() if hyperparameters is None else hyperparameters
        if not isinstance(hp, ModelHyperparameters):
            raise TypeError(f"hyperparameters must be a ModelHyperparameters (got "
                            f"{type(hp).__name__}); see tfpot.build_model for keywords")
        self.hyperparameters = hp
        self.revision = REVISION  # what the model computes (tfpot.revisions); older: load-only
        reps_ = hp.tensor_reps
        num_basis, hidden = hp.num_basis, hp.hidden
        self.species: List[int] = species
        self.cutoff = float(cutoff)
        self.num_layers = hp.num_layers
        self.mul0, self.mul1, self.mul2 = reps_.muls
        # numbers per atom handed from one stage to the next (see stage() and tfpot.halo)
        self.state_width = state_width(self.mul0, self.mul1, self.mul2, False)
        z_to_index = torch.full((119,), -1, dtype=torch.long)
        z_to_index[torch.tensor(species)] = torch.arange(len(species))
        self.register_buffer("z_to_index", z_to_index)

        self.envelope = PolynomialEnvelope(cutoff, hp.envelope_p)
        self.rbf = BesselBasis(cutoff, num_basis)
        self.embedding = nn.Embedding(len(species), self.mul0)
        self.power_spectrum = AngularPowerSpectrum(len(species), num_basis, hp.ps_channels,
                                                   hp.lmax, norm=hp.avg_num_neighbors)
        self.ps_mlp = MLP(self.power_spectrum.out_dim, [hidden], self.mul0)
        self.frames = LocalFrames(len(species), num_basis, gate_range=hp.gate_range)
        if hp.ensemble_channels > 0 and hp.ensemble_cutoff > cutoff:
            raise ValueError(f"ensemble_cutoff {hp.ensemble_cutoff} Å exceeds the cutoff "
                             f"{cutoff} Å")
        # weighted pair-frame ensemble (None: off); joins the scalars after layer 1 like p
        ensemble = FrameEnsemble if hp.ensemble_pairs == "ordered" else BisectorFrameEnsemble
        self.frame_ensemble = (ensemble(len(species), num_basis, hp.ensemble_channels,
                                        self.mul0, hp.ensemble_cutoff,
                                        max_angle=hp.ensemble_max_angle)
                               if hp.ensemble_channels > 0 else None)
        equivariant = hp.parity == "equivariant"
        layers = []
        for t in range(hp.num_layers):
            receives = t > 0  # layer 1 sees species only: a layer's reach is one cutoff
            wiring = TensorFrameConv.wiring(reps_, num_basis, receives, equivariant)
            message = MESSAGES[hp.message](wiring, hidden, hp.hidden_odd, hp.avg_num_neighbors,
                                            hp.radial_filter)
            layers.append(TensorFrameConv(reps_, num_basis, message, receives, hidden,
                                          hp.hidden_odd, equivariant))
        self.layers = nn.ModuleList(layers)
        self.readout = EnergyReadout(self.mul0, hidden, len(species))

    @property
    def config(self) -> Dict[str, Any]:
        """Species, cutoff, hyperparameters and revision as plain values: what model files
        record."""
        return dict(species=list(self.species), cutoff=self.cutoff,
                    **self.hyperparameters.to_dict(), revision=self.revision)

    def load_state_dict(self, state_dict: Mapping[str, Any], strict: bool = True,
                        assign: bool = False):
        """As ``nn.Module.load_state_dict``; also takes the state dicts of tfpot 0.3 (model files,
        checkpoints), whose renamed entries :func:`~tfpot.state_dict_upgrade.upgrade_state_dict`
        maps."""
        return super().load_state_dict(upgrade_state_dict(state_dict, self.state_dict()), strict,
                                       assign)

    @property
    def num_hops(self) -> int:
        """How many cutoffs away an atom can influence another's energy (ghost-shell width).

        Layer t's messages carry the neighbour's features of layer t-1, which depend on atoms
        up to t-1 cutoffs from it (layer 1: species only; frames of neighbours are first used in
        layer 2; the power spectrum is added after layer 1), so the reach is num_layers cutoffs.
        tests/test_export.py checks this with explicit ghost shells.
        """
        return self.num_layers

    @torch.jit.unused
    def save(self, path: Union[str, os.PathLike]) -> None:
        """Write the model file (atomically); see :func:`tfpot.model_file.save_model`."""
        save_model(self, path)

    # ----------------------------------------------------------------------------------------
    def species_index(self, atomic_numbers: Tensor) -> Tensor:
        """Model species index of each atom; a clear error for an unknown element."""
        if atomic_numbers.numel() > 0:
            lowest, highest = torch.aminmax(atomic_numbers)
            if int(lowest) < 0 or int(highest) > 118:
                raise ValueError("atomic numbers must lie in 0..118")
        idx = self.z_to_index.index_select(0, atomic_numbers)
        if atomic_numbers.numel() > 0 and int(idx.min()) < 0:
            bad = int(torch.nonzero(idx < 0)[0, 0])
            z = int(atomic_numbers[bad])
            raise ValueError("element with atomic number " + str(z) + " (atom " + str(bad)
                             + ") is not in this model's species " + str(self.species))
        return idx

    def _radial(self, pos: Tensor, edge_index: Tensor,
                shifts: Tensor) -> Tuple[EdgeGeometry, Tensor, Tensor]:
        """Edge geometry, radial basis (E, num_basis) and envelope (E,) in the model's dtype."""
        geometry = edge_geometry(pos, edge_index, shifts, self.embedding.weight.dtype)
        return geometry, self.rbf(geometry.r), self.envelope(geometry.r)

    def local_frames(self, pos: Tensor, species: Tensor, edge_index: Tensor,
                     shifts: Tensor) -> Tuple[Tensor, Tensor]:
        """Frames (N, 3, 3), rows = local axes, and gates (N,) in [0, 1] (1: frame fully used,
        0: frame-free); ``species`` is the model species index (:meth:`species_index`)."""
        geometry, rbf, env = self._radial(pos, edge_index, shifts)
        return self.frames(species, rbf, env, geometry.unit, edge_index[0], edge_index[1])

    def node_scalars(self, pos: Tensor, species: Tensor, edge_index: Tensor,
                     shifts: Tensor) -> Tensor:
        """Scalar features (N, mul0) of every atom after the last layer.

        Runs the layers of :meth:`stage` in turn with every atom owned, so the Python path and
        the LAMMPS per-layer exchange (which runs the same stages) share one implementation; the
        edge geometry, radial basis and envelope are computed once for all layers, and the
        features pass from one layer to the next as they are (no packed state).
        """
        # Edge vectors are formed in the input's precision (float64 positions keep float32 models
        # exact to their own rounding, whatever the absolute coordinates); then cast.
        vec = pos.index_select(0, edge_index[1]) - pos.index_select(0, edge_index[0]) + shifts
        r, unit, rbf, env = self._edge_terms(vec)
        s, V, T, frames, gate = self._layer_features(0, r, unit, rbf, env, species, edge_index,
                                                     None)
        for t in range(1, self.num_layers):
            s, V, T, frames, gate = self._layer_features(t, r, unit, rbf, env, species,
                                                         edge_index, (s, V, T, frames, gate))
        return s

    def atomic_energies(self, pos: Tensor, species: Tensor, edge_index: Tensor,
                        shifts: Tensor) -> Tensor:
        """Per-atom energies (N,) float64, eV, final: scale, shift and E0 included.

        Shapes: pos (N, 3) Å, species (N,) model species index, edge_index (2, E), shifts
        (E, 3) Å. The energy of a structure is their sum; forces and stress are its derivatives
        (:mod:`tfpot.energy_derivatives`). The same numbers as the last :meth:`stage` with every
        atom owned.
        """
        return self.readout(self.node_scalars(pos, species, edge_index, shifts), species)

    def stage(self, t: int, vec: Tensor, species: Tensor, edge_index: Tensor, nlocal: int,
              state: Tensor) -> Tensor:
        """Stage ``t`` of the atomic energies, computed for the first ``nlocal`` atoms.

        The computation is cut where an atom first needs what its neighbours computed (layer 1
        uses the neighbours' species only; layer t+1 their frames, gates and layer-t features):

            stage 0:  frames, gates, power spectrum of each atom, layer 1
            stage t:  layer t+1 (0 < t < num_layers), from every atom's stage t-1 state
            last:     ... then the readout: energies (nlocal,) float64, eV, final (E0 included)

        Every stage but the last returns the owned atoms' state (:mod:`tfpot.halo`). An engine
        with ghost atoms (LAMMPS) copies it to the ghosts before the next stage, so only edges
        whose centre is owned are needed and the ghost shell is one cutoff wide.

        Args:
            t: stage index, 0 .. num_layers-1.
            vec: (E, 3) edge vectors ``x_j - x_i`` (Å), any float dtype (cast to the model's).
            species: (N,) model species index of every atom (owned first, then ghosts).
            edge_index: (2, E) [centre i, neighbour j]; every owned atom's edges, centres < nlocal
                (edges of other centres only cost time).
            nlocal: owned atoms (the first nlocal of the N).
            state: (N, state_width) stage t-1 state of every atom; (N, 0) for t = 0.
        """
        n = species.shape[0]
        s, V, T, frames, gate = self._stage_features(t, vec, species, edge_index, state)
        if t < self.num_layers - 1:
            return pack_state(s, V, T, frames, gate, n, nlocal, False)
        return self.readout(s[:nlocal], species[:nlocal])

    def _edge_terms(self, vec: Tensor) -> Tuple[Tensor, Tensor, Tensor, Tensor]:
        """Lengths (E,) Å, unit vectors (E, 3), radial basis (E, num_basis) and envelope (E,) in
        the model's dtype, from edge vectors in any float dtype."""
        geometry = edge_vectors_geometry(vec, self.embedding.weight.dtype)
        return geometry.r, geometry.unit, self.rbf(geometry.r), self.envelope(geometry.r)

    def _stage_features(self, t: int, vec: Tensor, species: Tensor, edge_index: Tensor,
                        state: Tensor) -> Tuple[Tensor, Tensor, Tensor, Tensor, Tensor]:
        """(s, V, T, frames, gate) of every atom after layer t+1 (see :meth:`stage`)."""
        r, unit, rbf, env = self._edge_terms(vec)
        previous: Optional[Tuple[Tensor, Tensor, Tensor, Tensor, Tensor]] = None
        if t > 0:
            previous = unpack_state(state.to(unit.dtype), self.mul0, self.mul1, self.mul2, False)
        return self._layer_features(t, r, unit, rbf, env, species, edge_index, previous)

    def _layer_features(self, t: int, r: Tensor, unit: Tensor, rbf: Tensor, env: Tensor,
                        species: Tensor, edge_index: Tensor,
                        previous: Optional[Tuple[Tensor, Tensor, Tensor, Tensor, Tensor]]
                        ) -> Tuple[Tensor, Tensor, Tensor, Tensor, Tensor]:
        """(s, V, T, frames, gate) of every atom after layer t+1, from the edge terms of
        :meth:`_edge_terms` and (t > 0) the previous layer's (s, V, T, frames, gate)."""
        n = species.shape[0]
        centre = edge_index[0]
        neighbour = edge_index[1]
        if previous is None:
            # Layer 1 sees the neighbours' species embeddings only, and the frame-free power
            # spectrum of each atom joins its scalars after layer 1: a neighbour's input to layer
            # t then depends on atoms up to t-1 cutoffs from it (reach: num_layers * cutoff).
            frames, gate = self.frames(species, rbf, env, unit, centre, neighbour)
            p = self.ps_mlp(self.power_spectrum(rbf, env, unit, species.index_select(0, neighbour),
                                                centre, n))
            if self.frame_ensemble is not None:
                p = p + self.frame_ensemble(species, r, unit, rbf, centre, neighbour)
            s = self.embedding(species)
            V = torch.zeros(n, self.mul1, 3, dtype=unit.dtype, device=unit.device)
            T = torch.zeros(n, self.mul2, 3, 3, dtype=unit.dtype, device=unit.device)
        else:
            p = torch.zeros(0, dtype=unit.dtype, device=unit.device)  # (added after layer 1 only)
            s, V, T, frames, gate = previous

        # gated local frames; every frame-dependent input carries its gates
        gated = frames * gate.view(-1, 1, 1)  # g L
        centre_frames = gated.index_select(0, centre)  # g_i L_i
        local_dir = torch.bmm(centre_frames, unit.unsqueeze(-1)).squeeze(-1)
        edges = FrameEdges(frames, gated, centre_frames, local_dir, rbf, env, centre, neighbour)
        for k, layer in enumerate(self.layers):
            if k == t:
                s, V, T = layer(s, V, T, edges)
        if previous is None:
            s = s + p
        return s, V, T, frames, gate

    def forward(self, data: Dict[str, Tensor], compute_forces: bool = True,
                compute_stress: bool = False) -> Dict[str, Tensor]:
        """Energies and their derivatives for a batch of structures (keys of :mod:`tfpot._keys`).

        Args:
            data: pos, atomic_numbers, edge_index, shifts; batch (default: one structure),
                num_graphs (default: from batch), cell (needed for stress).
            compute_forces: forces -dE/dpos.
            compute_stress: virial -dE/d(strain) and stress (zero for cells of zero volume).
        """
        pos = data[K.POSITIONS]
        edge_index = data[K.EDGE_INDEX]
        shifts = data[K.SHIFTS]
        species = self.species_index(data[K.ATOMIC_NUMBERS])
        n = pos.shape[0]
        if K.BATCH in data:
            batch = data[K.BATCH]
        else:
            batch = torch.zeros(n, dtype=torch.long, device=pos.device)
        num_graphs = int(batch.max()) + 1 if n > 0 else 1
        if K.NUM_GRAPHS in data:
            num_graphs = int(data[K.NUM_GRAPHS])
        if compute_stress and K.CELL not in data:
            raise ValueError("stress needs the cell ('cell' key) of each structure")

        if (compute_forces or compute_stress) and not pos.requires_grad:
            pos = pos.detach().requires_grad_(True)
        strain: Optional[Tensor] = None
        pos_used = pos
        if compute_stress:
            strain, pos_used, shifts = apply_strain(pos, shifts, batch, edge_index, num_graphs)

        e_atom = self.atomic_energies(pos_used, species, edge_index, shifts)
        energy = torch.zeros(num_graphs, dtype=torch.float64, device=pos.device).index_add(0, batch, e_atom)
        out: Dict[str, Tensor] = {K.ENERGY: energy, K.ATOMIC_ENERGIES: e_atom}
        if compute_forces or compute_stress:
            forces, virial = energy_gradients(energy.sum(), pos, strain, self.training)
            out[K.FORCES] = forces
            if virial is not None:
                out[K.VIRIAL] = virial
                out[K.STRESS] = stress_from_virial(virial, data[K.CELL])
        return out

    def __repr__(self) -> str:
        n = sum(p.numel() for p in self.parameters())
        reps = f"{self.mul0}x0+{self.mul1}x1+{self.mul2}x2"
        return (f"EnergyModel(species={self.species}, cutoff={self.cutoff} Å, reps={reps}, "
                f"layers={self.num_layers}, parity={self.hyperparameters.parity}, "
                f"{n} weights)")
