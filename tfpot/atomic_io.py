"""Atomic file writes: a temporary file beside the target, fsync, then ``os.replace``.

Nothing the user wrote is ever left half-written: a reader sees the old file or the new one.

Temporary files are named ``.{target name}.{8 random characters}.tmp`` (:data:`TEMP_PATTERN`)
and live beside their target. The writer holds an exclusive ``flock`` on its temporary file
until the file is renamed or removed. A process killed mid-write (SIGKILL, power loss) leaves
its temporary file behind, but the kernel drops the lock: :func:`remove_stale_temp_files`,
called at the start of ``tfpot train`` (the output directory), ``tfpot convert`` and
``tfpot export`` (the output's directory), removes such files — only files matching the
pattern, only beside the target, only when no process holds their lock, and only when they
are older than :data:`STALE_AFTER_S` (so a writer between creating its file and locking it is
never touched).
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import re
import tempfile
import time
from pathlib import Path
from typing import Any, Iterator, List, Optional, Union

import torch

PathLike = Union[str, os.PathLike]

#: ``.{name}.{random}.tmp``: what :func:`atomic_path` creates (``tempfile.mkstemp``'s 8
#: characters from ``[a-z0-9_]``).
TEMP_PATTERN = re.compile(r"^\.(?P<name>.+)\.[a-z0-9_]{8}\.tmp$")
#: a temporary file younger than this (seconds) is never removed
STALE_AFTER_S = 60.0


def _default_mode() -> int:
    """0666 minus the umask: what ``open()`` would give (mkstemp makes 0600 files)."""
    mask = os.umask(0)
    os.umask(mask)
    return 0o666 & ~mask


@contextlib.contextmanager
def atomic_path(path: PathLike) -> Iterator[str]:
    """Yield a temporary path beside ``path`` for a writer that wants a file name (e.g.
    ``torch.jit.save``, LMDB); on success it is fsynced and replaces ``path``, on failure it is
    removed. The temporary file is locked (``flock``) until then. The one mechanism behind
    every atomic write of the project."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)  # released when fd closes, or by the kernel on death
        os.chmod(tmp, _default_mode())
        yield tmp
        with open(tmp, "rb+") as f:
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
    finally:
        os.close(fd)


def atomic_torch_save(obj: Any, path: PathLike) -> None:
    """``torch.save`` to a temporary file beside ``path``, fsync, then ``os.replace``."""
    with atomic_path(path) as tmp:
        torch.save(obj, tmp)


def atomic_write_text(text: str, path: PathLike) -> None:
    """Write a text file atomically (temporary file + ``os.replace``)."""
    with atomic_path(path) as tmp:
        with open(tmp, "w") as f:
            f.write(text)


def remove_stale_temp_files(directory: PathLike, name: Optional[str] = None,
                            min_age_s: float = STALE_AFTER_S) -> List[Path]:
    """Remove temporary files that interrupted writes left in ``directory``.

    Args:
        directory: where the targets live (nothing else is looked at; no recursion).
        name: only temporary files of this target (``.{name}.XXXXXXXX.tmp``); None: of any.
        min_age_s: leave files modified less than this many seconds ago.

    Returns:
        The removed paths. A file locked by a live writer, a young file, and any file not
        matching :data:`TEMP_PATTERN` are left alone.
    """
    directory = Path(directory)
    if not directory.is_dir():
        return []
    removed = []
    now = time.time()
    for entry in directory.iterdir():
        m = TEMP_PATTERN.match(entry.name)
        if m is None or (name is not None and m.group("name") != name):
            continue
        try:
            if not entry.is_file() or entry.is_symlink() or now - entry.stat().st_mtime < min_age_s:
                continue
            fd = os.open(entry, os.O_RDONLY)
        except FileNotFoundError:  # its writer finished meanwhile
            continue
        try:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:  # a live writer holds it
                continue
            entry.unlink(missing_ok=True)
            removed.append(entry)
        finally:
            os.close(fd)
    return removed
