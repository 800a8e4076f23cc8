"""Shared pieces of the LAMMPS tests: models, structures, LAMMPS input/output, the ASE reference.

LAMMPS runs as a subprocess (``lmp`` / ``mpiexec -n N lmp``); energies and the virial are read
back from ``print`` lines and per-atom forces/energies from a ``dump`` file written with 17
digits, so float64 results compare exactly (no rounding in the transfer).
"""

from __future__ import annotations

import json
import math
import re
from pathlib import Path
from typing import Dict, List, Sequence

import numpy as np
import torch
from ase import Atoms
from ase.build import bulk, molecule
from ase.data import atomic_masses, atomic_numbers

from tfpot.calculators.lammps_build import run_lammps

SPECIES = (29, 28, 13, 1, 6, 8)  # Cu Ni Al H C O, the model's own order
CUTOFF = 3.5  # Å: first and second fcc shells
SKIN = 2.0  # Å, LAMMPS' default neighbour skin in metal units
NKTV2P_METAL = 1.6021765e6  # LAMMPS metal units: pressure (bar) = virial (eV) * nktv2p / volume
ALLOY_ELEMENTS = ("Cu", "Ni", "Al")
MOLECULE_ELEMENTS = ("H", "C", "O")
# LAMMPS against the ASE calculator, float64: absolute, eV, eV/Å and eV (virial)
EXACT = 1e-10


# ---------------------------------------------------------------------------------------------
# models


def small_model(dtype: str = "float64", num_layers: int = 2, parity: str = "equivariant",
                ensemble_channels: int = 0, ensemble_pairs: str = "ordered"):
    """A small tfpot model; energies scaled so that forces are O(1 eV/Å) as in a trained one
    (``ensemble_channels`` > 0: with the weighted frame ensemble of ``ensemble_pairs``)."""
    import tfpot

    model = tfpot.build_model(list(SPECIES), cutoff=CUTOFF, seed=0, preset="small", dtype=dtype,
                              num_layers=num_layers, reps="8x0+4x1+2x2", hidden=16, lmax=2,
                              ps_channels=4, num_basis=4, parity=parity,
                              ensemble_channels=ensemble_channels,
                              ensemble_pairs=ensemble_pairs).eval()
    with torch.no_grad():
        model.readout.energy_scale.fill_(300.0)
        model.readout.atomic_reference.copy_(torch.tensor([-3.7, -4.4, -3.4, -1.1, -1.3, -1.9]))
    return model


class StandInModule(torch.nn.Module):
    """A TorchScript module with the format-1 ``forward`` contract and no ``stage`` method:
    stands for files that the pair style must refuse (old exports, foreign files)."""

    def forward(self, pos: torch.Tensor, species: torch.Tensor, edge_index: torch.Tensor,
                nlocal: int):
        e = torch.zeros(pos.shape[0], dtype=torch.float64)
        return e.sum(), e, torch.zeros_like(pos)


def export_standin(path: Path, metadata: Dict | None = None, with_metadata: bool = True) -> Path:
    """Write a stand-in export whose metadata is format 2 unless ``metadata`` overrides keys."""
    module = torch.jit.script(StandInModule())
    from tfpot.export import lammps_metadata

    meta = lammps_metadata(SPECIES, CUTOFF, 2, "float64", 2, 48)  # the keys tfpot.export writes
    meta["tfpot_version"] = "stand-in"
    meta.update(metadata or {})
    extra = {"metadata.json": json.dumps(meta)} if with_metadata else {}
    torch.jit.save(module, str(path), _extra_files=extra)
    return path


def read_metadata(path: Path) -> Dict:
    extra = {"metadata.json": ""}
    torch.jit.load(str(path), _extra_files=extra)
    return json.loads(extra["metadata.json"])


# ---------------------------------------------------------------------------------------------
# structures


