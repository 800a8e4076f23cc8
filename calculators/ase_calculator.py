"""ASE calculator for tfpot models, with a Verlet-skin neighbour list for MD.

    calc = TFPotCalculator("model.pt", device="cpu", dtype="float64", skin=0.5)
    atoms.calc = calc
    atoms.get_potential_energy(); atoms.get_forces(); atoms.get_stress()

Neighbour reuse (Verlet skin, :class:`tfpot.graph.SkinNeighborList`): the pair list is built at
``cutoff + skin`` and kept while no atom has moved more than ``skin / 2`` since the build and the
cell, pbc and atomic numbers are unchanged; the edge set equals a fresh build's, so results agree
with :func:`tfpot.predict` to rounding. The model input is assembled by
:func:`tfpot.graph.graph_fields`, as everywhere else.

Units: positions Å, energy eV, forces eV/Å, stress eV/Å^3 (ASE sign and Voigt order
xx, yy, zz, yz, xz, xy). Results are float64 numpy arrays whatever the model dtype.
"""

from __future__ import annotations

import copy
import os
from typing import Dict, List, Optional, Sequence, Union

import numpy as np
import torch
from ase import Atoms
from ase.calculators.calculator import (Calculator, PropertyNotImplementedError,
                                        all_changes)
from ase.data import chemical_symbols
from ase.stress import full_3x3_to_voigt_6_stress

from tfpot import _keys as K
from tfpot.builder import load_model, resolve_dtype
from tfpot.graph import SkinNeighborList, graph_fields
from tfpot.inference import require_known_elements
from tfpot.model import EnergyModel

ModelLike = Union[EnergyModel, str, os.PathLike]


