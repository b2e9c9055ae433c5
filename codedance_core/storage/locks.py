"""Exclusive use of a shared output: an eval save path, a store prefix, a training run folder.

Two runs writing the same outputs must not both do the work and race on the files: the second
waits for the first (up to `wait_s`) and then refuses with `LockHeldError`, whose message names
the holder (pid, host, start time) so the user knows which run to wait for or stop.

Local paths: `fcntl.flock` on a lock file is the exclusion. The kernel drops the lock when its
holder dies, however it dies (SIGKILL included), so a stale lock is recovered by construction;
the holder record written into the file is only there for the message. The lock file is removed
on release; a waiter that locked a file that was removed meanwhile notices (its inode is no
longer the path's) and locks the new one.

Remote prefixes (s3://...): object stores have no locks, so the lock is an object holding the
holder record, refreshed by a heartbeat thread. A record is stale when it has not been refreshed
for `stale_after_s`, or when its holder ran on this host and its pid is gone. This is advisory:
two runs that start within the same instant can both see no lock (check, then write, then read
back narrows that window but does not close it).
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import socket
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import IO

from codedance_core.scratch import pid_alive

LOCK_SUFFIX = ".lock"
_POLL_S = 0.1


class LockHeldError(RuntimeError):
    """Another run holds the lock; the message names it and says what to do."""

    def __init__(self, target: str, holder: LockHolder | None, waited_s: float):
        who = holder.describe() if holder is not None else "another process (no holder record)"
        super().__init__(
            f"{target} is in use by {who}; waited {waited_s:.0f} s. "
            "Wait for that run to finish, stop it, or write to another path."
        )
        self.target = target
        self.holder = holder


@dataclass(frozen=True)
class LockHolder:
    """Who holds a lock: enough to find the process, and when it took the lock."""

    pid: int
    host: str
    started: str  # ISO 8601, UTC
    token: str = field(default_factory=lambda: uuid.uuid4().hex)
    heartbeat: float = 0.0  # time.time() of the last refresh (remote locks)

    @classmethod
    def me(cls) -> LockHolder:
        now = time.time()
        started = datetime.fromtimestamp(now, UTC).isoformat(timespec="seconds")
        return cls(os.getpid(), socket.gethostname(), started, heartbeat=now)

    def describe(self) -> str:
        return f"pid {self.pid} on {self.host} (since {self.started})"

    def to_json(self) -> str:
        return json.dumps(asdict(self))

    @classmethod
    def from_json(cls, text: str | bytes) -> LockHolder | None:
        try:
            data = json.loads(text)
            return cls(
                int(data["pid"]),
                str(data["host"]),
                str(data["started"]),
                str(data.get("token", "")),
                float(data.get("heartbeat", 0.0)),
            )
        except (ValueError, KeyError, TypeError):
            return None  # empty (being written, or released) or not ours

    def is_dead_here(self) -> bool:
        """True when the holder ran on this host and its process no longer exists."""
        return self.host == socket.gethostname() and not pid_alive(self.pid)


def lock_uri_for(target: str | Path) -> str:
    """The lock beside a target: `<target>.lock` (a file or a folder, local or remote)."""
    return str(target).rstrip("/") + LOCK_SUFFIX


class FileLock:
    """An exclusive lock on a local lock file (`flock`), with the holder recorded in it."""

    def __init__(self, path: str | Path, *, wait_s: float = 0.0, target: str | None = None) -> None:
        self.path = Path(path)
        self.wait_s = wait_s
        self.target = target or str(self.path)
        self.holder: LockHolder | None = None
        self._handle: IO[str] | None = None

    def acquire(self) -> LockHolder:
        started = time.monotonic()
        self.path.parent.mkdir(parents=True, exist_ok=True)
        while True:
            handle = open(self.path, "a+", encoding="utf-8")  # noqa: SIM115 - held until release
            try:
                fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                handle.close()
                waited = time.monotonic() - started
                if waited >= self.wait_s:
                    raise LockHeldError(self.target, self.read_holder(), waited) from None
                time.sleep(min(_POLL_S, max(self.wait_s - waited, 0.0)))
                continue
            if not self._still_at_path(handle):
                handle.close()  # the holder released and removed that file: lock the current one
                continue
            self.holder = LockHolder.me()
            handle.seek(0)
            handle.truncate()
            handle.write(self.holder.to_json())
            handle.flush()
            self._handle = handle
            return self.holder

    def release(self) -> None:
        handle, self._handle = self._handle, None
        if handle is None:
            return
        with contextlib.suppress(FileNotFoundError):
            self.path.unlink()  # while still locked, so no one locks a file about to vanish
        handle.close()  # drops the flock
        self.holder = None

    def read_holder(self) -> LockHolder | None:
        try:
            return LockHolder.from_json(self.path.read_text(encoding="utf-8"))
        except OSError:
            return None

    def _still_at_path(self, handle: IO[str]) -> bool:
        try:
            return os.stat(self.path).st_ino == os.fstat(handle.fileno()).st_ino
        except FileNotFoundError:
            return False

    def __enter__(self) -> LockHolder:
        return self.acquire()

    def __exit__(self, *exc_info: object) -> None:
        self.release()


class RemoteLock:
    """A lock object at a remote URI holding the holder record, kept fresh by a heartbeat."""

    def __init__(
        self, uri: str, *, wait_s: float = 0.0, stale_after_s: float = 120.0, target: str | None = None
    ) -> None:
        from codedance_core.storage import filesystem

        self.uri = uri
        self.wait_s = wait_s
        self.stale_after_s = stale_after_s
        self.target = target or uri
        self.fs, self.path = filesystem(uri)
        self.holder: LockHolder | None = None
        self._stop = threading.Event()
        self._beat: threading.Thread | None = None

    def acquire(self) -> LockHolder:
        started = time.monotonic()
        while True:
            current = self.read_holder()
            if current is None or self._is_stale(current):
                mine = LockHolder.me()
                self._write(mine)
                time.sleep(_POLL_S)  # let a racing writer land, then see who won
                winner = self.read_holder()
                if winner is not None and winner.token == mine.token:
                    self.holder = mine
                    self._start_heartbeat()
                    return mine
                current = winner
            waited = time.monotonic() - started
            if waited >= self.wait_s:
                raise LockHeldError(self.target, current, waited)
            time.sleep(min(1.0, max(self.wait_s - waited, _POLL_S)))

    def release(self) -> None:
        if self.holder is None:
            return
        self._stop.set()
        if self._beat is not None:
            self._beat.join(timeout=5)
        current = self.read_holder()
        if current is not None and current.token == self.holder.token:
            with contextlib.suppress(FileNotFoundError):
                self.fs.rm(self.path)
        self.holder = None

    def read_holder(self) -> LockHolder | None:
        try:
            return LockHolder.from_json(self.fs.cat_file(self.path))
        except FileNotFoundError:
            return None

    def _is_stale(self, holder: LockHolder) -> bool:
        return holder.is_dead_here() or time.time() - holder.heartbeat > self.stale_after_s

    def _write(self, holder: LockHolder) -> None:
        self.fs.pipe_file(self.path, holder.to_json().encode())

    def _start_heartbeat(self) -> None:
        self._stop.clear()
        self._beat = threading.Thread(target=self._heartbeat, name="lock-heartbeat", daemon=True)
        self._beat.start()

    def _heartbeat(self) -> None:
        while not self._stop.wait(self.stale_after_s / 4):
            if self.holder is not None:
                self.holder = LockHolder(**{**asdict(self.holder), "heartbeat": time.time()})
                with contextlib.suppress(OSError):
                    self._write(self.holder)

    def __enter__(self) -> LockHolder:
        return self.acquire()

    def __exit__(self, *exc_info: object) -> None:
        self.release()


def lock_for(
    lock_uri: str | Path, *, wait_s: float = 0.0, stale_after_s: float = 120.0, target: str | None = None
) -> FileLock | RemoteLock:
    """The lock at `lock_uri`: a `FileLock` for a local path, a `RemoteLock` for s3:// and the like."""
    text = str(lock_uri)
    if "://" in text and not text.startswith("file://"):
        return RemoteLock(text, wait_s=wait_s, stale_after_s=stale_after_s, target=target)
    return FileLock(text.removeprefix("file://"), wait_s=wait_s, target=target)


@contextlib.contextmanager
def exclusive(
    target: str | Path,
    *,
    wait_s: float = 0.0,
    lock_uri: str | Path | None = None,
    stale_after_s: float = 120.0,
) -> Iterator[LockHolder]:
    """Hold the lock of `target` (at `<target>.lock` unless `lock_uri` says where) for the block.

    Waits up to `wait_s` for another holder, then raises `LockHeldError` naming it."""
    lock = lock_for(
        lock_uri or lock_uri_for(target), wait_s=wait_s, stale_after_s=stale_after_s, target=str(target)
    )
    holder = lock.acquire()
    try:
        yield holder
    finally:
        lock.release()


__all__ = [
    "FileLock",
    "LockHeldError",
    "LockHolder",
    "RemoteLock",
    "exclusive",
    "lock_for",
    "lock_uri_for",
]