def alloy_cell(seed: int = 0) -> Atoms:
    """Triclinic, randomly perturbed fcc Cu/Ni/Al cell (48 atoms), LAMMPS-oriented cell.

    10.8 x 7.3 x 7.1 Å: narrower than twice the ghost shell (cutoff + skin = 5.5 Å) along every
    axis, so on one rank some atoms see two images of the same neighbour's ghost.
    """
    rng = np.random.default_rng(seed)
    base = bulk("Cu", "fcc", a=3.61, cubic=True).repeat((3, 2, 2))
    frac = base.get_scaled_positions()
    cell = np.array([[10.83, 0.0, 0.0], [0.9, 7.3, 0.0], [0.6, -0.5, 7.1]])  # rows a, b, c
    atoms = Atoms("Cu" * len(base), scaled_positions=frac, cell=cell, pbc=True)
    atoms.numbers = rng.choice([29, 28, 13], size=len(atoms), p=[0.5, 0.3, 0.2])
    atoms.positions += rng.normal(scale=0.08, size=atoms.positions.shape)
    atoms.wrap()
    return atoms


def tiny_cell(seed: int = 0) -> Atoms:
    """4-atom sheared fcc cell, 3.6 Å: smaller than the cutoff itself (atoms see own images)."""
    rng = np.random.default_rng(seed)
    cell = np.array([[3.61, 0.0, 0.0], [0.4, 3.55, 0.0], [-0.3, 0.2, 3.65]])
    frac = np.array([[0, 0, 0], [0.5, 0.5, 0], [0.5, 0, 0.5], [0, 0.5, 0.5]])
    atoms = Atoms("CuNiAlCu", scaled_positions=frac, cell=cell, pbc=True)
    atoms.positions += rng.normal(scale=0.06, size=atoms.positions.shape)
    atoms.wrap()
    return atoms


def molecule_in_box(seed: int = 0) -> Atoms:
    """Ethanol, non-periodic 20 Å box: with 2+ ranks some sub-domains own no atom."""
    rng = np.random.default_rng(seed)
    atoms = molecule("CH3CH2OH")
    atoms.positions += rng.normal(scale=0.05, size=atoms.positions.shape) + 10.0
    atoms.cell = np.diag([20.0, 20.0, 20.0])
    atoms.pbc = False
    return atoms


SYSTEMS = {"alloy": (alloy_cell, ALLOY_ELEMENTS), "tiny_cell": (tiny_cell, ALLOY_ELEMENTS),
           "molecule": (molecule_in_box, MOLECULE_ELEMENTS)}


# ---------------------------------------------------------------------------------------------
# LAMMPS input and output


def write_data(path: Path, atoms: Atoms, elements: Sequence[str]) -> None:
    """LAMMPS data file (atom_style atomic); the cell must already be lower triangular."""
    def num(v) -> str:
        return repr(float(v))  # shortest exact round-trip form

    cell = atoms.cell.array
    if abs(cell[0, 1]) + abs(cell[0, 2]) + abs(cell[1, 2]) > 0:
        raise ValueError(f"cell must be lower triangular (LAMMPS orientation), got {cell.tolist()}")
    lines = ["tfpot test structure", "", f"{len(atoms)} atoms", f"{len(elements)} atom types", "",
             f"0 {num(cell[0, 0])} xlo xhi", f"0 {num(cell[1, 1])} ylo yhi", f"0 {num(cell[2, 2])} zlo zhi"]
    if abs(cell[1, 0]) + abs(cell[2, 0]) + abs(cell[2, 1]) > 0:
        lines.append(f"{num(cell[1, 0])} {num(cell[2, 0])} {num(cell[2, 1])} xy xz yz")
    lines += ["", "Masses", ""]
    lines += [f"{t + 1} {num(atomic_masses[atomic_numbers[el]])}" for t, el in enumerate(elements)]
    lines += ["", "Atoms # atomic", ""]
    type_of = {atomic_numbers[el]: t + 1 for t, el in enumerate(elements)}
    for k, (z, p) in enumerate(zip(atoms.numbers, atoms.positions)):
        lines.append(f"{k + 1} {type_of[z]} {num(p[0])} {num(p[1])} {num(p[2])}")
    path.write_text("\n".join(lines) + "\n")


