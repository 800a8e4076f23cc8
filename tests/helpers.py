"""Structures and small models shared by the tests."""

import numpy as np
import torch
from ase import Atoms
from ase.build import bulk, molecule

import tfpot

SPECIES = ["H", "C", "N", "O", "Cu"]


def make_model(message="mlp", dtype=torch.float64, **hyper):
    """A small model whose frame path is active (the gates open on generic environments)."""
    settings = dict(preset="small", seed=3, message=message, dtype=dtype)
    settings.update(hyper)
    return tfpot.build_model(SPECIES, cutoff=4.0, **settings).eval()


def ethanol() -> Atoms:
    a = molecule("CH3CH2OH")
    a.rattle(0.02, seed=1)
    return a


def triclinic_cu(n_rattle=0.05, seed=0) -> Atoms:
    """A small triclinic periodic Cu/O cell, smaller than twice the cutoff."""
    a = bulk("Cu", "fcc", a=3.6).repeat((2, 2, 2))
    cell = np.array(a.get_cell())
    cell[2] += 0.4 * cell[0] - 0.2 * cell[1]
    a.set_cell(cell, scale_atoms=True)
    a.symbols[3] = "O"
    a.rattle(n_rattle, seed=seed)
    return a


def flip_bit(path, needle: bytes, bit: int = 0) -> int:
    """Flip one bit of the file at ``path`` inside the first occurrence of ``needle`` (the raw
    bytes of a tensor, say), as a bad disk or a faulty copy would; returns the byte offset."""
    data = bytearray(open(path, "rb").read())
    at = data.find(needle)
    assert at >= 0, "needle not found in the file"
    assert data.find(needle, at + 1) < 0, "needle is not unique in the file"
    offset = at + len(needle) // 2
    data[offset] ^= 1 << bit
    with open(path, "wb") as f:
        f.write(data)
    return offset


def flip_bit_in_zip_entry(path, contains: str = "/data/", bit: int = 0) -> str:
    """Flip one bit in the middle of the largest stored entry of a zip archive (``torch.save`` /
    TorchScript file) whose name contains ``contains`` (default: tensor storages); returns the
    entry's name."""
    import struct
    import zipfile

    with zipfile.ZipFile(path) as z:
        infos = [i for i in z.infolist() if contains in i.filename and i.file_size > 0]
        info = max(infos, key=lambda i: i.file_size)
    data = bytearray(open(path, "rb").read())
    header = struct.unpack_from("<IHHHHHIIIHH", data, info.header_offset)
    start = info.header_offset + 30 + header[9] + header[10]
    data[start + info.file_size // 2] ^= 1 << bit
    with open(path, "wb") as f:
        f.write(data)
    return info.filename
