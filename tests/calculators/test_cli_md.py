"""The ``tfpot md`` and ``tfpot relax`` sub-commands, run in-process through tfpot.cli.main."""

from __future__ import annotations

import re

import ase.io
import numpy as np
import pytest
import torch
from ase.build import bulk

import tfpot
from helpers import make_model
from tfpot.testing.structures import ethanol
from tfpot.calculators import TFPotCalculator
from tfpot.cli import main


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    d = tmp_path_factory.mktemp("cli")
    model = make_model()
    tfpot.save_model(model, d / "model.pt")
    with torch.no_grad():  # forces and stress of a trained model's size (~0.1-1 eV/Å)
        model.readout.energy_scale.fill_(300.0)
    tfpot.save_model(model, d / "stiff.pt")
    ase.io.write(d / "ethanol.xyz", ethanol())
    cu = bulk("Cu", "fcc", a=3.65, cubic=True)
    cu.rattle(0.02, seed=0)
    ase.io.write(d / "cu.extxyz", cu)
    return d


def test_md_nve_reports_drift_and_writes_traj(files, capsys):
    traj = files / "nve.traj"
    rc = main(["md", str(files / "ethanol.xyz"), str(files / "model.pt"), "--steps", "20",
               "--timestep", "0.5", "--traj", str(traj), "--log-every", "5", "--seed", "1", "-q"])
    out = capsys.readouterr().out
    assert rc == 0, out
    assert "energy drift" in out and "eV/atom/ps" in out and "steps/s" in out
    frames = ase.io.read(traj, ":")
    assert len(frames) == 5
    assert np.isfinite(frames[-1].get_forces()).all()


@pytest.mark.parametrize("ensemble", ["langevin", "nvt-berendsen"])
def test_md_thermostats_extxyz(files, capsys, ensemble):
    out_file = files / f"{ensemble}.xyz"
    rc = main(["md", str(files / "ethanol.xyz"), str(files / "model.pt"), "--ensemble", ensemble,
               "--steps", "10", "--temperature", "500", "--friction", "0.02",
               "--traj", str(out_file), "--log-every", "5", "-q", "-v"])
    captured = capsys.readouterr()
    assert rc == 0, captured.err
    assert "step        5" in captured.err
    frames = ase.io.read(out_file, ":")
    assert len(frames) == 3 and "energy" in frames[0].calc.results


def test_md_npt_periodic(files, capsys):
    rc = main(["md", str(files / "cu.extxyz"), str(files / "model.pt"), "--ensemble", "npt",
               "--steps", "5", "--pressure", "1.0", "-q"])
    captured = capsys.readouterr()
    assert rc == 0, captured.err
    assert "tfpot md: npt, 4 atoms, 5 steps" in captured.out


def test_md_refuses_bad_input(files, capsys):
    rc = main(["md", str(files / "ethanol.xyz"), str(files / "model.pt"), "--ensemble", "npt",
               "--steps", "5", "-q"])
    assert rc == 1
    assert "periodic in 3D" in capsys.readouterr().err
    bad = ethanol()
    bad.symbols[0] = "Xe"
    ase.io.write(files / "xe.xyz", bad)
    rc = main(["md", str(files / "xe.xyz"), str(files / "model.pt"), "--steps", "5", "-q"])
    assert rc == 1
    assert "Xe (atom 0)" in capsys.readouterr().err
    rc = main(["md", str(files / "missing.xyz"), str(files / "model.pt"), "-q"])
    assert rc == 1
    with pytest.raises(SystemExit):
        main(["md", str(files / "ethanol.xyz"), str(files / "model.pt"), "--steps", "0"])


@pytest.mark.parametrize("optimizer", ["BFGS", "FIRE"])
def test_relax_molecule(files, capsys, optimizer):
    out = files / f"relaxed_{optimizer}.xyz"
    rc = main(["relax", str(files / "ethanol.xyz"), str(files / "model.pt"), "--fmax", "0.01",
               "--optimizer", optimizer, "-o", str(out)])
    text = capsys.readouterr().out
    assert rc == 0, text
    assert "converged" in text
    relaxed = ase.io.read(out)
    assert np.linalg.norm(relaxed.get_forces(), axis=1).max() < 0.01


