"""A pool killed with SIGKILL cannot remove its image folder from /dev/shm (memory): the next pool to
start does, and never the folder of a pool that is still running."""

from __future__ import annotations

import shutil
import signal
import subprocess
import sys
from pathlib import Path

from codedance_core.sandbox import SandboxConfig, SandboxPool
from codedance_core.sandbox.pool import IMAGE_DIR_PREFIX

RUN_A_POOL = """
import time
from codedance_core.sandbox import SandboxConfig, SandboxPool
pool = SandboxPool.sync(SandboxConfig(workers=1)).start()
print(pool.pool.image_dir, flush=True)
time.sleep(600)
"""


def _running_pool() -> tuple[subprocess.Popen, Path]:
    process = subprocess.Popen([sys.executable, "-c", RUN_A_POOL], stdout=subprocess.PIPE, text=True)
    return process, Path(process.stdout.readline().strip())


def test_the_next_pool_removes_the_image_folder_of_a_killed_one_and_not_of_a_live_one():
    killed, killed_images = _running_pool()
    live, live_images = _running_pool()
    try:
        assert killed_images.name.startswith(f"{IMAGE_DIR_PREFIX}{killed.pid}n")
        killed.send_signal(signal.SIGKILL)
        killed.wait()
        assert killed_images.is_dir()

        pool = SandboxPool.sync(SandboxConfig(workers=1)).start()
        own_images = pool.pool.image_dir
        pool.close()
        assert not killed_images.exists()
        assert live_images.is_dir()
        assert not own_images.exists()  # a pool that closes removes its own
    finally:
        live.kill()
        live.wait()
        shutil.rmtree(live_images, ignore_errors=True)
