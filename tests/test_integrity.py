"""Checksums of model files, checkpoints and exports (tfpot/integrity.py): an intact file loads,
one flipped bit in a tensor or a changed setting is refused naming the file, files written
before 0.4 (no checksum) still load."""

import hashlib
import json
import struct
import zipfile

import pytest
import torch

import tfpot
from tfpot.errors import FileIntegrityError
from tfpot.export import METADATA_FILE, export_model, load_exported
from tfpot.integrity import (UNVERIFIED, VERIFIED, digest, encode, payload_digest, seal,
                             verify_payload)
from tfpot.training.checkpoint import load_checkpoint, save_checkpoint

from helpers import flip_bit

E0 = [-13.6123, -1029.4567, -2041.789]  # distinct values: their bytes occur once in a file


def model_with_e0():
    m = tfpot.build_model(["H", "C", "O"], cutoff=4.0, preset="small", hidden=16,
                          reps="8x0+2x1+1x2", seed=0)
    with torch.no_grad():
        m.readout.atomic_reference.copy_(torch.tensor(E0, dtype=torch.float64))
        m.readout.energy_scale.fill_(0.123456789)
    return m


def e0_bytes():
    return torch.tensor(E0, dtype=torch.float64).numpy().tobytes()


# ------------------------------------------------------------------------------ the encoding
def test_encoding_is_pinned():
    """The canonical encoding and its hash are a file format (the LAMMPS plugin computes the
    same): a change here breaks every checksum ever written."""
    value = {"b": [1, 2.5, "x", None, True], "a": torch.tensor([1.0, -2.0], dtype=torch.float64)}
    assert encode(1) == b"I" + (1).to_bytes(8, "little") + b"1"
    assert encode("ab") == b"S" + (2).to_bytes(8, "little") + b"ab"
    assert encode(0.5) == b"F" + bytes.fromhex("000000000000e03f")
    assert digest(value) == digest({"a": value["a"], "b": value["b"]})  # key order irrelevant
    # the same bytes written out by hand from the spec in the module doc
    def u64(n):
        return n.to_bytes(8, "little")

    def s(text):
        return b"S" + u64(len(text)) + text.encode()

    tensor = (b"T" + s("float64") + b"L" + u64(1) + b"I" + u64(1) + b"2" + u64(16)
              + struct.pack("<2d", 1.0, -2.0))
    items = (b"L" + u64(5) + b"I" + u64(1) + b"1" + b"F" + struct.pack("<d", 2.5) + s("x")
             + b"N" + b"B\x01")
    spec = b"D" + u64(2) + s("a") + tensor + s("b") + items
    assert digest(value) == "sha256:" + hashlib.sha256(spec).hexdigest()


def test_digest_sees_every_kind_of_change():
    base = {"w": torch.arange(6, dtype=torch.float64).reshape(2, 3), "h": {"p": 6}, "s": 1.0}
    d0 = digest(base)
    changes = [
        {**base, "w": base["w"].reshape(3, 2)},              # shape
        {**base, "w": base["w"].float()},                    # dtype
        {**base, "h": {"p": 7}},                             # hyperparameter
        {**base, "s": 1.0 + 2 ** -52},                        # last bit of a float
        {**base, "x": None},                                 # an added entry
    ]
    w = base["w"].clone()
    w.view(torch.int64)[1, 1] ^= 1                           # one bit of one tensor element
    changes.append({**base, "w": w})
    for changed in changes:
        assert digest(changed) != d0


# ------------------------------------------------------------------------------ model files
def test_model_file_checksum(tmp_path):
    path = tmp_path / "model.pt"
    model_with_e0().save(path)
    payload = torch.load(path, weights_only=True)
    assert payload["checksum"].startswith("sha256:")
    assert verify_payload(payload, path, "model file", "-") == VERIFIED
    loaded = tfpot.load_model(path)                          # negative control: intact loads
    assert loaded.readout.atomic_reference.tolist() == E0

    flip_bit(path, e0_bytes(), bit=3)                        # one bit of E0 on disk
    with pytest.raises(FileIntegrityError) as err:
        tfpot.load_model(path)
    msg = str(err.value)
    assert msg.startswith(f"{path}: model file fails its checksum") and "\n" not in msg
    assert "restore it from a copy or retrain" in msg


def test_model_file_energy_scale_bit_refused(tmp_path):
    path = tmp_path / "model.pt"
    model_with_e0().save(path)
    flip_bit(path, torch.tensor(0.123456789, dtype=torch.float64).numpy().tobytes(), bit=5)
    with pytest.raises(FileIntegrityError, match="fails its checksum"):
        tfpot.load_model(path)


def test_model_file_changed_hyperparameter_refused(tmp_path):
    path = tmp_path / "model.pt"
    model_with_e0().save(path)
    payload = torch.load(path, weights_only=True)
    payload["hyperparameters"]["avg_num_neighbors"] = 11.0   # edited without re-sealing
    torch.save(payload, path)
    with pytest.raises(FileIntegrityError, match="fails its checksum"):
        tfpot.load_model(path)


