"""Which kind of tfpot file a path holds, so that a wrong one is refused with one line that says
what to give instead.

tfpot writes three kinds of PyTorch files, all zip archives:

* **model files** (``tfpot train``: ``best_model.pt``, ``final_model.pt``; ``model.save``): a
  ``torch.save`` dict of weights and settings, read by :func:`tfpot.load_model`, ``tfpot
  eval / md / relax / export`` and the ASE calculator;
* **training checkpoints** (``checkpoint.pt``): also ``torch.save`` dicts, for ``--resume``;
* **TorchScript exports** (``tfpot export``): compiled code plus ``extra/metadata.json``, for
  the LAMMPS pair style and libtorch only; they cannot be turned back into a model file.
"""

from __future__ import annotations

import os
import zipfile
from pathlib import Path
from typing import Union

from tfpot.errors import FileIntegrityError

#: what a model file is and where it comes from (for messages)
MODEL_FILE_HINT = "best_model.pt or final_model.pt of tfpot train, or a file written by model.save"


def file_kind(path: Union[str, os.PathLike]) -> str:
    """``"torchscript"`` (an export), ``"torch"`` (a ``torch.save`` file: model or checkpoint),
    ``"damaged"`` (starts like a zip archive but cannot be opened: torn or truncated) or
    ``"other"`` (not a PyTorch archive) for an existing file."""
    try:
        with zipfile.ZipFile(path) as z:
            names = z.namelist()
    except (zipfile.BadZipFile, OSError):
        with open(path, "rb") as f:
            return "damaged" if f.read(4) == b"PK\x03\x04" else "other"
    if any("/code/" in n or n.endswith("/constants.pkl") for n in names):
        return "torchscript"
    if any(n.endswith("/data.pkl") or n == "data.pkl" for n in names):
        return "torch"
    return "other"


def require_model_file(path: Union[str, os.PathLike]) -> Path:
    """``path`` as a Path if it can be a model file; otherwise raise a one-line error.

    Raises:
        FileNotFoundError: no such path.
        FileIntegrityError: a directory, a TorchScript export, or not a PyTorch file at all.
        (A damaged archive passes: the loader reports it as torn.)
    """
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"{path}: no such model file; give a model file ({MODEL_FILE_HINT})")
    if path.is_dir():
        inside = path / "best_model.pt"
        hint = f", e.g. {inside}" if inside.is_file() else ""
        raise FileIntegrityError(f"{path} is a directory; give a model file ({MODEL_FILE_HINT}){hint}")
    kind = file_kind(path)
    if kind == "torchscript":
        raise FileIntegrityError(
            f"{path} is a TorchScript export (tfpot export), which only LAMMPS and libtorch "
            f"load; give the model file it was exported from ({MODEL_FILE_HINT})")
    if kind == "other":
        with open(path, "rb") as f:
            head = f.read(16)
        raise FileIntegrityError(f"{path} is not a tfpot model file (not a PyTorch archive; it "
                                 f"starts with {head!r}); give a model file ({MODEL_FILE_HINT})")
    return path
