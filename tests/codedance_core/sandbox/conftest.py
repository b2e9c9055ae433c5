"""Fixtures for the sandbox tests: real pools, isolation on, and images to hand them.

Every pool here runs bubblewrap (the default); a machine without it fails these tests (it does
not skip them), because an untested isolation layer is worse than a missing one.
"""

from __future__ import annotations

import os
from collections.abc import Iterator

import numpy as np
import psutil
import pytest
from PIL import Image

from codedance_core.sandbox import SandboxConfig, SandboxPool, SyncSandboxPool

# Secrets the host process holds while the pools start: user code must never see them.
HOST_SECRETS = {"AWS_SECRET_ACCESS_KEY": "host-secret-aws-0123", "MLFLOW_TRACKING_TOKEN": "host-secret-mlflow-4567"}


@pytest.fixture(scope="session")
def gradient_image() -> Image.Image:
    """A 1024x1024 RGB image whose pixel values encode their position (easy to check crops)."""
    ys, xs = np.mgrid[0:1024, 0:1024]
    pixels = np.stack([xs // 4, ys // 4, (xs + ys) // 8], axis=-1).astype(np.uint8)
    return Image.fromarray(pixels)


def start_pool(**overrides) -> SyncSandboxPool:
    """A started pool with isolation on and the host secrets in the environment it starts from."""
    saved = {name: os.environ.get(name) for name in HOST_SECRETS}
    os.environ.update(HOST_SECRETS)
    try:
        return SandboxPool.sync(SandboxConfig(**overrides)).start()
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


@pytest.fixture(scope="module")
def pool() -> Iterator[SyncSandboxPool]:
    """A two-worker pool with a short timeout, shared by the tests of a module."""
    sync_pool = start_pool(isolation="bwrap", workers=2, timeout_s=1.5)
    try:
        yield sync_pool
    finally:
        sync_pool.close()


def descendants() -> list[psutil.Process]:
    """Every live sandbox process below this test process (zombies excluded).

    Only the sandbox's own processes (bwrap and the template/session interpreters) count: other
    servers that the test session started (a moto S3 server, say) are not the pool's business."""
    alive = []
    for process in psutil.Process().children(recursive=True):
        try:
            if process.status() == psutil.STATUS_ZOMBIE:
                continue
            command = " ".join(process.cmdline())
        except psutil.NoSuchProcess:
            continue
        if "bwrap" in command or "zygote.py" in command:
            alive.append(process)
    return alive
