"""Structures and small models shared by the tests."""

import numpy as np
import torch
from ase import Atoms
from ase.build import bulk, molecule

import tfpot
from tfpot.builder import model_from_config

SPECIES = ["H", "C", "N", "O", "Cu"]


def make_model(message="mlp", dtype=torch.float64, **hyper):
    """A small model whose frame path is active (the gates open on generic environments).

    ``parity="average"``: the mirror-averaged mode of tfpot < 0.2, which only loads (as from an
    old file): the SO(3)-only model of the same seed, averaged over X and -X.
    """
    legacy_average = hyper.get("parity") == "average"
    if legacy_average:
        hyper["parity"] = "none"
    settings = dict(preset="small", seed=3, message=message, dtype=dtype)
    settings.update(hyper)
    model = tfpot.build_model(SPECIES, cutoff=4.0, **settings)
    if legacy_average:
        averaged = model_from_config({**model.config, "parity": "average"}).to(dtype)
        averaged.load_state_dict(model.state_dict())
        model = averaged
    return model.eval()


def ethanol() -> Atoms:
    a = molecule("CH3CH2OH")
    a.rattle(0.02, seed=1)
    return a


def triclinic_cu(n_rattle=0.05, seed=0) -> Atoms:
    """A small triclinic periodic Cu/O cell, smaller than twice the cutoff."""
    a = bulk("Cu", "fcc", a=3.6).repeat((2, 2, 2))
    cell = np.array(a.get_cell())
    cell[2] += 0.4 * cell[0] - 0.2 * cell[1]
    a.set_cell(cell, scale_atoms=True)
    a.symbols[3] = "O"
    a.rattle(n_rattle, seed=seed)
    return a
