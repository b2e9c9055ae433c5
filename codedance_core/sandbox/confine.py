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

Without root (the worker image runs as uid 1000), bubblewrap runs in an unprivileged user
namespace in which only the worker's own uid exists, so sessions cannot have uids of their own.
Each session then gets, instead:
- a pid namespace of its own, whose first process it is (the template forks it so): it sees and
  can signal only its own processes, and killing it kills everything it started;
- in its mount namespace, a fresh /proc for that pid namespace, the image directory unmounted,
  and /tmp and /dev read-only (they belong to the worker's uid, which the session shares);
- then a user namespace of its own, mapping only its uid: RLIMIT_NPROC counts this session's
  processes alone, and every capability is dropped for good.

With isolation 'none' only the rlimits and a process group of its own remain (for the kill).
Linux-only, standard library only (ctypes); runs inside the sandbox as a top-level module.
"""

from __future__ import annotations

import ctypes
import os
import resource
import signal

CLONE_NEWNS, CLONE_NEWUSER, CLONE_NEWPID = 0x00020000, 0x10000000, 0x20000000
MS_RDONLY, MS_NOSUID, MS_NODEV, MS_NOEXEC, MS_REMOUNT = 1, 2, 4, 8, 32
MS_BIND, MS_REC, MS_PRIVATE = 4096, 16384, 1 << 18
MNT_DETACH = 2
PR_SET_PDEATHSIG, PR_CAPBSET_DROP, PR_SET_NO_NEW_PRIVS, PR_CAP_AMBIENT = 1, 24, 38, 47
PR_CAP_AMBIENT_CLEAR_ALL = 4
LINUX_CAPABILITY_VERSION_3 = 0x20080522

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


def hide_template_files(image_dir: str, read_only_dirs: tuple[str, ...]) -> None:
    """In the session's mount namespace: unmount the image directory (the image arrives as a
    descriptor) and make the template's writable directories read-only. Needed only when the
    session shares the template's uid, which would otherwise own them too."""
    _check(_libc.umount2(image_dir.encode(), MNT_DETACH), f"umount {image_dir}")
    for path in read_only_dirs:
        flags = MS_REMOUNT | MS_BIND | MS_RDONLY | MS_NOSUID | MS_NODEV
        _check(_libc.mount(None, path.encode(), None, flags, None), f"remount {path} read-only")


def mount_own_proc() -> None:
    """A /proc that lists only the processes of this session's pid namespace."""
    _check(_libc.mount(b"proc", b"/proc", b"proc", MS_NOSUID | MS_NODEV | MS_NOEXEC, None), "mount proc")


def enter_own_user_namespace(uid: int) -> None:
    """Become `uid` in a user namespace of this session's own, mapped onto the template's uid.

    The map holds that single uid, so the session cannot become anyone else, and RLIMIT_NPROC
    is counted per user namespace: set after this, it bounds this session's processes alone.
    User code may not nest further user namespaces (less kernel surface; as bwrap --disable-userns):
    the limit is per namespace, and /proc is this session's own, writable, mount."""
    outer_uid, outer_gid = os.geteuid(), os.getegid()
    try:
        os.setgroups([])
    except PermissionError:
        pass  # the enclosing namespace already forbids setgroups; nothing to drop
    _check(_libc.unshare(CLONE_NEWUSER), "unshare(CLONE_NEWUSER)")
    for name, text in (("uid_map", f"{uid} {outer_uid} 1\n"), ("setgroups", "deny"),
                       ("gid_map", f"{uid} {outer_gid} 1\n")):
        with open(f"/proc/self/{name}", "w") as control:
            control.write(text)
    with open("/proc/sys/user/max_user_namespaces", "w") as limit:
        limit.write("0")


class _CapHeader(ctypes.Structure):
    _fields_ = [("version", ctypes.c_uint32), ("pid", ctypes.c_int)]


class _CapData(ctypes.Structure):
    _fields_ = [("effective", ctypes.c_uint32), ("permitted", ctypes.c_uint32), ("inheritable", ctypes.c_uint32)]


def drop_all_capabilities() -> None:
    """Empty the bounding, ambient, effective, permitted and inheritable sets; no new privileges."""
    with open("/proc/sys/kernel/cap_last_cap") as last:
        for capability in range(int(last.read()) + 1):
            _check(_libc.prctl(PR_CAPBSET_DROP, capability, 0, 0, 0), "prctl(CAPBSET_DROP)")
    _check(_libc.prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0), "prctl(CAP_AMBIENT_CLEAR_ALL)")
    header, data = _CapHeader(LINUX_CAPABILITY_VERSION_3, 0), (_CapData * 2)()
    _check(_libc.capset(ctypes.byref(header), data), "capset")
    _check(_libc.prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0), "prctl(NO_NEW_PRIVS)")


def unshare_pid_namespace_for_next_child() -> None:
    """The template's next fork starts a new pid namespace (the child is its process 1)."""
    _check(_libc.unshare(CLONE_NEWPID), "unshare(CLONE_NEWPID)")


def restore_pid_namespace_for_children(own_namespace_fd: int) -> None:
    """Later forks go back to the template's own pid namespace (a pid namespace is one-shot)."""
    _check(_libc.setns(own_namespace_fd, CLONE_NEWPID), "setns(CLONE_NEWPID)")


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
