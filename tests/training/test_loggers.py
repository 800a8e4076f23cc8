"""The loggers of the training loop (training/loggers.py): what each writes, and the epoch line."""

import pytest

from tfpot.training import loggers
from tfpot.training.config import LoggingConfig
from tfpot.training.loggers import CsvLog, TextLog, csv_text, epoch_line, file_loggers, hms


class _History:
    history = [{"epoch": 1, "lr": 0.1, "train_forces_mae": 0.5},
               {"epoch": 2, "lr": 0.05, "train_forces_mae": 0.25, "val_forces_mae": 0.3}]
    timings = [{"epoch": 1, "time [s]": 1.5}, {"epoch": 2, "time [s]": 3.0}]


def test_csv_columns_in_order_of_first_appearance_with_blanks():
    text = csv_text(_History.history)
    assert text.splitlines() == ["epoch,lr,train_forces_mae,val_forces_mae", "1,0.1,0.5,",
                                 "2,0.05,0.25,0.3"]


def test_csv_log_writes_metrics_with_units_and_timing(tmp_path):
    CsvLog(tmp_path).end_epoch(_History(), _History.history[-1])
    header = (tmp_path / "metrics.csv").read_text().splitlines()[0]
    assert header == "epoch,lr,train_forces_mae [eV/Å],val_forces_mae [eV/Å]"
    assert (tmp_path / "timing.csv").read_text().splitlines()[0] == "epoch,time [s]"


def test_text_log_appends_and_flushes(tmp_path):
    (tmp_path / "train.log").write_text("earlier run\n")
    log = TextLog(tmp_path / "train.log")
    log.message("line")
    assert (tmp_path / "train.log").read_text() == "earlier run\nline\n"  # flushed at once
    log.close()


def test_hms():
    assert (hms(-3), hms(59), hms(61), hms(3723)) == ("0m00s", "0m59s", "1m01s", "1h02m03s")


def test_epoch_line_marks_the_best_and_counts_the_time_left():
    row = {"epoch": 3, "step": 30, "lr": 1e-3, "train_energy_mae": 0.002, "train_forces_mae": 0.05,
           "val_energy_mae": 0.003, "val_forces_mae": 0.06}
    line = epoch_line(row, run_epochs=10, epoch_time=60.0, best=True)
    assert line.startswith("epoch    3/10    60.0 s  lr 1.00e-03  train: E 2.000 meV/at")
    assert "| val: E 3.000 meV/at" in line and " *" in line and line.endswith("ETA 7m00s")
    no_val = {k: v for k, v in row.items() if not k.startswith("val_")}
    assert "val" not in epoch_line(no_val, 10, 60.0, best=False)


def test_file_loggers_follow_the_settings(tmp_path):
    made = file_loggers(LoggingConfig(csv=False, tensorboard=False), tmp_path / "out", epoch=0)
    assert [type(x) for x in made] == [TextLog]
    for x in made:
        x.close()


def test_tensorboard_true_without_tensorboard_is_an_error(tmp_path, monkeypatch):
    monkeypatch.setattr(loggers, "SummaryWriter", None)
    with pytest.raises(ImportError, match="logging.tensorboard is true"):
        file_loggers(LoggingConfig(tensorboard=True), tmp_path, epoch=0)
    assert not (tmp_path / "train.log").exists()  # refused before opening anything
    made = file_loggers(LoggingConfig(tensorboard="auto"), tmp_path, epoch=0)  # auto: skipped
    assert [type(x) for x in made] == [TextLog, CsvLog]
    for x in made:
        x.close()