def lmp_run(workdir: Path, script: str, nprocs: int = 1, timeout: float = 300):
    workdir.mkdir(parents=True, exist_ok=True)
    (workdir / "in.test").write_text(script)
    return run_lammps("in.test", nprocs=nprocs, cwd=workdir, log="log.lammps", timeout=timeout)


def lmp_ok(workdir: Path, script: str, nprocs: int = 1):
    proc = lmp_run(workdir, script, nprocs)
    if proc.returncode != 0:
        raise AssertionError(f"LAMMPS failed (rc={proc.returncode}) in {workdir}:\n"
                             f"{proc.stdout[-4000:]}\n{proc.stderr[-4000:]}")
    return proc


def setup_lines(plugin: Path, periodic: bool = True, pair: str = "pair_style tfpot",
                coeff: str = "") -> str:
    boundary = "p p p" if periodic else "f f f"
    return f"""
plugin load {plugin}
units metal
atom_style atomic
boundary {boundary}
read_data data.lmp
{pair}
{coeff}
"""


EVAL_OUTPUT = """
compute peatom all pe/atom
compute pvir all pressure NULL virial
dump d all custom 1 forces.dump id type x y z fx fy fz c_peatom
dump_modify d sort id format float %.17g
thermo_style custom step pe vol c_pvir[1] c_pvir[2] c_pvir[3] c_pvir[4] c_pvir[5] c_pvir[6]
thermo_modify format float %.17g
run 0
print "TFPOT_PE $(pe:%.17g)"
print "TFPOT_VOL $(vol:%.17g)"
print "TFPOT_PVIR $(c_pvir[1]:%.17g) $(c_pvir[2]:%.17g) $(c_pvir[3]:%.17g) $(c_pvir[4]:%.17g) $(c_pvir[5]:%.17g) $(c_pvir[6]:%.17g)"
"""


def eval_script(plugin: Path, model: Path, elements: Sequence[str], periodic: bool,
                pair_style: str = "pair_style tfpot", pre: str = "") -> str:
    return (setup_lines(plugin, periodic, pre + "\n" + pair_style,
                        f"pair_coeff * * {model} {' '.join(elements)}") + EVAL_OUTPUT)


def read_dump(path: Path) -> Dict[str, np.ndarray]:
    """The last frame of a ``dump custom`` file: a column array per name, and the box."""
    lines = path.read_text().splitlines()
    starts = [k for k, line in enumerate(lines) if line.startswith("ITEM: TIMESTEP")]
    frame = lines[starts[-1]:]
    atoms_at = next(k for k, line in enumerate(frame) if line.startswith("ITEM: ATOMS"))
    names = frame[atoms_at].split()[2:]
    rows = np.array([[float(v) for v in line.split()] for line in frame[atoms_at + 1:]])
    out = {name: rows[:, k] for k, name in enumerate(names)}
    out["step"] = np.array(int(frame[1]))
    out["box_header"] = np.array(frame[4])
    out["box"] = np.array([[float(v) for v in frame[k].split()] for k in (5, 6, 7)])
    return out


def parse_eval(workdir: Path, stdout: str) -> Dict[str, np.ndarray]:
    values = {}
    for key in ("PE", "VOL", "PVIR"):
        m = re.search(rf"^TFPOT_{key} (.+)$", stdout, re.MULTILINE)
        assert m, f"no TFPOT_{key} line in LAMMPS output:\n{stdout[-3000:]}"
        values[key] = np.array([float(v) for v in m.group(1).split()])
    dump = read_dump(workdir / "forces.dump")
    pv = values["PVIR"]  # xx yy zz xy xz yz, bar
    w = pv * values["VOL"][0] / NKTV2P_METAL
    virial = np.array([[w[0], w[3], w[4]], [w[3], w[1], w[5]], [w[4], w[5], w[2]]])
    return {"energy": float(values["PE"][0]), "virial": virial,
            "forces": np.stack([dump["fx"], dump["fy"], dump["fz"]], axis=1),
            "positions": np.stack([dump["x"], dump["y"], dump["z"]], axis=1),
            "energies": dump["c_peatom"], "ids": dump["id"].astype(int)}


