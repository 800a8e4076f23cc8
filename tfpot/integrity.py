"""Integrity of the files tfpot writes: a checksum over every tensor and setting, checked on load.

Model files, checkpoints (``torch.save`` dicts) and TorchScript exports carry
``"sha256:<64 hex digits>"``: SHA-256 of a canonical byte encoding of the file's content. Model
files and checkpoints store it under the top-level key ``"checksum"`` and hash every other
top-level entry (weights, buffers such as E0, ``energy_scale`` and ``energy_shift``, optimiser
and EMA states, hyperparameters, config); exports store it in ``metadata.json`` and hash
``{"metadata": <metadata.json without "checksum">, "tensors": <every parameter and buffer of the
scripted module, by dotted name>}``. One flipped bit in any tensor or setting changes it.

Canonical encoding ``E`` (``u64`` = 8-byte little-endian length or count)::

    None -> b"N"                      bool  -> b"B" + b"\\x01" | b"\\x00"
    int  -> b"I" + u64 + decimal      float -> b"F" + IEEE-754 float64, little-endian
    str  -> b"S" + u64 + UTF-8        bytes -> b"Y" + u64 + bytes
    list, tuple -> b"L" + u64 count + E(item)...
    dict -> b"D" + u64 count + E(key) E(value)... in the byte order of E(key)
    Tensor -> b"T" + E(dtype name, e.g. "float64") + E(list(shape)) + u64 + raw bytes
              (C order, little-endian, CPU)

The LAMMPS pair style implements the same encoding and SHA-256 for exports
(``calculators/lammps/pair_tfpot.cpp``, ``verify_export_checksum``); JSON values map to it by type
(integer -> int, number with a fraction/exponent -> float, array -> list, object -> dict).

Files written before tfpot 0.4 have no checksum: they load as before (:data:`UNVERIFIED`).
A file whose checksum does not match is refused with :class:`~tfpot.errors.FileIntegrityError`.
"""

from __future__ import annotations

import hashlib
import os
import struct
from typing import Any, Dict, Iterable, List, Mapping, Tuple, Union

import torch

from tfpot.errors import FileIntegrityError

ALGORITHM = "sha256"
CHECKSUM_KEY = "checksum"
#: what :func:`verify_payload` returns for a file with a matching checksum / without one
VERIFIED, UNVERIFIED = "verified", "no checksum (written before tfpot 0.4)"

PathLike = Union[str, os.PathLike]

_U64 = struct.Struct("<Q")
_F64 = struct.Struct("<d")


def _dtype_name(dtype: torch.dtype) -> str:
    return str(dtype).replace("torch.", "")


def _encode_into(h: "hashlib._Hash", value: Any) -> None:
    """Feed ``E(value)`` (module doc) to the hash ``h``."""
    if value is None:
        h.update(b"N")
    elif isinstance(value, bool):
        h.update(b"B\x01" if value else b"B\x00")
    elif isinstance(value, int):
        text = str(int(value)).encode()
        h.update(b"I" + _U64.pack(len(text)) + text)
    elif isinstance(value, float):
        h.update(b"F" + _F64.pack(value))
    elif isinstance(value, str):
        raw = value.encode("utf-8")
        h.update(b"S" + _U64.pack(len(raw)) + raw)
    elif isinstance(value, (bytes, bytearray)):
        h.update(b"Y" + _U64.pack(len(value)) + bytes(value))
    elif isinstance(value, (list, tuple)):
        h.update(b"L" + _U64.pack(len(value)))
        for item in value:
            _encode_into(h, item)
    elif isinstance(value, Mapping):
        h.update(b"D" + _U64.pack(len(value)))
        for key_bytes, key in sorted((encode(k), k) for k in value):
            h.update(key_bytes)
            _encode_into(h, value[key])
    elif isinstance(value, torch.Tensor):
        t = value.detach().to("cpu").contiguous()
        h.update(b"T")
        _encode_into(h, _dtype_name(t.dtype))
        _encode_into(h, list(t.shape))
        raw = t.reshape(-1).view(torch.uint8).numpy() if t.numel() else b""
        h.update(_U64.pack(t.numel() * t.element_size()))
        h.update(memoryview(raw))
    else:
        raise TypeError(f"cannot checksum a {type(value).__name__} (tfpot files hold tensors, "
                        f"numbers, strings, lists and dicts only)")


