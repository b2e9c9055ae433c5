"""The hostile-code checks, run by a non-root user (as the worker image's uid 1000 runs them).

Run as root (as on the development machine), the test makes a throwaway user: a program of
its own (`PROBE`) runs under `setpriv` with an unused uid and no capabilities, in a private mount
namespace where the interpreter below /root (0700 here) is reachable and a world-readable secret
is planted in /root. Run as any other user, it runs the program as that user. The program starts
a real pool through `codedance_core.sandbox`, attacks it and prints what happened as JSON. If the
kernel refuses user namespaces the test skips, except under CI=true, where it fails: the isolation
the worker image relies on must be tested where the suite runs.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
import textwrap
from pathlib import Path

import pytest

from .conftest import HOST_SECRETS

THROWAWAY_UID = 61_234  # no such user here: the sandbox must not depend on a passwd entry
PROJECT_DIR = Path(__file__).resolve().parents[3]
PLANTED_SECRET = "/root/codedance-host-secret.txt"

PROBE = textwrap.dedent("""\
    import json, os, socket, subprocess, sys, time
    from PIL import Image
    from codedance_core.sandbox import IsolationUnavailable, SandboxConfig, SandboxPool

    writable_dir, refusal, secret, project = sys.argv[1:5]
    report = {"euid": os.geteuid(), "refusal": subprocess.run([sys.executable, "-c", refusal],
              capture_output=True, text=True).stdout.strip()}
    try:
        host_secret = open(secret).read()
    except OSError:
        host_secret = None
    report["host_reads_planted_secret"] = host_secret is not None
    try:
        pool = SandboxPool.sync(SandboxConfig(workers=1, timeout_s=1.0)).start()
    except IsolationUnavailable as error:
        print(json.dumps({**report, "unavailable": str(error)}))
        sys.exit(0)
    image = Image.new("RGB", (64, 64))
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(1)
    listener.settimeout(0.3)
    snippets = {
        "identity": "import os\\nprint(os.getuid(), os.getpid(), sorted(p for p in os.listdir('/proc') if p.isdigit()))",
        "loopback": f"import socket\\nsocket.create_connection(('127.0.0.1', {listener.getsockname()[1]}), timeout=0.5)",
        "outside": "import socket\\nsocket.create_connection(('192.0.2.1', 80), timeout=0.5)",
        "root_listing": "import os\\nprint(sorted(os.listdir('/root')))",
        "planted_secret": f"print(open({secret!r}).read())",
        "environment": "import os\\ntexts = [repr(dict(os.environ))]\\nfor pid in os.listdir('/proc'):\\n    try:\\n"
                       "        texts.append(open(f'/proc/{pid}/environ', 'rb').read().decode(errors='replace'))\\n"
                       "    except OSError:\\n        pass\\nprint(chr(10).join(texts))",
        "nested_user_namespace": "import ctypes\\nprint(ctypes.CDLL(None).unshare(0x10000000))",
        "infinite_loop": "while True:\\n    pass",
        "detached_grandchild": "import os, time\\nif os.fork() == 0:\\n    os.setsid()\\n    if os.fork() == 0:\\n"
                               "        time.sleep(1000)\\n    os._exit(0)\\ntime.sleep(1000)",
        "allocate_50_gb": "blob = bytearray(50 * 1024**3)",
        "fork_bomb": "import os\\nwhile True:\\n    try:\\n        os.fork()\\n    except OSError:\\n        pass",
        "thread_bomb": "import threading, time\\nwhile True:\\n"
                       "    threading.Thread(target=time.sleep, args=(1000,), daemon=True).start()",
        "session_write": "open('notes.txt', 'w').write('x')\\nprint(open('notes.txt').read())",
    }
    for target in ("/etc", "/usr", "/tmp", "/dev", "/opt/codedance-sandbox", project, writable_dir):
        snippets["write " + target] = f"open({os.path.join(target, 'codedance-pwned')!r}, 'w').write('x')"
    results = {}
    for name, code in snippets.items():
        started = time.monotonic()
        result = pool.run_once(image, code)
        results[name] = {"status": result.status, "error_type": result.error_type, "stdout": result.stdout,
                          "wall_s": time.monotonic() - started}
    try:
        listener.accept()
        report["loopback_reached_host"] = True
    except socket.timeout:
        report["loopback_reached_host"] = False
    with pool.open_session(image) as owner, pool.open_session(image) as thief:
        owner.execute("open('secret.txt', 'w').write('owner-secret')")
        results["other_session"] = {"stdout": thief.execute(
            "import glob\\nfound = []\\nfor path in glob.glob('/proc/*/root/session/*') + glob.glob('/session/*'):\\n"
            "    try:\\n        found.append(open(path, 'rb').read())\\n    except OSError:\\n        pass\\n"
            "print(b'owner-secret' in found)").stdout}
    report.update(results=results, respawns=pool.pool.respawns, host_secret=host_secret)
    pool.close()
    print(json.dumps(report))