def test_model_file_without_checksum_loads(tmp_path):
    """A tfpot 0.3 file (no checksum entry) loads as before, and is reported unverified."""
    path = tmp_path / "old.pt"
    model_with_e0().save(path)
    payload = torch.load(path, weights_only=True)
    del payload["checksum"]
    torch.save(payload, path)
    assert verify_payload(payload, path, "model file", "-") == UNVERIFIED
    assert tfpot.load_model(path).readout.atomic_reference.tolist() == E0


def test_model_file_with_nan_weights_refused(tmp_path):
    path = tmp_path / "nan.pt"
    m = model_with_e0()
    with torch.no_grad():
        next(m.parameters()).view(-1)[0] = float("nan")
    m.save(path)                                             # sealed: the checksum matches
    with pytest.raises(FileIntegrityError, match="hold NaN or infinite values"):
        tfpot.load_model(path)


def test_torn_model_file_refused(tmp_path):
    path = tmp_path / "model.pt"
    model_with_e0().save(path)
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(FileIntegrityError, match=r"not a readable tfpot model file") as err:
        tfpot.load_model(path)
    assert "\n" not in str(err.value)


# ------------------------------------------------------------------------------ checkpoints
def test_checkpoint_checksum(tmp_path):
    path = tmp_path / "checkpoint.pt"
    state = {"model_state": {"atomic_reference": torch.tensor(E0, dtype=torch.float64)},
             "progress": {"epoch": 3}, "optimizer": {"state": {0: {"step": torch.tensor(5.0)}},
                                                     "param_groups": [{"lr": 0.01, "params": [0]}]}}
    save_checkpoint(state, path)
    assert load_checkpoint(path)["progress"]["epoch"] == 3   # intact loads
    flip_bit(path, e0_bytes())
    with pytest.raises(FileIntegrityError) as err:
        load_checkpoint(path)
    assert str(err.value).startswith(f"{path}: checkpoint fails its checksum")


def test_checkpoint_without_checksum_loads(tmp_path):
    path = tmp_path / "checkpoint.pt"
    save_checkpoint({"progress": {"epoch": 1}}, path)
    payload = torch.load(path, weights_only=True)
    del payload["checksum"]
    torch.save(payload, path)
    assert load_checkpoint(path)["progress"]["epoch"] == 1


def test_half_written_checkpoint_one_line_error(tmp_path):
    path = tmp_path / "checkpoint.pt"
    save_checkpoint({"w": torch.zeros(1000, dtype=torch.float64)}, path)
    path.write_bytes(path.read_bytes()[:3000])
    with pytest.raises(FileIntegrityError) as err:
        load_checkpoint(path)
    msg = str(err.value)
    assert msg.startswith(f"{path}: not a readable checkpoint, torn or truncated") and "\n" not in msg


def test_seal_is_idempotent():
    p = {"a": 1}
    seal(p)
    first = p["checksum"]
    seal(p)
    assert p["checksum"] == first == payload_digest({"a": 1})


# ------------------------------------------------------------------------------ exports
def test_export_checksum(tmp_path):
    path = tmp_path / "export.pt"
    meta = export_model(model_with_e0(), path)
    assert meta["checksum"].startswith("sha256:")
    module, loaded = load_exported(path)                     # intact loads
    assert loaded["checksum"] == meta["checksum"]

    flip_bit(path, e0_bytes(), bit=1)
    with pytest.raises(FileIntegrityError) as err:
        load_exported(path)
    assert str(err.value).startswith(f"{path}: export fails its checksum")
    assert "tfpot export" in str(err.value)


def test_export_changed_metadata_refused(tmp_path):
    path = tmp_path / "export.pt"
    export_model(model_with_e0(), path)
    module = torch.jit.load(str(path))
    extra = {METADATA_FILE: ""}
    torch.jit.load(str(path), _extra_files=extra)
    meta = json.loads(extra[METADATA_FILE])
    meta["ghost_cutoff"] = 4.0                               # a thinner ghost shell
    torch.jit.save(module, str(path), _extra_files={METADATA_FILE: json.dumps(meta)})
    with pytest.raises(FileIntegrityError, match="fails its checksum"):
        load_exported(path)
    del meta["checksum"]                                     # a pre-0.4 export: loads
    torch.jit.save(module, str(path), _extra_files={METADATA_FILE: json.dumps(meta)})
    assert load_exported(path)[1]["ghost_cutoff"] == 4.0


def test_export_archive_is_zip_with_metadata(tmp_path):
    path = tmp_path / "export.pt"
    export_model(model_with_e0(), path)
    names = zipfile.ZipFile(path).namelist()
    assert any(n.endswith("extra/" + METADATA_FILE) for n in names)