def lammps_eval(plugin, model, atoms, elements, workdir: Path, nprocs: int = 1,
                pair_style: str = "pair_style tfpot", pre: str = ""):
    workdir.mkdir(parents=True, exist_ok=True)
    write_data(workdir / "data.lmp", atoms, elements)
    proc = lmp_ok(workdir, eval_script(plugin, model, elements, bool(atoms.pbc.any()),
                                       pair_style, pre), nprocs)
    return parse_eval(workdir, proc.stdout), proc


def thermo_table(log: str, columns: Sequence[str]) -> np.ndarray:
    """Rows of the thermo table(s) whose header is ``columns`` in a LAMMPS log."""
    rows: List[List[float]] = []
    in_table = False
    for line in log.splitlines():
        words = line.split()
        if words == list(columns):
            in_table = True
            continue
        if in_table:
            try:
                values = [float(w) for w in words]
            except ValueError:
                values = []
            if len(values) != len(columns):
                in_table = False
                continue
            rows.append(values)
    assert rows, f"no thermo table with columns {list(columns)} in the log"
    return np.array(rows)


def printed(stdout: str, key: str) -> np.ndarray:
    """Numbers of every ``print "KEY ..."`` line, one row per line."""
    rows = [[float(v) for v in m.split()] for m in re.findall(rf"^{key} (.+)$", stdout, re.MULTILINE)]
    assert rows, f"no {key} line in the LAMMPS output:\n{stdout[-3000:]}"
    return np.array(rows)


def lammps_box_to_cell(box: np.ndarray, header: str) -> np.ndarray:
    """Cell rows (a, b, c) from a dump's box bounds (with ``xy xz yz`` for triclinic boxes)."""
    if "xy" in header:
        (xlo_b, xhi_b, xy), (ylo_b, yhi_b, xz), (zlo, zhi, yz) = box
        xlo = xlo_b - min(0.0, xy, xz, xy + xz)
        xhi = xhi_b - max(0.0, xy, xz, xy + xz)
        ylo = ylo_b - min(0.0, yz)
        yhi = yhi_b - max(0.0, yz)
        return np.array([[xhi - xlo, 0, 0], [xy, yhi - ylo, 0], [xz, yz, zhi - zlo]])
    return np.diag(box[:, 1] - box[:, 0])


# ---------------------------------------------------------------------------------------------
# the reference: the ASE calculator


def ase_reference(model, atoms: Atoms, dtype: str = "float64") -> Dict[str, np.ndarray]:
    """Energy, per-atom energies, forces and (periodic cells) virial from TFPotCalculator."""
    from tfpot.calculators import TFPotCalculator

    atoms = atoms.copy()
    atoms.calc = TFPotCalculator(model, dtype=dtype)
    out = {"energy": atoms.get_potential_energy(), "forces": atoms.get_forces(),
           "energies": atoms.get_potential_energies()}
    if atoms.pbc.all():
        s = atoms.get_stress(voigt=False)
        out["virial"] = -s * atoms.get_volume()  # W = -dE/d(strain) = sum r (x) F
    return out


def max_differences(got: Dict, ref: Dict) -> Dict[str, float]:
    """max |got - ref| per quantity present in both (energy, energies, forces, virial)."""
    out = {}
    for key in ("energy", "energies", "forces", "virial"):
        if key in got and key in ref:
            out[key] = float(np.max(np.abs(np.asarray(got[key]) - np.asarray(ref[key]))))
    return out


def rel_err(a, b) -> float:
    a, b = np.asarray(a, float), np.asarray(b, float)
    return float(np.max(np.abs(a - b)) / max(np.max(np.abs(b)), 1e-300))


def images_needed(atoms: Atoms, radius: float) -> List[int]:
    """Periodic repetitions needed along each axis to cover ``radius``."""
    inv_heights = np.linalg.norm(np.linalg.inv(atoms.cell.array), axis=0)
    return [int(math.ceil(radius * inv_heights[k])) if atoms.pbc[k] else 0 for k in range(3)]
