"""ModelHyperparameters: one frozen object, validated when built, errors that name the key."""

import dataclasses

import pytest

import tfpot
from tfpot.errors import HyperparameterError, TfpotError
from tfpot.hyperparameters import PRESETS, ModelHyperparameters
from tfpot.revisions import REVISION


def test_presets_are_instances_and_medium_is_the_default():
    assert all(isinstance(hp, ModelHyperparameters) for hp in PRESETS.values())
    assert PRESETS["medium"] == ModelHyperparameters()
    assert PRESETS["small"].reps == "32x0+8x1+2x2" and PRESETS["large"].num_layers == 3


def test_frozen_and_normalised_at_the_door():
    hp = ModelHyperparameters.from_dict({"reps": "16x0 + 4x1", "gate_range": [0.1, 1], "hidden": 32.0})
    assert hp.reps == "16x0+4x1" and hp.gate_range == (0.1, 1.0) and hp.hidden == 32
    assert isinstance(hp.hidden, int)
    with pytest.raises(dataclasses.FrozenInstanceError):
        hp.hidden = 3
    assert ModelHyperparameters.from_dict(hp.to_dict()) == hp


@pytest.mark.parametrize("values, key, match", [
    ({"envelope_p": 1}, "envelope_p", r"must be >= 2 \(got 1\)"),
    ({"num_layers": 0}, "num_layers", r"must be >= 1"),
    ({"gate_range": (0.0, 0.3)}, "gate_range", r"0 < low < high"),
    ({"gate_range": (0.3, 0.1)}, "gate_range", r"0 < low < high"),
    ({"gate_range": 0.3}, "gate_range", r"two numbers"),
    ({"message": "mpl"}, "message", r"did you mean 'mlp'"),
    ({"radial_filter": "tahn"}, "radial_filter", r"did you mean 'tanh'"),
    ({"parity": "average"}, "parity", r"tfpot < 0.2.*still load"),
    ({"reps": "8x1"}, "reps", r"scalar channel"),
    ({"hidden": True}, "hidden", r"expected an integer"),
    ({"avg_num_neighbors": 0}, "avg_num_neighbors", r"must be > 0"),
    ({"ensemble_max_angle": 60}, "ensemble_max_angle", r"must be > 60"),
    ({"ensemble_max_angle": 175}, "ensemble_max_angle", r"at most 170 degrees \(got 175"),
    ({"message": "attention", "hidden": 20}, "hidden", r"divisible by the 4 attention heads"),
    ({"hiden": 3}, "hiden", r"unknown; did you mean 'hidden'"),
])
def test_bad_values_name_the_key(values, key, match):
    with pytest.raises(HyperparameterError, match=match) as e:
        ModelHyperparameters.from_dict(values)
    assert e.value.key == key and isinstance(e.value, TfpotError)
    assert f"model hyperparameter {key}:" in str(e.value)


def test_build_model_and_model_take_the_object():
    hp = PRESETS["small"].replace(num_layers=1)
    a = tfpot.build_model(["H", "O"], preset=hp, seed=2)
    b = tfpot.build_model(["H", "O"], preset="small", num_layers=1, seed=2)
    assert a.hyperparameters == b.hyperparameters == hp
    assert a.config == {"species": [1, 8], "cutoff": 5.0, **hp.to_dict(), "revision": REVISION}
    with pytest.raises(TypeError, match="ModelHyperparameters"):
        tfpot.EnergyModel([1], 5.0, {"hidden": 3})
