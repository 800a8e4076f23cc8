"""LMDB store: exact round trips (float64 bit-for-bit), streaming, atomic writes, workers, and
clear refusals of truncated, corrupt, foreign and wrong-version files."""

import json
import os

import lmdb
import numpy as np
import pytest
import torch
from ase import Atoms
from ase.calculators.singlepoint import SinglePointCalculator

from tfpot.data import DataFormatError, LmdbDataset, make_loader, read_header, read_structures, write_lmdb
from tfpot.data import lmdb_store
from tfpot.data.datasets import atoms_to_data


def small_molecules(n, seed=0):
    """n perturbed water molecules with fake labels (a generator: consumed once)."""
    rng = np.random.default_rng(seed)
    base = np.array([[0, 0, 0], [0.96, 0, 0], [-0.24, 0.93, 0]])
    for k in range(n):
        atoms = Atoms("OH2", positions=base + 0.05 * rng.standard_normal((3, 3)))
        atoms.calc = SinglePointCalculator(atoms, energy=-14.0 + 0.1 * rng.standard_normal(),
                                           forces=rng.standard_normal((3, 3)))
        atoms.info["k"] = k
        yield atoms


def test_round_trip_is_exact(tmp_path, labelled_structures):
    path = tmp_path / "mixed.lmdb"
    header = write_lmdb(labelled_structures, path)
    assert header["count"] == 3 and header["elements"] == [1, 6, 29]
    assert header["labels"] == {"energy": 3, "forces": 3, "stress": 1}
    assert header["units"]["energy"] == "eV" and header["units"]["stress"] == "eV/Å^3"
    ds = LmdbDataset(path)
    assert len(ds) == 3
    for a, b in zip(labelled_structures, ds):
        np.testing.assert_array_equal(a.numbers, b.numbers)
        np.testing.assert_array_equal(a.positions, b.positions)  # float64, bit for bit
        np.testing.assert_array_equal(a.cell.array, b.cell.array)
        np.testing.assert_array_equal(a.pbc, b.pbc)
        assert a.get_potential_energy() == b.get_potential_energy()
        np.testing.assert_array_equal(a.get_forces(), b.get_forces())
    np.testing.assert_array_equal(ds[1].get_stress(voigt=False),
                                  labelled_structures[1].get_stress(voigt=False))
    assert ds[0].info == {"tag": "methane", "charge": 0, "weight": 0.5}
    np.testing.assert_array_equal(ds[1].info["frequencies"], [1.0, 2.0, 3.0])
    np.testing.assert_array_equal(ds[2].arrays["mulliken_charges"], [0.1, -0.1])
    assert ds[-1].get_chemical_formula() == "Cu2"
    with pytest.raises(IndexError, match="index 3 out of range for mixed.lmdb with 3 structures"):
        ds[3]
    np.testing.assert_array_equal(ds.num_atoms(), [5, 4, 2])
    # read_structures recognises the store
    assert [a.get_potential_energy() for a in read_structures(path)] == [-24.123456789012345, -14.5, -6.0]


def test_graphs_from_cached_edges_equal_fresh_graphs(tmp_path, labelled_structures):
    path = tmp_path / "cached.lmdb"
    write_lmdb(labelled_structures, path, cutoff=4.0)
    for cutoff in (4.0, 3.0, 5.0):  # equal to, smaller and larger than the cached cutoff
        ds = LmdbDataset(path, cutoff=cutoff)
        for atoms, g in zip(labelled_structures, ds):
            ref = atoms_to_data(atoms, cutoff, pad_targets=ds.pad_targets)
            got = {(i, j, tuple(np.round(s, 9))) for (i, j), s in
                   zip(g.edge_index.T.tolist(), g.shifts.numpy())}
            want = {(i, j, tuple(np.round(s, 9))) for (i, j), s in
                    zip(ref.edge_index.T.tolist(), ref.shifts.numpy())}
            assert got == want and len(got) > 0
            assert g.energy.dtype == torch.float64 and g.energy.shape == (1,)
            assert torch.equal(g.has_stress, ref.has_stress)


