"""Evaluation helpers (training/evaluation.py): the weight swap and the best-model record."""

import math

import torch

from tfpot.training.config import TrainingConfig
from tfpot.training.evaluation import BestModel, eval_batch_size, weights_loaded


def test_weights_loaded_restores_the_model_exactly_also_after_an_error():
    model = torch.nn.Linear(3, 2)
    mine = {k: v.clone() for k, v in model.state_dict().items()}
    other = {k: torch.randn_like(v) for k, v in mine.items()}
    try:
        with weights_loaded(model, other):
            assert torch.equal(model.weight, other["weight"])
            raise RuntimeError("evaluation failed")
    except RuntimeError:
        pass
    assert all(torch.equal(model.state_dict()[k], v) for k, v in mine.items())


def test_best_model_keeps_lower_losses_and_counts_the_epochs_since():
    best, kept = BestModel(), []
    keep = lambda: kept.append(1) or {"w": torch.ones(1)}  # noqa: E731
    assert best.update(0, 1.0, {"loss": 1.0}, keep) and best.bad_epochs == 0
    assert not best.update(1, 1.0, {"loss": 1.0}, keep) and best.bad_epochs == 1  # equal: no
    assert not best.update(2, math.nan, {}, keep) and best.bad_epochs == 2
    assert best.update(3, 0.5, {"loss": 0.5}, keep) and (best.epoch, best.bad_epochs) == (3, 0)
    assert len(kept) == 2
    again = BestModel()
    again.load_state_dict(best.state_dict())
    assert again.state_dict() == best.state_dict()


def test_eval_batch_size():
    assert eval_batch_size(TrainingConfig(batch_size=8), 1) == 16
    assert eval_batch_size(TrainingConfig(batch_size=8, val_batch_size=6), 4) == 1
    assert eval_batch_size(TrainingConfig(batch_size=1), 4) == 1
