"""Loss spikes (training/spikes.py): a step whose loss is far above the running mean is not
applied and is logged; too many in a row stop the run with one clear line."""

import math

import ase.io
import pytest
import torch
import yaml

from tfpot.cli import main
from tfpot.data import read_structures
from tfpot.data.demo import demo_dataset_path
from tfpot.training import train_from_config
from tfpot.training.ema import ExponentialMovingAverage
from tfpot.training.rollback import RecentStepsUndo
from tfpot.training.spikes import LossSpikeError, LossSpikeGuard

SPIKE_FRAME = 5


def test_a_spike_is_skipped_and_leaves_the_running_mean():
    guard = LossSpikeGuard(factor=100.0, patience=3, warmup=5)
    for loss in (1.0, 0.8, 1.2, 0.9, 1.1):  # warm-up: accepted whatever they are
        assert not guard.is_spike(loss)
    before = guard.state_dict()
    assert guard.is_spike(500.0) and guard.skipped == 1
    assert guard.log_mean == before["log_mean"]  # a skipped loss does not move the mean
    assert not guard.is_spike(50.0)  # 50x: not a spike at factor 100
    assert guard.in_a_row == 0 and not guard.is_spike(0.0)


def test_patience_spikes_in_a_row_stop_with_one_line():
    guard = LossSpikeGuard(factor=10.0, patience=3, warmup=1)
    assert not guard.is_spike(1.0)
    assert guard.is_spike(1e3) and guard.is_spike(1e3)
    with pytest.raises(LossSpikeError) as err:
        guard.is_spike(1e3)
    msg = str(err.value)
    assert "\n" not in msg and msg.startswith("training diverged: 3 optimiser steps in a row")
    assert "lower optimizer.lr" in msg


def test_state_round_trips():
    guard = LossSpikeGuard(factor=100.0)
    for loss in (3.0, 2.0, 1.0):
        guard.is_spike(loss)
    other = LossSpikeGuard(factor=100.0)
    other.load_state_dict(guard.state_dict())
    assert other.state_dict() == guard.state_dict()
    assert math.isclose(other.ratio(2.0), guard.ratio(2.0))
    with pytest.raises(ValueError, match="above 1"):
        LossSpikeGuard(factor=1.0)


@pytest.fixture
def spiking_config(tiny_config, tmp_path):
    """Train frame 5 has an energy 1e5 eV off: finite, but its loss is ~1e8 times the others'."""
    frames = read_structures(demo_dataset_path())[:32]
    frames[SPIKE_FRAME].calc.results["energy"] += 1e5
    ase.io.write(tmp_path / "train.xyz", frames[:24], format="extxyz")
    ase.io.write(tmp_path / "val.xyz", frames[24:], format="extxyz")
    data = {"path": None, "train": str(tmp_path / "train.xyz"), "val": str(tmp_path / "val.xyz"),
            "split": {"test": 0, "val": 0}, "cutoff": 4.0}
    model = {"e0": "zero", "energy_scale": 1.0, "energy_shift": 0.0}
    return lambda **training: tiny_config(
        data=data, model=model, training={"batch_size": 1, "max_epochs": 3, **training})


def test_a_spiking_frame_is_not_applied_after_the_warm_up(spiking_config, tmp_path):
    # 24 steps per epoch: from the second epoch on (past the 20-step warm-up) the frame's step
    # is skipped and logged, and the run ends normally with its models
    train_from_config(spiking_config(), verbose=False)
    log = (tmp_path / "run" / "train.log").read_text()
    skips = [line for line in log.splitlines() if "step not applied (loss spike" in line]
    assert len(skips) >= 2, log
    assert all("x the running mean" in line for line in skips)
    assert (tmp_path / "run" / "final_model.pt").exists()


def test_without_the_guard_every_step_is_applied(spiking_config, tmp_path):
    train_from_config(spiking_config(loss_spike_factor=None), verbose=False)
    assert "loss spike" not in (tmp_path / "run" / "train.log").read_text()


