"""The user-facing error type of tfpot.

A :class:`TfpotError` is bad input or a bad file, not a bug: its message is one line that names
the problem (file, line, key, frame or atom index) and says what to do. The ``tfpot`` command
line prints it as ``tfpot COMMAND: error: MESSAGE`` and exits 1 (``--debug`` shows the
traceback). Any other exception is a bug and keeps its traceback.
"""

from __future__ import annotations


class TfpotError(Exception):
    """Bad input or a bad file; the message names it and says what to do."""


class FileIntegrityError(TfpotError, ValueError):
    """A model, checkpoint or export file is torn, altered or not what it claims to be."""


class HyperparameterError(TfpotError, ValueError):
    """A model hyperparameter is unknown or out of range; ``key`` names it.

    Raised by :class:`tfpot.hyperparameters.ModelHyperparameters` when it is built, so a bad value
    fails before any data is read or any weight is created.
    """

    def __init__(self, key: str, reason: str) -> None:
        self.key = key
        self.reason = reason
        super().__init__(f"model hyperparameter {key}: {reason}")


class UnknownElementError(TfpotError, ValueError):
    """A structure has an element the model was not trained on."""


class InputError(TfpotError, ValueError):
    """Bad input to a command or function: an option, a structure file, a combination."""


def short_reason(exc: BaseException, limit: int = 100) -> str:
    """``"TypeName: first sentence"`` of a low-level exception, for a one-line message."""
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
    text = text.split(". ")[0]
    if len(text) > limit:
        text = text[:limit - 3] + "..."
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__
