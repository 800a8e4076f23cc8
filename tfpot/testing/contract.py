"""The model contract as a pytest test class: every model variant's tests subclass it.

As NequIP's model test mixin: a subclass supplies the model, and inherits one test per required
property of DESIGN.md (O(3) invariance, forces and stress as exact derivatives, determinism and
bounded forces at symmetric sites, smoothness through a molecule and across the cutoff,
extensivity, TorchScript, batching, saving)::

    from tfpot.testing.contract import ModelContract

    class TestMyVariant(ModelContract):
        def build_model(self, dtype):
            return tfpot.build_model(["H", "C", "N", "O", "Cu"], cutoff=4.0, dtype=dtype,
                                     preset="small", message="attention")

Every test states its dtype; tolerances come from :data:`tfpot.testing.TOLERANCES` (float64:
invariance 1e-10, finite differences 1e-6, reproduction 1e-12; float32: 1e-5, 1e-2, 1e-5).
The structures (:mod:`tfpot.testing.structures`) use H, C, N, O and Cu and suit a 4-5 Å cutoff;
the periodic ones include a molecular crystal, where frames are open (in the rattled Cu cell
they are closed, so only the frame-free path meets periodic images there).
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from ase import Atoms
from ase.build import molecule
from torch_geometric.data import Batch

from tfpot import _keys as K
from tfpot.builder import load_model
from tfpot.data.datasets import atoms_to_data, model_inputs
from tfpot.graph import atoms_to_graph
from tfpot.inference import model_dtype, predict
from tfpot.model_file import save_model
from tfpot.testing.checks import (TOLERANCES, assert_bounded_near_symmetry,
                                  assert_deterministic_at_symmetry, assert_extensive,
                                  assert_forces_are_gradients, assert_o3_invariant,
                                  assert_smooth_scan, assert_stress_is_strain_derivative)
from tfpot.testing.structures import (ethanol, mixed_pbc_slab, molecular_crystal,
                                      symmetric_structures, triclinic_cu)

STRUCTURES = {"ethanol": ethanol, "triclinic_cu": triclinic_cu,
              "molecular_crystal": molecular_crystal, "mixed_pbc": mixed_pbc_slab}


class ModelContract:
    """DESIGN.md's required properties, for the model that :meth:`build_model` returns."""

    def build_model(self, dtype: torch.dtype) -> torch.nn.Module:
        """The model under test, with parameters in ``dtype`` (a subclass provides it)."""
        raise NotImplementedError("a ModelContract subclass must define build_model(dtype)")

    @pytest.fixture(params=[torch.float64, torch.float32], ids=["float64", "float32"])
    def model(self, request) -> torch.nn.Module:
        """The model in each dtype."""
        return self.build_model(request.param).eval()

    @pytest.fixture
    def model64(self) -> torch.nn.Module:
        """The model in float64 (finite differences need it)."""
        return self.build_model(torch.float64).eval()

    # ----------------------------------------------------------------------------- symmetry
    @pytest.mark.parametrize("structure", ["ethanol", "triclinic_cu", "molecular_crystal"])
    def test_o3_translation_permutation_invariance(self, model, structure):
        # random rotations, rotoreflections, translations, permutations; TOLERANCES["invariance"]
        assert_o3_invariant(model, STRUCTURES[structure]())

    def test_slab_invariance_under_its_symmetries(self, model):
        # a slab open along z: rotations about z and reflections in planes containing z
        assert_o3_invariant(model, mixed_pbc_slab(), axis=2)

    @pytest.mark.parametrize("name", list(symmetric_structures()))
    def test_deterministic_at_symmetric_structures_float64(self, model64, name):
        # bit for bit across calls, rel 1e-10 across rotations, |F| <= 1e-9 eV/Å where symmetry
        # demands zero force
        atoms, zero_force = symmetric_structures()[name]
        assert_deterministic_at_symmetry(model64, atoms, zero_force_atoms=zero_force,
                                         force_tol=1e-9)

    @pytest.mark.parametrize("name", ["fcc_cu_2x2x2", "CH4", "CO2", "benzene"])
    def test_bounded_forces_near_symmetry_float64(self, model64, name):
        # displacements 1e-6..1e-2 Å: |F| < 10 eV/Å, |F - F_sym| <= 50 eV/Å^2 delta + 1e-9
        assert_bounded_near_symmetry(model64, symmetric_structures()[name][0])

    # ----------------------------------------------------------------------------- derivatives
    @pytest.mark.parametrize("structure", ["ethanol", "molecular_crystal"])
    def test_forces_are_gradients_float64(self, model64, structure):
        # central differences, h = 1e-4 Å; TOLERANCES[float64]["finite_difference"] (1e-6)
        atoms = STRUCTURES[structure]()
        indices = None if structure == "ethanol" else [0, 3, 8]
        assert_forces_are_gradients(model64, atoms, h=1e-4, atom_indices=indices)

    @pytest.mark.parametrize("structure", ["triclinic_cu", "molecular_crystal", "mixed_pbc"])
    def test_stress_is_strain_derivative_float64(self, model64, structure):
        # symmetric strains, central differences, h = 1e-5; rel 1e-6
        assert_stress_is_strain_derivative(model64, STRUCTURES[structure]())

    # ----------------------------------------------------------------------------- smoothness
    def test_smooth_scan_through_molecule_float64(self, model64):
        # the hydroxyl H of ethanol dragged 2 Å across the molecule in 400 steps: no energy jump,
        # |F| < 50 eV/Å, each energy step matches the force along the path (10 %)
        atoms = ethanol()
        direction = atoms.positions[1] - atoms.positions[8]
        assert_smooth_scan(model64, atoms, 8, direction, length=2.0, n_steps=400, max_force=50.0)

    def test_smooth_across_the_cutoff_float64(self, model64):
        # a Cu atom leaves the cutoff of every atom of a water molecule: no jump in E or F, and
        # beyond the cutoff E equals the sum of the parts (TOLERANCES["reproduction"], 1e-12)
        water = molecule("H2O")
        start = water + Atoms("Cu", positions=[[3.0, 0.3, 0.2]])
        cutoff = float(model64.cutoff)
        assert_smooth_scan(model64, start, 3, [1.0, 0.0, 0.0], length=cutoff + 2.0, n_steps=400)
        far = start.copy()
        far.positions[3, 0] += cutoff + 2.0
        parts = predict(model64, water)["energy"] + predict(model64, Atoms("Cu"))["energy"]
        tol = TOLERANCES[torch.float64]["reproduction"]
        assert abs(predict(model64, far)["energy"] - parts) <= tol * abs(parts)

    def test_extensive_float64(self, model64):
        # two copies of ethanol 3 cutoffs apart: twice the energy (rel 1e-12)
        assert_extensive(model64, ethanol())

    # ----------------------------------------------------------------------------- reproduction
    def test_torchscript_matches_python(self, model):
        # scripted vs eager, energy, forces and stress: TOLERANCES["reproduction"] (relative)
        scripted = torch.jit.script(model)
        dtype = model_dtype(model)
        g = atoms_to_graph(molecular_crystal(), model.cutoff, dtype=dtype)
        a, b = model(g, True, True), scripted(g, True, True)
        tol = TOLERANCES[dtype]["reproduction"]
        for key in (K.ENERGY, K.FORCES, K.STRESS):
            diff = (a[key] - b[key]).abs().max().item()
            assert diff <= tol * max(1.0, a[key].abs().max().item()), (key, diff)

    def test_batch_equals_single_structures_float64(self, model64):
        # the training path (PyG Batch -> model_inputs) gives each structure its own energy
        structs = [ethanol(), triclinic_cu(), molecule("CH4")]
        batch = Batch.from_data_list([atoms_to_data(s, model64.cutoff) for s in structs])
        out = model64(model_inputs(batch), True, False)
        tol = TOLERANCES[torch.float64]["reproduction"]
        for k, s in enumerate(structs):
            single = predict(model64, s)["energy"]
            assert abs(out[K.ENERGY][k].item() - single) <= tol * max(1.0, abs(single))

    def test_save_load_round_trip(self, model64, tmp_path):
        # the file gives the same numbers bit for bit, and the same configuration
        path = tmp_path / "model.pt"
        save_model(model64, path)
        loaded = load_model(path)
        atoms = triclinic_cu()
        a, b = predict(model64, atoms), predict(loaded, atoms)
        assert a["energy"] == b["energy"] and np.array_equal(a["forces"], b["forces"])
        assert type(loaded) is type(model64) and loaded.config == model64.config
