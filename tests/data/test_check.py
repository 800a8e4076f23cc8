"""The data check (tfpot/data/check.py): each bad frame gives one line naming file, frame and
atom; good frames give none; the report carries the statistics; the check streams."""

import tracemalloc

import numpy as np
import pytest
from ase import Atoms
from ase.build import bulk, molecule
from ase.calculators.singlepoint import SinglePointCalculator

from tfpot.data.check import (MAX_LISTED, DataCheck, DataCheckError, check_readable,
                              frame_problems)

WHERE = "data.xyz, frame 7"


def labelled(atoms, energy=-5.0, forces=True, stress=None):
    f = np.zeros((len(atoms), 3)) if forces is True else forces
    atoms.calc = SinglePointCalculator(atoms, energy=energy, forces=f, stress=stress)
    return atoms


def water():
    return labelled(molecule("H2O"))


def test_good_frames_have_no_problems():
    assert frame_problems(water(), WHERE, needs=("energy", "forces")) == []
    cu = bulk("Cu", "fcc", a=3.6, cubic=True)
    assert frame_problems(labelled(cu, stress=np.zeros(6)), WHERE, needs=("stress",)) == []
    assert frame_problems(water(), WHERE, species=[1, 8]) == []


def test_overlapping_atoms_named_with_distance():
    a = water()
    a.positions[2] = a.positions[1]                       # a duplicated H
    (msg,) = frame_problems(a, WHERE)
    assert msg == ("data.xyz, frame 7: atoms 1 (H) and 2 (H) are 0 Å apart, closer than the "
                   "minimum 0.1 Å; remove the duplicate atom or fix the positions")
    b = water()
    b.positions[2] = b.positions[1] + [0.0, 0.0, 0.3]     # 0.3 Å: allowed by default ...
    assert frame_problems(b, WHERE) == []
    (msg,) = frame_problems(b, WHERE, min_distance=0.5)   # ... not with a larger minimum
    assert "atoms 1 (H) and 2 (H) are 0.3 Å apart, closer than the minimum 0.5 Å" in msg


def test_periodic_image_too_close():
    a = labelled(Atoms("Cu", cell=[0.05, 3.0, 3.0], pbc=True))
    (msg,) = frame_problems(a, WHERE)
    assert msg.startswith("data.xyz, frame 7: atom 0 (Cu) and its periodic image are 0.05 Å apart")


def test_empty_frame():
    a = labelled(Atoms(), forces=np.zeros((0, 3)))
    assert frame_problems(a, WHERE) == ["data.xyz, frame 7: no atoms; remove the frame"]
    assert frame_problems(a, WHERE, allow_empty=True) == []


@pytest.mark.parametrize("change, expected", [
    (lambda a: a.calc.results["forces"].__setitem__((2, 1), np.nan),
     "data.xyz, frame 7, atom 2: force is not finite (0, nan, 0); fix or remove the frame"),
    (lambda a: a.positions.__setitem__((1, 0), np.inf),
     "data.xyz, frame 7, atom 1: position is not finite"),
    (lambda a: a.calc.results.__setitem__("energy", np.inf),
     "data.xyz, frame 7: energy is not finite (inf); fix or remove the frame"),
    (lambda a: a.calc.results.__setitem__("forces", np.zeros((2, 3))),
     "data.xyz, frame 7: forces have shape (2, 3), expected (3, 3)"),
    (lambda a: a.set_atomic_numbers([8, 1, 0]),
     "data.xyz, frame 7, atom 2: atomic number 0 is not an element (1..118)"),
])
def test_bad_values_named(change, expected):
    a = water()
    change(a)
    problems = frame_problems(a, WHERE)
    assert len(problems) == 1 and problems[0].startswith(expected), problems


def test_unknown_element_for_the_model():
    (msg,) = frame_problems(water(), WHERE, species=[1, 6])
    assert msg == ("data.xyz, frame 7, atom 0: element O is not one the model knows (H C); "
                   "remove the frame or use a model trained with O")


