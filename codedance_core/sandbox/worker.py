"""The host's handle on one template process: start it, send it requests, notice its death.

Requests and replies are matched by id, so many sessions share one template's pipe. The
template enforces timeouts itself; the host keeps a backstop (timeout + grace): a template that
does not answer in time is presumed wedged, killed with its whole sandbox, and reported as dead,
and the pool replaces it. Every reply is parsed as data (`wire`), never unpickled.
"""

from __future__ import annotations

import asyncio
import itertools
import os
import signal
from pathlib import Path
from typing import Any

from PIL import Image

from codedance_core.config.sandbox import SandboxConfig
from codedance_core.sandbox import wire
from codedance_core.sandbox.isolation import session_identity, template_command
from codedance_core.sandbox.result import ExecResult

BOOT_TIMEOUT_S = 120.0
SESSION_IMAGE_MODES = ("L", "RGB", "RGBA")


class WorkerDied(RuntimeError):
    """The template process died or stopped answering; its sessions' state is lost."""


def write_pixels(image: Image.Image, path: Path) -> dict[str, Any]:
    """Store the image uncompressed (cheaper than any codec) in a mode the session can rebuild;
    return what a session needs to find and rebuild it."""
    if image.mode not in SESSION_IMAGE_MODES:
        has_alpha = "A" in image.getbands() or "transparency" in image.info
        image = image.convert("RGBA" if has_alpha else "RGB")
    if image.mode == "RGBA":
        path.write_bytes(image.tobytes())
        layout = "raw"
    else:
        image.save(path, format="PPM")  # streams pixels to the file: no intermediate copy
        layout = "ppm"
    return {"mode": image.mode, "size": list(image.size), "pixels_file": path.name, "layout": layout}


