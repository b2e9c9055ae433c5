"""The command line that starts a template process: inside bubblewrap, or (loudly) without it.

What bubblewrap gives every worker, and why:
- a new root made of read-only binds of only what Python needs (/usr, /etc, the interpreter, the
  virtualenv, this package's directory): the host's files are readable where needed, writable
  nowhere, and the rest (home directories, the project, other users' data) is simply absent;
- the pool's private image directory (shared memory, mode 0700), read-only: session images
  arrive as raw pixel files instead of megabytes pushed through a pipe;
- `/session`, an empty mount point on which each session mounts its own private tmpfs, and a
  tmpfs /tmp for the template itself;
- new network, pid, ipc and uts namespaces: no network at all (not even loopback to the host's
  services), no view of or signal to host processes;
- `--die-with-parent` and a pid namespace: when the host process dies, everything inside dies;
- `--clearenv`: user code never sees the host's environment (AWS_*, MLFLOW_* and other secrets);
- only the capabilities the template needs to confine and kill its children (mount, setuid/setgid, kill);
  every session process drops them (see `confine`).

Two ways to run it, chosen by who starts the pool (`session_identity`):
- as root: each session takes an unprivileged uid of its own (`first_session_uid` on);
- as any other user (the worker image runs as uid 1000): bubblewrap starts in an unprivileged
  user namespace (`--unshare-user`), where the template is root over nothing but its own
  namespaces; each session gets its own pid and user namespaces instead of its own uid. This
  needs a kernel that allows unprivileged user namespaces; `check_user_namespaces` finds out
  at pool start and refuses, naming what to change, if it does not. Never a silent fallback.
"""

from __future__ import annotations

import os
import shutil
import site
import subprocess
import sys
import warnings
from pathlib import Path

from codedance_core.config.sandbox import SandboxConfig

SANDBOX_CODE_DIR = "/opt/codedance-sandbox"
SANDBOX_IMAGE_DIR = "/opt/codedance-images"
SESSION_DIR = "/session"
TEMPLATE_CAPABILITIES = ("CAP_SYS_ADMIN", "CAP_SETUID", "CAP_SETGID", "CAP_KILL")
# In a user namespace a session maps its own uid onto the template's, which is that namespace's
# root; since Linux 5.12 that map needs CAP_SETFCAP when the session's namespace is created.
USER_NAMESPACE_CAPABILITIES = ("CAP_SETFCAP",)
PROBE_TIMEOUT_S = 10.0
SYSTEM_DIRS = ("bin", "lib", "lib32", "lib64", "sbin")


class IsolationUnavailable(RuntimeError):
    """The configured isolation cannot be set up on this machine."""


def sandbox_environment() -> dict[str, str]:
    """The only environment variables user code will see."""
    return {
        "PATH": "/usr/local/bin:/usr/bin:/bin",
        "LANG": "C.UTF-8",
        "LC_ALL": "C.UTF-8",
        "HOME": SESSION_DIR,
        "TMPDIR": SESSION_DIR,
        "MPLBACKEND": "Agg",
        "OPENBLAS_NUM_THREADS": "1",
        "OMP_NUM_THREADS": "1",
        "MKL_NUM_THREADS": "1",
        "PYTHONDONTWRITEBYTECODE": "1",
    }


def template_command(config: SandboxConfig, image_dir: Path) -> tuple[list[str], dict[str, str], str]:
    """argv and environment that start one template under the configured isolation, and the
    path at which the template sees the host's private image directory."""
    package_dir = Path(__file__).resolve().parent
    if config.isolation == "none":
        warn_no_isolation()
        return [sys.executable, "-I", str(package_dir / "zygote.py")], sandbox_environment(), str(image_dir)
    bwrap = shutil.which("bwrap")
    if bwrap is None:
        raise IsolationUnavailable(
            "bubblewrap ('bwrap') is not installed, so model code cannot be isolated. Install it "
            "(Debian/Ubuntu: apt-get install bubblewrap) or, only for debugging trusted code, set "
            "sandbox isolation: none."
        )
    user_namespace = session_identity(config) == "user_namespace"
    if user_namespace:
        check_user_namespaces(bwrap)
    argv = [bwrap, *filesystem_arguments(package_dir, image_dir), *namespace_arguments(user_namespace)]
    for name, value in sandbox_environment().items():
        argv += ["--setenv", name, value]
    argv += [sys.executable, "-I", f"{SANDBOX_CODE_DIR}/zygote.py"]
    return argv, {}, SANDBOX_IMAGE_DIR


def session_identity(config: SandboxConfig) -> str:
    """How sessions are told apart: 'uid' (bwrap as root), 'user_namespace' (bwrap as any other
    user) or 'none' (no isolation: a process group each)."""
    if config.isolation == "none":
        return "none"
    return "uid" if os.geteuid() == 0 else "user_namespace"


