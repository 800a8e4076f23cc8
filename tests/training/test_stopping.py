"""Stop handling (training/stopping.py): signals and the limits checked between epochs."""

import os
import signal

import pytest

from tfpot.training.stopping import StopSignals, limit_reached


def test_limits_between_epochs():
    assert limit_reached(3, 5, 5, None, 0) is None
    assert limit_reached(5, 5, 5, None, 0) == "max_epochs"
    assert limit_reached(4, 4, 50, None, 0) == "max_time"  # a budget planned fewer epochs
    assert limit_reached(2, 5, 5, 3, 2) is None
    assert limit_reached(2, 5, 5, 3, 3) == "early_stopping"


def test_first_signal_is_recorded_second_stops_and_handlers_come_back():
    said = []
    before = signal.getsignal(signal.SIGINT)
    with StopSignals(said.append) as signals:
        os.kill(os.getpid(), signal.SIGINT)
        assert signals.received == signal.SIGINT and "finishing the current step" in said[0]
        with pytest.raises(KeyboardInterrupt):
            os.kill(os.getpid(), signal.SIGTERM)
    assert signal.getsignal(signal.SIGINT) is before
