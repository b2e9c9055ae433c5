"""Stages as Ray jobs: with RAY_ADDRESS naming the dashboard, a stage is submitted through the Jobs API,
its logs stream back, and a caller that died while its job ran is replaced by one that reattaches.

Against the two-node local cluster of conftest.py (`ray start --head` with its dashboard on 127.0.0.1).
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest

from codedance_core.config import load_profile
from codedance_core.stages import StageContext, suite_split
from codedance_core.stages.keys import stage_key
from tests.integration.conftest import REPO, RayCluster, base_env
from tests.integration.workloads import sleeper_stage

CALLER = """
import sys
from codedance_core.stages import StageContext
from tests.integration.workloads import sleeper_stage
sleeper_stage(sys.argv[1], float(sys.argv[2]), sys.argv[3], StageContext(sys.argv[4]))
"""


@pytest.fixture
def jobs(ray_cluster: RayCluster, monkeypatch: pytest.MonkeyPatch) -> RayCluster:
    """This process as an orchestrator that reaches the cluster through its dashboard only."""
    import ray

    ray.shutdown()
    monkeypatch.setenv("RAY_ADDRESS", ray_cluster.dashboard_url)
    return ray_cluster


def submitted(cluster: RayCluster, prefix: str) -> list:
    from ray.job_submission import JobSubmissionClient

    return [job for job in JobSubmissionClient(cluster.dashboard_url).list_jobs()
            if (job.submission_id or "").startswith(prefix)]


def test_a_stage_runs_as_a_ray_job_and_its_logs_come_back(jobs: RayCluster, tmp_path: Path) -> None:
    lines: list[str] = []
    ctx = StageContext(str(tmp_path / "store"), log=lines.append)
    data = load_profile("tiny", ["data.train_size=6", "data.test_size=3"]).data
    ref = suite_split(data, "test", ctx)

    assert ref.rows == 3 and ctx.store().ref("data/suite/0/test.parquet") == ref
    key = stage_key(suite_split, {"data": data, "split": "test", "ctx": ctx})
    [job] = submitted(jobs, f"codedance-suite-{key[:16]}")
    assert job.status == "SUCCEEDED" and job.metadata["codedance.key"] == key
    assert any("submitted Ray job" in line for line in lines)
    assert any("suite: done" in line for line in lines)  # the job driver's own output, streamed


def test_a_restarted_caller_reattaches_to_the_job_still_running(jobs: RayCluster, tmp_path: Path) -> None:
    marker, name, store = tmp_path / "marker", f"reattach-{uuid.uuid4().hex[:8]}", str(tmp_path / "store")
    env = {**base_env(), "RAY_ADDRESS": jobs.dashboard_url, "PYTHONPATH": str(REPO)}
    caller = subprocess.Popen([sys.executable, "-c", CALLER, str(marker), "20", name, store], env=env, cwd=REPO,
                              start_new_session=True)
    deadline = time.monotonic() + 120
    while not marker.exists() and time.monotonic() < deadline:  # the job's task has started its work
        time.sleep(0.5)
    assert marker.exists(), "the job never started"
    os.killpg(caller.pid, signal.SIGKILL)  # the flow run's process dies; its job does not
    caller.wait()

    lines: list[str] = []
    ctx = StageContext(store, log=lines.append)
    result = sleeper_stage(str(marker), 20.0, name, ctx)
    assert result["first_attempt"]  # the answer of the job the dead caller started, not a second run
    key = stage_key(sleeper_stage, {"marker": str(marker), "seconds": 20.0, "ray_name": name, "ctx": ctx})
    [job] = submitted(jobs, f"codedance-sleeper-{key[:16]}")
    assert job.status == "SUCCEEDED"
    assert any("reattached to Ray job" in line for line in lines)
