"""When a training run stops: a signal (Ctrl-C, SIGTERM) or a limit checked between epochs.

A signal asks the loop to finish the current optimiser step, write a checkpoint and return
(``stop_reason: interrupted``; ``--resume`` continues bit for bit); a second signal stops at
once (``KeyboardInterrupt``). Between epochs the run stops when it has run its planned epochs
(``max_epochs``, or fewer that a ``max_time`` budget allows, see :mod:`.budget`) or when the
validation loss has not improved for ``early_stopping_patience`` epochs.
"""

from __future__ import annotations

import signal
import threading
from types import FrameType
from typing import Any, Callable, Dict, Optional

#: stop reasons (``summary.json``'s ``stop_reason``) and what the log says of them
REASONS = {"max_epochs": "reached training.max_epochs",
           "max_time": "ran the epochs that the training.max_time budget allows",
           "early_stopping": "no validation improvement for training.early_stopping_patience epochs"}

STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)


class StopSignals:
    """SIGINT and SIGTERM as requests to stop, inside a ``with`` block.

    The first signal sets :attr:`received` (the signal number) and tells ``say``; a second one
    raises ``KeyboardInterrupt``. Python installs handlers in the main thread only: elsewhere
    (a trainer run in a thread) the block leaves the signals alone. The previous handlers are
    restored when the block ends.
    """

    def __init__(self, say: Callable[[str], None]) -> None:
        self.say = say
        self.received: Optional[int] = None
        self._previous: Dict[int, Any] = {}

    def __enter__(self) -> "StopSignals":
        if threading.current_thread() is threading.main_thread():
            for sig in STOP_SIGNALS:
                self._previous[sig] = signal.signal(sig, self._handle)
        return self

    def __exit__(self, *exc: object) -> None:
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)
        self._previous.clear()

    def _handle(self, signum: int, frame: Optional[FrameType]) -> None:
        if self.received is not None:  # second signal: stop now
            raise KeyboardInterrupt
        self.received = signum
        self.say(f"signal {signum}: finishing the current step, then writing a checkpoint "
                 "(send again to stop at once)")


def limit_reached(epoch: int, run_epochs: int, max_epochs: int, patience: Optional[int],
                  bad_epochs: int) -> Optional[str]:
    """The reason to stop before epoch ``epoch`` (0-based) starts, or None to go on.

    Args:
        epoch: epochs completed; run_epochs: the planned run length; max_epochs: the config's
        limit (``run_epochs < max_epochs``: a ``max_time`` budget set the length); patience:
        ``training.early_stopping_patience`` (None: never); bad_epochs: epochs since the best.
    """
    if epoch >= run_epochs:
        return "max_epochs" if run_epochs >= max_epochs else "max_time"
    if patience is not None and bad_epochs >= patience:
        return "early_stopping"
    return None
