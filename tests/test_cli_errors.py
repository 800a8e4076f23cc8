"""The bad-input catalogue (README "Bad input"): each bad input gives one line
``tfpot COMMAND: error: ...`` on stderr and exit code 1 — never a traceback, a NaN result or
exit 0. ``{tmp}`` stands for the test's directory; ``{sha}`` for a checksum prefix."""

import re
import shutil

import ase.io
import lmdb
import numpy as np
import pytest
import torch
import yaml
from ase import Atoms
from ase.calculators.singlepoint import SinglePointCalculator

import tfpot
from tfpot.cli import main
from tfpot.data import random_split, read_structures, write_lmdb
from tfpot.data.demo import demo_dataset_path
from tfpot.data.lmdb_store import record_key

from helpers import flip_bit, flip_bit_in_zip_entry

E0 = [-13.6123, -1029.4567, -2041.789]


@pytest.fixture(scope="module")
def frames():
    return read_structures(demo_dataset_path())[:40]


def write_xyz(path, frames):
    ase.io.write(path, frames, format="extxyz")
    return path


def config(tmp_path, data_path, **data):
    cfg = {"seed": 1, "device": "cpu", "output_dir": str(tmp_path / "run"),
           "data": {"path": str(data_path), "split": {"train": 24, "val": 8, "test": 8},
                    "cutoff": 4.0, **data},
           "model": {"preset": "small", "hidden": 16, "num_layers": 1, "reps": "16x0+4x1+2x2"},
           "training": {"max_epochs": 1, "batch_size": 4},
           "logging": {"progress_bar": False, "tensorboard": False}}
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(cfg))
    return path


def model_file(tmp_path):
    m = tfpot.build_model(["H", "C", "O"], cutoff=4.0, preset="small", hidden=16,
                          reps="8x0+2x1+1x2", seed=0)
    with torch.no_grad():
        m.readout.atomic_reference.copy_(torch.tensor(E0, dtype=torch.float64))
    path = tmp_path / "model.pt"
    m.save(path)
    return path


def e0_bytes():
    return torch.tensor(E0, dtype=torch.float64).numpy().tobytes()


def run(capsys, argv, tmp_path):
    code = main([str(a) for a in argv])
    err = capsys.readouterr().err.strip().splitlines()
    line = err[-1].replace(str(tmp_path), "{tmp}") if err else ""
    return code, line


def check(code, line, expected):
    assert code == 1, f"exit code {code}, stderr {line!r}"
    pattern = re.escape(expected).replace(re.escape("{sha}"), r"sha256:[0-9a-f]{12}\.\.\.")
    pattern = pattern.replace(re.escape("{any}"), r".*")
    assert re.fullmatch(pattern, line), f"\n got: {line}\nwant: {expected}"


# ---------------------------------------------------------------- 1. overlapping atoms
def test_overlapping_atoms(tmp_path, capsys, frames):
    bad = [f.copy() for f in frames]
    for a, b in zip(bad, frames):
        a.calc = b.calc
    bad[7].positions[3] = bad[7].positions[5]
    data = write_xyz(tmp_path / "overlap.xyz", bad)
    msg = ("overlap.xyz, frame 7: atoms 3 (H) and 5 (H) are 0 Å apart, closer than the minimum "
           "0.1 Å; remove the duplicate atom or fix the positions")
    check(*run(capsys, ["train", config(tmp_path, data), "--quiet"], tmp_path),
          f"tfpot train: error: {msg} (list them all with `tfpot train --check-data CONFIG`)")
    assert not (tmp_path / "run").exists()                 # nothing trained, nothing written
    check(*run(capsys, ["train", config(tmp_path, data), "--check-data"], tmp_path),
          f"tfpot train: error: {msg} (all listed above)")
    check(*run(capsys, ["convert", data, "-o", tmp_path / "o.lmdb"], tmp_path),
          f"tfpot convert: error: {msg} (nothing was written; fix the frames and convert again)")
    assert not (tmp_path / "o.lmdb").exists()
    check(*run(capsys, ["eval", model_file(tmp_path), data], tmp_path),
          f"tfpot eval: error: {msg} (nothing was evaluated; fix or remove these frames)")
    # negative control: the same frames without the duplicate pass the check
    good = write_xyz(tmp_path / "good.xyz", frames)
    assert main(["train", str(config(tmp_path, good)), "--check-data"]) == 0
    assert "no problems" in capsys.readouterr().out


