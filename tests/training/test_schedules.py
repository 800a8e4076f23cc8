"""Learning-rate schedules: the cosine follows the step alone, over max_epochs or the run length
fixed once by set_epochs (the max_time plan), never runs backwards, and resumes exactly (float64
rates, relative tolerance 1e-12, or 1e-15 / exact equality where the same arithmetic is
repeated)."""

import math

import pytest
import torch

from tfpot.training.config import ScheduleConfig
from tfpot.training.schedules import LRSchedule

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


def test_set_epochs_fixes_the_length_and_the_decay_never_goes_back():
    s = cosine(max_epochs=10)  # 100 steps by max_epochs
    s.set_epochs(4)  # the budget allows 4 epochs: 40 steps
    assert s.lr == pytest.approx(BASE, rel=1e-15)
    for step in range(1, 41):
        s.step_batch()
        assert s.lr == pytest.approx(expected(step / 40), rel=1e-12), step
    assert s.lr == pytest.approx(MIN, rel=1e-12)
    s.step_batch()  # past the end: at the floor, not beyond
    assert s.lr == pytest.approx(MIN, rel=1e-12)
    s.set_epochs(8)  # a resume with more epochs holds the rate until the steps catch up
    for _ in range(39):  # steps 42..80 of 80
        s.step_batch()
        assert s.lr == pytest.approx(MIN, rel=1e-12)


def test_state_round_trip_and_legacy_lambdalr_state():
    a = cosine(warmup_epochs=0.5)
    for _ in range(17):
        a.step_batch()
    b = cosine(warmup_epochs=0.5)
    b.load_state_dict(a.state_dict())
    assert b.lr == a.lr
    for _ in range(5):
        a.step_batch()
        b.step_batch()
        assert b.lr == a.lr
    # tfpot <= 0.2 checkpoints hold a LambdaLR state: progress by steps only
    legacy = {"type": "cosine", "state": {"last_epoch": 30, "base_lrs": [BASE], "_step_count": 31}}
    c, d = cosine(warmup_epochs=0.5), cosine(warmup_epochs=0.5)
    c.load_state_dict(legacy)
    for _ in range(30):
        d.step_batch()
    assert c.lr == pytest.approx(d.lr, rel=1e-15)
