"""Engine bridges: the ASE calculator and the LAMMPS pair-style plugin."""

from tfpot.calculators.ase_calculator import TFPotCalculator

__all__ = ["TFPotCalculator"]