def test_dataloader_with_two_workers(tmp_path):
    path = tmp_path / "water.lmdb"
    ref = list(small_molecules(40))
    write_lmdb(iter(ref), path, cutoff=3.0)
    ds = LmdbDataset(path, cutoff=3.0)
    _ = ds[0]  # the parent has an open handle before the workers fork
    loader = make_loader(ds, batch_size=8, num_workers=2)
    energies, n_graphs = [], 0
    for batch in loader:
        assert batch.cell.shape == (batch.num_graphs, 3, 3) and batch.pbc.shape == (batch.num_graphs, 3)
        assert int(batch.edge_index.max()) < batch.pos.shape[0]  # offsets applied per graph
        energies.append(batch.energy)
        n_graphs += batch.num_graphs
    assert n_graphs == 40
    np.testing.assert_array_equal(torch.cat(energies).numpy(),
                                  [a.get_potential_energy() for a in ref])


def test_streaming_writes_in_chunks_and_grows_the_map(tmp_path, monkeypatch):
    monkeypatch.setattr(lmdb_store, "_INITIAL_MAP_SIZE", 64 * 1024)  # forces several regrowths
    path = tmp_path / "stream.lmdb"
    consumed = []

    def gen():
        for atoms in small_molecules(500):
            consumed.append(1)
            yield atoms

    header = write_lmdb(gen(), path, commit_every=64)
    assert header["count"] == 500 == len(consumed)
    ds = LmdbDataset(path)
    assert ds[499].info["k"] == 499
    stats = ds.statistics
    assert stats.num_structures == 500 and stats.force_rms == pytest.approx(1.0, rel=0.1)
    assert sorted(os.listdir(tmp_path)) == ["stream.lmdb"]  # no temp or lock files left


def test_write_is_atomic(tmp_path):
    path = tmp_path / "data.lmdb"
    write_lmdb(small_molecules(5), path)

    def failing():
        yield from small_molecules(10)
        raise RuntimeError("reader crashed")

    with pytest.raises(RuntimeError, match="reader crashed"):
        write_lmdb(failing(), path, commit_every=3)
    assert sorted(os.listdir(tmp_path)) == ["data.lmdb"]  # temp file removed
    assert len(LmdbDataset(path)) == 5  # the old store is intact
    with pytest.raises(ValueError, match="no structures to write"):
        write_lmdb([], tmp_path / "empty.lmdb")
    assert not (tmp_path / "empty.lmdb").exists()


def test_float32_store_keeps_energy_float64(tmp_path, labelled_structures):
    path = tmp_path / "f32.lmdb"
    write_lmdb(labelled_structures, path, float_dtype="float32")
    rec = LmdbDataset(path).record(0)
    assert rec["positions"].dtype == np.float32 and rec["energy"].dtype == np.float64
    assert float(rec["energy"]) == -24.123456789012345


# ------------------------------------------------------------------------------ bad files --

@pytest.fixture
def store(tmp_path):
    path = tmp_path / "good.lmdb"
    write_lmdb(small_molecules(200), path)
    return path