def check_user_namespaces(bwrap: str) -> None:
    """Start a throwaway bubblewrap the way the template starts; refuse clearly if the kernel
    (or the container's seccomp/AppArmor profile) does not let this user do it."""
    probe = [bwrap, "--unshare-user", "--uid", "0", "--gid", "0", "--unshare-pid", "--unshare-net",
             "--ro-bind", "/", "/", "--proc", "/proc", "--cap-drop", "ALL", "--cap-add", "CAP_SYS_ADMIN", "true"]
    try:
        outcome = subprocess.run(probe, capture_output=True, text=True, timeout=PROBE_TIMEOUT_S, check=False)
        failure = outcome.stderr.strip() if outcome.returncode != 0 else ""
    except (OSError, subprocess.TimeoutExpired) as error:
        failure = repr(error)
    if failure:
        raise IsolationUnavailable(
            f"sandbox isolation 'bwrap' runs as uid {os.geteuid()} (not root), so it needs unprivileged "
            f"user namespaces, and bubblewrap could not create one: {failure}. To fix it, do one of: "
            "allow them on the host (sysctl user.max_user_namespaces > 0; on Debian kernels "
            "kernel.unprivileged_userns_clone=1; on Ubuntu 23.10+ kernel.apparmor_restrict_unprivileged_userns=0); "
            "in a container, run it with seccomp and AppArmor profiles that allow unshare and mount "
            "(see infra/README.md, 'Worker image'); run the pool as root; or, only for trusted code, set "
            "sandbox isolation: none (no isolation at all; it warns at every start). A setuid-root bwrap "
            "does not help: it refuses the capabilities the template needs unless the caller is root."
        )


def filesystem_arguments(package_dir: Path, image_dir: Path) -> list[str]:
    """Read-only binds of what Python needs, the session mount point, then a read-only root."""
    # /tmp first, so binds of an interpreter or virtualenv that lives below /tmp land on top of it;
    # 0755: sessions (other uids) cannot write there, they write in their own SESSION_DIR.
    args = ["--perms", "0755", "--tmpfs", "/tmp"]
    args += ["--ro-bind", "/usr", "/usr", "--ro-bind", "/etc", "/etc"]
    for name in SYSTEM_DIRS:
        path = Path("/") / name
        if path.is_symlink():
            args += ["--symlink", os.readlink(path), str(path)]
        elif path.is_dir():
            args += ["--ro-bind", str(path), str(path)]
    for path in python_paths():
        # Parents made explicitly world-traversable: bwrap would copy e.g. /root's 0700, and the
        # sessions' unprivileged uids could not reach the interpreter's files below it.
        for parent in reversed(Path(path).parents[:-1]):
            args += ["--perms", "0755", "--dir", str(parent)]
        args += ["--ro-bind", path, path]
    args += ["--ro-bind", str(package_dir), SANDBOX_CODE_DIR]
    # Root-only (0700) on the host: the template reads it, the sessions' uids cannot.
    args += ["--ro-bind", str(image_dir), SANDBOX_IMAGE_DIR]
    args += ["--dir", SESSION_DIR, "--proc", "/proc", "--dev", "/dev"]
    args += ["--remount-ro", "/"]
    return args


def python_paths() -> list[str]:
    """The interpreter, the virtualenv and the site-packages outside /usr, as bind sources."""
    candidates = {sys.base_prefix, sys.prefix, os.path.realpath(sys.base_prefix), os.path.realpath(sys.prefix)}
    candidates.update(site.getsitepackages())
    candidates.add(os.path.dirname(sys.executable))
    kept: list[str] = []
    for path in sorted(candidates, key=len):
        covered = path.startswith("/usr/") or any(path.startswith(parent + "/") for parent in kept)
        if os.path.isdir(path) and not covered and path not in kept:
            kept.append(path)
    return kept


def namespace_arguments(user_namespace: bool = False) -> list[str]:
    """New namespaces, lifetime tied to the host, scrubbed environment, minimal capabilities.
    With `user_namespace`, also a user namespace in which this (non-root) user is root."""
    args = ["--unshare-user", "--uid", "0", "--gid", "0"] if user_namespace else []
    args += ["--unshare-pid", "--unshare-net", "--unshare-ipc", "--unshare-uts", "--unshare-cgroup-try"]
    args += ["--hostname", "sandbox", "--die-with-parent", "--new-session", "--clearenv"]
    args += ["--cap-drop", "ALL"]
    for capability in TEMPLATE_CAPABILITIES + (USER_NAMESPACE_CAPABILITIES if user_namespace else ()):
        args += ["--cap-add", capability]
    return args


def warn_no_isolation() -> None:
    """Say loudly, on stderr and as a warning, that model code will run unconfined."""
    message = (
        "SANDBOX ISOLATION IS OFF (isolation: none): model-written code runs with this user's "
        "rights, network and files. Use it only to debug trusted code."
    )
    banner = "!" * 100
    print(f"{banner}\n{message}\n{banner}", file=sys.stderr)
    warnings.warn(message, RuntimeWarning, stacklevel=3)