class _Collect:
    """A stand-in for a hash object that keeps the bytes (to sort dict keys by them)."""

    def __init__(self) -> None:
        self.parts: List[bytes] = []

    def update(self, data) -> None:
        self.parts.append(bytes(data))


def encode(value: Any) -> bytes:
    """``E(value)`` as bytes (module doc); for small values such as dict keys."""
    c = _Collect()
    _encode_into(c, value)
    return b"".join(c.parts)


def digest(value: Any) -> str:
    """``"sha256:<hex>"`` of ``E(value)``."""
    h = hashlib.sha256()
    _encode_into(h, value)
    return f"{ALGORITHM}:{h.hexdigest()}"


def payload_digest(payload: Mapping[str, Any]) -> str:
    """Checksum of a saved dict: every top-level entry except ``"checksum"``."""
    return digest({k: v for k, v in payload.items() if k != CHECKSUM_KEY})


def seal(payload: Dict[str, Any]) -> Dict[str, Any]:
    """``payload`` with its ``"checksum"`` entry set (in place; returned for chaining)."""
    payload.pop(CHECKSUM_KEY, None)
    payload[CHECKSUM_KEY] = payload_digest(payload)
    return payload


def verify_payload(payload: Mapping[str, Any], path: PathLike, what: str, fix: str) -> str:
    """Check a loaded dict against its stored checksum.

    Args:
        payload: what ``torch.load`` returned.
        path: the file (named in the error).
        what: e.g. ``"model file"``, ``"checkpoint"``.
        fix: what the user should do, e.g. ``"restore it from a copy or retrain"``.

    Returns:
        :data:`VERIFIED`, or :data:`UNVERIFIED` for a file without a checksum (before 0.4).

    Raises:
        FileIntegrityError: the stored checksum does not match the content (or is malformed).
    """
    stored = payload.get(CHECKSUM_KEY)
    if stored is None:
        return UNVERIFIED
    return _compare(stored, payload_digest(payload), path, what, fix)


def _compare(stored: Any, actual: str, path: PathLike, what: str, fix: str) -> str:
    if not isinstance(stored, str) or not stored.startswith(f"{ALGORITHM}:"):
        raise FileIntegrityError(f"{path}: {what} has a malformed checksum entry ({stored!r}); "
                                 f"{fix}")
    if stored != actual:
        raise FileIntegrityError(
            f"{path}: {what} fails its checksum (stored {stored[:19]}..., content "
            f"{actual[:19]}...): the file is corrupt or was altered; {fix}")
    return VERIFIED


def export_digest(metadata: Mapping[str, Any], tensors: Iterable[Tuple[str, torch.Tensor]]) -> str:
    """Checksum of a TorchScript export: its metadata (without ``"checksum"``) and tensors.

    Args:
        metadata: the content of ``metadata.json``.
        tensors: ``(dotted name, tensor)`` of every parameter and buffer of the scripted module.
    """
    named: Dict[str, torch.Tensor] = {}
    for name, t in tensors:
        named[name] = t
    meta = {k: v for k, v in metadata.items() if k != CHECKSUM_KEY}
    return digest({"metadata": meta, "tensors": named})


def verify_export(metadata: Mapping[str, Any], tensors: Iterable[Tuple[str, torch.Tensor]],
                  path: PathLike) -> str:
    """:func:`verify_payload` for an export (see :func:`export_digest`)."""
    stored = metadata.get(CHECKSUM_KEY)
    if stored is None:
        return UNVERIFIED
    return _compare(stored, export_digest(metadata, tensors), path, "export",
                    "export the model again with `tfpot export`")


def nonfinite_tensors(named: Mapping[str, Any]) -> List[str]:
    """Names of floating-point tensors in ``named`` that hold NaN or infinite values."""
    bad = []
    for name, t in named.items():
        if isinstance(t, torch.Tensor) and t.is_floating_point() and t.numel():
            if not bool(torch.isfinite(t).all()):
                bad.append(name)
    return bad

