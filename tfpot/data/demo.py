"""The demo data set shipped with tfpot (made by ``scripts/make_demo_data.py``)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Union

DEMO_FILE = "ethanol_gfn2.npz"
#: names the demo set wherever a data path is expected (config files, ``tfpot eval``/``convert``)
DEMO_TOKEN = "tfpot:demo"


def demo_dataset_path() -> Path:
    """Path of the installed demo set: 400 frames of ethanol, Langevin MD at 500 K, labelled
    with GFN2-xTB (tblite), in the original MD17 npz layout (kcal/mol; read it with
    :func:`tfpot.data.read_structures`, which converts to eV)."""
    path = Path(__file__).resolve().parent / "demo" / DEMO_FILE
    if not path.exists():
        raise FileNotFoundError(
            f"{path}: demo data missing from this installation; regenerate it with "
            f"`python scripts/make_demo_data.py`")
    return path


def resolve_data_path(path: Union[str, os.PathLike]) -> Path:
    """A data path as the user wrote it: ``tfpot:demo`` is the bundled demo set, ``~`` is
    expanded."""
    if str(path) == DEMO_TOKEN:
        return demo_dataset_path()
    return Path(os.path.expanduser(str(path)))
