"""Cancelling a flow run through the Prefect API stops its Ray work.

The `sleeper` flow is deployed to the process pool; its stage runs a long Ray task on the
two-node cluster, driven from the flow-run process (RAY_ADDRESS a GCS address) or submitted as a
Ray job (RAY_ADDRESS the dashboard). While that task runs, the test cancels the flow run the way
the UI does (state Cancelling); the worker terminates the flow-run process, and neither the Ray
task nor its job may outlive it.
"""

from __future__ import annotations

import os
import time
import uuid
from pathlib import Path

import pytest
from prefect import get_client
from prefect.deployments import run_deployment
from prefect.states import Cancelling

from tests.integration.conftest import REPO, RayCluster, Worker

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def sleeper_deployment(prefect_worker: Worker) -> str:
    from tests.integration.workloads import sleeper

    flow = sleeper.from_source(source=str(REPO), entrypoint="tests/integration/workloads.py:sleeper")
    flow.deploy(name="sleeper", work_pool_name="codedance-process", print_next_steps=False)
    return "sleeper/sleeper"


def wait_for(condition, timeout_s: float, what: str):
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(0.5)
    pytest.fail(f"timed out after {timeout_s}s waiting for {what}")


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return Path(f"/proc/{pid}/status").exists() and "zombie" not in Path(f"/proc/{pid}/status").read_text()


@pytest.mark.parametrize("through", ["driver", "job"])
def test_a_cancelled_flow_run_leaves_no_ray_work_running(
    sleeper_deployment: str, ray_cluster: RayCluster, tmp_path: Path, through: str
) -> None:
    ray_name = f"cancel-me-{uuid.uuid4().hex[:8]}"
    marker = tmp_path / "marker"
    parameters = {"marker": str(marker), "seconds": 600.0, "ray_name": ray_name}
    job_variables = {"env": {"RAY_ADDRESS": ray_cluster.dashboard_url}} if through == "job" else None
    flow_run = run_deployment(sleeper_deployment, parameters=parameters, timeout=0, job_variables=job_variables)

    [task] = wait_for(
        lambda: marker.exists() and ray_cluster.running_tasks(ray_name), 180, "the Ray task to run"
    )
    assert task.node_id == ray_cluster.worker_node_id

    with get_client(sync_client=True) as client:
        client.set_flow_run_state(flow_run.id, Cancelling(message="cancelled by the test"), force=True)
        final = wait_for(
            lambda: (s := client.read_flow_run(flow_run.id).state).is_final() and s, 120, "the run to end"
        )
    assert final.is_cancelled(), final

    wait_for(lambda: not ray_cluster.running_tasks(ray_name), 30, "the Ray task to stop")
    wait_for(lambda: not pid_alive(task.worker_pid), 30, f"Ray worker {task.worker_pid} to exit")
    if through == "job":  # the job the stage submitted was stopped, not left to finish
        from ray.job_submission import JobSubmissionClient

        client = JobSubmissionClient(ray_cluster.dashboard_url)

        def sleeper_jobs() -> dict[str, str]:
            return {job.submission_id: job.status for job in client.list_jobs()
                    if (job.submission_id or "").startswith("codedance-sleeper-")}

        wait_for(lambda: sleeper_jobs() and set(sleeper_jobs().values()) == {"STOPPED"}, 30,
                 "the stage's Ray job to be stopped")
