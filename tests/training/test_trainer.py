"""The training loop: loss falls, outputs are complete, energy-only (QM9-like) and stress (EMT)
training, the fit() API, the time budget and Ctrl-C."""

import csv
import json
import os
import signal

import numpy as np
import pytest
import torch
from ase.build import bulk, molecule
from ase.calculators.emt import EMT
from ase.calculators.singlepoint import SinglePointCalculator

import tfpot
from tfpot.training import fit, train_from_config
from tfpot.training.checkpoint import load_checkpoint

HARTREE = 27.211386245988
# made-up per-element reference energies (Hartree) for the QM9-like set
REF_HA = {"H": -0.5, "C": -37.8, "N": -54.5, "O": -75.0}


def read_csv(path):
    with open(path) as f:
        return list(csv.DictReader(f))


def test_loss_falls_and_outputs_are_complete(tiny_config):
    out = train_from_config(tiny_config(training={"max_epochs": 5, "batch_size": 4},
                                        logging={"tensorboard": "auto"}), verbose=False)
    rows = read_csv(out / "metrics.csv")
    assert len(rows) == 5
    first, last = rows[0], rows[-1]
    # 30 steps of a 2k-weight model: the loss (~10 at the start: force variance x weight 10)
    # at least halves on validation (EMA weights) and falls on the training batches
    assert min(float(r["val_loss"]) for r in rows) < 0.5 * float(first["val_loss"])
    assert float(last["train_loss"]) < 0.8 * float(first["train_loss"])
    # every column states its unit; wall-clock times are in timing.csv, not in metrics.csv
    assert list(first) == ["epoch", "step", "lr", "train_energy_mae [eV/atom]",
                           "train_energy_rmse [eV/atom]", "train_total_energy_mae [eV]",
                           "train_forces_mae [eV/Å]", "train_forces_rmse [eV/Å]", "train_loss",
                           "val_energy_mae [eV/atom]", "val_energy_rmse [eV/atom]",
                           "val_total_energy_mae [eV]", "val_forces_mae [eV/Å]",
                           "val_forces_rmse [eV/Å]", "val_loss"]
    timing = read_csv(out / "timing.csv")
    assert list(timing[0]) == ["epoch", "step", "time [s]", "epoch_time [s]"] and len(timing) == 5
    assert 0 < float(timing[0]["time [s]"]) < float(timing[-1]["time [s]"])
    for name in ("best_model.pt", "final_model.pt", "checkpoint.pt", "config.yaml", "splits.npz",
                 "statistics.json", "test_metrics.json", "summary.json", "train.log"):
        assert (out / name).exists(), name
    assert list((out / "tensorboard").iterdir())  # tensorboard is installed here
    test = json.loads((out / "test_metrics.json").read_text())
    assert test["num_structures"] == 8 and test["forces_mae"] > 0
    assert test["units"] == {"energy_mae": "eV/atom", "energy_rmse": "eV/atom",
                             "total_energy_mae": "eV", "forces_mae": "eV/Å", "forces_rmse": "eV/Å"}
    summary = json.loads((out / "summary.json").read_text())
    assert summary["units"]["time"] == "s" and summary["units"]["val_forces_mae"] == "eV/Å"
    splits = np.load(out / "splits.npz")
    assert len(set(splits["test"]) & set(splits["train"])) == 0 and len(splits["train"]) == 24

    # the model files are ready to use: E0 / scale / shift of the training set are inside
    model = tfpot.load_model(out / "best_model.pt")
    stats = json.loads((out / "statistics.json").read_text())
    assert stats["units"]["energy_scale"] == "eV" and stats["units"]["force_rms"] == "eV/Å"
    e0 = [stats["e0"][str(z)] for z in model.species]
    assert torch.allclose(model.readout.atomic_reference, torch.tensor(e0, dtype=torch.float64))
    assert float(model.readout.energy_scale) == pytest.approx(stats["energy_scale"])
    from tfpot.data import demo_dataset_path, read_structures

    atoms = read_structures(demo_dataset_path(), indices=[int(splits["test"][0])])[0]
    e_model = tfpot.predict(model, atoms)["energy"]
    # E0 (-34.4 eV/atom here) is part of the stored model: the error is that of a 4-epoch model
    assert abs(e_model - atoms.get_potential_energy()) / len(atoms) < 1.0


