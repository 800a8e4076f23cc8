"""The training guard (training/guard.py): a non-finite loss stops the run at once, names the
frames, keeps the last good checkpoint, writes no model from that point and exits 1."""

import math

import ase.io
import numpy as np
import pytest
import torch

from tfpot.cli import main
from tfpot.data import read_structures
from tfpot.data.demo import demo_dataset_path
from tfpot.training import train_from_config
from tfpot.training.checkpoint import load_checkpoint
from tfpot.training.distributed import DistContext
from tfpot.training.guard import (NonFiniteError, check_metrics, nonfinite_graphs,
                                  step_is_finite)
from tfpot.training.losses import Targets, WeightedLoss

BAD_FRAME = 13
# the 1e200 eV label overflows the (unused) energy spread of the statistics too
pytestmark = pytest.mark.filterwarnings("ignore:overflow encountered in square:RuntimeWarning")


@pytest.fixture
def diverging_config(tiny_config, tmp_path):
    """Train/val files; train frame 13 has an energy of 1e200 eV: finite (the data check passes),
    but its squared error overflows to inf."""
    frames = read_structures(demo_dataset_path())[:32]
    frames[BAD_FRAME].calc.results["energy"] = 1e200
    ase.io.write(tmp_path / "train.xyz", frames[:24], format="extxyz")
    ase.io.write(tmp_path / "val.xyz", frames[24:], format="extxyz")
    data = {"path": None, "train": str(tmp_path / "train.xyz"), "val": str(tmp_path / "val.xyz"),
            "split": {"test": 0, "val": 0}, "cutoff": 4.0}
    model = {"e0": "zero", "energy_scale": 1.0, "energy_shift": 0.0}
    return tiny_config(data=data, model=model, training={"checkpoint_every": 1})


def test_nonfinite_loss_stops_the_run(diverging_config, tmp_path):
    out = tmp_path / "run"
    with pytest.raises(NonFiniteError) as err:
        train_from_config(diverging_config, verbose=False)
    msg = str(err.value)
    assert "\n" not in msg
    assert msg.startswith("training step ") and ": the loss is inf; " in msg
    assert f"non-finite errors in frame {BAD_FRAME} of train.xyz; batch frames " in msg
    step = int(msg.split()[2])
    assert f"kept: {out / 'checkpoint.pt'} (step {step - 1}); check these frames" in msg
    # the kept checkpoint is the last good step's, with finite weights; no final model
    ck = load_checkpoint(out / "checkpoint.pt")
    assert ck["progress"]["global_step"] == step - 1
    assert all(torch.isfinite(v).all() for v in ck["model_state"].values() if v.is_floating_point())
    assert not (out / "final_model.pt").exists() and not (out / "summary.json").exists()
    assert f"stopped: training step {step}" in (out / "train.log").read_text()


def test_nonfinite_loss_exits_1_with_one_line(diverging_config, tmp_path, capsys):
    import yaml

    path = tmp_path / "diverging.yaml"
    path.write_text(yaml.safe_dump(diverging_config))
    assert main(["train", str(path), "--quiet"]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("tfpot train: error: training step ")
    assert f"frame {BAD_FRAME} of train.xyz" in err[0]


def test_negative_control_finite_run_passes(diverging_config, tmp_path):
    """The same run without the bad label trains to the end."""
    frames = read_structures(tmp_path / "train.xyz")
    frames[BAD_FRAME].calc.results["energy"] = frames[BAD_FRAME - 1].get_potential_energy()
    ase.io.write(tmp_path / "train.xyz", frames, format="extxyz")
    diverging_config["training"].update(max_epochs=1)
    out = train_from_config(diverging_config, verbose=False)
    assert (out / "final_model.pt").exists()


def test_step_is_finite():
    ctx = DistContext.single()
    p = torch.nn.Parameter(torch.ones(3))
    p.grad = torch.zeros(3)
    assert step_is_finite(torch.tensor(1.0), [p], ctx)
    assert not step_is_finite(torch.tensor(math.nan), [p], ctx)
    assert not step_is_finite(torch.tensor(math.inf), [p], ctx)
    p.grad[1] = math.nan                                   # finite loss, NaN gradient
    assert not step_is_finite(torch.tensor(1.0), [p], ctx)
    assert not step_is_finite(None, [p], ctx)              # a rank with an empty share


def test_nonfinite_graphs_names_the_structures():
    # 3 structures of 2 atoms; structure 1's energy error and structure 2's forces are bad
    t = Targets(num_atoms=torch.full((3,), 2.0, dtype=torch.float64),
                batch=torch.tensor([0, 0, 1, 1, 2, 2]),
                energy=torch.zeros(3, dtype=torch.float64), energy_mask=torch.ones(3, dtype=torch.bool),
                forces=torch.zeros(6, 3, dtype=torch.float64), forces_mask=torch.ones(6, dtype=torch.bool))
    err = {"energy": torch.tensor([0.1, math.inf, 0.2]), "forces": torch.zeros(18)}
    err["energy_per_atom"] = err["energy"] / 2
    err["forces"][5 * 3 + 1] = math.nan                    # atom 5 (structure 2)
    assert nonfinite_graphs(err, t, WeightedLoss()) == [1, 2]
    err["energy_per_atom"] = torch.tensor([1e200, 0.0, 0.0])  # finite, but its square is not
    err["forces"] = torch.zeros(18)
    assert nonfinite_graphs(err, t, WeightedLoss()) == [0]
    err["energy_per_atom"] = torch.zeros(3)
    assert nonfinite_graphs(err, t, WeightedLoss()) == []


def test_check_metrics():
    check_metrics({"energy_mae": 0.1, "loss": 2.0}, "epoch 1 validation")
    with pytest.raises(NonFiniteError, match=r"^epoch 1 validation metrics are not finite "
                                             r"\(forces_mae nan\)"):
        check_metrics({"energy_mae": 0.1, "forces_mae": float(np.nan)}, "epoch 1 validation")


def test_nonfinite_validation_metrics_stop_the_run(tiny_config, tmp_path):
    """Finite live weights but NaN EMA weights (as a NaN that entered the average would give):
    the validation metrics are NaN; the run stops there and best_model.pt is never written."""
    def poison_ema(trainer):
        if trainer.global_step == trainer.steps_per_epoch:  # last step of epoch 1
            trainer.ema.shadow[0].fill_(math.nan)

    cfg = tiny_config(training={"max_epochs": 2})
    with pytest.raises(NonFiniteError, match=r"^epoch 1 training/validation metrics are not "
                                             r"finite \(val_energy_mae nan, .*\): a frame gives a "
                                             r"non-finite prediction or label"):
        train_from_config(cfg, callbacks=[poison_ema], verbose=False)
    out = tmp_path / "run"
    assert not (out / "best_model.pt").exists() and not (out / "final_model.pt").exists()
