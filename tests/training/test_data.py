"""The data check of a training config (training/data.py check_data / verify_data) and of fit():
whole files, test part included, every LMDB record decoded, all problems listed."""

import lmdb
import numpy as np
import pytest

import tfpot
from tfpot.data import read_structures, write_lmdb
from tfpot.data.check import DataCheckError
from tfpot.data.demo import demo_dataset_path
from tfpot.data.lmdb_store import close_environments, record_key
from tfpot.training import fit
from tfpot.training.config import DataConfig
from tfpot.training.data import check_data, verify_data


@pytest.fixture(scope="module")
def frames():
    return read_structures(demo_dataset_path())[:20]


def corrupt(store, indices):
    close_environments()                                 # readers of this process re-open
    env = lmdb.open(str(store), subdir=False, lock=False)
    with env.begin(write=True) as txn:
        for i in indices:
            value = bytearray(txn.get(record_key(i)))
            value[-5] ^= 0x01                             # one bit of the last array
            txn.put(record_key(i), bytes(value))
    env.close()


def test_every_lmdb_record_is_verified(tmp_path, frames):
    store = tmp_path / "data.lmdb"
    write_lmdb(frames, store)
    cfg = DataConfig(path=str(store), cutoff=4.0)
    clean = check_data(cfg, ("energy", "forces"))
    assert clean.ok and clean.frames == 20                # negative control
    corrupt(store, [4, 17])
    check = check_data(cfg, ("energy", "forces"))
    assert check.frames == 20 and check.bad_frames == 2   # read on past the first bad record
    assert check.problems == [
        "data.lmdb, record 4: corrupt (checksum mismatch); rewrite the store with `tfpot convert`",
        "data.lmdb, record 17: corrupt (checksum mismatch); rewrite the store with `tfpot convert`"]
    with pytest.raises(DataCheckError, match=r"record 4: .* \(and 1 more problem; list them all"):
        verify_data(cfg, ("energy",), None)


def test_separate_files_all_checked(tmp_path, frames):
    import ase.io

    ase.io.write(tmp_path / "train.xyz", frames[:10], format="extxyz")
    ase.io.write(tmp_path / "val.xyz", frames[10:15], format="extxyz")
    bad = [a.copy() for a in frames[15:]]
    for a, b in zip(bad, frames[15:]):
        a.calc = b.calc
    bad[2].positions[0] = bad[2].positions[1]
    ase.io.write(tmp_path / "test.xyz", bad, format="extxyz")
    cfg = DataConfig(train=str(tmp_path / "train.xyz"), val=str(tmp_path / "val.xyz"),
                     test=str(tmp_path / "test.xyz"), cutoff=4.0)
    lines = []
    with pytest.raises(DataCheckError, match=r"^test.xyz, frame 2: atoms 0 \(C\) and 1 \(C\) are "
                                             r"0 Å apart"):
        verify_data(cfg, ("energy",), [1, 6, 8], echo=lines.append)
    assert lines[0] == "data check: 20 frames, 180 atoms (9..9 per frame)"
    assert "  test.xyz, frame 2: atoms 0 (C) and 1 (C) are 0 Å apart, closer than the minimum " \
           "0.1 Å; remove the duplicate atom or fix the positions" in lines
    cfg.test = str(tmp_path / "missing.xyz")
    with pytest.raises(FileNotFoundError, match=r"^data.test: no such file \S*missing.xyz \(relative"):
        check_data(cfg)


def test_species_of_the_model(tmp_path, frames):
    import ase.io

    ase.io.write(tmp_path / "d.xyz", frames, format="extxyz")
    cfg = DataConfig(path=str(tmp_path / "d.xyz"), cutoff=4.0)
    assert check_data(cfg, species=[1, 6, 8]).ok
    check = check_data(cfg, species=[1, 6])
    assert check.num_problems == 20 and "element O is not one the model knows (H C)" in check.problems[0]


def test_fit_refuses_bad_structures(frames):
    model = tfpot.build_model(["H", "C", "O"], cutoff=4.0, preset="small", hidden=16,
                              num_layers=1, reps="8x0+2x1+1x2")
    train = [a.copy() for a in frames[:6]]
    for a, b in zip(train, frames[:6]):
        a.calc = b.calc
    train[3].positions[2] = train[3].positions[4]
    before = [p.detach().clone() for p in model.parameters()]
    with pytest.raises(DataCheckError, match=r"^train_atoms, structure 3: atoms 2 \(O\) and 4 "
                                             r"\(H\) are 0 Å apart"):
        fit(model, train, epochs=1)
    assert all(np.array_equal(a, b.detach()) for a, b in zip(before, model.parameters()))