def _write_qm9(directory, k, atoms, u0_hartree):
    props = [1.0, 1.0, 1.0, 0.0, 10.0, -0.3, 0.1, 0.4, 50.0, 0.05, u0_hartree, u0_hartree + 0.01,
             u0_hartree + 0.02, u0_hartree - 0.03, 6.5]
    lines = [str(len(atoms)), f"gdb {k}\t" + "\t".join(f"{p:.6f}" for p in props)]
    for s, p in zip(atoms.get_chemical_symbols(), atoms.positions):
        lines.append(f"{s}\t{p[0]:.6f}\t{p[1]:.6f}\t{p[2]:.6f}\t0.0")
    lines += ["1000.0\t2000.0", "C\tC", "InChI=1S/X\tInChI=1S/X"]
    (directory / f"dsgdb9nsd_{k:06d}.xyz").write_text("\n".join(lines) + "\n")


def test_energy_only_training_on_qm9_like_data(tiny_config, tmp_path):
    names = ["CH4", "H2O", "NH3", "C2H6", "C2H4", "CH3OH", "HCN", "H2CO", "CH3CH2OH", "C2H2",
             "N2", "CO", "CO2", "HCOOH", "CH3CN", "C3H8"]
    qm9 = tmp_path / "qm9"
    qm9.mkdir()
    rng = np.random.default_rng(0)
    for k, name in enumerate(names * 2, start=1):
        a = molecule(name)
        a.rattle(0.05, seed=k)
        u0 = sum(REF_HA[s] for s in a.get_chemical_symbols()) + 0.01 * rng.normal()
        _write_qm9(qm9, k, a, u0)
    cfg = tiny_config(data={"path": str(qm9), "format": "qm9", "target": "U0",
                            "split": {"train": 24, "val": 4, "test": 4}},
                      loss={"energy_weight": 1.0, "forces_weight": 0.0, "per_atom_energy": False},
                      training={"max_epochs": 3, "batch_size": 8})
    with pytest.raises(ValueError, match=r"loss.forces_weight is 10 but no training structure has "
                                         r"forces labels; set loss.forces_weight: 0"):
        train_from_config(tiny_config(data=cfg["data"], output_dir=str(tmp_path / "bad")),
                          verbose=False)
    out = train_from_config(cfg, verbose=False)
    rows = read_csv(out / "metrics.csv")
    assert "train_forces_mae [eV/Å]" not in rows[0] and "val_energy_mae [eV/atom]" in rows[0]
    assert float(rows[-1]["train_loss"]) < float(rows[0]["train_loss"])
    # float64 least squares recovers the per-element references (to the 0.01 Ha noise)
    e0 = json.loads((out / "statistics.json").read_text())["e0"]
    for s, z in (("H", "1"), ("C", "6"), ("N", "7"), ("O", "8")):
        assert abs(e0[z] - REF_HA[s] * HARTREE) < 0.3, (s, e0[z])
    assert "energy_mae" in json.loads((out / "test_metrics.json").read_text())


def emt_cells(n, seed=0):
    """Rattled, strained 4-atom Cu/Al fcc cells with EMT energy, forces and stress."""
    rng = np.random.default_rng(seed)
    out = []
    for k in range(n):
        a = bulk("Cu", "fcc", a=3.6, cubic=True)
        a.symbols[rng.integers(4)] = "Al"
        strain = np.eye(3) + 0.03 * rng.uniform(-1, 1, (3, 3))
        a.set_cell(a.cell.array @ strain, scale_atoms=True)
        a.rattle(0.08, seed=int(rng.integers(1 << 30)))
        a.calc = EMT()
        res = dict(energy=a.get_potential_energy(), forces=a.get_forces(), stress=a.get_stress())
        a.calc = SinglePointCalculator(a, **res)
        out.append(a)
    return out


def test_stress_training_on_emt_cells(tiny_config, tmp_path):
    import ase.io

    ase.io.write(tmp_path / "train.xyz", emt_cells(20, seed=0), format="extxyz")
    ase.io.write(tmp_path / "test.xyz", emt_cells(4, seed=1), format="extxyz")
    cfg = tiny_config(data={"path": None, "train": str(tmp_path / "train.xyz"),
                            "test": str(tmp_path / "test.xyz"),
                            "split": {"val": 4}, "cutoff": 4.0},
                      loss={"energy_weight": 1.0, "forces_weight": 1.0, "stress_weight": 1000.0},
                      optimizer={"lr": 1e-2},
                      training={"max_epochs": 5, "batch_size": 4, "ema_decay": 0.5})
    out = train_from_config(cfg, verbose=False)
    rows = read_csv(out / "metrics.csv")
    assert "train_stress_mae [eV/Å^3]" in rows[0] and "val_stress_rmse [eV/Å^3]" in rows[0]
    key = "train_stress_mae [eV/Å^3]"
    assert float(rows[-1][key]) < float(rows[0][key])
    assert float(rows[-1]["train_loss"]) < float(rows[0]["train_loss"])
    test = json.loads((out / "test_metrics.json").read_text())
    assert test["num_structures"] == 4 and test["stress_mae"] < 0.05  # eV/Å^3
    # the stored model predicts stress through the ASE-facing path as well
    model = tfpot.load_model(out / "final_model.pt")
    atoms = ase.io.read(tmp_path / "test.xyz", index=0)
    assert tfpot.predict(model, atoms)["stress"].shape == (3, 3)


