"""The hostile-input corpus, run against one real pool with isolation on.

Each snippet must be contained (an explicit status, no effect outside its session) and leave the
pool healthy. The last test checks what the whole corpus did to the pool: latency unchanged,
no process left behind. Network probes only ever target 127.0.0.1 and 192.0.2.1 (TEST-NET-1,
unroutable by definition), never a real host.
"""

from __future__ import annotations

import os
import socket
import statistics
import time
from pathlib import Path

import pytest
from PIL import Image

from codedance_core.sandbox import SyncSandboxPool

from .conftest import HOST_SECRETS, descendants, start_pool

PROJECT_DIR = Path(__file__).resolve().parents[3]
TRIVIAL = "print(input_image.size)"
# An idle worker is five processes: bwrap, bwrap's init inside the pid namespace, the template,
# and the template's two spare session processes.
IDLE_PROCESSES = 2 * 5


def median_latency(pool: SyncSandboxPool, image: Image.Image, runs: int = 30) -> float:
    with pool.open_session(image) as session:
        session.execute(TRIVIAL)
        timings = []
        for _ in range(runs):
            started = time.perf_counter()
            assert session.execute(TRIVIAL).ok
            timings.append(time.perf_counter() - started)
    return statistics.median(timings)


@pytest.fixture(scope="module")
def hostile_pool(gradient_image):
    """The pool the corpus attacks, with its healthy latency and process count measured first."""
    sync_pool = start_pool(workers=2, timeout_s=1.0)
    try:
        baseline = {
            "latency": median_latency(sync_pool, gradient_image),
            "processes": wait_for_process_count(lambda n: n == IDLE_PROCESSES),
        }
        yield sync_pool, baseline
    finally:
        sync_pool.close()


def wait_for_process_count(done, timeout_s: float = 5.0) -> int:
    """Poll the number of descendant processes until `done(count)` (closes are asynchronous)."""
    deadline = time.monotonic() + timeout_s
    count = len(descendants())
    while not done(count) and time.monotonic() < deadline:
        time.sleep(0.05)
        count = len(descendants())
    return count


def run(hostile_pool, image, code: str):
    pool, _ = hostile_pool
    return pool.run_once(image, code)


def test_infinite_loop_times_out_and_is_killed(hostile_pool, gradient_image):
    started = time.monotonic()
    result = run(hostile_pool, gradient_image, "while True:\n    pass")
    assert result.status == "timeout"
    assert 1.0 <= time.monotonic() - started < 3.0


def test_signal_tricks_cannot_escape_the_timeout(hostile_pool, gradient_image):
    code = (
        "import signal\n"
        "for sig in (signal.SIGALRM, signal.SIGTERM, signal.SIGINT, signal.SIGXCPU):\n"
        "    signal.signal(sig, signal.SIG_IGN)\n"
        "signal.alarm(0)\n"
        "while True:\n"
        "    pass\n"
    )
    assert run(hostile_pool, gradient_image, code).status == "timeout"


def test_a_detached_grandchild_cannot_escape_the_kill(hostile_pool, gradient_image):
    code = (
        "import os, time\n"
        "if os.fork() == 0:\n"
        "    os.setsid()\n"
        "    if os.fork() == 0:\n"
        "        time.sleep(1000)\n"
        "    os._exit(0)\n"
        "time.sleep(1000)\n"
    )
    assert run(hostile_pool, gradient_image, code).status == "timeout"


def test_allocating_50_gb_fails_inside_the_snippet(hostile_pool, gradient_image):
    result = run(hostile_pool, gradient_image, "blob = bytearray(50 * 1024**3)")
    assert result.status == "error" and result.error_type == "MemoryError"
    result = run(hostile_pool, gradient_image, "import numpy as np\nbig = np.ones((50 * 1024**3,), np.uint8)")
    assert result.status == "error" and result.error_type in ("MemoryError", "_ArrayMemoryError")


def test_fork_bomb_is_capped_and_killed(hostile_pool, gradient_image):
    code = "import os\nwhile True:\n    try:\n        os.fork()\n    except OSError:\n        pass\n"
    result = run(hostile_pool, gradient_image, code)
    assert result.status in ("timeout", "killed")


def test_thread_bomb_hits_the_process_limit(hostile_pool, gradient_image):
    code = (
        "import threading, time\n"
        "threads = []\n"
        "while True:\n"
        "    thread = threading.Thread(target=time.sleep, args=(1000,), daemon=True)\n"
        "    thread.start()\n"
        "    threads.append(thread)\n"
    )
    result = run(hostile_pool, gradient_image, code)
    assert result.status == "error" and result.error_type == "RuntimeError"
    assert "thread" in result.error_message


def test_100_mb_of_output_is_cut_off(hostile_pool, gradient_image):
    started = time.monotonic()
    result = run(hostile_pool, gradient_image, "for _ in range(100):\n    print('x' * (1 << 20))")
    assert result.status == "output_limit"
    assert "truncated" in result.stdout and len(result.stdout) < 20_000
    assert time.monotonic() - started < 1.0
    # Output written below Python (straight to the file descriptor) is counted too.
    result = run(hostile_pool, gradient_image, "import os\nfor _ in range(100):\n    os.write(1, b'y' * (1 << 20))")
    assert result.status == "output_limit"


@pytest.mark.parametrize("target", ["/etc/pwned", "/root/pwned", "/usr/pwned", "/tmp/pwned", "/tmp/../pwned", "PROJECT"])
def test_writes_outside_the_session_directory_fail(hostile_pool, gradient_image, target):
    path = str(PROJECT_DIR / "pwned") if target == "PROJECT" else target
    result = run(hostile_pool, gradient_image, f"open({path!r}, 'w').write('x')")
    assert result.status == "error"
    assert result.error_type in ("PermissionError", "OSError", "FileNotFoundError")
    assert not os.path.exists(os.path.normpath(path))


