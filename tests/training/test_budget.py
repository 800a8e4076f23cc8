"""A max_time budget fixes the run length once (tfpot.training.budget): the probe changes no
state, a budgeted run equals a run of the planned epochs without a budget, and kill + resume of
a budgeted run equals the uninterrupted run. Float64, compared bit for bit (tolerance 0)."""

import copy
import csv
import itertools
import json
import math

import pytest
import torch

from tfpot.builder import build_model
from tfpot.training import budget, train_from_config
from tfpot.training.budget import SpeedRecord, planned_epochs, probe_speed
from tfpot.training.checkpoint import load_checkpoint
from tfpot.training.config import config_from_dict
from tfpot.training.data import load_splits
from tfpot.training.normalisation import apply_statistics, training_statistics
from tfpot.training.loop import Trainer


class Killed(RuntimeError):
    pass


def kill_at(step):
    def callback(trainer):
        if trainer.global_step == step:
            raise Killed(f"simulated kill at step {step}")
    return callback


def model_state(path):
    return torch.load(path, weights_only=True)["state_dict"]


def assert_same_state(a, b, what):
    assert a.keys() == b.keys()
    for k in a:
        diff = (a[k].double() - b[k].double()).abs().max().item() if a[k].numel() else 0.0
        assert torch.equal(a[k], b[k]), f"{what}: {k} differs by {diff:.3e} (tolerance: exact)"


def summary(out):
    return json.loads((out / "summary.json").read_text())


@pytest.fixture
def fake_clock(monkeypatch):
    """The probe's clock advances 0.125 s (exact in binary) per reading: every step and validation
    pass 'takes' 0.125 s, so the plan is the same in every run (the trainer's own clock, which
    gives the record's at_seconds, stays real: ~0 s here)."""
    ticks = itertools.count()
    monkeypatch.setattr(budget, "_now", lambda: 0.125 * next(ticks))


def measured(record):
    return {k: v for k, v in record.items() if k != "at_seconds"}


def test_planned_epochs():
    rec = SpeedRecord(seconds_per_step=0.5, seconds_per_validation=1.0, probe_seconds=4.0,
                      steps_per_epoch=10)  # 6 s per epoch
    assert rec.epoch_seconds() == 6.0
    assert planned_epochs(50, None, None) == 50  # no budget: max_epochs
    assert planned_epochs(50, 64.0, rec) == 10  # (64 - 4) / 6
    assert planned_epochs(50, 63.9, rec) == 9  # whole epochs only
    assert planned_epochs(5, 64.0, rec) == 5  # never more than max_epochs
    assert planned_epochs(50, 1.0, rec) == 1  # at least one epoch
    # a probe mid-run (max_time added on resume at 2.5 epochs, 20 s): begun epochs are finished
    mid = SpeedRecord(0.5, 1.0, 4.0, 10, at_epochs=2.5, at_seconds=20.0)
    assert planned_epochs(50, 64.0, mid) == math.floor(2.5 + 40 / 6)
    assert planned_epochs(50, 21.0, mid) == 3
    assert SpeedRecord.from_dict(mid.to_dict()) == mid
    with pytest.raises(ValueError, match="needs a speed record"):
        planned_epochs(50, 10.0, None)


def _trainer(tiny_config, tmp_path):
    cfg = config_from_dict(tiny_config(output_dir=str(tmp_path / "probe")))
    splits = load_splits(cfg.data, cfg.seed)
    model = build_model([1, 6, 8], cutoff=cfg.data.cutoff, seed=cfg.seed, dtype="float64",
                        preset=cfg.model.resolve())
    apply_statistics(model, training_statistics(splits.train, [1, 6, 8], "least_squares"))
    return Trainer(model, cfg, splits.train, splits.val, None, verbose=False)


def test_probe_runs_steps_and_restores_every_state(tiny_config, tmp_path):
    trainer = _trainer(tiny_config, tmp_path)
    trainer.optimizer.step()  # the live state is not a fresh one
    before = copy.deepcopy(trainer.state_dict())
    rng_before = torch.get_rng_state()
    steps = []
    real_step = trainer.step
    trainer.step = lambda batch: (steps.append(1), real_step(batch))
    record = probe_speed(trainer, num_steps=3)
    assert len(steps) == 4  # 1 warm-up + 3 timed steps really ran
    assert record.seconds_per_step > 0 and record.seconds_per_validation > 0
    assert record.probe_seconds >= 4 * record.seconds_per_step
    after = trainer.state_dict()
    assert_same_state(before["model_state"], after["model_state"], "weights")
    for a, b in zip(before["ema"]["shadow"], after["ema"]["shadow"]):
        assert torch.equal(a, b)
    assert before["optimizer"]["state"].keys() == after["optimizer"]["state"].keys() == set()
    assert before["schedule"] == after["schedule"] and before["train_sums"] == after["train_sums"]
    assert before["progress"]["global_step"] == after["progress"]["global_step"] == 0
    assert torch.equal(rng_before, torch.get_rng_state())
    assert trainer.elapsed >= record.probe_seconds  # the probe counts against the budget


    # negative control: the same probe without the restore leaves trained weights behind
    trainer.load_state_dict = lambda state: None
    probe_speed(trainer, num_steps=1)
    changed = trainer.state_dict()["model_state"]
    assert any(not torch.equal(before["model_state"][k], changed[k]) for k in changed)


