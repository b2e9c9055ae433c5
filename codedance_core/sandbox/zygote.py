"""The template process ("zygote"): pre-imported once, it forks one process per session.

Why a template: starting Python and importing numpy, OpenCV, matplotlib and scipy costs about
a second; forking a process that already holds them costs a couple of milliseconds, and the
child shares the parent's memory copy-on-write. One template runs per worker, inside
bubblewrap, as root of the sandbox with only the capabilities it needs to confine its children
(mount, setuid, kill); each child drops them for good (see `confine`). Run by a user other than
root, bubblewrap puts it in a user namespace, and each child is forked as process 1 of a new pid
namespace (`session_identity` 'user_namespace').

The template keeps a few confined "spare" processes forked ahead of need, so opening a session is
handing it an image (see `forking`). It is also the watchdog: it lives outside every session's
uid, so user code cannot signal it; it reads the sessions' stdout/stderr pipes (capping them)
and enforces the wall-clock timeout by SIGKILLing every process of the session's uid (a fork
bomb or a `setsid()` cannot escape). After any failure the session moves to a fresh spare with
its image re-injected, which is the reset the method asks for.

Protocol with the host: length-prefixed frames (`wire`) on stdin (requests) and on the original
stdout (replies); fd 1 is pointed at stderr so that stray prints cannot corrupt the channel.
Run as `python -I zygote.py`; standard library only until the boot frame says what to preload.
"""

from __future__ import annotations

import gc
import importlib
import os
import random
import selectors
import shutil
import sys
import tempfile
import time
from typing import Any

if __package__:
    from . import forking, wire
    from .forking import SessionProcess
else:  # pragma: no cover - inside the sandbox, run as a script
    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    import forking  # type: ignore[no-redef]
    import wire  # type: ignore[no-redef]
    from forking import SessionProcess  # type: ignore[no-redef]

MAX_HOST_FRAME_BYTES = 64 * 1024 * 1024
PIPE_CHUNK = 1 << 16
SANDBOX_ENV = {
    "MPLBACKEND": "Agg",
    "OPENBLAS_NUM_THREADS": "1",
    "OMP_NUM_THREADS": "1",
    "MKL_NUM_THREADS": "1",
    "PYTHONDONTWRITEBYTECODE": "1",
}


