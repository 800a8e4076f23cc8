"""The mirror-averaged model of tfpot < 0.2 (``parity="average"``), kept to load its files.

Such a model is an SO(3)-only model (``parity="none"``) whose per-atom energy network output is
averaged over the structure X and its mirror image -X:

    E_i = scale * (NN_i(X) + NN_i(-X)) / 2 + shift + E0[z_i]

which is exactly reflection invariant at twice the cost. New models get exact reflection
invariance in one pass from Z2-equivariant networks (``parity="equivariant"``), so this mode can
no longer be chosen (:class:`~tfpot.hyperparameters.ModelHyperparameters` refuses it); model files
and checkpoints that record it load as :class:`MirrorAveragedEnergyModel` (see
:func:`tfpot.builder.model_from_config`).
"""

from __future__ import annotations

from typing import Any, Dict, Optional, Sequence

from torch import Tensor

from tfpot.hyperparameters import LEGACY_PARITY, ModelHyperparameters
from tfpot.model import EnergyModel


class MirrorAveragedEnergyModel(EnergyModel):
    """An SO(3)-only :class:`~tfpot.model.EnergyModel` averaged over X and -X (tfpot < 0.2).

    Args: as :class:`~tfpot.model.EnergyModel`; ``hyperparameters.parity`` must be ``"none"``
    (the networks are unconstrained). ``config`` records ``parity="average"``, so saved files
    load as this class again.
    """

    def __init__(self, species: Sequence[int], cutoff: float = 5.0,
                 hyperparameters: Optional[ModelHyperparameters] = None):
        hp = ModelHyperparameters(parity="none") if hyperparameters is None else hyperparameters
        if hp.parity != "none":
            raise ValueError(f"the mirror average runs an SO(3)-only model: parity must be "
                             f"'none' (got {hp.parity!r})")
        super().__init__(species, cutoff, hp)

    @property
    def config(self) -> Dict[str, Any]:
        return {**super().config, "parity": LEGACY_PARITY}

    def atomic_energies(self, pos: Tensor, species: Tensor, edge_index: Tensor,
                        shifts: Tensor) -> Tensor:
        """Per-atom energies (N,) float64, eV: the readout network averaged over X and -X."""
        plus = self.readout.network(self.node_scalars(pos, species, edge_index, shifts))
        minus = self.readout.network(self.node_scalars(-pos, species, edge_index, -shifts))
        return self.readout.finish(0.5 * (plus + minus), species)