def test_patience_spikes_stop_tfpot_train_with_one_line_and_exit_1(spiking_config, tmp_path,
                                                                  capsys):
    # loss_spike_patience 1: the first spike after the warm-up stops the run; the checkpoint
    # stays and no final model is written
    path = tmp_path / "spiking.yaml"
    path.write_text(yaml.safe_dump(spiking_config(loss_spike_patience=1)))
    assert main(["train", str(path), "--quiet"]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith(
        "tfpot train: error: training diverged: 1 optimiser steps in a row had a loss above 100x")
    assert (tmp_path / "run" / "checkpoint.pt").exists()
    assert not (tmp_path / "run" / "final_model.pt").exists()


def _state(trainer):
    """Weights, optimiser state tensors and EMA shadow of a trainer, copied."""
    opt = trainer.optimizer
    tensors = [p.detach().clone() for p in trainer.optimiser_step.params]
    for p in trainer.optimiser_step.params:
        tensors += [v.clone() for _, v in sorted(opt.state[p].items()) if torch.is_tensor(v)]
    return tensors + [s.clone() for s in trainer.ema.shadow], trainer.ema.num_updates


def test_two_spikes_in_a_row_undo_the_steps_back_to_the_last_copy(tiny_config, tmp_path):
    # After step 30 (past the warm-up) the weights are "damaged": scaled by 30, as a step into a
    # region of huge losses would leave them. Steps 31 and 32 spike; at 32 the guard restores
    # the weights, optimiser state and EMA copied before step 21 (a copy before every 10th
    # applied step: 1, 11, 21, ...) exactly, and the run goes on from there.
    seen = {}

    def damage(trainer):
        if trainer.global_step == 20:
            seen["copied"] = _state(trainer)
        if trainer.global_step == 30:
            with torch.no_grad():
                for p in trainer.optimiser_step.params:
                    p.mul_(30.0)
        if trainer.global_step == 32:
            seen["after"] = _state(trainer)

    cfg = tiny_config(training={"batch_size": 1, "max_epochs": 2, "checkpoint_every": 0})
    train_from_config(cfg, callbacks=[damage], verbose=False)
    log = (tmp_path / "run" / "train.log").read_text()
    assert "step 31 (epoch 2, batch 7): loss" in log and "(loss spike 1)" in log, log
    undo = [line for line in log.splitlines() if "two in a row" in line]
    assert len(undo) == 1 and undo[0].startswith("step 32 (epoch 2, batch 8)"), log
    assert undo[0].endswith("back to 10 applied step(s) before"), undo[0]
    copied, after = seen["copied"], seen["after"]
    assert after[1] == copied[1]  # EMA update count
    assert len(after[0]) == len(copied[0])
    assert all(torch.equal(a, b) for a, b in zip(after[0], copied[0]))  # exact (tolerance 0)
    assert "spike" not in log.split(undo[0])[1]  # the restored weights train normally
    assert (tmp_path / "run" / "final_model.pt").exists()


def test_the_undo_state_round_trips_through_a_checkpoint():
    model = torch.nn.Linear(3, 2)
    params = list(model.parameters())
    opt = torch.optim.AdamW(params, lr=0.1, amsgrad=True)
    ema = ExponentialMovingAverage(model, 0.9)

    def step(undo):
        opt.zero_grad()
        model(torch.ones(4, 3)).pow(2).sum().backward()
        undo.record()
        opt.step()
        ema.update()

    undo = RecentStepsUndo(params, opt, ema, every=3)
    for _ in range(3):  # a copy before applied step 1
        step(undo)
    after_three = [t.clone() for t in params] + [opt.state[params[0]]["max_exp_avg_sq"].clone()]
    for _ in range(3):  # a copy before step 4 (the state after step 3), none before 5 and 6
        step(undo)
    saved = undo.state_dict()
    assert saved["applied"] == 6 and saved["copied_at"] == 3 and saved["copy"] is not None
    other = RecentStepsUndo(params, opt, ema, every=3)
    other.load_state_dict(saved)
    assert other.restore() == 3 and other.restore() == 0  # steps 4-6 undone, once
    assert ema.num_updates == 3 and other.applied == 3
    now = [t.clone() for t in params] + [opt.state[params[0]]["max_exp_avg_sq"].clone()]
    assert all(torch.equal(a, b) for a, b in zip(now, after_three))  # exact (tolerance 0)
    assert other.state_dict()["copy"] is None
