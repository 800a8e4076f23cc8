"""Learning-rate schedules: the cosine follows max_epochs or the max_time budget, whichever ends
first, never runs backwards, and resumes exactly (float64 rates, relative tolerance 1e-12, or
1e-15 / exact equality where the same arithmetic is repeated)."""

import math

import pytest
import torch

from tfpot.training import train_from_config
from tfpot.training.config import ScheduleConfig
from tfpot.training.schedules import LRSchedule
from tfpot.training.trainer import Trainer

BASE, MIN = 1e-2, 1e-4


def cosine(warmup_epochs=0.0, steps_per_epoch=10, max_epochs=10):
    opt = torch.optim.AdamW([torch.nn.Parameter(torch.zeros(2))], lr=BASE)
    cfg = ScheduleConfig(type="cosine", warmup_epochs=warmup_epochs, min_lr=MIN)
    return LRSchedule(opt, cfg, steps_per_epoch, max_epochs)


def expected(progress):
    return MIN + (BASE - MIN) * 0.5 * (1 + math.cos(math.pi * progress))


def test_cosine_over_steps_without_budget():
    s = cosine()
    assert s.lr == pytest.approx(BASE, rel=1e-15)
    for step in range(1, 101):
        s.step_batch()
        assert s.lr == pytest.approx(expected(step / 100), rel=1e-12), step
    assert s.lr == pytest.approx(MIN, rel=1e-12)


def test_warmup_then_cosine():
    s = cosine(warmup_epochs=1.0)  # 10 warm-up steps of 100
    assert s.lr == pytest.approx(BASE / 10, rel=1e-12)
    for _ in range(9):
        s.step_batch()
    assert s.lr == pytest.approx(BASE, rel=1e-12)
    for _ in range(46):  # step 10 starts the cosine; step 55 is half-way through its 90 steps
        s.step_batch()
    assert s.lr == pytest.approx(expected(0.5), rel=1e-12)


def test_budget_fraction_drives_decay_and_never_goes_back():
    s = cosine()
    s.step_batch(time_fraction=0.5)  # 1 step of 100, half the budget used
    assert s.lr == pytest.approx(expected(0.5), rel=1e-12)
    s.step_batch(time_fraction=0.2)  # a smaller fraction (e.g. resumed with a larger budget)
    assert s.lr == pytest.approx(expected(0.5), rel=1e-12)
    s.step_batch(time_fraction=1.3)  # past the budget: at the floor, not beyond
    assert s.lr == pytest.approx(MIN, rel=1e-12)


def test_state_round_trip_and_legacy_lambdalr_state():
    a = cosine(warmup_epochs=0.5)
    for k in range(17):
        a.step_batch(time_fraction=0.01 * k)
    b = cosine(warmup_epochs=0.5)
    b.load_state_dict(a.state_dict())
    assert b.lr == a.lr
    for k in range(5):
        a.step_batch(time_fraction=0.3)
        b.step_batch(time_fraction=0.3)
        assert b.lr == a.lr
    # tfpot <= 0.2 checkpoints hold a LambdaLR state: progress by steps only
    legacy = {"type": "cosine", "state": {"last_epoch": 30, "base_lrs": [BASE], "_step_count": 31}}
    c, d = cosine(warmup_epochs=0.5), cosine(warmup_epochs=0.5)
    c.load_state_dict(legacy)
    for _ in range(30):
        d.step_batch()
    assert c.lr == pytest.approx(d.lr, rel=1e-15)


def test_trainer_anneals_by_the_time_budget(tiny_config, monkeypatch):
    # a fake clock of 0.1 s per optimiser step and a 1 s budget: step k + 1 (k = 0, 1, ...) sees
    # k / 10 of the budget used, far ahead of its share of max_epochs (6 steps per epoch); the run
    # stops by max_time after 10 steps
    monkeypatch.setattr(Trainer, "elapsed", property(lambda self: 0.1 * self.global_step))
    cfg = tiny_config(schedule={"type": "cosine", "min_lr": 1e-5},
                      training={"max_epochs": 1000, "max_time": 1.0, "batch_size": 4})
    seen = []
    out = train_from_config(cfg, callbacks=[lambda t: seen.append(t.schedule.lr)], verbose=False)
    lr0, total = cfg["optimizer"]["lr"], 6 * 1000
    assert len(seen) == 10
    for k, lr in enumerate(seen):  # the callback runs after step k + 1
        progress = max((k + 1) / total, 0.1 * k)
        want = 1e-5 + (lr0 - 1e-5) * 0.5 * (1 + math.cos(math.pi * progress))
        assert lr == pytest.approx(want, rel=1e-12), k
    assert seen[-1] < 0.03 * lr0
    assert (out / "summary.json").exists()
