"""Atomic file writes: a temporary file beside the target, fsync, then ``os.replace``.

Nothing the user wrote is ever left half-written: a reader sees the old file or the new one.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from pathlib import Path
from typing import Any, Iterator, Union

import torch


def _default_mode() -> int:
    """0666 minus the umask: what ``open()`` would give (mkstemp makes 0600 files)."""
    mask = os.umask(0)
    os.umask(mask)
    return 0o666 & ~mask


@contextlib.contextmanager
def atomic_path(path: Union[str, os.PathLike]) -> Iterator[str]:
    """Yield a temporary path beside ``path`` for a writer that wants a file name (e.g.
    ``torch.jit.save``); on success it is fsynced and replaces ``path``, on failure it is
    removed. The one mechanism behind every atomic write of the project."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    os.chmod(tmp, _default_mode())
    try:
        yield tmp
        with open(tmp, "rb+") as f:
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def atomic_torch_save(obj: Any, path: Union[str, os.PathLike]) -> None:
    """``torch.save`` to a temporary file beside ``path``, fsync, then ``os.replace``."""
    with atomic_path(path) as tmp:
        torch.save(obj, tmp)


def atomic_write_text(text: str, path: Union[str, os.PathLike]) -> None:
    """Write a text file atomically (temporary file + ``os.replace``)."""
    with atomic_path(path) as tmp:
        with open(tmp, "w") as f:
            f.write(text)
