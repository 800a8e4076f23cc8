"""tfpot: tensor-frame machine-learned interatomic potentials.

Exactly O(3)-invariant energies from message passing in learned local frames, forces and stress
as exact derivatives, an ASE calculator and a LAMMPS pair-style plugin.
"""

__version__ = "0.3.0"

from tfpot.builder import build_model, load_model  # noqa: E402
from tfpot.hyperparameters import PRESETS, ModelHyperparameters  # noqa: E402
from tfpot.inference import predict  # noqa: E402
from tfpot.model import EnergyModel  # noqa: E402
from tfpot.model_file import save_model  # noqa: E402

__all__ = ["__version__", "build_model", "load_model", "save_model", "predict", "EnergyModel",
           "ModelHyperparameters", "PRESETS"]