class Zygote:
    """Forks, watches and kills session processes on behalf of the host."""

    def __init__(self, settings: dict[str, Any], host_in: int, host_out: int) -> None:
        self.settings = settings
        self.host_in, self.host_out = host_in, host_out
        self.host_reader = wire.FrameReader(MAX_HOST_FRAME_BYTES)
        self.selector = selectors.DefaultSelector()
        self.selector.register(host_in, selectors.EVENT_READ, ("host", None))
        self.sessions: dict[str, SessionProcess] = {}
        self.spares: list[SessionProcess] = []
        self.next_uid = settings["first_session_uid"] + random.randrange(1 << 30)
        self.max_reply_bytes = settings["max_image_bytes"] + 4 * 1024 * 1024
        self.workdir_root = tempfile.mkdtemp(prefix="codedance-sessions-")
        self.running = True
        self.own_pid_namespace = None
        if settings["session_identity"] == "user_namespace":
            self.own_pid_namespace = os.open("/proc/self/ns/pid", os.O_RDONLY | os.O_CLOEXEC)

    # ----- main loop -----
    def serve(self) -> None:
        while self.running:
            for key, _ in self.selector.select(self.seconds_to_next_deadline()):
                kind, process = key.data
                if kind == "host":
                    self.on_host_readable()
                elif not process.released:
                    self.on_process_readable(process, kind, key.fd)
            self.enforce_deadlines()
            if self.wants_spare():
                self.spares.append(self.fork_spare())  # one per turn of the loop, never during an open
        self.shutdown()

    def wants_spare(self) -> bool:
        starting = any(p.state == "starting" for p in self.sessions.values())
        return len(self.spares) < self.settings["spare_processes"] and not starting

    def seconds_to_next_deadline(self) -> float | None:
        if self.wants_spare():
            return 0.0  # come straight back to fork the next spare
        deadlines = [s.deadline for s in self.sessions.values() if s.state == "running"]
        return max(0.0, min(deadlines) - time.monotonic()) if deadlines else None

    def reply(self, header: dict[str, Any], blobs: list[bytes] | None = None) -> None:
        wire.write_all(self.host_out, wire.encode_frame(header, blobs))

    # ----- requests from the host -----
    def on_host_readable(self) -> None:
        data = os.read(self.host_in, 1 << 20)
        if not data:
            self.running = False
            return
        for body in self.host_reader.feed(data):
            request, _ = wire.decode_body(body)
            handler = getattr(self, f"op_{request.get('op')}", None)
            if handler is None:
                self.reply({"op": "error", "id": request.get("id"), "message": "unknown op"})
            else:
                handler(request)

    def op_ping(self, request: dict[str, Any]) -> None:
        self.reply({"op": "pong", "id": request["id"], "sessions": len(self.sessions)})

    def op_shutdown(self, request: dict[str, Any]) -> None:
        self.running = False

    def op_open(self, request: dict[str, Any]) -> None:
        pixels_path = os.path.join(self.settings["image_dir"], os.path.basename(request["pixels_file"]))
        opening = {"mode": request["mode"], "size": request["size"], "layout": request["layout"],
                   "pixels_path": pixels_path}
        self.start_session(request["session"], opening, request["id"])

    def op_exec(self, request: dict[str, Any]) -> None:
        session = self.sessions.get(request["session"])
        if session is None:
            self.reply({"op": "error", "id": request["id"], "message": "no such session"})
            return
        session.queue.append(request)
        self.start_next(session)

    def op_close(self, request: dict[str, Any]) -> None:
        session = self.sessions.pop(request["session"], None)
        if session is not None:
            self.stop_process(session)
            for waiting in session.queue:
                self.reply({"op": "error", "id": waiting["id"], "message": "session closed"})

    # ----- session processes -----
    def fork_spare(self) -> SessionProcess:
        uid, self.next_uid = self.next_uid, self.next_uid + 1
        if self.settings["isolation"] == "bwrap":
            workdir = "/session"  # each process mounts its own private tmpfs there
        else:
            workdir = tempfile.mkdtemp(dir=self.workdir_root)
        process = forking.fork_spare(self.settings, uid, workdir, self.max_reply_bytes, self.selector,
                                     self.own_pid_namespace)
        process.opening["workdir"] = workdir
        return process

    def start_session(self, session_id: str, opening: dict[str, Any], open_request: int | None,
                      queue: Any = None, note: str = "") -> SessionProcess:
        """Give the spare (or a fresh fork) this session's image; it answers "ready" when loaded."""
        process = self.spares.pop(0) if self.spares else self.fork_spare()
        process.session_id, process.open_request, process.note = session_id, open_request, note
        process.opening.update(opening)
        if queue:
            process.queue = queue
        process.state = "starting"
        self.sessions[session_id] = process
        try:
            forking.hand_over_image(process, process.opening)
        except OSError as error:
            process.note = f"could not hand the image to the session process: {error}"
            self.on_process_died(process)
        return process

    def start_next(self, session: SessionProcess) -> None:
        if session.state != "idle" or not session.queue:
            return
        request = session.queue.popleft()
        session.request, session.state = request, "running"
        session.started = time.monotonic()
        session.deadline = session.started + float(request["timeout"])
        session.output_bytes = 0
        session.captured = {"stdout": bytearray(), "stderr": bytearray()}
        session.written = {"stdout": 0, "stderr": 0}
        try:
            session.control.sendall(wire.encode_frame({"op": "exec", "code": request["code"]}))
        except OSError:
            self.finish(session, "killed", {"error_message": "the session process is gone"})

    def on_process_readable(self, session: SessionProcess, kind: str, fd: int) -> None:
        if kind == "pipe":
            self.read_pipe(session, fd)
            return
        try:
            data = session.control.recv(PIPE_CHUNK * 16)
            bodies = session.reader.feed(data) if data else None
        except (OSError, wire.FrameError) as error:
            data, bodies = b"", None
            session.note = f"bad message from the session process: {error}"
        if not data:
            self.on_process_died(session)
            return
        for body in bodies:
            self.on_session_message(session, body)

    def read_pipe(self, session: SessionProcess, fd: int) -> None:
        try:
            data = os.read(fd, PIPE_CHUNK)
        except BlockingIOError:
            return
        if not data:
            self.selector.unregister(fd)
            os.close(fd)
            session.pipes.pop(fd, None)
            return
        self.capture_output(session, fd, data)

    def capture_output(self, session: SessionProcess, fd: int, data: bytes) -> None:
        if session.state not in ("running", "finishing"):
            return  # output of background processes between executions is dropped
        name, limit = session.pipes[fd], self.settings["max_output_bytes"]
        session.output_bytes += len(data)
        session.written[name] += len(data)
        # Keep a head and a rolling tail; the middle of a flood is never shown anyway.
        keep = 4 * self.settings[f"{name}_cap_chars"]
        buffer = session.captured[name]
        buffer += data
        if len(buffer) > 2 * keep:
            del buffer[keep : len(buffer) - keep]
        if session.output_bytes > limit and session.state == "running":
            self.kill_processes(session)
            self.finish(session, "output_limit", {
                "error_type": "OutputLimitExceeded",
                "error_message": f"the snippet wrote more than {limit} bytes of output and was killed",
            })

    def on_session_message(self, session: SessionProcess, body: bytes) -> None:
        try:
            message, blobs = wire.decode_body(body)
        except wire.FrameError as error:
            session.note = f"bad message from the session process: {error}"
            self.on_process_died(session)
            return
        if session.state == "spare":
            session.note = f"the spare process sent {message.get('op')!r} before any image"
            self.on_process_died(session)
        elif message.get("op") == "ready" and session.state == "starting":
            session.state = "idle"
            if session.open_request is not None:
                self.reply({"op": "opened", "id": session.open_request, "session": session.session_id})
                session.open_request = None
            self.start_next(session)
        elif message.get("op") == "done" and session.state == "running":
            self.finish(session, "ok" if message.get("status") == "ok" else "error", message, blobs)
        elif message.get("op") == "failed" and session.state == "starting":
            session.note = f"the session process failed to start: {message.get('message')}"
            self.on_process_died(session)

    def on_process_died(self, session: SessionProcess) -> None:
        """The control socket closed: the process crashed, exited, or was killed by an rlimit."""
        how = self.kill_processes(session)
        note = session.note or f"the session process {how}"
        if session.state == "spare":
            forking.release(session, self.selector)
            self.spares = [spare for spare in self.spares if spare is not session]
        elif session.state == "running":
            self.finish(session, "killed", {"error_type": "SessionKilled", "error_message": note})
        elif session.state == "starting":
            if session.open_request is not None:
                self.reply({"op": "error", "id": session.open_request, "message": note})
            self.sessions.pop(session.session_id, None)
            self.stop_process(session)
        else:
            self.respawn(session, f"[sandbox] {note} between executions; its state was reset\n")

    def enforce_deadlines(self) -> None:
        now = time.monotonic()
        for session in list(self.sessions.values()):
            if session.state == "running" and now >= session.deadline:
                self.kill_processes(session)
                timeout = session.request["timeout"]
                self.finish(session, "timeout", {
                    "error_type": "TimeoutError",
                    "error_message": f"execution exceeded the {timeout:g} s time limit and was killed",
                })

    def finish(self, session: SessionProcess, status: str, outcome: dict[str, Any],
               images: list[bytes] | None = None) -> None:
        """Reply with the result of the running request; reset the session if it failed."""
        session.state = "finishing"
        for fd in list(session.pipes):
            self.drain_pipe(session, fd)
        request, wall_time = session.request, time.monotonic() - session.started
        prefix = session.note if session.note.startswith("[sandbox]") else ""
        fields = ("error_type", "error_message", "error_line", "traceback", "result_repr")
        self.reply({
            "op": "result", "id": request["id"], "status": status,
            "stdout": self.captured_text(session, "stdout"),
            "stderr": prefix + self.captured_text(session, "stderr"),
            "stdout_bytes": session.written["stdout"], "stderr_bytes": session.written["stderr"],
            "wall_time_s": wall_time,
            **{name: outcome.get(name) for name in fields},
        }, images or [])
        session.request, session.state, session.deadline, session.note = None, "idle", float("inf"), ""
        if status != "ok":
            session = self.respawn(session)
        self.start_next(session)

    def captured_text(self, session: SessionProcess, name: str) -> str:
        """The stream as text, cut in the middle with a marker when over its cap."""
        text = session.captured[name].decode("utf-8", "replace")
        cap, written = self.settings[f"{name}_cap_chars"], session.written[name]
        if len(text) <= cap and written == len(session.captured[name]):
            return text
        head, tail = text[: cap * 3 // 4], text[-(cap // 4) :]
        hidden = written - len(head.encode()) - len(tail.encode())
        return f"{head}\n... [{name} truncated: {hidden} bytes not shown] ...\n{tail}"

    def drain_pipe(self, session: SessionProcess, fd: int) -> None:
        while fd in session.pipes:
            try:
                data = os.read(fd, PIPE_CHUNK)
            except BlockingIOError:
                return
            if not data:
                return
            self.capture_output(session, fd, data)

    def respawn(self, session: SessionProcess, note: str = "") -> SessionProcess:
        """Replace a failed session's process by a fresh one with the same image (state reset)."""
        self.stop_process(session)
        opening = {k: v for k, v in session.opening.items() if k != "workdir"}
        return self.start_session(session.session_id, opening, None, session.queue, note)

    def stop_process(self, process: SessionProcess) -> None:
        self.kill_processes(process)
        forking.release(process, self.selector)
        workdir = process.opening.get("workdir", "")
        if self.settings["isolation"] != "bwrap" and workdir.startswith(self.workdir_root):
            shutil.rmtree(workdir, ignore_errors=True)

    def kill_processes(self, process: SessionProcess) -> str:
        # A session of its own uid is swept by uid; one in its own pid namespace dies whole with
        # its first process; one with isolation 'none' dies with its process group.
        return forking.kill_and_reap(process, sweep_uid=self.settings["session_identity"] == "uid")

    def shutdown(self) -> None:
        for process in [*self.sessions.values(), *self.spares]:
            self.stop_process(process)
        shutil.rmtree(self.workdir_root, ignore_errors=True)


def preload(modules: list[str]) -> None:
    """Import the heavy modules once, here, so every forked session has them for free."""
    for name in modules:
        importlib.import_module(name)
    import user_code

    user_code.install_display_hooks()
    from PIL import Image

    Image.init()  # register every codec now, not in each session
    try:
        import cv2

        cv2.setNumThreads(1)  # worker threads do not survive fork
    except ImportError:
        pass


def main() -> None:
    host_out = os.dup(1)
    os.dup2(2, 1)  # stray prints go to stderr, never into the protocol
    for name, value in SANDBOX_ENV.items():
        os.environ.setdefault(name, value)
    os.environ.setdefault("MPLCONFIGDIR", tempfile.mkdtemp(prefix="mpl-"))
    os.environ.setdefault("XDG_CACHE_HOME", tempfile.mkdtemp(prefix="cache-"))
    boot, _ = wire.read_frame(0, MAX_HOST_FRAME_BYTES)
    settings = boot["settings"]
    started = time.monotonic()
    preload(settings["preload_modules"])
    import session_process  # noqa: F401 - imported before any fork

    # Every session is a copy-on-write fork of this heap. A garbage collection in a session
    # writes to the header of every tracked object it visits, copying (dirtying) nearly all
    # of the preloaded modules' pages into that session; frozen objects are never visited.
    gc.collect()
    gc.freeze()
    wire.write_all(host_out, wire.encode_frame({
        "op": "booted", "pid": os.getpid(), "uid": os.getuid(), "preload_s": time.monotonic() - started,
    }))
    Zygote(settings, 0, host_out).serve()


if __name__ == "__main__":
    main()
