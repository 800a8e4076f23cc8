"""The model runs unchanged on a GPU: same numbers on cuda as on cpu.

Runs only where CUDA is available (the project's CPU machines skip it, stating why).
"""

import pytest
import torch

from tfpot.diagnostics import gate_statistics
from tfpot.graph import atoms_to_graph
from tfpot.testing.structures import ethanol, triclinic_cu

from helpers import make_model

cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device on this machine")


@cuda
@pytest.mark.parametrize("scripted", [False, True])
def test_cuda_matches_cpu_float64(scripted):
    # float64 on cuda vs cpu: rel 1e-10 on energy, abs 1e-10 eV/Å on forces
    model = make_model()
    atoms = triclinic_cu()
    ref = model(atoms_to_graph(atoms, model.cutoff), True, True)
    gpu = model.to("cuda")
    if scripted:
        gpu = torch.jit.script(gpu)
    out = gpu(atoms_to_graph(atoms, model.cutoff, device="cuda"), True, True)
    assert abs(out["energy"].item() - ref["energy"].item()) <= 1e-10 * abs(ref["energy"].item())
    assert (out["forces"].cpu() - ref["forces"]).abs().max().item() < 1e-10
    assert (out["stress"].cpu() - ref["stress"]).abs().max().item() < 1e-10


def test_gate_statistics_report():
    # diagnostics: fractions sum to one; on ethanol most frames are (partly) open at
    # initialisation (gate_range (0.05, 0.3)) and the frame path carries energy
    stats = gate_statistics(make_model(), [ethanol()])
    total = stats["fraction_closed"] + stats["fraction_partial"] + stats["fraction_open"]
    assert abs(total - 1.0) < 1e-12
    assert stats["fraction_closed"] < 0.5 and stats["fraction_open"] > 0.1
    assert stats["frame_energy_per_atom_eV"] > 1e-5
