"""Extended XYZ, read frame by frame with line numbers.

ASE's reader stops at the first empty line (frames after it vanish silently), drops atom-line
columns beyond those its ``Properties`` declare, and names no line when a value does not parse.
Here each frame's lines are checked first — atom count, comment line (key=value pairs,
``Properties``), the number of columns of every atom line against the ``Properties`` (species,
x, y, z without one), and every value against its column's type — and every problem is a
:class:`~tfpot.data.errors.DataFormatError` naming the file, frame and line. ASE then builds the
Atoms from the checked lines (``ase.io.extxyz.read_xyz``), so the result is what ASE gives for a
well-formed file.
"""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any, Callable, Iterator, List, Optional, TextIO, Tuple

from ase import Atoms
from ase.io.extxyz import key_val_str_to_dict, parse_properties, read_xyz
from ase.io.formats import string2index

from tfpot.data.errors import DataFormatError

DEFAULT_PROPERTIES = "species:S:1:pos:R:3"
_KIND = {"R": "a real number", "I": "an integer", "S": "a string", "L": "a logical (T or F)"}


class _Lines:
    """Lines of a text file with their 1-based numbers and a one-line look-ahead."""

    def __init__(self, fh: TextIO, name: str) -> None:
        self.fh, self.name, self.number = fh, name, 0
        self._peeked: Optional[str] = None

    def next(self) -> Optional[str]:
        """The next line (None at the end of the file)."""
        if self._peeked is not None:
            line, self._peeked = self._peeked, None
        else:
            try:
                line = self.fh.readline()
            except UnicodeDecodeError as e:
                raise DataFormatError(f"{self.name}, line {self.number + 1}: not UTF-8 text "
                                      f"({e.reason}); save the file as UTF-8") from e
            if line == "":
                return None
        self.number += 1
        return line

    def peek(self) -> Optional[str]:
        if self._peeked is None:
            line = self.next()
            if line is None:
                return None
            self.number -= 1
            self._peeked = line
        return self._peeked


def _columns(properties: str) -> List[Tuple[str, str, Callable[[str], Any]]]:
    """(property name, type letter, converter) of every column that ``properties`` declares."""
    _, _, _, convs = parse_properties(properties)  # validates the string
    fields = properties.split(":")
    kinds = [(name, kind) for name, kind, cols in zip(fields[::3], fields[1::3], fields[2::3])
             for _ in range(int(cols))]
    return [(name, kind, conv) for (name, kind), conv in zip(kinds, convs)]


def _check_atom_line(line: str, columns, declared: str, where: str) -> None:
    values = line.split()
    if len(values) != len(columns):
        if declared:
            raise DataFormatError(
                f"{where}: {len(values)} columns, but Properties={declared} declares "
                f"{len(columns)}; fix the line or the Properties of the frame")
        raise DataFormatError(
            f"{where}: {len(values)} columns, but an XYZ atom line without a Properties key has "
            f"{len(columns)} (species x y z); declare the other columns in the comment line, "
            f"e.g. Properties=species:S:1:pos:R:3:forces:R:3")
    for c, ((name, kind, conv), value) in enumerate(zip(columns, values)):
        try:
            ok = conv(value) is not None
        except ValueError:
            ok = False
        if not ok:
            raise DataFormatError(f"{where}: column {c + 1} ({name}) is {value!r}, not "
                                  f"{_KIND.get(kind, kind)}; fix the value")


def _frame_text(lines: _Lines, k: int, count_line: str) -> str:
    """Check frame ``k`` (its count line already read) and return its text."""
    name = lines.name
    start = lines.number
    tokens = count_line.split()
    try:
        natoms = int(tokens[0]) if len(tokens) == 1 else -1
    except ValueError:
        natoms = -1
    if natoms < 0:
        raise DataFormatError(f"{name}, line {start}: expected the atom count of frame {k} (one "
                              f"integer >= 0), got {count_line.strip()[:60]!r}; the line count "
                              f"of the frame before it is wrong, or the file is not XYZ")
    comment = lines.next()
    if comment is None:
        raise DataFormatError(f"{name}, frame {k}, line {start + 1}: the file ends before the "
                              f"comment line; the file is truncated")
    where = f"{name}, frame {k}, line {lines.number}"
    try:
        info = key_val_str_to_dict(comment.strip()) if comment.strip() else {}
    except Exception as e:  # ase raises ValueError, IndexError, ... on malformed pairs
        raise DataFormatError(f"{where}: cannot read the comment line as key=value pairs "
                              f"({type(e).__name__}: {e}); quote values that contain spaces") from e
    declared = info.get("Properties") if isinstance(info, dict) else None
    properties = declared if isinstance(declared, str) else DEFAULT_PROPERTIES
    try:
        columns = _columns(properties)
    except (ValueError, IndexError) as e:
        raise DataFormatError(f"{where}: invalid Properties={properties} ({e}); expected "
                              f"NAME:TYPE:COLUMNS triplets, TYPE one of R I S L") from e
    parts = [count_line, comment]
    for i in range(natoms):
        line = lines.next()
        if line is None or not line.strip():
            at = lines.number if line is not None else lines.number + 1
            raise DataFormatError(
                f"{name}, frame {k}, line {at}: the frame declares {natoms} atoms (line {start}) "
                f"but has {i}; fix the atom count or the missing atom lines")
        _check_atom_line(line, columns, declared or "",
                         f"{name}, frame {k}, line {lines.number} (atom {i})")
        parts.append(line)
    while (nxt := lines.peek()) is not None and nxt.lstrip().startswith("VEC"):
        parts.append(lines.next())  # cell vectors as pseudo-atoms (ADF-style XYZ)
    return "".join(p if p.endswith("\n") else p + "\n" for p in parts)


def _iter_checked(path: Path) -> Iterator[Atoms]:
    with open(path, "r", encoding="utf-8") as fh:
        lines = _Lines(fh, path.name)
        k = 0
        while (line := lines.next()) is not None:
            if not line.strip():  # only empty lines may follow
                blank = lines.number
                while (rest := lines.next()) is not None:
                    if rest.strip():
                        raise DataFormatError(
                            f"{path.name}, line {blank}: empty line after frame {k - 1}, but "
                            f"more data follows at line {lines.number}; remove the empty line "
                            f"(readers stop there and drop the rest)")
                return
            start = lines.number
            text = _frame_text(lines, k, line)
            try:
                atoms = next(read_xyz(io.StringIO(text), index=0))
            except Exception as e:  # anything ASE still refuses
                raise DataFormatError(f"{path.name}, frame {k}, lines {start}-{lines.number}: "
                                      f"ASE cannot build the frame ({type(e).__name__}: {e})") from e
            yield atoms
            k += 1


def iter_extxyz(path: Path, index: Any = ":") -> Iterator[Atoms]:
    """Frames of an (extended) XYZ file, each checked line by line (module doc).

    Args:
        path: the file.
        index: ASE-style selection (``":"`` all, ``"3"``, ``"-1"``, ``"10:20"``, an int or a
            slice); anything but ``":"`` reads the whole file first.

    Raises:
        DataFormatError: naming file, frame and line.
    """
    if index in (":", None) or index == slice(None):
        yield from _iter_checked(path)
        return
    selection = string2index(index) if isinstance(index, str) else index
    frames = list(_iter_checked(path))
    if isinstance(selection, int):
        try:
            yield frames[selection]
        except IndexError:
            raise DataFormatError(f"{path.name}: index {index} is out of range ({len(frames)} "
                                  f"frames)") from None
        return
    yield from frames[selection]