class TFPotCalculator(Calculator):
    """ASE calculator: energy, free_energy, per-atom energies, forces and stress.

    Args:
        model_or_path: an :class:`~tfpot.model.EnergyModel` (the calculator keeps its own copy,
            in eval mode, on ``device`` and in ``dtype``) or the path of a model file.
        device: torch device, ``"cpu"`` or ``"cuda"``.
        dtype: ``"float64"`` (default) or ``"float32"``; the model is cast to it. Positions and
            periodic shifts stay float64 (edge vectors are formed in float64, then cast), and
            energies are summed in float64.
        skin: Verlet skin in Å (0 rebuilds the neighbour list at every call).
        min_distance: atoms closer than this (Å) are refused as overlapping.
        script: evaluate a TorchScript compilation of the model (``torch.jit.script``, once,
            here), run without TorchScript's graph optimisation: the same operations as the
            Python module (bit for bit the same numbers) without Python's per-operation cost,
            which dominates a call on a small molecule. False: call the Python module.

    Molecules and periodic cells of any shape with pbc per axis. Stress only for cells periodic
    in all three directions (:class:`~ase.calculators.calculator.PropertyNotImplementedError`
    otherwise). Once stress has been asked for, it is computed with every later evaluation (one
    backward pass gives forces and stress, so a cell filter costs one evaluation per step).

    Attributes:
        model: the calculator's copy of the model (a Python module, eval mode, frozen weights);
        n_builds: neighbour-list builds so far; n_calls: model evaluations so far.
    """

    implemented_properties = ["energy", "free_energy", "energies", "forces", "stress"]
    default_parameters: Dict = {}
    # The model sees only positions, numbers, cell and pbc.
    ignored_changes = {"initial_charges", "initial_magmoms"}

    def __init__(self, model_or_path: ModelLike, device: Union[str, torch.device] = "cpu",
                 dtype: Union[str, torch.dtype] = "float64", skin: float = 0.5,
                 min_distance: float = 0.1, script: bool = True, **kwargs):
        Calculator.__init__(self, **kwargs)
        self.device = torch.device(device)
        self.dtype = resolve_dtype(dtype)
        if not (np.isfinite(min_distance) and min_distance >= 0):
            raise ValueError(f"min_distance must be a finite number >= 0 Å (got {min_distance})")
        self.skin = float(skin)
        self.min_distance = float(min_distance)
        if isinstance(model_or_path, (str, os.PathLike)):
            model = load_model(model_or_path, device=self.device, dtype=self.dtype)
        elif isinstance(model_or_path, torch.nn.Module):
            model = copy.deepcopy(model_or_path).to(device=self.device, dtype=self.dtype)
        else:
            raise TypeError("TFPotCalculator expects an EnergyModel or the path of a model file "
                            f"(got {type(model_or_path).__name__})")
        model.eval()
        for p in model.parameters():  # only input gradients are needed
            p.requires_grad_(False)
        self.model = model
        # what calculate() calls: the model, or its TorchScript compilation (same parameters)
        self._evaluate = _scripted(model) if script else model
        self.cutoff = float(model.cutoff)
        self.species: List[int] = [int(z) for z in model.species]
        self._want_stress = False
        self.neighbors = SkinNeighborList(self.cutoff, self.skin, self.device)
        self.n_calls = 0
        self._numbers: Optional[np.ndarray] = None

    # ------------------------------------------------------------------------------------------
    def __repr__(self) -> str:
        return (f"TFPotCalculator(species={[chemical_symbols[z] for z in self.species]}, "
                f"cutoff={self.cutoff} Å, skin={self.skin} Å, dtype={str(self.dtype)[6:]}, "
                f"device={self.device})")

    @property
    def n_builds(self) -> int:
        """Neighbour-list builds so far."""
        return self.neighbors.n_builds

    def reset(self) -> None:
        Calculator.reset(self)
        self.neighbors.reset()

    def check_state(self, atoms: Atoms, tol: float = 1e-15) -> List[str]:
        """What changed since the last calculation, among positions, numbers, cell and pbc.

        Same answer as ASE's ``compare_atoms`` for what the model reads (``allclose`` with
        ``tol``), with an exact-equality fast path: ASE calls this several times per MD step.
        """
        old = self.atoms
        if old is None or len(old) != len(atoms):
            return list(all_changes)
        changes = []
        if not np.array_equal(old.pbc, atoms.pbc):
            changes.append("pbc")
        if not _close(old.cell.array, atoms.cell.array, tol):
            changes.append("cell")
        if not np.array_equal(old.numbers, atoms.numbers):
            changes.append("numbers")
        if not _close(old.positions, atoms.positions, tol):
            changes.append("positions")
        return changes

    # ------------------------------------------------------------------------------------------
    # input checks
    def _check_numbers(self, numbers: np.ndarray) -> None:
        if self._numbers is not None and np.array_equal(numbers, self._numbers):
            return
        require_known_elements(self.species, numbers)
        self._numbers = numbers.copy()
        self._numbers_t = torch.as_tensor(numbers, dtype=torch.long, device=self.device)
        self._batch_t = torch.zeros(len(numbers), dtype=torch.long, device=self.device)

    @staticmethod
    def _check_finite(positions: np.ndarray, cell: np.ndarray) -> None:
        if not np.isfinite(positions).all():
            bad = int(np.argwhere(~np.isfinite(positions))[0, 0])
            raise ValueError(f"TFPotCalculator: position of atom {bad} is not finite "
                             f"({positions[bad].tolist()} Å)")
        if not np.isfinite(cell).all():
            raise ValueError(f"TFPotCalculator: the cell is not finite ({cell.tolist()} Å)")

    def _overlap_error(self, d2: torch.Tensor, edges: torch.Tensor, shifts: torch.Tensor) -> ValueError:
        k = int(torch.argmin(d2))
        i, j = int(edges[0, k]), int(edges[1, k])
        d = float(torch.sqrt(d2[k]))
        image = "" if not bool(shifts[k].any()) else " (periodic image)"
        return ValueError(
            f"TFPotCalculator: atoms {i} and {j}{image} overlap: {d:.4g} Å apart, closer than "
            f"min_distance={self.min_distance} Å; check the structure (duplicated atoms, wrong "
            f"units or cell)")

    # ------------------------------------------------------------------------------------------
    def graph(self, atoms: Atoms) -> Dict[str, torch.Tensor]:
        """The model input for ``atoms`` (keys of :mod:`tfpot._keys`), using the skin list.

        Checks the elements, finite positions and overlaps; rebuilds the list when needed.
        """
        positions = np.asarray(atoms.positions, dtype=np.float64)
        cell = np.asarray(atoms.cell.array, dtype=np.float64)
        pbc = np.asarray(atoms.pbc, dtype=bool)
        numbers = np.asarray(atoms.numbers)
        self._check_numbers(numbers)
        self._check_finite(positions, cell)
        edges, shifts, d2 = self.neighbors.pairs(positions, cell, pbc, numbers)
        if d2.numel() > 0 and bool((d2 < self.min_distance ** 2).any()):
            raise self._overlap_error(d2, edges, shifts)
        graph = graph_fields(positions, self._numbers_t, cell, pbc, edges, shifts,
                             torch.float64, self.device)
        graph[K.BATCH] = self._batch_t
        return graph

    def evaluate(self, graph: Dict[str, torch.Tensor],
                 stress: bool = False) -> Dict[str, torch.Tensor]:
        """One model evaluation with forces (and stress) on a model input (:meth:`graph`): the
        outputs of :meth:`tfpot.model.EnergyModel.forward`. Counts in ``n_calls``."""
        # TorchScript's optimising executor would switch to a re-derived graph after profiling
        # the first calls, whose float rounding differs; unoptimised, the scripted model runs the
        # module's own operations: the same numbers, bit for bit, from the first call.
        with torch.enable_grad(), torch.jit.optimized_execution(False):
            out = self._evaluate(graph, True, stress)
        self.n_calls += 1
        return out

    # ------------------------------------------------------------------------------------------
    def calculate(self, atoms: Optional[Atoms] = None, properties: Sequence[str] = ("energy",),
                  system_changes: Sequence[str] = all_changes) -> None:
        Calculator.calculate(self, atoms, properties, system_changes)
        atoms = self.atoms
        periodic3d = bool(np.all(atoms.pbc))
        if "stress" in properties:
            if not periodic3d:
                raise PropertyNotImplementedError(
                    f"TFPotCalculator: stress needs a cell periodic in all three directions "
                    f"(this structure has pbc={np.asarray(atoms.pbc).tolist()})")
            self._want_stress = True
        stress = periodic3d and self._want_stress
        if stress and abs(atoms.cell.volume) < 1e-9:
            raise ValueError(f"TFPotCalculator: stress needs a non-singular cell "
                             f"(got {atoms.cell.array.tolist()})")
        out = self.evaluate(self.graph(atoms), stress)
        energy = float(out[K.ENERGY].detach()[0])
        self.results = {
            "energy": energy,
            "free_energy": energy,
            "energies": out[K.ATOMIC_ENERGIES].detach().to("cpu", torch.float64).numpy(),
            "forces": out[K.FORCES].detach().to("cpu", torch.float64).numpy(),
        }
        if stress:
            s = out[K.STRESS][0].detach().to("cpu", torch.float64).numpy()
            self.results["stress"] = full_3x3_to_voigt_6_stress(s)
        bad = [k for k, v in self.results.items() if not np.all(np.isfinite(v))]
        if bad:  # never hand NaN or inf to an MD integrator or optimiser
            self.results = {}
            raise ValueError(f"TFPotCalculator: the model's {', '.join(bad)} are not finite for "
                             f"this structure; the model file is broken or the structure lies "
                             f"far outside its training data")


def _scripted(model: torch.nn.Module) -> torch.jit.ScriptModule:
    """``torch.jit.script(model)``, or a one-line error saying what to do when it cannot be
    compiled (a subclass with Python-only code, say)."""
    try:
        return torch.jit.script(model)
    except (RuntimeError, torch.jit.frontend.FrontendError) as e:
        first = next((line.strip() for line in str(e).splitlines() if line.strip()), repr(e))
        raise ValueError(f"TFPotCalculator: TorchScript cannot compile this "
                         f"{type(model).__name__} ({first}); pass script=False to run it as a "
                         f"Python module") from None


def _close(a: np.ndarray, b: np.ndarray, tol: float) -> bool:
    return a.shape == b.shape and (np.array_equal(a, b) or bool(np.allclose(a, b, rtol=tol, atol=tol)))

