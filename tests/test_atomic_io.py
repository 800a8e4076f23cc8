"""Atomic writes and the clean-up of temporary files that killed writers leave behind."""

import os
import signal
import subprocess
import sys
import time

import pytest

from tfpot.atomic_io import (TEMP_PATTERN, atomic_path, atomic_write_text,
                             remove_stale_temp_files)

WRITER = """
import sys, time
from tfpot.atomic_io import atomic_path
with atomic_path(sys.argv[1]) as tmp:
    with open(tmp, "w") as f:
        f.write("half of a file")
    print(tmp, flush=True)
    time.sleep(120)
"""


def age(path, seconds=3600):
    t = time.time() - seconds
    os.utime(path, (t, t))


def start_writer(target):
    proc = subprocess.Popen([sys.executable, "-c", WRITER, str(target)], stdout=subprocess.PIPE,
                            text=True)
    tmp = proc.stdout.readline().strip()
    assert tmp and os.path.exists(tmp), "the writer did not start"
    return proc, tmp


def test_temp_name_matches_pattern(tmp_path):
    with atomic_path(tmp_path / "model.pt") as tmp:
        m = TEMP_PATTERN.match(os.path.basename(tmp))
        assert m is not None and m.group("name") == "model.pt"
    assert os.listdir(tmp_path) == ["model.pt"]  # the temp file became the target


def test_killed_writer_leaves_temp_that_next_start_removes(tmp_path):
    target = tmp_path / "checkpoint.pt"
    atomic_write_text("the good old checkpoint", target)
    proc, tmp = start_writer(target)
    try:
        age(tmp)
        # alive: its lock protects the temp file even when it looks old
        assert remove_stale_temp_files(tmp_path, min_age_s=0) == []
        assert os.path.exists(tmp)
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    assert os.path.exists(tmp)  # SIGKILL: nothing could clean up
    assert target.read_text() == "the good old checkpoint"
    removed = remove_stale_temp_files(tmp_path)
    assert [p.name for p in removed] == [os.path.basename(tmp)]
    assert sorted(os.listdir(tmp_path)) == ["checkpoint.pt"]
    assert target.read_text() == "the good old checkpoint"


def test_only_old_unlocked_files_of_the_pattern_are_removed(tmp_path):
    stale = tmp_path / ".model.pt.ab12cd_9.tmp"
    young = tmp_path / ".model.pt.zz12cd_9.tmp"
    other = tmp_path / ".data.lmdb.q1w2e3r4.tmp"
    keep = [tmp_path / "notes.tmp", tmp_path / ".model.pt.tmp", tmp_path / ".model.pt.ABCDEFGH.tmp",
            tmp_path / "model.pt.ab12cd_9.tmp", tmp_path / ".x.ab12cd_9.tmp.bak"]
    for p in [stale, young, other, *keep]:
        p.write_text("x")
        if p is not young:
            age(p)
    (tmp_path / "sub").mkdir()
    nested = tmp_path / "sub" / ".model.pt.ab12cd_9.tmp"
    nested.write_text("x")
    age(nested)

    assert remove_stale_temp_files(tmp_path, name="model.pt") == [stale]
    assert other.exists() and young.exists()
    assert remove_stale_temp_files(tmp_path) == [other]    # any target name, still not young
    assert young.exists() and nested.exists() and all(p.exists() for p in keep)
    assert remove_stale_temp_files(tmp_path / "missing") == []


def test_failed_write_removes_its_temp_and_keeps_the_target(tmp_path):
    target = tmp_path / "metrics.csv"
    atomic_write_text("old", target)
    with pytest.raises(RuntimeError):
        with atomic_path(target) as tmp:
            open(tmp, "w").write("new, half")
            raise RuntimeError("disk full")
    assert sorted(os.listdir(tmp_path)) == ["metrics.csv"] and target.read_text() == "old"
