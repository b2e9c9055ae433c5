"""Run a stage's work as a Ray job (the Jobs API on a head node's dashboard) and wait for it.

A job outlives the process that submitted it, which is the point: a stage call names its jobs
`<prefix>-<attempt>`, where the prefix is built from the call's cache key, so a later call of the
same stage (a retry, a rerun after the orchestrator was killed) finds the earlier attempts. One
that is still PENDING or RUNNING is reattached to rather than submitted twice; one that SUCCEEDED
is returned at once (its result is in the artifact store); otherwise a new attempt is submitted.
The Jobs API refuses a submission id that exists, so two callers racing to submit the same attempt
end up waiting on the same job.

An interrupted wait (a Prefect cancellation, KeyboardInterrupt, a timeout) stops the job: no
orphan work is left for a caller that gave up. Only a hard kill of the caller leaves the job
running, and the next call with the same prefix reattaches to it.
"""

from __future__ import annotations

import asyncio
import contextlib
import queue
import re
import threading
import time
from collections import deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from codedance_core.stages.ray_address import parse_ray_address

PACKAGE_DIR = Path(__file__).resolve().parents[1]  # this checkout's codedance_core
LOG_TAIL_LINES = 40
POLL_PATIENCE_S = 60.0  # how long the dashboard may not answer before the wait gives up
STOP_WAIT_S = 15.0  # Ray SIGTERMs the entrypoint, SIGKILLs it 3 s later (RAY_JOB_STOP_WAIT_TIME_S)
_PREFIX = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,100}")  # it names log files and actors
# JobDetails.error_type values (Ray's JobErrorType) that mean the job's supervisor actor or its
# node went away: Ray's job monitor saw the actor die, failed watching it, or found it gone (after
# a head restart) or unable to start. The work did not fail, so running it again may succeed. The
# other types (the entrypoint exited non-zero or could not start, a runtime env that cannot be
# built, resources the cluster cannot provide) would fail again.
LOST_ERROR_TYPES = frozenset(
    {
        "JOB_SUPERVISOR_ACTOR_DIED",
        "JOB_SUPERVISOR_ACTOR_UNKNOWN_FAILURE",
        "JOB_SUPERVISOR_ACTOR_START_FAILURE",
    }
)


class RayJobError(RuntimeError):
    """A Ray job that ended FAILED or STOPPED: which job, how, and how its log ended."""

    def __init__(self, text: str, submission_id: str = "", status: str = "", error_type: str | None = None):
        super().__init__(text)  # one positional argument, so that the error pickles (Prefect stores it)
        self.submission_id, self.status, self.error_type = submission_id, status, error_type
        self.log_tail: tuple[str, ...] = ()


class RayJobFailed(RayJobError):
    """The job's work failed (an error in data, config or code): running it again would too."""


class RayJobLost(RayJobError):
    """The job's supervisor or its node died: a fault of the infrastructure, worth a retry."""


@dataclass
class JobSpec:
    """What to run as a job: a shell command, its runtime env, and what its driver reserves."""

    entrypoint: str
    runtime_env: dict[str, Any] = field(default_factory=dict)
    metadata: dict[str, str] = field(default_factory=dict)
    entrypoint_num_cpus: float | None = None
    entrypoint_num_gpus: float | None = None
    entrypoint_memory: int | None = None  # bytes


@dataclass(frozen=True)
class JobRecord:
    """A job that succeeded; `attached` when it was an earlier call's, not submitted by this one."""

    submission_id: str
    status: str
    attached: bool


def code_runtime_env(code_version: str, env_vars: Mapping[str, str] | None = None) -> dict[str, Any]:
    """A runtime env that runs this checkout's codedance_core, whose digest is `code_version`.

    `py_modules` ships the package directory; Ray unpacks it on each node and puts its folder
    first on the job's PYTHONPATH (`set_pythonpath_in_context` in Ray's runtime_env/working_dir.py:
    "this python_path arg > env_vars PYTHONPATH > existing cluster env PYTHONPATH"). PYTHONPATH
    comes before site-packages on sys.path, and an editable install's finder is appended to
    sys.meta_path, after the path finder, so the shipped copy shadows any codedance_core the
    cluster image has installed. One thing would still come first: the working directory, which
    `python -m` and `python -c` put at the front of sys.path, and a job runs in its raylet's
    directory, which may hold another checkout. PYTHONSAFEPATH (Python 3.11+) keeps it off; it
    also keeps an entrypoint script's own folder off, so entrypoints run modules with `-m`.
    CODEDANCE_CODE_VERSION lets the job record which code it ran.
    """
    return {
        "py_modules": [str(PACKAGE_DIR)],
        "excludes": ["__pycache__", "*.pyc"],
        "env_vars": {**(env_vars or {}), "CODEDANCE_CODE_VERSION": code_version, "PYTHONSAFEPATH": "1"},
    }


