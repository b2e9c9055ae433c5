"""rlimits set by `confine` hold against the code that runs after them (in a throwaway process)."""

from __future__ import annotations

import subprocess
import sys
import textwrap

from codedance_core.sandbox.confine import current_address_space_bytes

PROGRAM = textwrap.dedent("""\
    import os, resource
    from codedance_core.sandbox import confine
    confine.apply_limits(memory_mb=256, cpu_s=5, max_procs=10_000, max_open_files=32, max_file_mb=1)
    try:
        bytearray(1024 ** 3)
    except MemoryError:
        print("memory capped")
    try:
        [open(os.devnull) for _ in range(64)]
    except OSError:
        print("files capped")
    try:
        open(os.path.join({tmp!r}, "big"), "wb").write(b"x" * (2 << 20))
    except OSError:
        print("file size capped")
    try:
        resource.setrlimit(resource.RLIMIT_AS, (resource.RLIM_INFINITY, resource.RLIM_INFINITY))
    except (ValueError, OSError):
        print("limits cannot be raised")
""")


def test_limits_hold_and_cannot_be_raised(tmp_path):
    output = subprocess.run([sys.executable, "-c", PROGRAM.format(tmp=str(tmp_path))],
                            capture_output=True, text=True, timeout=60, check=True).stdout
    assert output.splitlines() == ["memory capped", "files capped", "file size capped", "limits cannot be raised"]


def test_address_space_is_measured():
    assert current_address_space_bytes() > 10 * 1024 * 1024
