"""Revisions of what a model computes: the ``revision`` that model files and checkpoints record.

A revision changes the function that a model of given hyperparameters and weights computes.
Files record theirs, so that they keep predicting what they did when they were written; a new
model is always of the latest, :data:`REVISION`. Older revisions are only loaded
(:func:`tfpot.builder.model_from_config` calls :func:`apply_revision`), never chosen.

========  =====================================================================================
revision  what changed
========  =====================================================================================
1         files that record none (tfpot 0.3 and 0.4.0): the attention message adds the bias of
          its output layer on every edge, not scaled by the cutoff envelope, so the energy jumps
          when a neighbour crosses the cutoff (MLP messages were scaled already)
2         every message is scaled by the cutoff envelope (attention: its whole output), so it
          vanishes smoothly at the cutoff
========  =====================================================================================

The switch lives on the message modules (``AttentionMessage.scale_by_envelope``), so a
TorchScript export of a loaded model (LAMMPS) computes what the model does.
"""

from __future__ import annotations

from typing import Any

from torch import nn

from tfpot.errors import FileIntegrityError
from tfpot.nn.messages import AttentionMessage

#: the revision of every new model
REVISION = 2
#: the revision of files that record none
UNRECORDED = 1


def checked_revision(value: Any) -> int:
    """A recorded revision, as an int in 1..:data:`REVISION`.

    Raises:
        FileIntegrityError: not an integer, or from a newer tfpot than this one.
    """
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise FileIntegrityError(f"model revision {value!r} is not a revision (1, 2, ...)")
    if value > REVISION:
        raise FileIntegrityError(f"model revision {value} is newer than this tfpot's "
                                 f"({REVISION}); load it with a newer tfpot")
    return value


def apply_revision(model: nn.Module, revision: int) -> nn.Module:
    """Make a freshly built :class:`~tfpot.model.EnergyModel` compute as ``revision`` did (its
    ``config`` then records it); returns the model."""
    model.revision = checked_revision(revision)
    for module in model.modules():
        if isinstance(module, AttentionMessage):
            module.scale_by_envelope = revision >= 2
    return model
