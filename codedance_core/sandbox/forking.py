"""Creating, feeding and killing session processes: the template's process management.

A session process is forked *before* it is needed (a "spare"): it confines itself (private
directory, own uid, rlimits) and then waits. Opening a session only hands the spare a file
descriptor of the image's raw pixels (SCM_RIGHTS over its control socket), so the fork and the
confinement are off the critical path, and the spare, already unprivileged, can read that
one image without being able to open the root-only image directory itself.

Killing sweeps /proc for every live process of the session's uid and SIGKILLs it, until none is
left: a fork bomb or a `setsid()` daemon cannot escape, and nothing needs to be forked to do it.
The main process is also killed by pid (it may not have taken its uid yet) and reaped. Without
root the sessions share a uid, so each is process 1 of its own pid namespace instead, and the
kernel kills every process of the namespace when that one dies.

Runs inside the sandbox as a top-level module; standard library only.
"""

from __future__ import annotations

import os
import selectors
import signal
import socket
import sys
from collections import deque
from dataclasses import dataclass, field
from typing import Any

try:
    from . import confine, wire
except ImportError:  # pragma: no cover - inside the sandbox
    import confine  # type: ignore[no-redef]
    import wire  # type: ignore[no-redef]

KILL_SWEEP_ROUNDS = 200


@dataclass
class SessionProcess:
    """One forked process: a spare (no session yet) or the current process of a session."""

    pid: int
    uid: int
    control: socket.socket
    pipes: dict[int, str]  # read fd -> "stdout" | "stderr"
    reader: wire.FrameReader
    session_id: str | None = None
    opening: dict[str, Any] = field(default_factory=dict)
    open_request: int | None = None
    state: str = "spare"  # spare | starting | idle | running | finishing
    queue: deque = field(default_factory=deque)
    request: dict[str, Any] | None = None
    started: float = 0.0
    deadline: float = float("inf")
    output_bytes: int = 0
    captured: dict[str, bytearray] = field(default_factory=dict)  # head and rolling tail per stream
    written: dict[str, int] = field(default_factory=dict)  # bytes each stream received in all
    note: str = ""
    released: bool = False


def fork_spare(settings: dict[str, Any], uid: int, workdir: str, max_reply_bytes: int,
               selector: selectors.BaseSelector, own_pid_namespace: int | None = None) -> SessionProcess:
    """Fork a process that confines itself and waits for an image; register its channels.
    Given the template's own pid namespace (a descriptor), the process is the first of a new one."""
    import session_process

    parent_end, child_end = socket.socketpair()
    (out_read, out_write), (err_read, err_write) = os.pipe(), os.pipe()
    sys.stderr.flush()
    if own_pid_namespace is not None:
        confine.unshare_pid_namespace_for_next_child()
    pid = os.fork()
    if pid != 0 and own_pid_namespace is not None:
        confine.restore_pid_namespace_for_children(own_pid_namespace)
    if pid == 0:  # pragma: no cover - the child never returns here
        session_process.run_session(child_end.fileno(), out_write, err_write, settings, uid, workdir)
    child_end.close()
    os.close(out_write)
    os.close(err_write)
    process = SessionProcess(pid, uid, parent_end, {out_read: "stdout", err_read: "stderr"},
                             wire.FrameReader(max_reply_bytes))
    selector.register(parent_end, selectors.EVENT_READ, ("control", process))
    for fd in (out_read, err_read):
        os.set_blocking(fd, False)
        selector.register(fd, selectors.EVENT_READ, ("pipe", process))
    return process


def hand_over_image(process: SessionProcess, opening: dict[str, Any]) -> None:
    """Send the spare its image: the header as a frame, the pixel file as a descriptor."""
    fd = os.open(opening["pixels_path"], os.O_RDONLY)
    try:
        header = {"op": "image", **{key: opening[key] for key in ("mode", "size", "layout")}}
        frame = wire.encode_frame(header)
        socket.send_fds(process.control, [frame], [fd])
    finally:
        os.close(fd)


def release(process: SessionProcess, selector: selectors.BaseSelector) -> None:
    """Close the template's ends of a process's channels (after it was killed)."""
    if process.released:
        return
    process.released = True
    selector.unregister(process.control)
    process.control.close()
    for fd in process.pipes:
        selector.unregister(fd)
        os.close(fd)
    process.pipes = {}


def kill_and_reap(process: SessionProcess, sweep_uid: bool) -> str:
    """SIGKILL the process (and, with per-session uids, every process of its uid); say how it ended."""
    if not process.pid:
        return "is gone"
    # The main process first: in the common case (no children) the sweep then finds only it,
    # already signalled, and one pass of /proc is enough.
    for kill in (os.killpg, os.kill):  # the group: with isolation 'none' it is the session's own
        try:
            kill(process.pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass
    if sweep_uid:
        kill_uid_processes(process.uid, signalled={process.pid})
    _, status = os.waitpid(process.pid, 0)
    process.pid = 0
    return describe_exit(status)


def kill_uid_processes(uid: int, signalled: set[int] | None = None) -> None:
    """SIGKILL every live process of `uid`, sweeping /proc until a sweep finds none not yet killed.

    A process with SIGKILL pending can no longer fork (the kernel aborts a fork when a fatal
    signal is pending), so once a sweep finds only processes already signalled, nothing of the
    uid can appear any more: waiting for the victims to finish dying (which for a process with
    a large address space takes a while) would only burn sweeps. Everything found is signalled
    again on every sweep, so a pid recycled within the uid is not spared either.
    """
    signalled = set(signalled or ())
    for _ in range(KILL_SWEEP_ROUNDS):
        found = live_pids_of_uid(uid)
        for pid in found:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        if signalled.issuperset(found):
            return
        signalled.update(found)


def live_pids_of_uid(uid: int) -> list[int]:
    """Pids whose real or effective uid is `uid` and that are not zombies (read from status,
    which stays readable even for processes that made themselves non-dumpable)."""
    found = []
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        try:
            # /proc/<pid> belongs to the process's effective uid, or to root when it is not
            # dumpable: any other owner is another session's process (sessions cannot change
            # uid), and a stat is far cheaper than reading and parsing its status.
            if os.stat(f"/proc/{name}").st_uid not in (uid, 0):
                continue
            with open(f"/proc/{name}/status", "rb") as status:
                text = status.read()
        except (FileNotFoundError, ProcessLookupError, PermissionError):
            continue
        if _status_uid_matches(text, uid) and not _status_is_zombie(text):
            found.append(int(name))
    return found


def _status_field(text: bytes, name: bytes) -> bytes:
    start = text.find(b"\n" + name + b":")
    if start < 0:
        return b""
    start += len(name) + 2
    end = text.find(b"\n", start)
    return text[start : end if end >= 0 else len(text)].strip()


def _status_uid_matches(text: bytes, uid: int) -> bool:
    real_and_effective = _status_field(text, b"Uid").split()[:2]
    return str(uid).encode() in real_and_effective


def _status_is_zombie(text: bytes) -> bool:
    return _status_field(text, b"State").startswith((b"Z", b"X"))


def describe_exit(status: int) -> str:
    if os.WIFSIGNALED(status):
        number = os.WTERMSIG(status)
        name = signal.Signals(number).name if number in signal.valid_signals() else str(number)
        return f"was killed by signal {name}"
    return f"exited with code {os.WEXITSTATUS(status)}"
