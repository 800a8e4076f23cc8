"""Extended XYZ read line by line (tfpot/data/extxyz.py): every malformed line is refused naming
file, frame and line; a well-formed file reads exactly as ASE reads it."""

import ase.io
import numpy as np
import pytest
from ase.build import molecule
from ase.calculators.singlepoint import SinglePointCalculator

from tfpot.data import DataFormatError, read_structures


@pytest.fixture
def water_file(tmp_path):
    frames = []
    for k in range(3):
        a = molecule("H2O")
        a.positions[0, 0] += 0.01 * k
        a.calc = SinglePointCalculator(a, energy=-10.0 - k, forces=np.full((3, 3), 0.1 * k))
        frames.append(a)
    path = tmp_path / "water.xyz"
    ase.io.write(path, frames, format="extxyz")
    return path, frames


def edit(path, fn):
    lines = path.read_text().splitlines(True)
    path.write_text("".join(fn(lines)))


def test_well_formed_file_reads_as_ase(water_file):
    path, frames = water_file
    ours = read_structures(path)
    theirs = list(ase.io.iread(path, format="extxyz"))
    assert len(ours) == len(theirs) == 3
    for a, b in zip(ours, theirs):
        np.testing.assert_array_equal(a.positions, b.positions)
        assert a.get_potential_energy() == b.get_potential_energy()
        np.testing.assert_array_equal(a.get_forces(), b.get_forces())
    assert read_structures(path, index="-1")[0].get_potential_energy() == -12.0
    assert [a.get_potential_energy() for a in read_structures(path, index="0:2")] == [-10.0, -11.0]


# (edit of the lines, expected message) — line 7 is frame 1's comment, 8-10 its atoms
CASES = [
    (lambda L: L[:7] + [L[7].rstrip("\n") + " 9.0\n"] + L[8:],
     r"water.xyz, frame 1, line 8 \(atom 0\): 8 columns, but "
     r"Properties=species:S:1:pos:R:3:forces:R:3 declares 7; fix the line or the Properties"),
    (lambda L: L[:7] + [L[7].replace("0.00000000", "abc", 1)] + L[8:],
     r"water.xyz, frame 1, line 8 \(atom 0\): column \d \((pos|forces)\) is 'abc', not a real "
     r"number; fix the value"),
    (lambda L: L[:5] + ["\n"] + L[5:],
     r"water.xyz, line 6: empty line after frame 0, but more data follows at line 7; remove "
     r"the empty line"),
    (lambda L: L[:5] + ["3x\n"] + L[6:],
     r"water.xyz, line 6: expected the atom count of frame 1 \(one integer >= 0\), got '3x'"),
    (lambda L: L[:9],
     r"water.xyz, frame 1, line 10: the frame declares 3 atoms \(line 6\) but has 2; fix the "
     r"atom count or the missing atom lines"),
    (lambda L: L[:6],
     r"water.xyz, frame 1, line 7: the file ends before the comment line; the file is truncated"),
    (lambda L: L[:6] + [L[6].replace("forces:R:3", "forces:Q:3")] + L[7:],
     r"water.xyz, frame 1, line 7: invalid Properties=species:S:1:pos:R:3:forces:Q:3"),
]


@pytest.mark.parametrize("change, message", CASES, ids=["extra-column", "not-a-number",
                                                         "empty-line", "bad-count",
                                                         "missing-atom", "truncated",
                                                         "bad-properties"])
def test_malformed_lines_are_named(water_file, change, message):
    path, _ = water_file
    edit(path, change)
    with pytest.raises(DataFormatError, match=message) as err:
        read_structures(path)
    assert "\n" not in str(err.value)


def test_trailing_empty_lines_are_fine(water_file):
    path, _ = water_file
    edit(path, lambda L: L + ["\n", "   \n"])
    assert len(read_structures(path)) == 3


def test_plain_xyz(tmp_path):
    path = tmp_path / "h2.xyz"
    path.write_text("2\nhydrogen molecule\nH 0 0 0\nH 0 0 0.74\n")
    (h2,) = read_structures(path)
    assert h2.get_chemical_formula() == "H2" and h2.positions[1, 2] == 0.74
    path.write_text("2\nhydrogen molecule\nH 0 0 0 0.5\nH 0 0 0.74 0.5\n")  # undeclared column
    with pytest.raises(DataFormatError, match=r"h2.xyz, frame 0, line 3 \(atom 0\): 5 columns, "
                                              r"but an XYZ atom line without a Properties key "
                                              r"has 4 \(species x y z\)"):
        read_structures(path)


def test_option_of_another_format(water_file):
    path, _ = water_file
    with pytest.raises(DataFormatError) as err:
        read_structures(path, target="U0")
    assert str(err.value) == ("water.xyz: option(s) target do not apply to format 'extxyz' (it "
                              "takes energy_key, forces_key, index, stress_key); remove them "
                              "(data.options)")
    assert isinstance(err.value, TypeError)  # still a TypeError for Python callers
