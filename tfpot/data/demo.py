"""The demo data set shipped with tfpot (made by ``scripts/make_demo_data.py``)."""

from __future__ import annotations

from pathlib import Path

DEMO_FILE = "ethanol_gfn2.npz"


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
