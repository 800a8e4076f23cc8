"""Small models shared by the tests; structures come from tfpot.testing.structures."""

import torch

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
