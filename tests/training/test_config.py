"""The training config: unknown keys with suggestions, bad values named by file and key."""

import subprocess
import sys

import pytest
import yaml

from tfpot.training.config import (ConfigError, TrainConfig, config_from_dict, describe,
                                   list_recipes, load_config, recipes_dir)


def write(tmp_path, cfg, name="config.yaml"):
    path = tmp_path / name
    path.write_text(yaml.safe_dump(cfg))
    return path


def test_minimal_config_gets_defaults():
    cfg = config_from_dict({"data": {"path": "x.npz"}})
    assert isinstance(cfg, TrainConfig)
    assert cfg.training.batch_size == 8 and cfg.model.preset == "small"
    assert cfg.to_dict()["loss"]["forces_weight"] == 10.0


@pytest.mark.parametrize("raw, key, hint", [
    ({"trainig": {}}, "trainig", "training"),
    ({"training": {"batch_sise": 4}}, "training.batch_sise", "training.batch_size"),
    ({"optimizer": {"learning_rate": 1e-3}}, "optimizer.learning_rate", None),
    ({"batch_size": 4}, "batch_size", "training.batch_size"),  # valid, but in another section
    ({"loss": {"force_weight": 1.0}}, "loss.force_weight", "loss.forces_weight"),
    ({"data": {"split": {"valid": 10}}}, "data.split.valid", "data.split.val"),
])
def test_unknown_key_names_key_and_suggestion(tmp_path, raw, key, hint):
    raw = {"data": {"path": "x.npz", **raw.get("data", {})}, **{k: v for k, v in raw.items() if k != "data"}}
    path = write(tmp_path, raw)
    with pytest.raises(ConfigError) as e:
        load_config(path)
    msg = str(e.value)
    assert str(path) in msg and f"unknown key '{key}'" in msg
    if hint:
        assert f"did you mean '{hint}'?" in msg


@pytest.mark.parametrize("section, match", [
    ({"training": {"batch_size": 0}}, r"training.batch_size: must be >= 1 \(got 0\)"),
    ({"training": {"batch_size": "eight"}}, r"training.batch_size: expected an integer"),
    ({"optimizer": {"lr": -1.0}}, r"optimizer.lr: must be > 0"),
    ({"model": {"dtype": "float16"}}, r"model.dtype: must be one of float32, float64"),
    ({"schedule": {"type": "cosin"}}, r"schedule.type: .*did you mean 'cosine'"),
    ({"loss": {"per_atom_energy": "yes"}}, r"loss.per_atom_energy: expected true or false"),
    ({"model": {"e0": {"Hx": -13.6}}}, r"model.e0.Hx: not an element symbol"),
    ({"model": {"e0": "fitted"}}, r"model.e0: must be least_squares, zero or a mapping"),
    ({"loss": {"energy_weight": 0, "forces_weight": 0}}, r"loss: all weights are zero"),
    ({"device": "gpu"}, r"device: must be auto, cpu, cuda or cuda:N"),
    ({"data": {"path": "a.xyz", "train": "b.xyz"}}, r"data.path: give either"),
    ({"data": {"path": None}}, r"data: give data.path"),
    ({"data": {"path": "a.xyz", "split": {"val": 1.5}}}, r"data.split.val: a fraction must lie"),
    ({"data": {"path": "a.xyz", "target": "energy"}}, r"data.target: must be one of .*U0.* \(got 'energy'\)"),
    ({"model": {"reps": "abc"}}, r"model.reps"),
    ({"model": {"envelope_p": 1}}, r"model.envelope_p: must be >= 2 \(got 1\)"),
    ({"model": {"gate_range": [0.0, 0.1]}}, r"model.gate_range: expected \[low, high\] with 0 < low"),
    ({"model": {"message": "attention", "hidden": 12}}, r"model.hidden: .*divisible by the 4"),
    ({"model": {"parity": "average"}}, r"model.parity: .*tfpot < 0.2"),
    ({"model": {"avg_num_neighbors": -1.0}}, r"model.avg_num_neighbors: must be > 0"),
])
def test_bad_values_are_named(tmp_path, section, match):
    raw = {"data": {"path": "x.npz"}}
    for k, v in section.items():
        if isinstance(v, dict) and isinstance(raw.get(k), dict):
            raw[k] = {**raw[k], **v}
        else:
            raw[k] = v
    path = write(tmp_path, raw)
    with pytest.raises(ConfigError, match=match) as e:
        load_config(path)
    assert str(path) in str(e.value)


def test_yaml_1_1_exponent_strings_are_numbers(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("data: {path: x.npz}\noptimizer: {lr: 1e-3}\nmodel: {energy_scale: 2e-1}\n")
    cfg = load_config(path)
    assert cfg.optimizer.lr == 1e-3 and cfg.model.energy_scale == 0.2


def test_invalid_yaml_names_line(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("data:\n  path: x.npz\n  split: [1,\n")
    with pytest.raises(ConfigError, match=r"c.yaml, line \d+: not valid YAML"):
        load_config(path)


def test_e0_dict_and_counts_or_fractions():
    cfg = config_from_dict({"data": {"path": "x", "split": {"train": 950, "val": 0.05, "test": None}},
                            "model": {"e0": {"H": -13.6, "O": "-432.1"}}})
    assert cfg.data.split.train == 950 and isinstance(cfg.data.split.train, int)
    assert cfg.data.split.val == 0.05 and cfg.data.split.test is None
    assert cfg.model.e0 == {"H": -13.6, "O": -432.1}


@pytest.mark.parametrize("name", list_recipes())
def test_recipes_are_valid_and_list_every_key(name):
    path = recipes_dir() / f"{name}.yaml"
    load_config(path)
    raw = yaml.safe_load(path.read_text())
    full = TrainConfig().to_dict()

    def missing(ref, got, prefix=""):
        out = []
        for k, v in ref.items():
            if k not in got:
                out.append(prefix + k)
            elif isinstance(v, dict) and k not in ("options",) and isinstance(got[k], dict):
                out += missing(v, got[k], prefix + k + ".")
        return out

    assert missing(full, raw) == [], f"{name}.yaml does not list every key"


def test_expected_recipes_exist():
    assert {"demo", "md17", "rmd17", "qm9", "extxyz_materials"} <= set(list_recipes())


def test_describe_and_cli_help_document_every_key():
    text = describe()
    for section in ("data", "model", "loss", "optimizer", "schedule", "training", "logging"):
        assert f"{section}:" in text
    for key in ("batch_size", "checkpoint_every", "max_time", "ema_decay", "rmd17_splits",
                "early_stopping_patience", "forces_weight", "warmup_epochs"):
        assert key in text
    out = subprocess.run([sys.executable, "-m", "tfpot", "train", "--help"], capture_output=True,
                         text=True, timeout=120)
    assert out.returncode == 0
    assert "checkpoint_every" in out.stdout and "torchrun" in out.stdout and "--resume" in out.stdout


def test_cli_reports_config_error_without_traceback(tmp_path):
    from tfpot.cli import main

    path = write(tmp_path, {"data": {"path": "x.npz"}, "trainig": {}})
    assert main(["train", str(path)]) == 1


def test_cli_refuses_bad_hyperparameter_before_reading_data(tmp_path, capsys):
    # the data file does not exist: the error must be the hyperparameter, found at config load
    from tfpot.cli import main

    path = write(tmp_path, {"data": {"path": str(tmp_path / "missing.npz")},
                            "model": {"envelope_p": 1}})
    assert main(["train", str(path)]) == 1
    err = capsys.readouterr().err
    assert "model.envelope_p: must be >= 2 (got 1)" in err and "missing.npz" not in err
