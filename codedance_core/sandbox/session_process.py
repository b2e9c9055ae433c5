"""The life of one session process: forked from the template, confined, then serving snippets.

The template forks this process ahead of need (a spare, see `forking`). It confines itself
(see `confine`), then waits for its image: a descriptor of the raw pixel file in the host's
private shared-memory directory. It rebuilds `input_image`, says "ready", writes
`input_image.jpg` into its private working directory, then runs one snippet per request until
the template closes the control socket. It never returns:
whatever happens, it ends with `os._exit` so no template code runs after the fork.

stdout and stderr are pipes read by the template, not by this process: output written at the
file-descriptor level (C extensions, subprocesses) is caught and capped too, and a snippet
that floods them is killed from outside.
"""

from __future__ import annotations

import mmap
import os
import socket
import sys
import tempfile
import traceback
from typing import Any, NoReturn

from PIL import Image

try:  # imported as a package on the host, as top-level modules inside the sandbox
    from . import confine, user_code, wire
except ImportError:  # pragma: no cover - exercised inside the sandbox
    import confine  # type: ignore[no-redef]
    import user_code  # type: ignore[no-redef]
    import wire  # type: ignore[no-redef]

CONTROL_FD = 3
# The template's tmpfs mounts: sessions that share its uid remount them read-only for themselves.
TEMPLATE_WRITABLE_DIRS = ("/tmp", "/dev")
MAX_REQUEST_BYTES = 64 * 1024 * 1024


def run_session(control_fd: int, stdout_fd: int, stderr_fd: int, settings: dict[str, Any],
                uid: int, workdir: str) -> NoReturn:
    """Entry point of a forked session process (never returns)."""
    try:
        take_over_descriptors(control_fd, stdout_fd, stderr_fd)
        confine_session(settings, uid, workdir)
        image = receive_image()
        wire.write_all(CONTROL_FD, wire.encode_frame({"op": "ready"}))
        # Written after "ready" and before the first snippet: the encoding overlaps with the
        # model generating its first turn instead of delaying the start of the session.
        save_input_jpeg(image, "input_image.jpg")
    except EOFError:
        os._exit(0)  # closed while still a spare: nothing to report
    except BaseException as error:  # noqa: BLE001 - report any start-up failure, then die
        try:
            message = "".join(traceback.format_exception(error)[-3:])
            wire.write_all(CONTROL_FD, wire.encode_frame({"op": "failed", "message": message}))
        finally:
            os._exit(70)
    try:
        serve_snippets(image, settings)
    finally:
        os._exit(0)


def receive_image() -> Image.Image:
    """Wait for the image: a small frame with the pixel file's descriptor attached."""
    control = socket.socket(fileno=CONTROL_FD)
    try:
        data, fds, _, _ = socket.recv_fds(control, 1 << 16, 1)
    finally:
        control.detach()  # fd 3 stays open: it is the control channel for the whole session
    if not data or not fds:
        raise EOFError("control socket closed before an image arrived")
    (length,) = wire.LENGTH.unpack_from(data, 0)
    body = data[wire.LENGTH.size :]
    if len(body) < length:
        body += wire.read_exact(CONTROL_FD, length - len(body))
    header, _ = wire.decode_body(body)
    try:
        return map_pixels(fds[0], header["mode"], tuple(header["size"]), header["layout"])
    finally:
        os.close(fds[0])


def map_pixels(fd: int, mode: str, size: tuple[int, int], layout: str) -> Image.Image:
    """Build a plain PIL image straight from the mapped file (one copy, no decoder)."""
    with mmap.mmap(fd, 0, prot=mmap.PROT_READ) as mapped:
        start = 0
        if layout == "ppm":  # "P6\n<w> <h>\n255\n" then the raw samples
            for _ in range(3):
                start = mapped.find(b"\n", start) + 1
        view = memoryview(mapped)[start:]
        try:
            return Image.frombytes(mode, size, view)
        finally:
            view.release()


def take_over_descriptors(control_fd: int, stdout_fd: int, stderr_fd: int) -> None:
    """Keep only stdin (/dev/null), the output pipes and the control socket; close the rest.

    Closing everything else matters: the template's channel to the host and the other
    sessions' pipes are open in the template at fork time and must not reach user code.
    """
    null = os.open(os.devnull, os.O_RDONLY)
    os.dup2(null, 0)
    os.dup2(stdout_fd, 1)
    os.dup2(stderr_fd, 2)
    os.dup2(control_fd, CONTROL_FD, inheritable=False)
    os.closerange(CONTROL_FD + 1, os.sysconf("SC_OPEN_MAX"))
    # Fresh text streams: the inherited ones remember what fds 1 and 2 were in the template.
    # They live as long as the process, so no context manager.
    sys.stdout = open(1, "w", encoding="utf-8", errors="backslashreplace", closefd=False)  # noqa: SIM115
    sys.stderr = open(2, "w", encoding="utf-8", errors="backslashreplace", closefd=False, buffering=1)  # noqa: SIM115


def confine_session(settings: dict[str, Any], uid: int, workdir: str) -> None:
    """Private working directory, own uid or own namespaces (with bwrap), rlimits; then chdir there."""
    confine.die_with_parent()
    limits = (settings["memory_mb"], settings["cpu_s"], settings["max_procs"],
              settings["max_open_files"], settings["max_file_mb"])
    identity = settings["session_identity"]
    if identity == "uid":
        confine.private_workdir(workdir, uid, settings["disk_mb"] * 1024 * 1024)
        confine.apply_limits(*limits)
        confine.become_unprivileged(uid)
    elif identity == "user_namespace":
        # The template's uid (0 in its namespace) owns the tmpfs; the session's map makes it `uid`.
        confine.private_workdir(workdir, os.getuid(), settings["disk_mb"] * 1024 * 1024)
        confine.hide_template_files(settings["image_dir"], TEMPLATE_WRITABLE_DIRS)
        confine.mount_own_proc()
        confine.enter_own_user_namespace(uid)
        confine.apply_limits(*limits)  # after the user namespace: RLIMIT_NPROC counts this session only
        confine.drop_all_capabilities()
    if identity != "none":
        os.environ["HOME"] = workdir
        # /tmp is not writable for sessions (see confine.private_workdir): temp files go here.
        os.environ["TMPDIR"] = workdir
        tempfile.tempdir = workdir
    else:
        os.setsid()  # a process group of its own: the template kills the whole group
        confine.apply_limits(*limits)
    os.chdir(workdir)


def save_input_jpeg(image: Image.Image, path: str) -> None:
    """Write the session image as the JPEG file the prompt promises."""
    if image.mode not in ("RGB", "L"):
        image = image.convert("RGB")
    image.save(path, format="JPEG", quality=95)


def serve_snippets(image: Image.Image, settings: dict[str, Any]) -> None:
    """Answer exec requests on the control socket until it closes."""
    limits = user_code.ImageLimits(
        min_side=settings["min_image_side"],
        max_aspect_ratio=settings["max_aspect_ratio"],
        max_images=settings["max_images"],
        max_total_bytes=settings["max_image_bytes"],
    )
    namespace = user_code.new_namespace(image)
    turn = 0
    while True:
        try:
            request, _ = wire.read_frame(CONTROL_FD, MAX_REQUEST_BYTES)
        except EOFError:
            return
        turn += 1
        outcome = user_code.run_snippet(request["code"], namespace, turn, limits)
        reply = wire.encode_frame({"op": "done", **outcome.header()}, outcome.images)
        wire.write_all(CONTROL_FD, reply)
