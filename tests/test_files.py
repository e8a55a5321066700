"""Atomic writes on a failing disk, and the run lock between real processes (standard library only: fast)."""

import errno
import os
import signal
import subprocess
import sys
import time

import pytest

from keras_tinynet import files


def full_disk(*args):
    raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))


def test_a_full_disk_is_one_write_error_and_the_old_file_stays(tmp_path, monkeypatch):
    target = tmp_path / "summary.json"
    target.write_text("old")
    monkeypatch.setattr(os, "fsync", full_disk)
    with pytest.raises(files.WriteError, match=rf"Cannot write {target}: No space left on device after 3 bytes") as e:
        files.write_atomically(target, "new")
    assert isinstance(e.value, ValueError) and e.value.errno == errno.ENOSPC and "\n" not in str(e.value)
    assert target.read_text() == "old" and os.listdir(tmp_path) == ["summary.json"]


def test_a_full_disk_in_a_staged_directory_leaves_the_old_one(tmp_path, monkeypatch):
    target = tmp_path / "epoch-0002"
    target.mkdir()
    (target / "state.json").write_text("old")
    monkeypatch.setattr(files, "fsync_tree", full_disk)
    with pytest.raises(files.WriteError, match=r"epoch-0002: No space left on device after 5 bytes"):
        with files.staged_directory(target, replace=True) as staging:
            (tmp_path / staging / "state.json").write_text("newer")
    assert (target / "state.json").read_text() == "old" and os.listdir(tmp_path) == ["epoch-0002"]


def test_other_errors_are_not_disk_errors(tmp_path):
    with pytest.raises(PermissionError):
        with files.staged_file(tmp_path / "x") as temporary:
            raise PermissionError(errno.EACCES, "denied", temporary)
    assert os.listdir(tmp_path) == []


HOLD = """
import sys, time
from keras_tinynet import files
with files.exclusive_lock(sys.argv[1]):
    print("held", flush=True)
    time.sleep(600)
"""


def test_the_lock_names_its_holder_and_dies_with_it(tmp_path):
    lock = tmp_path / ".lock"
    holder = subprocess.Popen([sys.executable, "-c", HOLD, str(lock)], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline() == "held\n"
        with pytest.raises(files.LockHeld) as held:
            with files.exclusive_lock(lock):
                pass
        assert held.value.holder == str(holder.pid)
    finally:
        holder.send_signal(signal.SIGKILL)
        holder.wait()
    with files.exclusive_lock(lock):  # a killed holder blocks nobody
        assert lock.read_text() == f"{os.getpid()}\n"


def test_directory_locks_take_turns(tmp_path):
    started = time.perf_counter()
    holder = subprocess.Popen(
        [sys.executable, "-c", HOLD.replace("600", "1"), str(tmp_path)], stdout=subprocess.PIPE, text=True
    )
    assert holder.stdout.readline() == "held\n"
    with files.exclusive_lock(tmp_path, wait=True):
        assert holder.wait() == 0 and time.perf_counter() - started >= 1
    assert os.listdir(tmp_path) == []  # a directory is locked as it is
