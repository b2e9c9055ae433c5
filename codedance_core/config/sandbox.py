"""Configuration of the sandbox that runs model-written Python against an image.

Every limit lives here so that a run's config dump says exactly how hostile code was contained.
Defaults follow the method (15 s timeout, images returned as PNG) and are sized for a training
node where many trajectories run at once: a session is cheap (a forked process) but not free, so
memory and process limits are per session, and `workers` bounds how many snippets run at once.
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from codedance_core.config.base import StrictModel


class SandboxConfig(StrictModel):
    """How sandboxed sessions are isolated, limited and pooled."""

    isolation: Literal["bwrap", "none"] = Field(
        default="bwrap",
        description="'bwrap': bubblewrap namespaces (no network, read-only host, private session dir). "
        "Run as root, each session takes its own uid; run as any other user (the worker image's uid "
        "1000), bubblewrap needs unprivileged user namespaces and each session gets its own pid and "
        "user namespaces; if the kernel or container forbids them the pool refuses to start and says "
        "what to change (infra/README.md). 'none': plain processes with rlimits only, no isolation, "
        "a loud warning at every start; for debugging trusted code, never for model code.",
    )
    timeout_s: float = Field(
        default=15.0, gt=0, description="Wall-clock limit of one execution; the session is hard-killed after it."
    )
    memory_mb: int = Field(
        default=2048, ge=64, description="Address space a session may add on top of the pre-imported template."
    )
    cpu_s: int = Field(
        default=120,
        ge=1,
        description="CPU seconds one session process may use over its life (a backstop behind timeout_s).",
    )
    max_procs: int = Field(
        default=32, ge=2, description="Processes plus threads one session may have alive at once."
    )
    max_open_files: int = Field(default=256, ge=16, description="Open file descriptors per session process.")
    max_file_mb: int = Field(default=64, ge=1, description="Largest file a session may write, in MiB.")
    disk_mb: int = Field(default=256, ge=1, description="Size of the session's private working directory (tmpfs).")
    max_output_bytes: int = Field(
        default=4 * 1024 * 1024,
        ge=1024,
        description="stdout+stderr bytes one execution may write before it is killed (status 'output_limit').",
    )
    stdout_cap_chars: int = Field(
        default=8192, ge=256, description="Characters of stdout kept in a result; the rest is cut with a marker."
    )
    stderr_cap_chars: int = Field(
        default=8192, ge=256, description="Characters of stderr kept in a result; the rest is cut with a marker."
    )
    max_images: int = Field(default=16, ge=0, description="Images kept from one execution; later ones are dropped.")
    max_image_bytes: int = Field(
        default=32 * 1024 * 1024, ge=1024, description="Total PNG bytes of the images of one execution."
    )
    min_image_side: int = Field(
        default=56, ge=1, description="Returned images with a shorter side are upscaled to it (as the original)."
    )
    max_aspect_ratio: float = Field(
        default=200.0, gt=1, description="Returned images with a more extreme aspect ratio are dropped."
    )
    workers: int = Field(
        default=2, ge=1, description="Template processes, and the bound on executions running at once."
    )
    spare_processes: int = Field(
        default=2,
        ge=0,
        description="Confined session processes each template keeps forked ahead of need (fast opens).",
    )
    max_sessions: int = Field(
        default=256,
        ge=1,
        description="Session processes alive at once (about 2-4 MiB each); a session's process starts at "
        "its first execute, which waits beyond this bound.",
    )
    kill_grace_s: float = Field(
        default=5.0,
        gt=0,
        description="Extra seconds the host waits past timeout_s before it declares a worker dead and respawns it.",
    )
    first_session_uid: int = Field(
        default=200_000,
        ge=1000,
        description="Sessions run as distinct unprivileged uids from here on (isolation 'bwrap' as root); "
        "without root, the uid a session sees inside its own user namespace.",
    )
    preload_modules: list[str] = Field(
        default_factory=lambda: ["numpy", "PIL.Image", "cv2", "matplotlib.pyplot", "scipy.ndimage"],
        description="Modules imported once in the template so sessions do not pay for them.",
    )
