"""Confining one freshly forked session process, before any user code runs in it.

Bubblewrap already cut the whole template off from the network, the host's writable files and
the host's processes. What it cannot do is separate the sessions that share one template from
each other; that happens here, in the child, right after the fork:

- a private mount namespace with its own tmpfs as the working directory (TMPDIR points there),
  so no other session can even see its files, and it can write nowhere else;
- a uid of its own, unprivileged: the capabilities the template kept are dropped, other
  sessions and the template cannot be signalled, and RLIMIT_NPROC counts only this session's
  processes (the kernel ignores that limit for root, so this is what stops a fork bomb);
- rlimits on memory, CPU, processes, files; no new privileges; death with the template.

With isolation 'none' only the rlimits and a process group of its own remain (for the kill).
Linux-only, standard library only (ctypes); runs inside the sandbox as a top-level module.
"""

from __future__ import annotations

import ctypes
import os
import resource
import signal

CLONE_NEWNS = 0x00020000
MS_NOSUID, MS_NODEV, MS_NOEXEC, MS_BIND, MS_REC, MS_PRIVATE = 2, 4, 8, 4096, 16384, 1 << 18
PR_SET_PDEATHSIG, PR_SET_NO_NEW_PRIVS = 1, 38

_libc = ctypes.CDLL(None, use_errno=True)


def _check(result: int, what: str) -> None:
    if result != 0:
        errno = ctypes.get_errno()
        raise OSError(errno, f"{what}: {os.strerror(errno)}")


def die_with_parent() -> None:
    """Get SIGKILL when the template dies, so a session never outlives it."""
    _check(_libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0), "prctl(PDEATHSIG)")


def private_workdir(workdir: str, uid: int, size_bytes: int) -> None:
    """Mount a private tmpfs owned by `uid` on `workdir`, in a new mount namespace.

    /tmp is not rebound here: the interpreter or virtualenv may live below /tmp (a CI checkout),
    and a mount over /tmp would hide them. /tmp stays the template's read-only-for-sessions tmpfs,
    and TMPDIR points at the workdir, so `tempfile` writes where the session may."""
    _check(_libc.unshare(CLONE_NEWNS), "unshare(CLONE_NEWNS)")
    # Private propagation: our mounts must not leak into the template's namespace.
    _check(_libc.mount(None, b"/", None, MS_REC | MS_PRIVATE, None), "mount --make-rprivate /")
    options = f"size={size_bytes},mode=0700,uid={uid},gid={uid}".encode()
    flags = MS_NOSUID | MS_NODEV | MS_NOEXEC
    _check(_libc.mount(b"tmpfs", workdir.encode(), b"tmpfs", flags, options), f"mount tmpfs {workdir}")


def become_unprivileged(uid: int) -> None:
    """Switch to a uid/gid of this session's own; this drops every capability for good."""
    os.setgroups([])
    os.setresgid(uid, uid, uid)
    os.setresuid(uid, uid, uid)
    _check(_libc.prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0), "prctl(NO_NEW_PRIVS)")


def current_address_space_bytes() -> int:
    """Virtual memory already mapped (the pre-imported libraries count against RLIMIT_AS)."""
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmSize:"):
                return int(line.split()[1]) * 1024
    return 0


def apply_limits(memory_mb: int, cpu_s: int, max_procs: int, max_open_files: int, max_file_mb: int) -> None:
    """Hard rlimits (soft = hard): user code cannot raise them again."""
    address_space = current_address_space_bytes() + memory_mb * 1024 * 1024
    limits = {
        resource.RLIMIT_AS: address_space,
        resource.RLIMIT_CPU: cpu_s,
        resource.RLIMIT_NPROC: max_procs,
        resource.RLIMIT_NOFILE: max_open_files,
        resource.RLIMIT_FSIZE: max_file_mb * 1024 * 1024,
        resource.RLIMIT_CORE: 0,
    }
    for which, value in limits.items():
        resource.setrlimit(which, (value, value))
