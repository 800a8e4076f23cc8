"""Telling the user that a long step is under way."""

from __future__ import annotations

import sys
import threading
import time
from typing import Optional


class Spinner:
    """Says on a stream (stderr) that a long step is under way: ``MESSAGE ...`` at the start and
    ``MESSAGE ... done in N s`` at the end; on a terminal a spinner with the seconds so far
    turns in between (a thread, so the caller may block)."""

    FRAMES = "|/-\\"

    def __init__(self, message: str, stream=None, interval: float = 0.25) -> None:
        self.message = message
        self.stream = stream if stream is not None else sys.stderr
        self.interval = interval
        self._stop = threading.Event()
        self._thread: Optional[threading.Thread] = None
        self._t0 = 0.0

    def _tty(self) -> bool:
        return bool(getattr(self.stream, "isatty", lambda: False)())

    def _spin(self) -> None:
        k = 0
        while not self._stop.wait(self.interval):
            k += 1
            self.stream.write(f"\r{self.message} {self.FRAMES[k % 4]} "
                              f"{time.monotonic() - self._t0:.0f} s")
            self.stream.flush()

    def __enter__(self) -> "Spinner":
        self._t0 = time.monotonic()
        if self._tty():
            self.stream.write(f"{self.message} ...")
            self._thread = threading.Thread(target=self._spin, daemon=True)
            self._thread.start()
        else:
            self.stream.write(f"{self.message} ...\n")
        self.stream.flush()
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
            self.stream.write("\r")
        outcome = "failed" if exc_type is not None else "done"
        self.stream.write(f"{self.message} ... {outcome} in {time.monotonic() - self._t0:.0f} s\n")
        self.stream.flush()