def test_singular_periodic_cell():
    a = labelled(Atoms("Cu2", positions=[[0, 0, 0], [1.8, 0, 0]], cell=[3.6, 3.6, 0], pbc=True))
    (msg,) = frame_problems(a, WHERE)
    assert msg.startswith("data.xyz, frame 7: periodic (pbc=TTT) but the cell is singular")


def test_labels_the_loss_needs():
    a = molecule("H2O")                                   # no labels at all
    (msg,) = frame_problems(a, WHERE, needs=("energy", "forces"))
    assert msg.startswith("data.xyz, frame 7: no energy or forces label, so the loss cannot use")
    a.calc = SinglePointCalculator(a, energy=-3.0)        # energy only: usable
    assert frame_problems(a, WHERE, needs=("energy", "forces")) == []
    m = labelled(molecule("H2O"), stress=np.zeros(6))     # stress on a molecule
    (msg,) = frame_problems(m, WHERE, needs=("energy", "stress"))
    assert "a stress label on a structure that is not periodic in three directions" in msg


def test_reader_check_raises_the_first_problem():
    a = water()
    a.calc.results["forces"][1, 0] = np.nan
    with pytest.raises(Exception, match=r"data.xyz, frame 7, atom 1: force is not finite"):
        check_readable(a, WHERE)
    b = water()
    b.positions[2] = b.positions[1]                        # readers do not check distances
    assert check_readable(b, WHERE) is b


def test_report_statistics_and_problem_list():
    check = DataCheck(needs=("energy", "forces"))
    frames = [water() for _ in range(3)]
    frames[1].positions[2] = frames[1].positions[0]
    kept = list(check.filter(frames, "w.xyz"))
    assert len(kept) == 2 and check.frames == 3 and check.bad_frames == 1
    report = "\n".join(check.lines())
    assert report.startswith("data check: 3 frames, 9 atoms (3..3 per frame)")
    assert "elements: H 6, O 3" in report
    assert "labels (of 2 frames without problems): energy 2, forces 2, stress 0" in report
    assert "shortest distance 0.9686 Å (w.xyz, frame 0, atoms 0-1); minimum allowed 0.1 Å" in report
    assert "energy per atom -1.66667 .. -1.66667 eV" in report
    assert "1 problem in 1 frame:" in report and "  w.xyz, frame 1: atoms 0 (O) and 2 (H)" in report
    with pytest.raises(DataCheckError) as err:
        check.raise_if_problems("list them with tfpot train --check-data CONFIG")
    assert str(err.value).startswith("w.xyz, frame 1: atoms 0 (O) and 2 (H) are 0 Å apart")
    assert str(err.value).endswith("(list them with tfpot train --check-data CONFIG)")
    clean = DataCheck()
    list(clean.filter([water()], "w.xyz"))
    clean.raise_if_problems("never shown")               # negative control: no error
    assert clean.lines()[-1] == "  no problems"


def test_many_problems_are_counted_and_capped():
    check = DataCheck()
    bad = labelled(Atoms(), forces=np.zeros((0, 3)))
    list(check.filter([bad] * (MAX_LISTED + 5), "e.xyz"))
    assert check.num_problems == MAX_LISTED + 5 and len(check.problems) == MAX_LISTED
    with pytest.raises(DataCheckError, match=r"^e.xyz, frame 0: no atoms; remove the frame "
                                             r"\(and 24 more problems; see above\)$"):
        check.raise_if_problems("see above")


def test_streamed_in_constant_memory():
    def frames(n):
        for k in range(n):
            a = molecule("CH3CH2OH")
            a.rattle(0.01, seed=k)
            yield labelled(a)

    def peak(n):
        check = DataCheck()
        tracemalloc.start()
        for _ in check.filter(frames(n), "s.xyz"):
            pass
        _, top = tracemalloc.get_traced_memory()
        tracemalloc.stop()
        assert check.frames == n and check.ok
        return top

    peak(20)  # warm-up: first-use allocations of numpy, ASE and matscipy
    small, large = peak(400), peak(2000)  # (Atoms<->calculator cycles make the peak wobble)
    assert large < 1.5 * small, f"peak memory grows with the stream: {small} -> {large} bytes"
