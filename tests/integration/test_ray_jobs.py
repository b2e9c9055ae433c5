"""Stage work as Ray jobs on the real two-node cluster, through its dashboard's Jobs API.

What a stage relies on: the job's log reaches the stage's logger; a second call for the same
stage call reattaches to the running job instead of submitting another, and a call after success
returns the finished job; an interrupted wait stops its job; a failing job raises with its log
tail, a job whose supervisor died raises RayJobLost; the job runs the code shipped from this
checkout, not the installed copy. And `connect` through the head's Ray Client server.
"""

from __future__ import annotations

import asyncio
import os
import pickle
import shlex
import signal
import threading
import time
import uuid
from pathlib import Path

import pytest

from codedance_core.stages.ray_address import connect, parse_ray_address
from codedance_core.stages.ray_jobs import (
    JobRecord,
    JobSpec,
    RayJobFailed,
    RayJobLost,
    code_runtime_env,
    run_ray_job,
)
from tests.integration.conftest import RayCluster

REPO = Path(__file__).resolve().parents[2]


def python(code: str) -> str:
    """A job entrypoint that runs `code` with the cluster's python."""
    return f"python -u -c {shlex.quote(code)}"


def new_prefix() -> str:
    return f"it-{uuid.uuid4().hex[:12]}"


def jobs_of(cluster: RayCluster, prefix: str) -> list:
    from ray.job_submission import JobSubmissionClient

    jobs = JobSubmissionClient(cluster.dashboard_url).list_jobs()
    return sorted(
        (j for j in jobs if (j.submission_id or "").startswith(prefix + "-")), key=lambda j: j.submission_id
    )


def wait_until_running(cluster: RayCluster, prefix: str, timeout_s: float = 60.0) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if any(job.status.value == "RUNNING" for job in jobs_of(cluster, prefix)):
            return
        time.sleep(0.2)
    pytest.fail(f"no job of {prefix} was RUNNING within {timeout_s}s: {jobs_of(cluster, prefix)}")


def test_the_job_logs_reach_the_caller_and_it_runs_the_shipped_code(ray_cluster: RayCluster) -> None:
    code = (
        "import os, codedance_core\n"
        "print('codedance_core at', codedance_core.__file__)\n"
        "print('code version', os.environ['CODEDANCE_CODE_VERSION'], os.environ['STAGE'])\n"
        "for i in range(3): print('step', i)\n"
    )
    spec = JobSpec(python(code), code_runtime_env("c0de5eed", {"STAGE": "filter"}), {"stage": "filter"})
    prefix, lines = new_prefix(), []

    async def from_async_code() -> JobRecord:
        # An event loop is running in the calling thread: following the log must not try to use
        # it (asyncio.run would be refused here), nor need one where none runs (the other tests).
        return run_ray_job(ray_cluster.dashboard_url, prefix, spec, lines.append, poll_s=0.2)

    record = asyncio.run(from_async_code())

    assert record == JobRecord(f"{prefix}-1", "SUCCEEDED", attached=False)
    assert lines[0].startswith(f"submitted Ray job {prefix}-1")
    assert [line for line in lines if line.startswith("step")] == ["step 0", "step 1", "step 2"]
    assert "code version c0de5eed filter" in lines
    # (Ray's own lines are in the log too: it echoes the entrypoint, so match whole lines.)
    [location] = [line.split(" at ", 1)[1] for line in lines if line.startswith("codedance_core at /")]
    # Ray's unpacked copy of this checkout's package, not the editable install under the repo.
    assert not location.startswith(str(REPO)) and "_ray_pkg_" in location, location
    [job] = jobs_of(ray_cluster, prefix)
    assert job.metadata["stage"] == "filter"


def test_a_second_call_reattaches_and_a_call_after_success_returns_the_finished_job(
    ray_cluster: RayCluster,
) -> None:
    spec = JobSpec(python("import time\nfor i in range(8):\n    print('tick', i); time.sleep(0.5)\n"))
    prefix, first_lines, outcome = new_prefix(), [], {}

    def first_call() -> None:
        outcome["record"] = run_ray_job(
            ray_cluster.dashboard_url, prefix, spec, first_lines.append, poll_s=0.2
        )

    first = threading.Thread(target=first_call)
    first.start()
    wait_until_running(ray_cluster, prefix)
    second_lines: list[str] = []
    second = run_ray_job(ray_cluster.dashboard_url, prefix, spec, second_lines.append, poll_s=0.2)
    first.join(timeout=60)

    assert outcome["record"] == JobRecord(f"{prefix}-1", "SUCCEEDED", attached=False)
    assert second == JobRecord(f"{prefix}-1", "SUCCEEDED", attached=True)
    assert second_lines[0].startswith(f"reattached to Ray job {prefix}-1")
    # The reattached caller follows the same log, from its start.
    assert [line for line in second_lines if line.startswith("tick")] == [f"tick {i}" for i in range(8)]
    assert [job.submission_id for job in jobs_of(ray_cluster, prefix)] == [f"{prefix}-1"]

    third_lines: list[str] = []
    started = time.monotonic()
    third = run_ray_job(ray_cluster.dashboard_url, prefix, spec, third_lines.append, poll_s=0.2)
    assert third == JobRecord(f"{prefix}-1", "SUCCEEDED", attached=True)
    assert time.monotonic() - started < 5 and third_lines == []
    assert len(jobs_of(ray_cluster, prefix)) == 1