def test_relax_cell(files, capsys):
    # --cell must relax the cell. At the start the cell's generalised force (FrechetCellFilter:
    # |sigma| V / N, eV/Å) is above the 0.005 eV/Å target, so a run that ignored --cell could
    # not converge; at the end it is below the target and the volume has changed.
    start = ase.io.read(files / "cu.extxyz")
    start.calc = TFPotCalculator(str(files / "stiff.pt"))
    v0, n = start.get_volume(), len(start)
    assert np.abs(start.get_stress()).max() * v0 / n > 2 * 0.005
    out = files / "cu_relaxed.xyz"
    rc = main(["relax", str(files / "cu.extxyz"), str(files / "stiff.pt"), "--cell",
               "--fmax", "0.005", "-o", str(out)])
    text = capsys.readouterr().out
    assert rc == 0, text
    assert "volume" in text
    relaxed = ase.io.read(out)
    assert relaxed.get_stress().shape == (6,)
    v1 = relaxed.get_volume()
    assert abs(v1 - v0) > 1e-2 * v0, (v0, v1)
    assert np.abs(relaxed.get_stress()).max() * v1 / n < 0.005
    rc = main(["relax", str(files / "ethanol.xyz"), str(files / "model.pt"), "--cell"])
    assert rc == 1
    assert "periodic in 3D" in capsys.readouterr().err


def test_md_starts_from_the_first_frame_or_the_stated_one(files, capsys):
    frames = [ethanol(), ethanol(), ethanol()]
    for k, a in enumerate(frames):
        a.positions[0, 0] += 0.1 * k  # frame k has atom 0 at x + 0.1 k
    path = files / "three.extxyz"
    ase.io.write(path, frames)
    for option, k in (([], 0), (["--frame", "2"], 2), (["--frame", "-1"], 2)):
        traj = files / f"from{k}.traj"
        rc = main(["md", str(path), str(files / "model.pt"), "--steps", "1", "--temperature", "0",
                   "--traj", str(traj), "--log-every", "1", "-q", *option])
        out = capsys.readouterr().out
        assert rc == 0
        stated = option[1] if option else "0"
        assert f"tfpot md: starting from frame {stated} of {path} (9 atoms, C2H6O)" in out
        first = ase.io.read(traj, 0)
        assert first.positions[0, 0] == pytest.approx(frames[k].positions[0, 0], abs=1e-6)
    assert main(["md", str(path), str(files / "model.pt"), "--frame", "3", "-q"]) == 1
    assert capsys.readouterr().err.strip() == (f"tfpot md: error: {path} has 3 frame(s), no frame "
                                               f"3; give --frame between -3 and 2")


def test_md_thermo_csv_and_plot(files, capsys):
    csv_path = files / "thermo" / "nve.csv"
    rc = main(["md", str(files / "ethanol.xyz"), str(files / "model.pt"), "--steps", "12",
               "--thermo", str(csv_path), "-q"])
    out = capsys.readouterr().out
    assert rc == 0
    rows = np.genfromtxt(csv_path, delimiter=",", names=True)
    with open(csv_path) as f:
        assert f.readline().strip() == ("step,time [ps],epot [eV],ekin [eV],etot [eV],"
                                        "temperature [K]")
    assert len(rows) == 13 and rows["step"].tolist() == list(range(13))
    assert np.allclose(rows[rows.dtype.names[1]], np.arange(13) * 0.5e-3)
    e = np.array([list(r) for r in rows])
    assert np.allclose(e[:, 2] + e[:, 3], e[:, 4], rtol=0, atol=1e-9)  # epot + ekin = etot
    # the drift printed is the slope of etot in this file
    drift = np.polyfit(e[:, 1], e[:, 4], 1)[0] / 9
    assert f"energy drift: {drift:.3e} eV/atom/ps" in out
    assert csv_path.with_suffix(".png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert main(["md", str(files / "ethanol.xyz"), str(files / "model.pt"), "--steps", "1",
                 "--thermo", str(files / "thermo.txt"), "-q"]) == 1
    assert "give a .csv file name" in capsys.readouterr().err


