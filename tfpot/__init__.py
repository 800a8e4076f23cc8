"""tfpot: tensor-frame machine-learned interatomic potentials.

Exactly O(3)-invariant energies from message passing in learned local frames, forces and stress
as exact derivatives, an ASE calculator and a LAMMPS pair-style plugin.
"""

from tfpot._version import __version__  # noqa: F401
from tfpot.builder import build_model, load_model
from tfpot.hyperparameters import PRESETS, ModelHyperparameters
from tfpot.inference import predict
from tfpot.model import EnergyModel
from tfpot.model_file import save_model

__all__ = ["__version__", "build_model", "load_model", "save_model", "predict", "EnergyModel",
           "ModelHyperparameters", "PRESETS"]