def test_home_is_the_private_session_directory(hostile_pool, gradient_image):
    code = "import os\nopen(os.path.expanduser('~/notes.txt'), 'w').write('x')\nprint(os.path.expanduser('~'))"
    result = run(hostile_pool, gradient_image, code)
    assert result.ok and result.stdout.strip() == "/session"
    assert not Path("/session").exists() and not (Path.home() / "notes.txt").exists()


def test_temporary_files_go_to_the_session_directory(hostile_pool, gradient_image):
    # /tmp is shared by a template's sessions, so it is read-only for them; tempfile uses TMPDIR.
    code = "import tempfile\nwith tempfile.NamedTemporaryFile() as f:\n    print(f.name)"
    result = run(hostile_pool, gradient_image, code)
    assert result.ok and result.stdout.startswith("/session/")


def test_another_sessions_files_cannot_be_read(gradient_image):
    sync_pool = start_pool(workers=1, timeout_s=2.0)  # one template: both sessions side by side
    try:
        with sync_pool.open_session(gradient_image) as owner, sync_pool.open_session(gradient_image) as thief:
            assert owner.execute("open('secret.txt', 'w').write('owner-secret')\nimport os\nprint(os.getpid())").ok
            probe = (
                "import glob, os\n"
                "found = []\n"
                "for path in glob.glob('/proc/*/root/session/*') + glob.glob('/proc/*/cwd/*') + glob.glob('/session/*'):\n"
                "    try:\n"
                "        found.append(open(path, 'rb').read())\n"
                "    except OSError:\n"
                "        pass\n"
                "print(b'owner-secret' in found, sorted(os.listdir('/session')))\n"
            )
            result = thief.execute(probe)
            assert result.ok, result
            assert result.stdout.strip() == "False ['input_image.jpg']"
    finally:
        sync_pool.close()


def test_no_network_not_even_loopback(hostile_pool, gradient_image):
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen(1)
        server.settimeout(0.5)
        port = server.getsockname()[1]
        code = f"import socket\nsocket.create_connection(('127.0.0.1', {port}), timeout=0.5)"
        result = run(hostile_pool, gradient_image, code)
        assert result.status == "error" and result.error_type in ("ConnectionRefusedError", "OSError")
        with pytest.raises(socket.timeout):
            server.accept()  # nothing ever reached the host's loopback
    code = "import socket\nsocket.create_connection(('192.0.2.1', 80), timeout=0.5)"
    result = run(hostile_pool, gradient_image, code)
    assert result.status == "error" and result.error_type in ("OSError", "TimeoutError")


def test_host_secrets_are_not_in_the_environment(hostile_pool, gradient_image):
    code = (
        "import os\n"
        "texts = [repr(dict(os.environ))]\n"
        "for pid in os.listdir('/proc'):\n"
        "    try:\n"
        "        texts.append(open(f'/proc/{pid}/environ', 'rb').read().decode(errors='replace'))\n"
        "    except (OSError, NotADirectoryError):\n"
        "        pass\n"
        "print('\\n'.join(texts))\n"
    )
    result = run(hostile_pool, gradient_image, code)
    assert result.ok
    for name, secret in HOST_SECRETS.items():
        assert secret not in result.stdout and name not in result.stdout


def test_killing_the_parent_or_everyone_hurts_only_the_session(hostile_pool, gradient_image):
    result = run(hostile_pool, gradient_image, "import os, signal\nos.kill(os.getppid(), signal.SIGKILL)")
    assert result.status == "error" and result.error_type == "PermissionError"
    result = run(hostile_pool, gradient_image, "import os, signal\nos.kill(1, signal.SIGKILL)")
    assert result.status == "error" and result.error_type == "PermissionError"
    # kill(-1) reaches every process the session may signal: its own only (the caller is spared).
    result = run(hostile_pool, gradient_image, "import os, signal\nos.kill(-1, signal.SIGKILL)\nprint('alive')")
    assert result.ok and result.stdout == "alive\n"
    result = run(hostile_pool, gradient_image, "import os, signal\nos.kill(os.getpid(), signal.SIGKILL)")
    assert result.status == "killed" and "SIGKILL" in result.error_message
    assert run(hostile_pool, gradient_image, TRIVIAL).ok


def test_a_segfault_kills_only_the_session(hostile_pool, gradient_image):
    result = run(hostile_pool, gradient_image, "import ctypes\nctypes.string_at(0)")
    assert result.status == "killed" and "SIGSEGV" in result.error_message


def test_missing_module_syntax_error_and_silence(hostile_pool, gradient_image):
    result = run(hostile_pool, gradient_image, "import module_that_does_not_exist")
    assert (result.status, result.error_type) == ("error", "ModuleNotFoundError")
    result = run(hostile_pool, gradient_image, "x = 1\ny = (2 +\n")
    assert (result.status, result.error_type) == ("error", "SyntaxError") and result.error_line in (2, 3)
    result = run(hostile_pool, gradient_image, "x = 1")
    assert result.ok and result.stdout == "" and result.stderr == "" and result.images == []


def test_the_pool_is_healthy_after_the_corpus(hostile_pool, gradient_image):
    pool, baseline = hostile_pool
    latency = median_latency(pool, gradient_image)
    assert latency < 2 * baseline["latency"] + 0.005, (latency, baseline["latency"])
    assert baseline["processes"] == IDLE_PROCESSES
    count = wait_for_process_count(lambda n: n == IDLE_PROCESSES)
    assert count == IDLE_PROCESSES, [p.cmdline()[-3:] for p in descendants()]
    assert pool.pool.respawns == 0  # no template died: every attack was contained in its session
