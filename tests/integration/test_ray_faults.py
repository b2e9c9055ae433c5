"""Faults of the Ray cluster under a stage: a killed worker is retried, work crosses nodes.

A flow runs in this process against the real Prefect server; its stage submits a sleeping
function to the two-node Ray cluster. The test finds the running Ray task through Ray's state
API and SIGKILLs its worker process: the stage must classify the loss as an infrastructure
fault, retry, and complete on a fresh worker of the non-head node.
"""

from __future__ import annotations

import os
import signal
import threading
import time
import uuid
from pathlib import Path

from prefect import get_client
from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterId

from tests.integration.conftest import RayCluster
from tests.integration.workloads import sleeper


def kill_worker_when_running(
    cluster: RayCluster, ray_name: str, marker: Path, killed: dict, timeout_s: float = 90.0
) -> None:
    """Wait for the Ray task `ray_name` to run its function, then SIGKILL its worker process."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        running = cluster.running_tasks(ray_name) if marker.exists() else []
        if running and running[0].worker_pid:
            assert marker.read_text() == str(running[0].worker_pid)
            killed.update(pid=running[0].worker_pid, node_id=running[0].node_id)
            os.kill(running[0].worker_pid, signal.SIGKILL)
            return
        time.sleep(0.5)


def task_runs(flow_run_id, timeout_s: float = 30.0) -> list:
    """The flow run's task runs, once the server has recorded them (task states reach the
    server as events, so they can land a moment after the flow run ends)."""
    deadline = time.monotonic() + timeout_s
    while True:
        with get_client(sync_client=True) as client:
            runs = client.read_task_runs(flow_run_filter=FlowRunFilter(id=FlowRunFilterId(any_=[flow_run_id])))
        if runs or time.monotonic() > deadline:
            return runs
        time.sleep(0.5)


def test_a_stage_whose_ray_worker_is_killed_is_retried_and_completes(
    prefect_api, ray_driver, tmp_path: Path
) -> None:
    ray_name = f"sleeper-{uuid.uuid4().hex[:8]}"
    marker, killed = tmp_path / "marker", {}
    killer = threading.Thread(
        target=kill_worker_when_running, args=(ray_driver, ray_name, marker, killed), daemon=True
    )
    killer.start()

    state = sleeper(str(marker), 120.0, ray_name, return_state=True)
    killer.join(timeout=5)

    assert killed, "the Ray task never showed as RUNNING in the state API"
    assert state.is_completed(), state.message
    result = state.result()
    # The retry ran a fresh worker, on the node that has the CPUs: not on the head node.
    assert not result["first_attempt"] and result["pid"] != killed["pid"]
    assert result["node_id"] == killed["node_id"] == ray_driver.worker_node_id != ray_driver.head_node_id

    [stage] = task_runs(state.state_details.flow_run_id)
    assert stage.state.name == "Completed" and stage.run_count == 2
