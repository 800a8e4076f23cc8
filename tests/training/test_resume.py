"""Kill-and-resume equals an uninterrupted run (float64, bit for bit: tolerance 0)."""

import csv

import pytest
import torch

import tfpot
from tfpot.data import demo_dataset_path, read_structures
from tfpot.training import ConfigError, fit, load_config, train_from_config
from tfpot.training.checkpoint import load_checkpoint, save_checkpoint
from tfpot.training.resume import checkpoint_to_resume


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


def read_csv(path):
    with open(path) as f:
        return list(csv.DictReader(f))


# 10: mid-epoch, the last checkpoint (step 8) is 2 steps old; 12: right after the step checkpoint
# of the last batch of epoch 2, before that epoch's validation, schedule step and CSV row.
@pytest.mark.parametrize("kill_step", [10, 12])
def test_kill_and_resume_matches_uninterrupted(tiny_config, tmp_path, kill_step):
    # 24 train / batch 4 = 6 steps per epoch, 3 epochs, checkpoints every 4 steps and per epoch
    ref = train_from_config(tiny_config(output_dir=str(tmp_path / "ref")), verbose=False)

    cfg = tiny_config(output_dir=str(tmp_path / "cut"))
    with pytest.raises(Killed):
        train_from_config(cfg, callbacks=[kill_at(kill_step)], verbose=False)
    ck = load_checkpoint(tmp_path / "cut" / "checkpoint.pt")
    last_checkpoint = {10: (8, 2), 12: (12, 6)}[kill_step]  # (global step, batch in epoch 2)
    assert (ck["progress"]["global_step"], ck["progress"]["batch_in_epoch"]) == last_checkpoint
    assert ck["progress"]["epoch"] == 1
    assert not (tmp_path / "cut" / "final_model.pt").exists()
    assert not list((tmp_path / "cut").glob(".*.tmp"))  # atomic writes leave no temp files

    with pytest.raises(ConfigError, match="--resume"):  # never overwritten silently
        train_from_config(cfg, verbose=False)
    cut = train_from_config(cfg, resume=True, verbose=False)

    for name in ("final_model.pt", "best_model.pt"):
        assert_same_state(model_state(ref / name), model_state(cut / name), name)
    a, b = load_checkpoint(ref / "checkpoint.pt"), load_checkpoint(cut / "checkpoint.pt")
    assert_same_state(a["model_state"], b["model_state"], "live weights")
    for sa, sb in zip(a["ema"]["shadow"], b["ema"]["shadow"]):
        assert torch.equal(sa, sb)
    assert a["optimizer"]["state"].keys() == b["optimizer"]["state"].keys()
    for k in a["optimizer"]["state"]:
        assert torch.equal(a["optimizer"]["state"][k]["exp_avg_sq"], b["optimizer"]["state"][k]["exp_avg_sq"])

    rows_a, rows_b = read_csv(ref / "metrics.csv"), read_csv(cut / "metrics.csv")
    assert [r["epoch"] for r in rows_a] == [r["epoch"] for r in rows_b] == ["1", "2", "3"]
    # the whole file, partial-epoch training sums included: same numbers, same order of sums
    assert (ref / "metrics.csv").read_text() == (cut / "metrics.csv").read_text()


def test_resume_refuses_changed_config(tiny_config, tmp_path):
    cfg = tiny_config(training={"max_epochs": 1})
    out = train_from_config(cfg, verbose=False)
    changed = tiny_config(training={"max_epochs": 1}, optimizer={"lr": 5e-2})
    with pytest.raises(ConfigError, match=r"optimizer.lr: 0.03 -> 0.05"):
        train_from_config(changed, resume=True, verbose=False)
    # more epochs is allowed and continues from epoch 2
    more = tiny_config(training={"max_epochs": 2})
    train_from_config(more, resume=True, verbose=False)
    assert [r["epoch"] for r in read_csv(out / "metrics.csv")] == ["1", "2"]


def test_resume_of_an_older_checkpoint_takes_missing_keys_as_their_defaults(tiny_config):
    # a checkpoint of tfpot 0.7 has no training.frame_noise: it resumes with the default (0, what
    # 0.7 did) and refuses a run that turns the noise on
    out = train_from_config(tiny_config(training={"max_epochs": 1}), verbose=False)
    path = out / "checkpoint.pt"
    state = load_checkpoint(path)
    del state["config"]["training"]["frame_noise"]
    save_checkpoint(state, path)
    with pytest.raises(ConfigError, match=r"training.frame_noise: 0.0 -> 0.1"):
        checkpoint_to_resume(out, True, load_config(tiny_config(training={"max_epochs": 2,
                                                                          "frame_noise": 0.1})))
    train_from_config(tiny_config(training={"max_epochs": 2}), resume=True, verbose=False)
    assert [r["epoch"] for r in read_csv(out / "metrics.csv")] == ["1", "2"]


def test_resume_without_checkpoint_starts_new_run(tiny_config, tmp_path):
    out = train_from_config(tiny_config(training={"max_epochs": 1}), resume=True, verbose=False)
    assert (out / "final_model.pt").exists()


def test_one_resume_guard_for_configs_and_fit(tmp_path):
    # an output directory holds one run: without resume its checkpoint is never overwritten,
    # with resume only the keys of RESUMABLE_KEYS may change (training/resume.py)
    cfg = load_config({"data": {"path": "tfpot:demo"}, "output_dir": str(tmp_path)})
    assert checkpoint_to_resume(tmp_path, False, cfg) is None  # nothing there: a new run
    save_checkpoint({"config": cfg.to_dict()}, tmp_path / "checkpoint.pt")
    with pytest.raises(ConfigError, match="already holds a training run.*resume=True"):
        checkpoint_to_resume(tmp_path, False, cfg)
    assert checkpoint_to_resume(tmp_path, True, cfg)["config"] == cfg.to_dict()
    cfg.training.max_epochs += 1  # resumable
    checkpoint_to_resume(tmp_path, True, cfg)
    cfg.loss.forces_weight = 1.0  # not resumable
    with pytest.raises(ConfigError, match=r"loss.forces_weight: 10.0 -> 1.0"):
        checkpoint_to_resume(tmp_path, True, cfg)
    # fit() uses the same guard
    model = tfpot.build_model(["H", "C", "O"], preset="small")
    with pytest.raises(ConfigError, match="already holds a training run"):
        fit(model, read_structures(demo_dataset_path())[:4], epochs=1, out_dir=tmp_path)
