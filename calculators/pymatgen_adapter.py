"""pymatgen input for tfpot: Structure (periodic) and Molecule through ASE's adaptor.

    from tfpot.calculators.pymatgen_adapter import predict_pymatgen
    res = predict_pymatgen("model.pt", structure)   # or a model, or a TFPotCalculator
    res["energy"], res["forces"], res["stress"]

Units: energy eV, forces eV/Å, stress eV/Å^3 as a 3x3 matrix with the ASE sign (positive =
tensile; pymatgen's own ``Stress`` convention and VASP's kBar output have the opposite sign).
"""

from __future__ import annotations

from typing import Any, Dict, Optional, Union

import numpy as np
from ase import Atoms
from ase.stress import voigt_6_to_full_3x3_stress

from tfpot.calculators.ase_calculator import ModelLike, TFPotCalculator


def pymatgen_to_atoms(structure: Any) -> Atoms:
    """ASE Atoms from a pymatgen ``Structure`` (pbc in 3D) or ``Molecule`` (no pbc).

    Raises:
        ImportError: pymatgen is not installed (``pip install tfpot[pymatgen]``).
        TypeError: ``structure`` is neither a Structure nor a Molecule.
    """
    try:
        from pymatgen.core import IStructure, Molecule, Structure  # noqa: F401
        from pymatgen.io.ase import AseAtomsAdaptor
    except ImportError as e:
        raise ImportError("pymatgen input needs pymatgen: pip install 'tfpot[pymatgen]'") from e
    if not isinstance(structure, (IStructure, Structure, Molecule)):
        raise TypeError("Expected a pymatgen Structure or Molecule "
                        f"(got {type(structure).__name__})")
    if structure.is_ordered is False:
        raise ValueError("tfpot needs an ordered structure (one element per site); this one has "
                         "partial occupancies")
    atoms = AseAtomsAdaptor.get_atoms(structure)
    # The adaptor may attach site properties as calculators or constraints; keep only geometry.
    atoms.calc = None
    return atoms


def predict_pymatgen(model_or_calc: Union[ModelLike, TFPotCalculator], structure: Any,
                     stress: Optional[bool] = None, **calc_kwargs: Any) -> Dict[str, Any]:
    """Energy, per-atom energies, forces and (periodic structures) stress of a pymatgen object.

    Args:
        model_or_calc: a :class:`TFPotCalculator`, an EnergyModel or a model file path
            (``calc_kwargs`` such as ``dtype`` or ``device`` go to the new calculator).
        structure: pymatgen ``Structure`` or ``Molecule``.
        stress: compute stress; default: for a ``Structure`` yes, for a ``Molecule`` no.

    Returns:
        dict with ``energy`` (float, eV), ``energies`` (N,), ``forces`` (N, 3) eV/Å in site
        order and, with stress, ``stress`` (3, 3) eV/Å^3, ASE sign.
    """
    calc = model_or_calc if isinstance(model_or_calc, TFPotCalculator) else \
        TFPotCalculator(model_or_calc, **calc_kwargs)
    atoms = pymatgen_to_atoms(structure)
    if stress is None:
        stress = bool(np.all(atoms.pbc))
    properties = ["energy", "energies", "forces"] + (["stress"] if stress else [])
    calc.calculate(atoms, properties)
    res: Dict[str, Any] = {
        "energy": float(calc.results["energy"]),
        "energies": np.array(calc.results["energies"]),
        "forces": np.array(calc.results["forces"]),
    }
    if stress:
        res["stress"] = voigt_6_to_full_3x3_stress(calc.results["stress"])
    return res