class TemplateWorker:
    """One template process (inside its own bubblewrap sandbox) and the sessions it hosts."""

    def __init__(self, config: SandboxConfig, index: int, image_dir: Path) -> None:
        self.config = config
        self.index = index
        self.image_dir = image_dir
        self.sessions: set[str] = set()
        self.process: asyncio.subprocess.Process | None = None
        self.preload_s = 0.0
        self._ids = itertools.count(1)
        self._pending: dict[int, asyncio.Future] = {}
        self._reader: asyncio.Task | None = None
        self._write_lock = asyncio.Lock()
        self._dead: str | None = None

    @property
    def alive(self) -> bool:
        return self.process is not None and self._dead is None

    async def start(self) -> None:
        """Spawn the template, send it the settings, wait until its imports are done."""
        argv, env, sandbox_image_dir = template_command(self.config, self.image_dir)
        self.process = await asyncio.create_subprocess_exec(
            *argv, stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE, env=env,
            start_new_session=True,  # Ctrl-C in a terminal must not reach the sandbox
        )
        settings = {**self.config.model_dump(mode="json"), "image_dir": sandbox_image_dir,
                    "session_identity": session_identity(self.config)}
        self.process.stdin.write(wire.encode_frame({"op": "boot", "settings": settings}))
        try:
            booted, _ = await asyncio.wait_for(self._read_frame(), BOOT_TIMEOUT_S)
        except (TimeoutError, asyncio.IncompleteReadError, wire.FrameError) as error:
            self.kill()
            raise WorkerDied(f"sandbox template {self.index} failed to start: {error!r}") from error
        self.preload_s = float(booted.get("preload_s", 0.0))
        self._reader = asyncio.create_task(self._read_replies())

    async def open_session(self, session_id: str, opening: dict[str, Any]) -> None:
        """Fork a session whose pixels `write_pixels` stored in the image directory."""
        await self.request({"op": "open", "session": session_id, **opening}, [], BOOT_TIMEOUT_S)
        self.sessions.add(session_id)

    async def execute(self, session_id: str, code: str, timeout_s: float) -> ExecResult:
        request = {"op": "exec", "session": session_id, "code": code, "timeout": timeout_s}
        reply, images = await self.request(request, [], timeout_s + self.config.kill_grace_s)
        return ExecResult.from_reply(reply, images)

    async def close_session(self, session_id: str) -> None:
        """Ask the template to kill the session's processes (no reply is awaited)."""
        self.sessions.discard(session_id)
        if self.alive:
            try:
                await self._send({"op": "close", "session": session_id}, [])
            except (ConnectionError, RuntimeError):
                self._mark_dead("the template's pipe closed")

    async def ping(self, timeout_s: float = 5.0) -> dict[str, Any]:
        reply, _ = await self.request({"op": "ping"}, [], timeout_s)
        return reply

    async def request(self, header: dict[str, Any], blobs: list[bytes],
                      timeout_s: float) -> tuple[dict[str, Any], list[bytes]]:
        """Send one request and wait for its reply; WorkerDied if the template fails us."""
        if not self.alive:
            raise WorkerDied(self._dead or "the template is not running")
        request_id = next(self._ids)
        future = asyncio.get_running_loop().create_future()
        self._pending[request_id] = future
        try:
            await self._send({**header, "id": request_id}, blobs)
            reply, reply_blobs = await asyncio.wait_for(asyncio.shield(future), timeout_s)
        except TimeoutError:
            self.kill()
            self._mark_dead(f"the template did not answer within {timeout_s:g} s and was killed")
            raise WorkerDied(self._dead) from None
        except (ConnectionError, RuntimeError) as error:
            self._mark_dead(f"the template's pipe closed: {error!r}")
            raise WorkerDied(self._dead) from error
        finally:
            self._pending.pop(request_id, None)
        if reply.get("op") == "error":
            raise RuntimeError(f"sandbox template refused {header['op']}: {reply.get('message')}")
        return reply, reply_blobs

    async def stop(self, grace_s: float = 3.0) -> None:
        """Ask the template to exit (it kills its sessions), then make sure the sandbox is gone."""
        if self.process is None:
            return
        if self.process.returncode is None and self._dead is None:
            try:
                await self._send({"op": "shutdown"}, [])
                self.process.stdin.close()
                await asyncio.wait_for(self.process.wait(), grace_s)
            except (TimeoutError, ConnectionError, RuntimeError):
                pass
        self.kill()
        await self.process.wait()
        self._mark_dead("the template was stopped")
        if self._reader is not None:
            self._reader.cancel()

    def kill(self) -> None:
        """SIGKILL the sandbox's process group (bwrap takes every process inside down with it)."""
        if self.process is not None and self.process.returncode is None:
            try:
                os.killpg(self.process.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass

    async def _send(self, header: dict[str, Any], blobs: list[bytes]) -> None:
        async with self._write_lock:
            self.process.stdin.write(wire.encode_frame(header, blobs))
            await self.process.stdin.drain()

    async def _read_frame(self) -> tuple[dict[str, Any], list[bytes]]:
        (length,) = wire.LENGTH.unpack(await self.process.stdout.readexactly(wire.LENGTH.size))
        limit = self.config.max_image_bytes + 64 * 1024 * 1024
        if length > limit:
            raise wire.FrameError(f"reply of {length} bytes exceeds {limit}")
        return wire.decode_body(await self.process.stdout.readexactly(length))

    async def _read_replies(self) -> None:
        try:
            while True:
                reply, blobs = await self._read_frame()
                future = self._pending.get(reply.get("id"))
                if future is not None and not future.done():
                    future.set_result((reply, blobs))
        except (asyncio.IncompleteReadError, ConnectionError, wire.FrameError) as error:
            self.kill()
            self._mark_dead(f"the template process ended ({error.__class__.__name__})")

    def _mark_dead(self, reason: str) -> None:
        if self._dead is None:
            self._dead = reason
        for future in self._pending.values():
            if not future.done():
                future.set_exception(WorkerDied(self._dead))