def test_fit_api_float32(tmp_path):
    from tfpot.data import demo_dataset_path, read_structures

    atoms = read_structures(demo_dataset_path(), indices=list(range(0, 400, 10)))
    train, val = atoms[:32], atoms[32:]
    model = tfpot.build_model(["H", "C", "O"], cutoff=4.0, preset="small", dtype="float32",
                              hidden=16, num_layers=1, reps="16x0+4x1+2x2")

    def force_mae(m):
        return float(np.mean([np.abs(tfpot.predict(m, a)["forces"] - a.get_forces()).mean() for a in val]))

    before = force_mae(model.eval())
    fitted = fit(model, train, val, epochs=4, batch_size=4, lr=1e-2, forces_weight=10.0, seed=0)
    assert fitted is model and not fitted.training
    assert float(fitted.readout.energy_scale) != 1.0  # statistics went into the buffers
    assert fitted.embedding.weight.dtype == torch.float32
    assert force_mae(fitted) < 0.8 * before



def test_fit_passes_weight_decay_and_amsgrad_to_the_optimiser():
    from tfpot.data import demo_dataset_path, read_structures

    atoms = read_structures(demo_dataset_path(), indices=list(range(0, 80, 10)))
    model = tfpot.build_model(["H", "C", "O"], cutoff=4.0, preset="small", dtype="float32",
                              hidden=16, num_layers=1, reps="16x0+4x1+2x2")
    seen = []

    def record(trainer):
        group = trainer.optimizer.param_groups[0]
        seen.append((group["weight_decay"], group["amsgrad"],
                     "max_exp_avg_sq" in trainer.optimizer.state[group["params"][0]]))

    fit(model, atoms, epochs=1, batch_size=4, lr=1e-3, weight_decay=0.02, amsgrad=True,
        callbacks=[record])
    assert seen and all(s == (0.02, True, True) for s in seen)


def test_fit_passes_the_loss_type_and_huber_delta():
    from tfpot.data import demo_dataset_path, read_structures

    atoms = read_structures(demo_dataset_path(), indices=list(range(0, 80, 10)))

    def run(**loss):
        model = tfpot.build_model(["H", "C", "O"], cutoff=4.0, preset="small", dtype="float64",
                                  hidden=16, num_layers=1, reps="16x0+4x1+2x2", seed=1)
        seen = []
        fitted = fit(model, atoms, epochs=1, batch_size=4, lr=1e-3, seed=0,
                     callbacks=[lambda t: seen.append((t.loss_fn.kind, t.loss_fn.huber_delta))],
                     **loss)
        return fitted.state_dict(), seen

    huber, seen = run(loss_type="huber", huber_delta=0.02)
    assert seen and all(s == ("huber", 0.02) for s in seen)
    mse, seen = run()
    assert seen and all(s[0] == "mse" for s in seen)
    # the Huber loss gives other gradients than the squares, so other weights after one epoch
    assert any(not torch.equal(huber[k], mse[k]) for k in huber)


def test_fit_with_frame_noise_turns_frames_in_training_steps_only_and_repeats():
    # training.frame_noise: the steps see rotated frames (the run differs from one without), the
    # same seed gives the same weights bit for bit, and the fitted model's frames are not turned.
    from tfpot.data import demo_dataset_path, read_structures

    atoms = read_structures(demo_dataset_path(), indices=list(range(0, 80, 10)))
    noise_seen = []

    def record(trainer):
        noise_seen.append(trainer.model.frames.rotation_noise)

    def run(noise, callbacks=()):
        model = tfpot.build_model(["H", "C", "O"], cutoff=4.0, preset="small", dtype="float64",
                                  hidden=16, num_layers=2, reps="16x0+4x1+2x2", seed=1)
        return fit(model, atoms, epochs=2, batch_size=4, lr=1e-3, seed=0, frame_noise=noise,
                   callbacks=callbacks)

    a, b, plain = run(0.1, [record]), run(0.1), run(0.0)
    sa, sb, sp = a.state_dict(), b.state_dict(), plain.state_dict()
    assert all(torch.equal(sa[k], sb[k]) for k in sa)
    assert any(not torch.equal(sa[k], sp[k]) for k in sa)
    # callbacks run between steps: the noise is set only while a step's forward pass runs
    assert noise_seen and all(x == 0.0 for x in noise_seen)
    assert a.frames.rotation_noise == 0.0 and not a.training


