"""Small models and helpers shared by the tests (the LAMMPS halo algorithm in Python); structures
come from tfpot.testing.structures."""

import numpy as np
import torch
from ase import Atoms

import tfpot
from tfpot.builder import model_from_config
from tfpot.graph import neighbor_list

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


def one_cutoff_halo(atoms: Atoms, cutoff: float):
    """Positions of the atoms then of their periodic images within ``cutoff`` of the cell's
    atoms (the ghosts of a one-cutoff halo), and each position's owner."""
    cell = np.asarray(atoms.get_cell())
    pos0 = atoms.get_positions()
    reps = [int(np.ceil(cutoff * np.linalg.norm(np.linalg.inv(cell)[:, k]))) for k in range(3)]
    pos, owner = [pos0], [np.arange(len(atoms))]
    for shift in np.ndindex(*(2 * r + 1 for r in reps)):
        s = np.array(shift) - np.array(reps)
        if not s.any():
            continue
        p = pos0 + s @ cell
        near = np.linalg.norm(p[:, None, :] - pos0[None], axis=-1).min(1) < cutoff
        pos.append(p[near])
        owner.append(np.nonzero(near)[0])
    return np.concatenate(pos), np.concatenate(owner)


def halo_evaluation(module, model, atoms: Atoms, exchange: bool = True):
    """The pair style's algorithm in Python: stages on owned centres only, ghosts' states
    gathered from their owners between stages (the gather's backward sums ghost gradients into
    owners: the reverse exchange). Returns energy, per-atom energies, folded forces."""
    pos_np, owner = one_cutoff_halo(atoms, model.cutoff)
    n = len(atoms)
    nl = neighbor_list(pos_np, model.cutoff)
    ei = torch.tensor(nl.edge_index)
    ei = ei[:, ei[0] < n]  # owned centres only
    pos = torch.tensor(pos_np, requires_grad=True)
    species = model.species_index(torch.tensor(atoms.get_atomic_numbers()[owner]))
    ghost_owner = torch.tensor(owner[n:])
    vec = pos[ei[1]] - pos[ei[0]]
    state = torch.zeros(len(pos_np), 0, dtype=torch.float64)
    for t in range(model.num_layers):
        out = module.stage(t, vec, species, ei, n, state)
        if t < model.num_layers - 1:
            ghosts = out[ghost_owner] if exchange else torch.zeros(len(owner) - n, out.shape[1],
                                                                    dtype=out.dtype)
            state = torch.cat([out, ghosts], dim=0)
    energies = out
    (grad,) = torch.autograd.grad([energies.sum()], [pos])
    forces = np.zeros((n, 3))
    np.add.at(forces, owner, -grad.numpy())
    return float(energies.detach().sum()), energies.detach().numpy(), forces