# ---------------------------------------------------------------- 2. a 0-atom frame
def test_empty_frame(tmp_path, capsys, frames):
    empty = Atoms()
    empty.calc = SinglePointCalculator(empty, energy=0.0, forces=np.zeros((0, 3)))
    data = write_xyz(tmp_path / "empty.xyz", frames[:5] + [empty] + frames[5:])
    msg = "empty.xyz, frame 5: no atoms; remove the frame"
    check(*run(capsys, ["train", config(tmp_path, data), "--quiet"], tmp_path),
          f"tfpot train: error: {msg} (list them all with `tfpot train --check-data CONFIG`)")
    check(*run(capsys, ["convert", data, "-o", tmp_path / "o.lmdb"], tmp_path),
          f"tfpot convert: error: {msg} (nothing was written; fix the frames and convert again)")
    check(*run(capsys, ["eval", model_file(tmp_path), data], tmp_path),
          f"tfpot eval: error: {msg} (nothing was evaluated; fix or remove these frames)")


# ---------------------------------------------------------------- 3. integrity of files
def test_flipped_bit_in_model_file(tmp_path, capsys):
    path = model_file(tmp_path)
    assert main(["eval", str(path), "tfpot:demo", "--batch-size", "64"]) == 0  # intact: fine
    capsys.readouterr()
    flip_bit(path, e0_bytes(), bit=2)
    msg = ("{tmp}/model.pt: model file fails its checksum (stored {sha}, content {sha}): the "
           "file is corrupt or was altered; restore it from a copy or retrain")
    check(*run(capsys, ["eval", path, "tfpot:demo"], tmp_path), f"tfpot eval: error: {msg}")
    check(*run(capsys, ["export", path, "-o", tmp_path / "x.pt"], tmp_path),
          f"tfpot export: error: {msg}")
    water = tmp_path / "water.xyz"
    ase.io.write(water, Atoms("OH2", positions=[[0, 0, 0], [0.96, 0, 0], [-0.24, 0.93, 0]]))
    check(*run(capsys, ["md", water, path, "--steps", "2"], tmp_path), f"tfpot md: error: {msg}")
    check(*run(capsys, ["relax", water, path], tmp_path), f"tfpot relax: error: {msg}")


def test_nan_model_file(tmp_path, capsys):
    """A model written by a diverged run of tfpot 0.3 (NaN weights, no checksum)."""
    path = model_file(tmp_path)
    payload = torch.load(path, weights_only=True)
    del payload["checksum"]
    for v in payload["state_dict"].values():
        if v.is_floating_point():
            v.fill_(float("nan"))
    torch.save(payload, path)
    check(*run(capsys, ["eval", path, "tfpot:demo"], tmp_path),
          "tfpot eval: error: {tmp}/model.pt: weights {any} hold NaN or infinite values (a "
          "diverged training run); retrain, or use an earlier model file")


def test_nonfinite_predictions(tmp_path, capsys):
    path = tmp_path / "huge.pt"
    m = tfpot.build_model(["H", "C", "O"], cutoff=4.0, preset="small", hidden=16)
    with torch.no_grad():
        m.readout.energy_scale.fill_(1e308)                       # finite, but predictions overflow
        m.readout.energy_shift.fill_(1e308)
    m.save(path)
    check(*run(capsys, ["eval", path, "tfpot:demo"], tmp_path),
          "tfpot eval: error: {tmp}/huge.pt: predictions on ethanol_gfn2.npz are not finite "
          "({any}); the model file is broken (retrain or use another) or these frames are "
          "outside anything it can describe")
    water = tmp_path / "water.xyz"
    ase.io.write(water, Atoms("OH2", positions=[[0, 0, 0], [0.96, 0, 0], [-0.24, 0.93, 0]]))
    check(*run(capsys, ["md", water, path, "--steps", "2"], tmp_path),
          "tfpot md: error: {tmp}/water.xyz: TFPotCalculator: the model's energy, free_energy "
          "are not finite for this structure; the model file is broken or the structure lies far "
          "outside its training data")


def stale(path):
    """A temporary file as a writer killed an hour ago leaves it."""
    import os
    import time

    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"\0" * 4096)
    old = time.time() - 3600
    os.utime(path, (old, old))
    return path


@pytest.fixture(scope="module")
def trained_run(tmp_path_factory, frames):
    tmp = tmp_path_factory.mktemp("run")
    data = write_xyz(tmp / "data.xyz", frames)
    cfg = config(tmp, data)
    left = stale(tmp / "run" / ".checkpoint.pt.a1b2c3d4.tmp")
    assert main(["train", str(cfg), "--quiet"]) == 0
    assert not left.exists()                              # removed at the start of training
    assert "removed .checkpoint.pt.a1b2c3d4.tmp" in (tmp / "run" / "train.log").read_text()
    return tmp


