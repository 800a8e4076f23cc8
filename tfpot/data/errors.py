"""The one error type of the data layer."""

from __future__ import annotations

from tfpot.errors import TfpotError


class DataFormatError(TfpotError, ValueError):
    """A data file is not what its format promises.

    The message names the file and, where it applies, the line (text formats), the key (npz,
    LMDB headers) or the record, then says what was expected and what was found.
    """