""")

# Run in a child by the probe: a user namespace that may not nest another one, as a kernel with
# unprivileged user namespaces off would behave; the pool must refuse, and say what to change.
REFUSAL = textwrap.dedent("""\
    import ctypes, os
    euid, egid = os.geteuid(), os.getegid()
    assert ctypes.CDLL(None).unshare(0x10000000) == 0
    for name, text in (("uid_map", f"{euid} {euid} 1"), ("setgroups", "deny"), ("gid_map", f"{egid} {egid} 1")):
        with open(f"/proc/self/{name}", "w") as control:
            control.write(text)
    with open("/proc/sys/user/max_user_namespaces", "w") as limit:
        limit.write("0")
    from codedance_core.sandbox import IsolationUnavailable, SandboxConfig, SandboxPool
    try:
        SandboxPool.sync(SandboxConfig(workers=1)).start().close()
        print("started")
    except IsolationUnavailable as error:
        print(error)
""")


def non_root_prefix(writable_dir: str) -> list[str]:
    """The command prefix that runs the probe as a non-root user (a throwaway one when root)."""
    if os.geteuid() != 0:
        return []
    missing = [tool for tool in ("setpriv", "unshare", "mount") if shutil.which(tool) is None]
    if missing:
        reason = f"running as root without {missing} to make a throwaway user"
        if os.environ.get("CI") == "true":
            pytest.fail(reason)
        pytest.skip(reason)
    os.chown(writable_dir, THROWAWAY_UID, THROWAWAY_UID)
    # A private mount namespace: /root (0700) becomes a tmpfs holding only the interpreter's tree
    # and a secret the throwaway user could read on the host. The real /root is never touched.
    interpreter_root = Path(os.path.realpath(sys.base_prefix))
    exposed = [path for path in (interpreter_root, Path(os.path.realpath(sys.prefix))) if path.is_relative_to("/root")]
    script = ["set -e", "stage=$(mktemp -d)"]
    for index, path in enumerate(exposed):
        script += [f"mkdir $stage/{index}", f"mount --bind {path} $stage/{index}"]
    script += ["mount -t tmpfs -o mode=0755 tmpfs /root"]
    for index, path in enumerate(exposed):
        script += [f"mkdir -p {path}", f"mount --move $stage/{index} {path}"]
    script += [f"echo planted-root-secret > {PLANTED_SECRET}", f"chmod 0644 {PLANTED_SECRET}",
               f'exec setpriv --reuid={THROWAWAY_UID} --regid={THROWAWAY_UID} --clear-groups "$@"']
    return ["unshare", "--mount", "--propagation", "private", "sh", "-c", "\n".join(script), "sh"]


@pytest.fixture(scope="module")
def report():
    """What the non-root probe saw, and the host directory it (and only it) may write on the host."""
    writable_dir = tempfile.mkdtemp(prefix="codedance-non-root-", dir="/tmp")
    os.chmod(writable_dir, 0o755)
    try:
        command = [*non_root_prefix(writable_dir), sys.executable, "-c", PROBE,
                   writable_dir, REFUSAL, PLANTED_SECRET, str(PROJECT_DIR)]
        environment = {**os.environ, **HOST_SECRETS, "PYTHONPATH": str(PROJECT_DIR)}
        outcome = subprocess.run(command, capture_output=True, text=True, timeout=120, env=environment,
                                 cwd="/", check=False)
        assert outcome.returncode == 0, outcome.stderr[-3000:]
        found = json.loads(outcome.stdout.strip().splitlines()[-1])
        if "unavailable" in found:
            if os.environ.get("CI") == "true":
                pytest.fail(found["unavailable"])
            pytest.skip(found["unavailable"])
        found["writable_dir"] = writable_dir
        found["host_files_written"] = [str(path) for path in Path(writable_dir).iterdir()]
        yield found
    finally:
        shutil.rmtree(writable_dir, ignore_errors=True)


def result(report, name):
    return report["results"][name]


def test_the_probe_ran_without_root_and_the_pool_stayed_healthy(report):
    assert report["euid"] != 0
    assert report["respawns"] == 0  # every attack was contained in its session
    uid, pid, pids = result(report, "identity")["stdout"].split(" ", 2)
    assert int(uid) >= 200_000  # its own uid, in its own user namespace
    assert pid == "1" and pids.strip() == "['1']"  # a pid namespace of its own: nothing else to see


def test_no_network_not_even_the_hosts_loopback(report):
    assert result(report, "loopback")["error_type"] in ("ConnectionRefusedError", "OSError")
    assert report["loopback_reached_host"] is False
    assert result(report, "outside")["error_type"] in ("OSError", "TimeoutError")


@pytest.mark.parametrize("target", ["/etc", "/usr", "/tmp", "/dev", "/opt/codedance-sandbox", "PROJECT", "WRITABLE"])
def test_writes_outside_the_session_directory_fail(report, target):
    target = {"PROJECT": str(PROJECT_DIR), "WRITABLE": report["writable_dir"]}.get(target, target)
    outcome = result(report, f"write {target}")
    assert outcome["status"] == "error"
    assert outcome["error_type"] in ("PermissionError", "OSError", "FileNotFoundError")
    assert not Path(target, "codedance-pwned").exists()
    assert report["host_files_written"] == []  # a directory this user may write on the host, untouched


def test_the_session_directory_is_writable(report):
    assert result(report, "session_write")["stdout"] == "x\n"


def test_timeouts_kill_the_snippet_and_everything_it_started(report):
    for name in ("infinite_loop", "detached_grandchild"):
        outcome = result(report, name)
        assert outcome["status"] == "timeout" and outcome["wall_s"] < 3.0


def test_memory_and_process_limits_hold(report):
    assert result(report, "allocate_50_gb")["error_type"] == "MemoryError"
    assert result(report, "thread_bomb")["error_type"] == "RuntimeError"
    assert result(report, "fork_bomb")["status"] in ("timeout", "killed")
    assert result(report, "nested_user_namespace")["stdout"] == "-1\n"


def test_the_hosts_root_and_secrets_are_invisible(report):
    if os.geteuid() == 0:  # the planted secret was readable by the user on the host, not in the sandbox
        assert report["host_reads_planted_secret"] and report["host_secret"] == "planted-root-secret\n"
    assert result(report, "planted_secret")["error_type"] in ("FileNotFoundError", "PermissionError")
    interpreter_parents = {part for path in (sys.base_prefix, sys.prefix)
                           for part in Path(os.path.realpath(path)).parts[2:3]
                           if os.path.realpath(path).startswith("/root/")}
    assert set(json.loads(result(report, "root_listing")["stdout"].replace("'", '"'))) <= interpreter_parents
    environment = result(report, "environment")["stdout"]
    for name, secret in HOST_SECRETS.items():
        assert secret not in environment and name not in environment


def test_another_sessions_files_are_invisible(report):
    assert result(report, "other_session")["stdout"] == "False\n"


def test_a_kernel_without_user_namespaces_is_refused_with_what_to_change(report):
    assert "user namespaces" in report["refusal"] and "isolation: none" in report["refusal"]
    assert "user.max_user_namespaces" in report["refusal"]
