"""tfpot: tensor-frame interatomic potentials."""
__version__ = "0.1.0"