def run_ray_job(
    dashboard_url: str, submission_prefix: str, spec: JobSpec, log: Callable[[str], None], poll_s: float = 1.0
) -> JobRecord:
    """Run `spec` as job `<submission_prefix>-<attempt>`, or find an earlier attempt, and wait for it.

    The job's log reaches `log` line by line, in the calling thread (where a Prefect run logger
    works), after a first line saying which job was submitted or reattached to. Raises RayJobLost
    or RayJobFailed when the job ends FAILED or STOPPED.
    """
    from ray.job_submission import JobSubmissionClient

    if parse_ray_address(dashboard_url).kind != "dashboard":
        raise ValueError(f"{dashboard_url!r} is not a dashboard address (http(s)://HOST:PORT)")
    if not _PREFIX.fullmatch(submission_prefix):
        raise ValueError(f"submission prefix {submission_prefix!r} must match {_PREFIX.pattern}")
    client = JobSubmissionClient(dashboard_url)
    attempts = _earlier_attempts(client, submission_prefix)
    live = [job for job in attempts.values() if job.status.value in ("PENDING", "RUNNING")]
    done = [job for job in attempts.values() if job.status.value == "SUCCEEDED"]
    if live:
        job_id, attached = live[-1].submission_id, True
    elif done:
        return JobRecord(done[-1].submission_id, "SUCCEEDED", attached=True)
    else:
        job_id = f"{submission_prefix}-{max(attempts, default=0) + 1}"
        attached = not _submit(client, job_id, spec)
    log(f"{'reattached to' if attached else 'submitted'} Ray job {job_id} at {dashboard_url}")
    return _wait(client, job_id, attached, log, poll_s)


def _earlier_attempts(client: Any, prefix: str) -> dict[int, Any]:
    """The jobs named `<prefix>-<n>`, by n, in increasing order."""
    found = {}
    for job in client.list_jobs():
        head, _, number = (job.submission_id or "").rpartition("-")
        if head == prefix and number.isdigit():
            found[int(number)] = job
    return dict(sorted(found.items()))


def _submit(client: Any, job_id: str, spec: JobSpec) -> bool:
    """Submit; False when another caller submitted `job_id` first (the Jobs API refuses a reuse)."""
    try:
        client.submit_job(
            entrypoint=spec.entrypoint,
            submission_id=job_id,
            runtime_env=spec.runtime_env,
            metadata=dict(spec.metadata),
            entrypoint_num_cpus=spec.entrypoint_num_cpus,
            entrypoint_num_gpus=spec.entrypoint_num_gpus,
            entrypoint_memory=spec.entrypoint_memory,
        )
    except RuntimeError:
        with contextlib.suppress(RuntimeError):
            client.get_job_info(job_id)
            return False
        raise
    return True


def _wait(client: Any, job_id: str, attached: bool, log: Callable[[str], None], poll_s: float) -> JobRecord:
    lines, follower = _Lines(log), _LogFollower(client, job_id)
    try:
        while not (info := _job_info(client, job_id)).status.is_terminal():
            lines.take(follower.chunks_for(poll_s))
        # The stream lags the log by seconds and closes seconds after the job ends; the log of an
        # ended job is complete, so what the stream has not delivered yet is read in one request.
        lines.take(follower.chunks_for(0.0))
        with contextlib.suppress(Exception):  # the outcome is known: a lost log line must not hide it
            lines.take([client.get_job_logs(job_id)[lines.chars :]])
        lines.flush()
    except BaseException:
        _stop(client, job_id)
        raise
    finally:
        follower.close()
    if info.status.value == "SUCCEEDED":
        return JobRecord(job_id, "SUCCEEDED", attached)
    raise _ended_badly(job_id, info, tuple(lines.tail))


