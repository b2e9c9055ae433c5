"""Scratch folders named for the process that owns them, and the sweep that removes those whose
owner is gone.

A process killed with SIGKILL runs no cleanup, so a folder it made in /tmp or /dev/shm (which is
memory) would stay until reboot. Each folder's name carries its owner's pid and pid namespace
(`<prefix><pid>n<namespace>-<random>`); the next process that makes one of the same kind first
removes those whose owner is dead. Folders of another user, of another pid namespace (a container
sharing the folder: its pids mean nothing here), of a live process, or named some other way are
left alone. A recycled pid only makes a dead owner look alive: the folder stays, nothing is lost.
"""

from __future__ import annotations

import glob
import os
import re
import shutil
import stat
import tempfile
import uuid
from pathlib import Path

_OWNER = re.compile(r"^(?P<pid>\d+)n(?P<namespace>\d+)-")


def _pid_namespace() -> int:
    try:
        return os.stat("/proc/self/ns/pid").st_ino
    except OSError:  # no /proc (not Linux): every folder is of "namespace 0"
        return 0


def owner_tag() -> str:
    """What follows the prefix in this process's scratch folder names: `<pid>n<namespace>-`."""
    return f"{os.getpid()}n{_pid_namespace()}-"


def scratch_path(prefix: str, parent: str | Path | None = None) -> Path:
    """A fresh path for a scratch folder of this process, not created: whoever needs it makes it."""
    return Path(parent or tempfile.gettempdir()) / f"{prefix}{owner_tag()}{uuid.uuid4().hex[:8]}"


def make_scratch_dir(prefix: str, parent: str | Path | None = None) -> Path:
    """A new scratch folder of this process (mode 0700, as `tempfile.mkdtemp`)."""
    return Path(tempfile.mkdtemp(prefix=f"{prefix}{owner_tag()}", dir=parent))


def sweep_stale(prefix: str, parent: str | Path | None = None) -> list[Path]:
    """Remove this user's `prefix` folders in `parent` whose owning process is dead; those removed."""
    parent = Path(parent or tempfile.gettempdir())
    namespace, uid = _pid_namespace(), os.getuid()
    removed = []
    for path in parent.glob(glob.escape(prefix) + "*"):
        owner = _OWNER.match(path.name[len(prefix) :])
        if owner is None or int(owner["namespace"]) != namespace or pid_alive(int(owner["pid"])):
            continue
        try:
            info = path.lstat()
        except FileNotFoundError:  # another process swept it first
            continue
        if stat.S_ISDIR(info.st_mode) and info.st_uid == uid:
            shutil.rmtree(path, ignore_errors=True)
            removed.append(path)
    return removed


def pid_alive(pid: int) -> bool:
    """Whether a process with this pid exists on this host (of any user)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # a live process of another user
        return True
    return True