def test_truncated_file(store):
    size = store.stat().st_size
    with open(store, "r+b") as fh:
        fh.truncate(size // 2)
    with pytest.raises(DataFormatError, match=r"good.lmdb: truncated \(\d+ bytes, but its index reaches byte \d+\)"):
        LmdbDataset(store)


def test_file_cut_inside_the_meta_pages(store):
    with open(store, "r+b") as fh:
        fh.truncate(100)
    with pytest.raises(DataFormatError, match=r"good.lmdb: not an LMDB file"):
        LmdbDataset(store)


def test_not_an_lmdb_file(tmp_path):
    path = tmp_path / "random.lmdb"
    path.write_bytes(np.random.default_rng(0).bytes(20000))
    with pytest.raises(DataFormatError, match=r"random.lmdb: not an LMDB file"):
        LmdbDataset(path)


def test_foreign_lmdb_without_header(tmp_path):
    path = tmp_path / "ocp.lmdb"
    env = lmdb.open(str(path), subdir=False, lock=False)
    with env.begin(write=True) as txn:
        txn.put(b"0", b"some pickled object")
        txn.put(b"length", b"1")
    env.close()
    with pytest.raises(DataFormatError, match=r"ocp.lmdb: an LMDB file, but not a tfpot store \(no '__tfpot_header__'"):
        LmdbDataset(path)


def _edit_header(path, **changes):
    env = lmdb.open(str(path), subdir=False, lock=False)
    with env.begin(write=True) as txn:
        header = json.loads(txn.get(lmdb_store.HEADER_KEY))
        header.update(changes)
        txn.put(lmdb_store.HEADER_KEY, json.dumps(header).encode())
    env.close()


def test_wrong_format_version(store):
    _edit_header(store, version=999)
    with pytest.raises(DataFormatError, match=r"good.lmdb: format version 999, but this tfpot reads version 1; upgrade tfpot"):
        read_header(store)


def test_wrong_format_name(store):
    _edit_header(store, format="other-lmdb")
    with pytest.raises(DataFormatError, match=r"header format is 'other-lmdb', expected 'tfpot-lmdb'"):
        LmdbDataset(store)


def test_count_mismatch(store):
    _edit_header(store, count=300)
    with pytest.raises(DataFormatError, match=r"header promises 300 records, the file holds 200"):
        LmdbDataset(store)


def test_corrupt_record_is_caught_by_checksum(store):
    data = bytearray(store.read_bytes())
    pos = data.find(lmdb_store.RECORD_MAGIC, len(data) // 3)  # some record in the middle
    assert pos > 0
    data[pos + 60] ^= 0xFF  # a byte inside that record's payload
    store.write_bytes(bytes(data))
    ds = LmdbDataset(store)
    errors = []
    for i in range(len(ds)):
        try:
            ds[i]
        except DataFormatError as e:
            errors.append(str(e))
    assert len(errors) == 1
    assert "good.lmdb, record" in errors[0] and "corrupt (checksum mismatch)" in errors[0]


def test_directory_and_missing_file(tmp_path):
    with pytest.raises(DataFormatError, match=r"a directory; a tfpot LMDB store is a single file"):
        LmdbDataset(tmp_path)
    with pytest.raises(FileNotFoundError, match=r"absent.lmdb: no such file"):
        LmdbDataset(tmp_path / "absent.lmdb")


# --------------------------------------------------------------------------------------- CLI --

def test_convert_cli(tmp_path, md17_file, qm9_dir, capsys):
    from tfpot.cli import main

    npz, (z, R, E, F) = md17_file
    out = tmp_path / "out.lmdb"
    assert main(["convert", str(npz), "-o", str(out), "--cutoff", "4.0"]) == 0
    printed = capsys.readouterr().out
    assert "6 structures, 54 atoms, elements H C O" in printed
    ds = LmdbDataset(out, cutoff=4.0)
    assert ds.header["cutoff"] == 4.0 and ds.header["sources"] == ["ethanol.npz"]
    assert ds[0].energy.item() == pytest.approx(E[0] * 0.0433641, rel=1e-6)  # kcal/mol -> eV
    out2 = tmp_path / "qm9.lmdb"
    assert main(["convert", str(qm9_dir), "-o", str(out2), "--target", "G"]) == 0
    assert "2 structures, 8 atoms" in capsys.readouterr().out
    assert LmdbDataset(out2)[1].get_potential_energy() == pytest.approx(-76.422349 * 27.211386, rel=1e-6)
    assert main(["convert", str(npz), "-o", str(tmp_path / "x.lmdb"), "--target", "U0"]) == 1
    assert "--target applies to QM9 data only" in capsys.readouterr().err
    assert not (tmp_path / "x.lmdb").exists()


def _sum_energies(path):
    ds = LmdbDataset(path)
    return sum(ds[i].get_potential_energy() for i in range(len(ds)))


def test_two_datasets_and_several_processes_share_one_file(store):
    import multiprocessing

    a, b = LmdbDataset(store), LmdbDataset(store, cutoff=3.0)  # two readers, one process
    assert a[3].get_potential_energy() == b[3].energy.item()
    assert len(read_structures(store)) == 200  # a third reader while both are open
    expected = _sum_energies(store)
    with multiprocessing.get_context("fork").Pool(2) as pool:
        sums = pool.map(_sum_energies, [store, store])
    assert sums == [expected, expected]  # bit-identical float64 sums in each process