def test_probe_times_steps_until_min_seconds_or_the_epoch_ends(tiny_config, tmp_path,
                                                               fake_clock):
    # fake clock: every timed step 'takes' 0.125 s; the tiny set has 6 batches per epoch
    trainer = _trainer(tiny_config, tmp_path)
    steps = []
    real_step = trainer.step
    trainer.step = lambda batch: (steps.append(1), real_step(batch))
    probe_speed(trainer, num_steps=1, min_seconds=0.5)
    assert len(steps) == 5  # 1 warm-up + 4 timed steps: 0.5 s
    steps.clear()
    record = probe_speed(trainer, num_steps=1, min_seconds=1e6)
    assert len(steps) == trainer.steps_per_epoch == 6  # no batches left: the probe stops there
    assert record.seconds_per_step == 0.125
    steps.clear()
    probe_speed(trainer, num_steps=2, min_seconds=0.0)
    assert len(steps) == 3  # no minimum: num_steps as before


def test_budgeted_run_equals_run_of_the_planned_epochs(tiny_config, tmp_path):
    # the real clock: whatever the plan, the run equals max_epochs = plan without a budget
    budgeted = train_from_config(tiny_config(output_dir=str(tmp_path / "budget"),
                                             schedule={"type": "cosine", "min_lr": 1e-5},
                                             training={"max_epochs": 50, "max_time": 2.0}),
                                 verbose=False)
    n = summary(budgeted)["planned_epochs"]
    assert 1 <= n < 50 and summary(budgeted)["epochs"] == n
    plain = train_from_config(tiny_config(output_dir=str(tmp_path / "plain"),
                                          schedule={"type": "cosine", "min_lr": 1e-5},
                                          training={"max_epochs": n, "max_time": None}),
                              verbose=False)
    assert (budgeted / "metrics.csv").read_text() == (plain / "metrics.csv").read_text()
    for name in ("best_model.pt", "final_model.pt"):
        assert_same_state(model_state(budgeted / name), model_state(plain / name), name)
    # the cosine runs over the planned epochs and ends annealed (rate after epoch k of n)
    with open(budgeted / "metrics.csv") as f:
        lrs = [float(r["lr"]) for r in csv.DictReader(f)]
    for k, lr in enumerate(lrs, start=1):
        want = 1e-5 + (3e-2 - 1e-5) * 0.5 * (1 + math.cos(math.pi * k / n))
        assert lr == pytest.approx(want, rel=1e-12), k
    assert lrs[-1] == pytest.approx(1e-5, rel=1e-12)


@pytest.mark.parametrize("kill_step", [4, 9])
def test_kill_and_resume_of_a_budgeted_run_equals_uninterrupted(tiny_config, tmp_path,
                                                                  fake_clock, kill_step):
    # fake clock: 0.125 s per step and per validation, 6 steps per epoch (0.875 s), probe of
    # 7 steps and a validation, 2.125 s: (5.0 - 2.125) / 0.875 -> 3 epochs of max_epochs 50
    def cfg(name):
        return tiny_config(output_dir=str(tmp_path / name),
                           schedule={"type": "cosine", "min_lr": 1e-5, "warmup_epochs": 0.5},
                           training={"max_epochs": 50, "max_time": 5.0, "checkpoint_every": 4})

    ref = train_from_config(cfg("ref"), verbose=False)
    assert summary(ref)["planned_epochs"] == 3 and summary(ref)["stop_reason"] == "max_time"
    with pytest.raises(Killed):
        train_from_config(cfg("cut"), callbacks=[kill_at(kill_step)], verbose=False)
    recorded = load_checkpoint(tmp_path / "cut" / "checkpoint.pt")["speed"]
    assert measured(recorded) == measured(summary(ref)["speed"])
    cut = train_from_config(cfg("cut"), resume=True, verbose=False)
    assert summary(cut)["speed"] == recorded  # the resume planned from the record, no new probe
    assert (ref / "metrics.csv").read_text() == (cut / "metrics.csv").read_text()
    for name in ("best_model.pt", "final_model.pt"):
        assert_same_state(model_state(ref / name), model_state(cut / name), name)


def test_resume_with_a_larger_budget_replans_from_the_record(tiny_config, tmp_path, fake_clock):
    def cfg(max_time):
        return tiny_config(training={"max_epochs": 50, "max_time": max_time})

    out = train_from_config(cfg(5.0), verbose=False)
    first = summary(out)
    assert first["planned_epochs"] == 3
    more = train_from_config(cfg(6.8), resume=True, verbose=False)
    second = summary(more)
    assert second["speed"] == first["speed"]  # no new probe
    assert second["planned_epochs"] == second["epochs"] == 5  # floor((6.8 - 2.125) / 0.875)