def _job_info(client: Any, job_id: str) -> Any:
    """The job's details, riding out a dashboard that does not answer for a while (a restart, a
    network blip): giving up would stop a job that may have hours of work in it."""
    deadline = time.monotonic() + POLL_PATIENCE_S
    while True:
        try:
            return client.get_job_info(job_id)
        except Exception:
            if time.monotonic() > deadline:
                raise
            time.sleep(2.0)


def _stop(client: Any, job_id: str) -> None:
    """Stop the job and wait, briefly, until Ray says it stopped, so that a retry right after
    does not reattach to a job on its way out. Errors here must not hide the interruption."""
    with contextlib.suppress(Exception):
        client.stop_job(job_id)
        deadline = time.monotonic() + STOP_WAIT_S
        while time.monotonic() < deadline and not client.get_job_status(job_id).is_terminal():
            time.sleep(0.2)


def _ended_badly(job_id: str, info: Any, tail: tuple[str, ...]) -> RayJobError:
    error_type, message = info.error_type, info.message or ""
    if error_type == "JOB_ENTRYPOINT_COMMAND_ERROR":
        message = message.split("\n", 1)[0]  # the rest is Ray's copy of the log tail given below
    text = (
        f"Ray job {job_id} ended {info.status.value} ({error_type or 'no error type'}): {message[:4000]}\n"
        f"--- its last {len(tail)} log lines ---\n" + "\n".join(tail)
    )
    error = (RayJobLost if error_type in LOST_ERROR_TYPES else RayJobFailed)(
        text, job_id, info.status.value, error_type
    )
    error.log_tail = tail
    return error


class _Lines:
    """Cuts the log's chunks (which may end mid-line) into lines for `log`; counts what it was
    given, so the rest can be read from the full log; keeps the last lines for an error."""

    def __init__(self, log: Callable[[str], None]) -> None:
        self.log, self.partial, self.chars = log, "", 0
        self.tail: deque[str] = deque(maxlen=LOG_TAIL_LINES)

    def take(self, chunks: list[str]) -> None:
        for chunk in chunks:
            self.chars += len(chunk)
            *complete, self.partial = (self.partial + chunk).split("\n")
            for line in complete:
                self._emit(line.removesuffix("\r"))

    def flush(self) -> None:
        if self.partial:
            self._emit(self.partial)
            self.partial = ""

    def _emit(self, line: str) -> None:
        self.tail.append(line)
        self.log(line)


class _LogFollower:
    """`tail_job_logs`, an async generator, followed in a thread with an event loop of its own.

    A thread of its own works whether the caller has no event loop (a plain thread) or runs in a
    worker thread of a running loop (Prefect's sync tasks), where `asyncio.run` would be refused
    or would block that loop. The caller takes the chunks from a queue, so it keeps polling the
    job's status (a stalled stream cannot hide the job's end) and calls `log` itself.
    """

    def __init__(self, client: Any, job_id: str) -> None:
        self.client, self.job_id = client, job_id
        self.queue: queue.Queue[str | None] = queue.Queue()  # None: the stream is done
        self.done = False
        self._closing = threading.Event()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._task: asyncio.Task | None = None
        self._thread = threading.Thread(target=self._run, name=f"ray-job-logs-{job_id}", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        async def follow() -> None:
            self._loop, self._task = asyncio.get_running_loop(), asyncio.current_task()
            if not self._closing.is_set():  # else closed before this task could be cancelled
                async for chunk in self.client.tail_job_logs(self.job_id):
                    self.queue.put(chunk)

        with contextlib.suppress(BaseException):  # a broken stream: the full log is read at the end
            asyncio.run(follow())
        self.queue.put(None)

    def chunks_for(self, seconds: float) -> list[str]:
        """The chunks that arrive within `seconds` (those already here, for 0)."""
        chunks: list[str] = []
        deadline = time.monotonic() + seconds
        while not self.done:
            try:
                chunk = self.queue.get(timeout=max(0.0, deadline - time.monotonic()))
            except queue.Empty:
                break
            if chunk is None:
                self.done = True
            else:
                chunks.append(chunk)
        time.sleep(max(0.0, deadline - time.monotonic()))  # a finished stream must not speed up polls
        return chunks

    def close(self) -> None:
        self._closing.set()
        loop, task = self._loop, self._task
        if loop is not None and task is not None:
            with contextlib.suppress(RuntimeError):  # the loop has already closed
                loop.call_soon_threadsafe(task.cancel)
        self._thread.join(timeout=5)
