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
"""

from __future__ import annotations

import os
import shutil
import site
import sys
import warnings
from pathlib import Path

from codedance_core.config.sandbox import SandboxConfig

SANDBOX_CODE_DIR = "/opt/codedance-sandbox"
SANDBOX_IMAGE_DIR = "/opt/codedance-images"
SESSION_DIR = "/session"
TEMPLATE_CAPABILITIES = ("CAP_SYS_ADMIN", "CAP_SETUID", "CAP_SETGID", "CAP_KILL")
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
    if os.geteuid() != 0:
        raise IsolationUnavailable(
            "sandbox isolation 'bwrap' gives each session its own uid and therefore runs as root "
            "(as in the worker image); this process runs as uid "
            f"{os.geteuid()}. Run it as root, or set isolation: none for trusted code only."
        )
    argv = [bwrap, *filesystem_arguments(package_dir, image_dir), *namespace_arguments()]
    for name, value in sandbox_environment().items():
        argv += ["--setenv", name, value]
    argv += [sys.executable, "-I", f"{SANDBOX_CODE_DIR}/zygote.py"]
    return argv, {}, SANDBOX_IMAGE_DIR


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


def namespace_arguments() -> list[str]:
    """New namespaces, lifetime tied to the host, scrubbed environment, minimal capabilities."""
    args = ["--unshare-pid", "--unshare-net", "--unshare-ipc", "--unshare-uts", "--unshare-cgroup-try"]
    args += ["--hostname", "sandbox", "--die-with-parent", "--new-session", "--clearenv"]
    args += ["--cap-drop", "ALL"]
    for capability in TEMPLATE_CAPABILITIES:
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
