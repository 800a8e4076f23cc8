"""Resuming a run: the checkpoint of an output directory, and the config changes it allows.

A run's output directory holds at most one run: without ``resume`` an existing checkpoint is an
error (never silently overwritten); with it, the checkpoint is loaded and the new config may
differ from the checkpoint's only in :data:`RESUMABLE_KEYS` (run length, logging, threads and
other settings that do not change the numbers of the steps already taken).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Dict, Mapping, Optional, Union

from tfpot.training.checkpoint import CHECKPOINT_NAME, load_checkpoint
from tfpot.training.config import ConfigError, TrainConfig

#: Config keys that may change between a run and its resume (a trailing dot: a whole section).
RESUMABLE_KEYS = ("training.max_epochs", "training.max_time", "training.early_stopping_patience",
                  "training.checkpoint_every", "logging.", "device", "output_dir", "num_threads",
                  "data.num_workers", "data.min_distance")


def checkpoint_to_resume(out_dir: Union[str, Path], resume: bool,
                         cfg: TrainConfig) -> Optional[Dict[str, Any]]:
    """The checkpoint of ``out_dir`` to continue with ``cfg`` (None: there is none, a new run).

    Raises:
        ConfigError: a checkpoint exists but ``resume`` is false, or ``cfg`` changes a key that
            is not in :data:`RESUMABLE_KEYS`.
        FileIntegrityError: the checkpoint is torn or fails its checksum.
    """
    path = Path(out_dir) / CHECKPOINT_NAME
    if not path.exists():
        return None
    if not resume:
        raise ConfigError(f"{out_dir} already holds a training run ({CHECKPOINT_NAME}); pass "
                          f"--resume (resume=True) to continue it, or choose another output_dir")
    state = load_checkpoint(path)
    check_resume_config(state["config"], cfg.to_dict(), path)
    return state


def check_resume_config(old: Mapping[str, Any], new: Mapping[str, Any], path: Path) -> None:
    """Refuse a resume whose config ``new`` differs from the checkpoint's ``old`` in any key
    but :data:`RESUMABLE_KEYS`; the message lists the changes. A key that ``old`` lacks (added by
    a later tfpot, e.g. ``training.frame_noise`` in 0.8) counts as its default, which is what
    the older version did."""
    defaults = _flat(TrainConfig().to_dict())
    a, b = _flat(old), _flat(new)
    a = {**{k: v for k, v in defaults.items() if k not in a}, **a}
    changed = [k for k in sorted(set(a) | set(b)) if a.get(k) != b.get(k)
               and not any(k == r or (r.endswith(".") and k.startswith(r)) for r in RESUMABLE_KEYS)]
    if changed:
        diffs = "; ".join(f"{k}: {a.get(k)!r} -> {b.get(k)!r}" for k in changed)
        raise ConfigError(f"{path}: cannot resume with a changed config ({diffs}); only "
                          f"{', '.join(RESUMABLE_KEYS)} may change. Start a new output_dir instead.")


def _flat(d: Mapping[str, Any], prefix: str = "") -> Dict[str, Any]:
    """Dotted keys of a nested config dict (``data.options`` and ``model.e0`` stay whole)."""
    out: Dict[str, Any] = {}
    for k, v in d.items():
        if isinstance(v, Mapping) and k not in ("options", "e0"):
            out.update(_flat(v, prefix + k + "."))
        else:
            out[prefix + k] = v
    return out
