"""Locks on shared outputs: one holder at a time, a refusal that names the holder, stale locks recovered."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from codedance_core.storage.locks import (
    FileLock,
    LockHeldError,
    LockHolder,
    RemoteLock,
    exclusive,
    lock_uri_for,
)

HOLD = """
import sys, time
from codedance_core.storage.locks import exclusive
with exclusive(sys.argv[1]):
    print("locked", flush=True)
    time.sleep(60)
"""


def hold_in_subprocess(target: Path) -> subprocess.Popen:
    """A process that takes the lock of `target` and keeps it until killed."""
    process = subprocess.Popen([sys.executable, "-c", HOLD, str(target)], stdout=subprocess.PIPE, text=True)
    assert process.stdout is not None and process.stdout.readline().strip() == "locked"
    return process


def test_a_second_holder_is_refused_with_the_first_ones_pid_and_host(tmp_path):
    target = tmp_path / "results"
    with exclusive(target) as first, pytest.raises(LockHeldError) as refused, exclusive(target):
        pass
    message = str(refused.value)
    assert str(target) in message and f"pid {first.pid}" in message and socket.gethostname() in message
    assert refused.value.holder is not None and refused.value.holder.started == first.started
    assert not Path(lock_uri_for(target)).exists()  # released: the lock file is gone


def test_a_waiter_gets_the_lock_once_the_holder_releases(tmp_path):
    target = tmp_path / "run"
    order: list[str] = []
    held = threading.Event()

    def first() -> None:
        with exclusive(target):
            held.set()
            time.sleep(0.5)
            order.append("first done")

    thread = threading.Thread(target=first)
    thread.start()
    held.wait(5)
    with exclusive(target, wait_s=10):
        order.append("second in")
    thread.join()
    assert order == ["first done", "second in"]


def test_a_killed_holders_lock_is_recovered(tmp_path):
    target = tmp_path / "checkpoints"
    holder = hold_in_subprocess(target)
    try:
        with pytest.raises(LockHeldError, match=f"pid {holder.pid} on"):
            FileLock(lock_uri_for(target), wait_s=0.3).acquire()
        os.kill(holder.pid, signal.SIGKILL)
        holder.wait(10)
        # Its record is still in the file, but the kernel dropped its lock with the process.
        assert LockHolder.from_json(Path(lock_uri_for(target)).read_text()).pid == holder.pid
        with exclusive(target) as mine:
            assert mine.pid == os.getpid()
    finally:
        holder.kill()
        holder.wait(10)


def test_a_lock_file_of_a_dead_process_on_this_host_is_stale(tmp_path):
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    record = LockHolder(dead.pid, socket.gethostname(), "2026-01-01T00:00:00+00:00")
    assert record.is_dead_here()
    assert not LockHolder(os.getpid(), socket.gethostname(), "x").is_dead_here()
    lock_file = Path(lock_uri_for(tmp_path / "out"))
    lock_file.write_text(record.to_json())
    with FileLock(lock_file) as mine:
        assert mine.pid == os.getpid()


def test_remote_lock_refuses_a_live_holder_and_takes_over_a_stale_one(s3_bucket):
    uri = f"s3://{s3_bucket}/store/models/sft.lock"
    first = RemoteLock(uri, stale_after_s=30)
    first.acquire()
    try:
        with pytest.raises(LockHeldError, match=f"pid {os.getpid()}"):
            RemoteLock(uri, wait_s=0.2).acquire()
    finally:
        first.release()
    # A record nobody refreshed for longer than stale_after_s is taken over.
    old = LockHolder(12345, "another-host", "2026-01-01T00:00:00+00:00", heartbeat=time.time() - 600)
    first.fs.pipe_file(first.path, old.to_json().encode())
    second = RemoteLock(uri, stale_after_s=30)
    assert second.acquire().pid == os.getpid()
    second.release()
    assert second.read_holder() is None
