"""The model contract as reusable checks (as e3nn's ``assert_equivariant``), the structures they
run on, and a test class that runs them all (:class:`tfpot.testing.contract.ModelContract`,
as NequIP's model test mixin; it needs pytest, so it is imported from its own module)."""

from tfpot.testing.checks import (FORCE_FLOOR, TOLERANCES, assert_bounded_near_symmetry,
                                  assert_deterministic_at_symmetry, assert_extensive,
                                  assert_forces_are_gradients, assert_o3_invariant,
                                  assert_smooth_scan, assert_stress_is_strain_derivative, evaluate,
                                  random_orthogonal, tolerance, transform_atoms)
from tfpot.testing.structures import (ethanol, mixed_pbc_slab, molecular_crystal,
                                      symmetric_structures, triclinic_cu)

__all__ = ["FORCE_FLOOR", "TOLERANCES", "assert_bounded_near_symmetry",
           "assert_deterministic_at_symmetry", "assert_extensive", "assert_forces_are_gradients",
           "assert_o3_invariant", "assert_smooth_scan", "assert_stress_is_strain_derivative",
           "evaluate", "random_orthogonal", "tolerance", "transform_atoms", "ethanol",
           "mixed_pbc_slab", "molecular_crystal", "symmetric_structures", "triclinic_cu"]
