"""tfpot.progress.Spinner: a start and an end line off a terminal, a turning spinner on one."""

import io
import time

import pytest

from tfpot.progress import Spinner


class FakeTerminal(io.StringIO):
    def isatty(self):
        return True


def test_spinner_off_a_terminal_prints_start_and_end_lines():
    out = io.StringIO()
    with Spinner("compiling", stream=out, interval=0.01):
        time.sleep(0.05)
    lines = out.getvalue().splitlines()
    assert lines[0] == "compiling ..."
    assert lines[1].startswith("compiling ... done in ") and lines[1].endswith(" s")
    assert "\r" not in out.getvalue()  # no spinner frames in a log file


def test_spinner_on_a_terminal_turns_and_reports_failure():
    out = FakeTerminal()
    with pytest.raises(RuntimeError):
        with Spinner("compiling", stream=out, interval=0.01):
            time.sleep(0.1)
            raise RuntimeError("compiler error")
    text = out.getvalue()
    frames = [f for f in "|/-\\" if f"\rcompiling {f} " in text]
    assert len(frames) >= 2, text  # it turned
    assert text.rstrip().endswith("s") and "compiling ... failed in " in text