def test_corrupt_checkpoint_on_resume(tmp_path, capsys, trained_run):
    shutil.copytree(trained_run, tmp_path, dirs_exist_ok=True)
    cfg = tmp_path / "config.yaml"
    cfg.write_text(cfg.read_text().replace(str(trained_run), str(tmp_path)))
    ckpt = tmp_path / "run" / "checkpoint.pt"
    flip_bit_in_zip_entry(ckpt, bit=4)
    check(*run(capsys, ["train", cfg, "--resume"], tmp_path),
          "tfpot train: error: {tmp}/run/checkpoint.pt: checkpoint fails its checksum (stored "
          "{sha}, content {sha}): the file is corrupt or was altered; restore it from a copy, "
          "or start a new run in another output_dir (the models written so far stay usable)")
    ckpt.write_bytes(ckpt.read_bytes()[:20000])           # a half-written checkpoint
    check(*run(capsys, ["train", cfg, "--resume"], tmp_path),
          "tfpot train: error: {tmp}/run/checkpoint.pt: not a readable checkpoint, torn or "
          "truncated ({any}); restore it from a copy, or start a new run in another output_dir "
          "(the models written so far stay usable)")


# ---------------------------------------------------------------- 4. a corrupt LMDB record
def test_corrupt_lmdb_record_in_test_split(tmp_path, capsys, frames):
    store = tmp_path / "data.lmdb"
    write_lmdb(frames, store)
    test_idx, _, _ = random_split(len(frames), [8, 8, 24], seed=1)  # as data.split, seed 1
    bad = int(test_idx[0])
    env = lmdb.open(str(store), subdir=False, lock=False)
    with env.begin(write=True) as txn:
        value = bytearray(txn.get(record_key(bad)))
        value[100] ^= 0x10
        txn.put(record_key(bad), bytes(value))
    env.close()
    check(*run(capsys, ["train", config(tmp_path, store), "--quiet"], tmp_path),
          f"tfpot train: error: data.lmdb, record {bad}: corrupt (checksum mismatch); rewrite the "
          f"store with `tfpot convert` (list them all with `tfpot train --check-data CONFIG`)")
    assert not (tmp_path / "run").exists()                 # found before any epoch


# ---------------------------------------------------------------- 5. malformed data files
@pytest.mark.parametrize("edit, message", [
    (lambda f: f[3].calc.results["forces"].__setitem__((2, 0), np.nan),
     "nan.xyz, frame 3, atom 2: force is not finite (nan, {any}); fix or remove the frame"),
])
def test_nan_force(tmp_path, capsys, frames, edit, message):
    bad = [f.copy() for f in frames]
    for a, b in zip(bad, frames):
        a.calc = SinglePointCalculator(a, **{k: np.array(v, copy=True) if isinstance(v, np.ndarray)
                                             else v for k, v in b.calc.results.items()})
    edit(bad)
    data = write_xyz(tmp_path / "nan.xyz", bad)
    check(*run(capsys, ["train", config(tmp_path, data), "--quiet"], tmp_path),
          f"tfpot train: error: {message} (list them all with `tfpot train --check-data CONFIG`)")


@pytest.mark.parametrize("change, message", [
    (lambda L: L[:14] + [L[14].rstrip("\n") + " 0.5\n"] + L[15:],
     "bad.xyz, frame 1, line 15 (atom 1): 8 columns, but Properties={any} declares 7; fix the "
     "line or the Properties of the frame"),
    (lambda L: L[:14] + [re.sub(r"\S+\n$", "abc\n", L[14])] + L[15:],
     "bad.xyz, frame 1, line 15 (atom 1): column 7 (forces) is 'abc', not a real number; fix "
     "the value"),
], ids=["extra-column", "not-a-number"])
def test_malformed_extxyz_line(tmp_path, capsys, frames, change, message):
    data = write_xyz(tmp_path / "bad.xyz", frames)
    data.write_text("".join(change(data.read_text().splitlines(True))))
    check(*run(capsys, ["train", config(tmp_path, data), "--quiet"], tmp_path),
          f"tfpot train: error: {message} (list them all with `tfpot train --check-data CONFIG`)")
    check(*run(capsys, ["convert", data, "-o", tmp_path / "o.lmdb"], tmp_path),
          f"tfpot convert: error: {message}")


def test_convert_demo_token(tmp_path, capsys):
    assert main(["convert", "tfpot:demo", "-o", str(tmp_path / "demo.lmdb")]) == 0
    assert "wrote" in capsys.readouterr().out


# ---------------------------------------------------------------- temporary files
def test_stale_temp_files_removed_at_next_start(tmp_path, capsys):
    left = stale(tmp_path / ".demo.lmdb.k2j4h5g6.tmp")    # what a killed convert leaves
    other = stale(tmp_path / ".other.lmdb.k2j4h5g6.tmp")  # another target's: not touched
    assert main(["convert", "tfpot:demo", "-o", str(tmp_path / "demo.lmdb")]) == 0
    assert f"removed {left}" in capsys.readouterr().out
    assert not left.exists() and other.exists()
    left = stale(tmp_path / ".model.pt.q9w8e7r6.tmp")     # what a killed export leaves
    assert main(["export", str(model_file(tmp_path / "m")), "-o", str(tmp_path / "model.pt")]) == 0
    assert f"removed {left}" in capsys.readouterr().out and not left.exists()
    assert other.exists() and (tmp_path / "model.pt").exists()