def test_max_time_fixes_the_run_length_and_saves(tiny_config):
    out = train_from_config(tiny_config(training={"max_epochs": 50, "max_time": 1.0}), verbose=False)
    summary = json.loads((out / "summary.json").read_text())
    # the probe measured the speed once and the budget fixed the number of whole epochs
    assert summary["stop_reason"] == "max_time" and summary["epochs"] < 50
    assert summary["epochs"] == summary["planned_epochs"] >= 1
    speed = summary["speed"]
    assert speed["seconds_per_step"] > 0 and speed["steps_per_epoch"] == 6
    assert (out / "final_model.pt").exists() and (out / "best_model.pt").exists()
    assert 1 <= summary["best_epoch"] <= summary["epochs"]
    assert "fixed now by the 1 s budget" in (out / "train.log").read_text()


def test_sigint_finishes_step_and_writes_checkpoint(tiny_config):
    def interrupt(trainer):
        if trainer.global_step == 3:
            os.kill(os.getpid(), signal.SIGINT)

    cfg = tiny_config(training={"max_epochs": 2, "checkpoint_every": 0})
    # what was installed before the run (default_int_handler, or SIG_IGN when the test process
    # was started in the background by a non-interactive shell)
    before = signal.getsignal(signal.SIGINT)
    out = train_from_config(cfg, callbacks=[interrupt], verbose=False)
    assert load_checkpoint(out / "checkpoint.pt")["progress"]["global_step"] == 3
    assert not (out / "final_model.pt").exists()
    assert signal.getsignal(signal.SIGINT) is before  # handler restored
    train_from_config(cfg, resume=True, verbose=False)
    assert len(read_csv(out / "metrics.csv")) == 2


def test_fit_with_open_frame_term_opens_gates_and_repeats():
    # loss.frame_gate_weight adds w * mean(1 - gate) over the batch's atoms: trained on that
    # term alone (energy weight 1e-9, no forces), the gates of the training structures open
    # further than they start, and the same seed gives the same weights bit for bit (float64).
    from tfpot.data import demo_dataset_path, read_structures
    from tfpot.diagnostics import frame_gates

    atoms = read_structures(demo_dataset_path(), indices=list(range(0, 80, 10)))

    def model():
        return tfpot.build_model(["H", "C", "O"], cutoff=4.0, preset="small", dtype="float64",
                                 hidden=16, num_layers=1, reps="16x0+4x1+2x2", seed=1)

    def closed(m):
        return float(np.mean([1.0 - frame_gates(m, a) for a in atoms]))

    def run(weight):
        return fit(model(), atoms, epochs=3, batch_size=4, lr=1e-2, seed=0, energy_weight=1e-9,
                   forces_weight=0.0, frame_gate_weight=weight, ema_decay=None)

    before = closed(model())
    a, b = run(1.0), run(1.0)
    assert before > 0.05  # the demo molecules start with partly closed gates
    assert closed(a) < 0.5 * before
    sa, sb = a.state_dict(), b.state_dict()
    assert all(torch.equal(sa[k], sb[k]) for k in sa)


def test_fit_with_closed_frame_term_reopens_shut_gates_and_repeats():
    # loss.frame_closed_weight adds w * mean(shortfall): with a gate range that starts most of the
    # demo molecules' gates shut (where the open-frame term has no gradient), training on that
    # term alone (energy weight 1e-9, no forces) leaves fewer gates shut than it starts with,
    # and the same seed gives the same weights bit for bit (float64).
    from tfpot.data import demo_dataset_path, read_structures
    from tfpot.diagnostics import frame_gates

    atoms = read_structures(demo_dataset_path(), indices=list(range(0, 80, 10)))

    def model():
        return tfpot.build_model(["H", "C", "O"], cutoff=4.0, preset="small", dtype="float64",
                                 hidden=16, num_layers=1, reps="16x0+4x1+2x2", seed=1,
                                 gate_range=(0.9, 1.2))

    def shut(m):
        return float(np.mean([np.mean(frame_gates(m, a) == 0.0) for a in atoms]))

    def run(weight):
        return fit(model(), atoms, epochs=3, batch_size=4, lr=1e-2, seed=0, energy_weight=1e-9,
                   forces_weight=0.0, frame_closed_weight=weight, ema_decay=None)

    before = shut(model())
    a, b = run(1.0), run(1.0)
    assert before > 0.5  # most gates start shut (0.74)
    assert shut(a) < 0.5 * before  # (0.22)
    assert shut(run(0.0)) > 0.9 * before  # the term, not the energy's 1e-9, opened them
    sa, sb = a.state_dict(), b.state_dict()
    assert all(torch.equal(sa[k], sb[k]) for k in sa)