def test_md_and_relax_pressure_is_in_gpa(files):
    from ase import units

    from tfpot.calculators.md_cli import make_dynamics

    cu = ase.io.read(files / "cu.extxyz")
    dyn = make_dynamics(cu, "npt", 1.0, 300.0, 0.01, 0, pressure_GPa=2.0)
    assert dyn.pressure == pytest.approx(2.0 * units.GPa, rel=1e-12)
    for command in ("md", "relax"):
        help_text = main_help(command)
        option = re.search(r"--pressure PRESSURE\s+(.*?)\n  -", help_text, re.S).group(1)
        assert "GPa" in option and not re.search(r"\bbar\b", option), option


def main_help(command):
    import contextlib
    import io

    buf = io.StringIO()
    with contextlib.redirect_stdout(buf), pytest.raises(SystemExit):
        main([command, "--help"])
    return buf.getvalue()


def test_model_file_errors_are_one_line(files, capsys):
    from tfpot.export import export_model

    export = files / "exported.pt"
    export_model(files / "model.pt", export)
    text = files / "notes.txt"
    text.write_text("not a model\n")
    cases = {
        export: (f"{export} is a TorchScript export (tfpot export), which only LAMMPS and "
                 f"libtorch load; give the model file it was exported from (best_model.pt or "
                 f"final_model.pt of tfpot train, or a file written by model.save)"),
        text: (f"{text} is not a tfpot model file (not a PyTorch archive; it starts with "
               f"b'not a model\\n'); give a model file (best_model.pt or final_model.pt of "
               f"tfpot train, or a file written by model.save)"),
        files / "absent.pt": (f"{files / 'absent.pt'}: no such model file; give a model file "
                              f"(best_model.pt or final_model.pt of tfpot train, or a file "
                              f"written by model.save)"),
    }
    for path, message in cases.items():
        for argv in (["md", str(files / "ethanol.xyz"), str(path), "-q"],
                     ["relax", str(files / "ethanol.xyz"), str(path)],
                     ["export", str(path), "-o", str(files / "x.pt")],
                     ["eval", str(path), "tfpot:demo"]):
            assert main(argv) == 1, argv
            err = capsys.readouterr().err.strip().splitlines()
            assert err == [f"tfpot {argv[0]}: error: {message}"], argv
    assert "weights_only" not in message


def test_predict_names_unknown_elements_by_symbol(files):
    from ase.build import molecule

    from tfpot.errors import UnknownElementError

    model = tfpot.load_model(files / "model.pt")
    with pytest.raises(UnknownElementError) as err:
        tfpot.predict(model, molecule("SiH4"))
    assert str(err.value) == ("element(s) not in this model: Si (atom 0); the model knows H, C, N, "
                              "O, Cu: use a model trained on every element of the structure")


def test_md_stops_a_run_that_leaves_physics(files, capsys):
    # NVE at 4 fs with the stiff untrained model gains energy fast: the energy check stops it
    # (one line, exit 1) and the stopping geometry is the last frame of --traj
    traj = files / "runaway.traj"
    args = ["md", str(files / "ethanol.xyz"), str(files / "stiff.pt"), "--timestep", "4",
            "--temperature", "300", "--steps", "15", "-q"]
    assert main(args + ["--traj", str(traj), "--log-every", "100"]) == 1
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "Traceback" not in err
    m = re.search(r"NVE total energy moved ([0-9.e+-]+) eV/atom from its start, above "
                  r"--max-energy-change 0.05, at step (\d+)", err)
    assert m and float(m.group(1)) > 0.05, err
    frames = ase.io.read(traj, ":")
    assert len(frames) == 2  # step 0, then the step it stopped at
    # switched off, the same run goes on to its end
    assert main(args + ["--max-energy-change", "0"]) == 0
    capsys.readouterr()
    # the force check, in any ensemble: this model's forces are ~0.1-1 eV/Å
    assert main(["md", str(files / "ethanol.xyz"), str(files / "stiff.pt"), "--ensemble",
                 "langevin", "--steps", "5", "--max-force", "0.01", "-q"]) == 1
    err = capsys.readouterr().err
    assert re.search(r"force above --max-force 0.01 eV/Å at step 0 \(0.0000 ps\); largest force "
                     r"[0-9.]+ eV/Å on atom \d+ \((C|O|H)\)", err), err
