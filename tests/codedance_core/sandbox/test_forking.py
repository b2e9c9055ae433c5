"""Killing every process of a uid, however it was started (the template's kill, run on the host)."""

from __future__ import annotations

import os
import signal
import subprocess
import time

from codedance_core.sandbox.forking import describe_exit, kill_uid_processes, live_pids_of_uid

UID = 199_123  # an unused unprivileged uid (these tests run as root, like the worker image)


def test_a_sweep_kills_every_process_of_the_uid_and_nothing_else():
    detached = [subprocess.Popen(["sleep", "1000"], user=UID, start_new_session=True) for _ in range(3)]
    bystander = subprocess.Popen(["sleep", "1000"])
    try:
        assert sorted(live_pids_of_uid(UID)) == sorted(p.pid for p in detached)
        kill_uid_processes(UID)
        for process in detached:
            assert process.wait(timeout=5) == -9
        assert live_pids_of_uid(UID) == [] and bystander.poll() is None
    finally:
        bystander.kill()
        bystander.wait()


def test_exit_statuses_are_described():
    process = subprocess.Popen(["sleep", "1000"])
    process.send_signal(signal.SIGSEGV)
    _, status = os.waitpid(process.pid, 0)
    assert describe_exit(status) == "was killed by signal SIGSEGV"
    process = subprocess.Popen(["sh", "-c", "exit 3"])
    _, status = os.waitpid(process.pid, 0)
    assert describe_exit(status) == "exited with code 3"


def test_a_sweep_finds_non_dumpable_processes_and_children_forked_while_it_kills():
    # A non-dumpable process's /proc entry belongs to root, not to its uid: it must still be found.
    hidden = subprocess.Popen(
        ["python3", "-c", "import ctypes, time; ctypes.CDLL(None).prctl(4, 0, 0, 0, 0); time.sleep(1000)"],
        user=UID, start_new_session=True,
    )
    spawner = subprocess.Popen(["sh", "-c", "while true; do sleep 1000 & done"], user=UID, start_new_session=True)
    try:
        deadline = time.monotonic() + 5
        while len(live_pids_of_uid(UID)) < 5 and time.monotonic() < deadline:
            time.sleep(0.01)
        assert hidden.pid in live_pids_of_uid(UID)
        kill_uid_processes(UID)  # returns once every process of the uid has SIGKILL pending
        assert hidden.wait(timeout=5) == -9 and spawner.wait(timeout=5) == -9
        deadline = time.monotonic() + 5
        while live_pids_of_uid(UID) and time.monotonic() < deadline:  # the last ones finish dying
            time.sleep(0.01)
        assert live_pids_of_uid(UID) == []
    finally:
        for process in (hidden, spawner):
            if process.poll() is None:
                process.kill()
                process.wait()