class Cancelled(BaseException):
    """What a Prefect cancellation or a timeout looks like to the waiting code: not an Exception."""


def test_an_interrupted_wait_stops_the_job_and_the_next_call_submits_a_new_attempt(
    ray_cluster: RayCluster,
) -> None:
    spec = JobSpec(python("import time\nprint('started')\ntime.sleep(120)\nprint('never')\n"))
    prefix = new_prefix()

    def cancel_once_started(line: str) -> None:
        if line == "started":
            raise Cancelled

    with pytest.raises(Cancelled):
        run_ray_job(ray_cluster.dashboard_url, prefix, spec, cancel_once_started, poll_s=0.2)

    [job] = jobs_of(ray_cluster, prefix)
    assert job.status.value == "STOPPED"
    # A stopped attempt is not reused: the next call runs attempt 2.
    quick = JobSpec(python("print('second attempt')"))
    lines: list[str] = []
    again = run_ray_job(ray_cluster.dashboard_url, prefix, quick, lines.append, poll_s=0.2)
    assert again == JobRecord(f"{prefix}-2", "SUCCEEDED", attached=False) and "second attempt" in lines


def test_a_failing_job_raises_with_its_log_tail(ray_cluster: RayCluster) -> None:
    code = "import sys\nfor i in range(60): print('row', i)\nsys.exit('bad config: lr must be positive')\n"
    prefix, lines = new_prefix(), []

    with pytest.raises(RayJobFailed) as failed:
        run_ray_job(ray_cluster.dashboard_url, prefix, JobSpec(python(code)), lines.append, poll_s=0.2)

    error = failed.value
    assert not isinstance(error, RayJobLost)
    assert (error.submission_id, error.status, error.error_type) == (
        f"{prefix}-1",
        "FAILED",
        "JOB_ENTRYPOINT_COMMAND_ERROR",
    )
    text = str(error)
    assert f"Ray job {prefix}-1 ended FAILED" in text and "exit code 1" in text
    # The last 40 lines, once: Ray's own copy of the log in its message is not repeated.
    assert error.log_tail[-1] == "bad config: lr must be positive" and len(error.log_tail) == 40
    assert "row 21" in text and "row 20" not in text and text.count("row 59") == 1
    assert lines[-1] == "bad config: lr must be positive"
    # Prefect keeps a task's exception in its state: it must survive pickling whole.
    copy = pickle.loads(pickle.dumps(error))
    assert type(copy) is RayJobFailed and str(copy) == text and copy.log_tail == error.log_tail


def test_a_job_whose_supervisor_dies_is_lost_not_failed(ray_cluster: RayCluster) -> None:
    from ray.util.state import list_actors

    prefix = new_prefix()
    spec = JobSpec(python("import time\nprint('working')\ntime.sleep(20)\n"))

    def kill_supervisor(line: str) -> None:
        if line != "working":
            return
        [supervisor] = list_actors(
            address=ray_cluster.dashboard_url, filters=[("name", "=", f"_ray_internal_job_actor_{prefix}-1")]
        )
        os.kill(supervisor.pid, signal.SIGKILL)

    with pytest.raises(RayJobLost) as lost:
        run_ray_job(ray_cluster.dashboard_url, prefix, spec, kill_supervisor, poll_s=0.2)
    assert lost.value.error_type == "JOB_SUPERVISOR_ACTOR_DIED" and lost.value.status == "FAILED"


def test_connect_through_the_ray_client_runs_tasks_on_the_cluster_with_the_shipped_code(
    ray_cluster: RayCluster,
) -> None:
    import ray

    ray.shutdown()  # an earlier test may have left this process connected

    def own_handler(signum, frame) -> None:  # stands in for Prefect's
        pass

    previous = signal.signal(signal.SIGTERM, own_handler)
    try:
        address = parse_ray_address(ray_cluster.client_address)
        connect(address, runtime_env=code_runtime_env("c11e27", {"STAGE": "rollout"}))
        connect(parse_ray_address(ray_cluster.address))  # already connected: a no-op

        @ray.remote(num_cpus=1)
        def where() -> dict:
            import codedance_core

            return {
                "file": codedance_core.__file__,
                "version": (os.environ["CODEDANCE_CODE_VERSION"], os.environ["STAGE"]),
                "node": ray.get_runtime_context().get_node_id(),
            }

        found = ray.get(where.remote(), timeout=60)
        assert ray.util.client.ray.is_connected()
        assert signal.getsignal(signal.SIGTERM) is own_handler
    finally:
        ray.shutdown()
        signal.signal(signal.SIGTERM, previous)
    assert found["version"] == ("c11e27", "rollout") and found["node"] == ray_cluster.worker_node_id
    assert not found["file"].startswith(str(REPO)) and "_ray_pkg_" in found["file"], found
