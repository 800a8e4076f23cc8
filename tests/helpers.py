"""Small models shared by the tests; structures come from tfpot.testing.structures."""

import torch

import tfpot
from tfpot.builder import model_from_config

SPECIES = ["H", "C", "N", "O", "Cu"]


def make_model(message="mlp", dtype=torch.float64, **hyper):
    """A small model whose frame path is active (the gates open on generic environments).

    ``parity="average"``: the mirror-averaged mode of tfpot < 0.2, which only loads (as from an
    old file): the SO(3)-only model of the same seed, averaged over X and -X.
    """
    legacy_average = hyper.get("parity") == "average"
    if legacy_average:
        hyper["parity"] = "none"
    settings = dict(preset="small", seed=3, message=message, dtype=dtype)
    settings.update(hyper)
    model = tfpot.build_model(SPECIES, cutoff=4.0, **settings)
    if legacy_average:
        averaged = model_from_config({**model.config, "parity": "average"}).to(dtype)
        averaged.load_state_dict(model.state_dict())
        model = averaged
    return model.eval()


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
