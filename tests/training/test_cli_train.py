"""``tfpot train`` on the command line: exit status 130 after Ctrl-C (checkpoint written first),
``--set`` overrides, and data paths relative to the config file, with one-line errors."""

import os
import shutil
import signal
import subprocess
import sys
import time

import pytest
import yaml

from tfpot.cli import main
from tfpot.data import demo_dataset_path
from tfpot.training.checkpoint import load_checkpoint
from tfpot.training.config import load_config


def write_yaml(path, cfg):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump(cfg))
    return path


def test_ctrl_c_writes_a_checkpoint_and_exits_130(tiny_config, tmp_path):
    out = tmp_path / "run"
    cfg = write_yaml(tmp_path / "cfg.yaml", tiny_config(output_dir=str(out),
                                                        training={"max_epochs": 500}))
    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONUNBUFFERED="1")
    proc = subprocess.Popen([sys.executable, "-m", "tfpot", "train", str(cfg), "--quiet"],
                            env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.time() + 120
        while not (out / "checkpoint.pt").exists():  # training is under way
            assert proc.poll() is None and time.time() < deadline, proc.communicate()
            time.sleep(0.2)
        proc.send_signal(signal.SIGINT)
        stdout, stderr = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 130, stdout + stderr
    last = stderr.strip().splitlines()[-1]
    assert last == (f"tfpot train: interrupted; checkpoint written to {out}; continue with "
                    f"`tfpot train {cfg} --resume`")
    assert "Traceback" not in stderr
    ck = load_checkpoint(out / "checkpoint.pt")
    assert 0 < ck["progress"]["global_step"] < 500 * 6
    assert not (out / "final_model.pt").exists()


def test_set_overrides_keys_and_refuses_misspelt_ones(tiny_config, tmp_path, capsys):
    cfg = write_yaml(tmp_path / "cfg.yaml", tiny_config(output_dir=str(tmp_path / "run")))
    assert main(["train", str(cfg), "--quiet", "--set", "training.max_epochs=1",
                 "--set", "optimizer.lr=1e-3"]) == 0
    saved = yaml.safe_load((tmp_path / "run" / "config.yaml").read_text())
    assert saved["training"]["max_epochs"] == 1 and saved["optimizer"]["lr"] == 1e-3
    capsys.readouterr()
    assert main(["train", str(cfg), "--set", "training.max_epoch=1"]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "unknown key 'training.max_epoch'" in err[0]
    assert "did you mean 'training.max_epochs'?" in err[0]
    assert main(["train", str(cfg), "--set", "training.max_epochs"]) == 1
    assert "expected KEY=VALUE" in capsys.readouterr().err


def test_data_paths_are_relative_to_the_config_file(tiny_config, tmp_path, monkeypatch):
    project = tmp_path / "project"
    (project / "data").mkdir(parents=True)
    shutil.copy(demo_dataset_path(), project / "data" / "ethanol.npz")
    raw = tiny_config(output_dir=str(tmp_path / "run"), training={"max_epochs": 1})
    raw["data"]["path"] = "data/ethanol.npz"
    cfg_path = write_yaml(project / "configs" / "../train.yaml", raw)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)  # not where the config is
    cfg = load_config(cfg_path)
    assert cfg.data.path == str((project / "data" / "ethanol.npz").resolve())
    assert main(["train", str(cfg_path), "--quiet"]) == 0
    # a dict (Python API) keeps paths relative to the current directory
    assert load_config(raw).data.path == "data/ethanol.npz"


def test_missing_data_file_says_where_it_looked(tiny_config, tmp_path, monkeypatch, capsys):
    raw = tiny_config(output_dir=str(tmp_path / "run"))
    raw["data"]["path"] = "md17_ethanol.npz"
    cfg_path = write_yaml(tmp_path / "cfgs" / "train.yaml", raw)
    monkeypatch.chdir(tmp_path)
    assert main(["train", str(cfg_path)]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert err == [f"tfpot train: error: data.path: no such file {tmp_path}/cfgs/md17_ethanol.npz "
                   f"(relative paths in a config file are relative to the file's folder, in a "
                   f"bundled recipe or a dict to the current directory); fix the path or give an "
                   f"absolute one"]


@pytest.mark.parametrize("option", ["--list-recipes", "--show-recipe demo"])
def test_recipe_listing(option, capsys):
    assert main(["train", *option.split()]) == 0
    assert "demo" in capsys.readouterr().out
